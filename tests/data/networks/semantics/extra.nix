# A second network file: it extends machines of the first and adds one.
{
  network.enableRollback = true;

  alpha = {
    deployment.targetHost = "alpha.internal";
    deployment.keys.tls = {
      keyFile = "/secrets/tls.key";
      uploadAt = "post-activation";
      group = "nginx";
      permissions = "0640";
      destDir = "/run/keys/nginx";
    };
  };

  gamma = { lib, ... }: {
    imports = [ ./modules/site.nix ];
    deployment.targetHost = lib.mkOverride 10 "gamma.internal";
    deployment.privilegeEscalationCommand = [ "doas" ];
  };
}

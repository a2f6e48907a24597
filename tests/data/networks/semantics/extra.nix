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

  # A structured module (config = …) with mkMerge, mkForce under mkIf, and keys under mkIf.
  delta = { lib, ... }: {
    imports = [
      ({ lib, ... }: {
        deployment.keys.gone = lib.mkIf false { keyCommand = [ "false" ]; };
        deployment.keys.kept = lib.mkIf true { keyCommand = [ "true" ]; };
      })
    ];
    config = lib.mkMerge [
      { deployment.targetHost = "delta.internal"; }
      (lib.mkIf true { deployment.targetPort = lib.mkForce 2022; })
      { deployment.targetPort = 2023; }
    ];
  };
}

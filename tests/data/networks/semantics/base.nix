# Module-system semantics that ferry's driver must share with NixOps: defaults, priorities, mkIf/mkMerge,
# imports (inline and files), nodes, name, _module.args, and a network file that is a function.
{ domain ? "example.org" }:
{
  network.description = "semantics";

  defaults = { name, lib, ... }: {
    deployment.targetHost = lib.mkDefault "${name}.${domain}";
    deployment.tags = [ "all" ];
    deployment.keys.common = { keyCommand = [ "pass" "show" "common" ]; };
  };

  alpha = { config, lib, ... }: {
    deployment.targetPort = lib.mkForce 2200;
    deployment.buildOnTarget = lib.mkIf false true;
    deployment.substituteOnDestination = lib.mkMerge [ (lib.mkIf true false) ];
    deployment.tags = lib.mkAfter [ "alpha" ];
    imports = [ { deployment.targetPort = 2300; } ./modules/shared.nix ];
  };

  beta = { nodes, lib, ... }: {
    deployment.targetUser = "deploy";
    deployment.sshOptions = [ "-o" "ProxyJump=${nodes.alpha.config.deployment.targetHost}" ];
    deployment.keys.common.permissions = "0640";
    imports = [ ({ lib, ... }: { deployment = lib.mkIf true { alwaysActivate = false; }; }) ];
  };
}

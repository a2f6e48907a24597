{ config, lib, name, ... }:
{
  _module.args.site = "eu-west";
  deployment.tags = [ "shared-${name}" ];
  deployment.provisionSSHKey = lib.mkDefault false;
  networking.hostName = name;
}

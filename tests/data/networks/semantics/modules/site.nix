{ config, lib, name, ... }:
{
  imports = [ ./shared.nix ];
  deployment.tags = [ "site-of-${config.networking.hostName}" ];
}

# Fake machine configuration for the conformance corpus, in the style of seed 003.
{ config, lib, pkgs, ... }:
{
  imports = [ ../keys/talon.nix ];
  services.openssh = {
    enable = true;
    permitRootLogin = "prohibit-password";
    passwordAuthentication = false;
    challengeResponseAuthentication = false;
    extraConfig = "Compression no";
  };
  users.users.root = {
    openssh.authorizedKeys.keyFiles = [ ../keys/talon.pub ];
  };
  deployment.tags = [ "talon" "fleet" ];
}

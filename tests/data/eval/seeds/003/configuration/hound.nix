# Fake machine configuration for the conformance corpus, in the style of seed 003.
{ config, lib, pkgs, ... }:
{
  imports = [ ../keys/hound.nix ];
  services.openssh = {
    enable = true;
    permitRootLogin = "prohibit-password";
    passwordAuthentication = false;
    challengeResponseAuthentication = false;
    extraConfig = "Compression no";
  };
  users.users.root = {
    openssh.authorizedKeys.keyFiles = [ ../keys/hound.pub ];
  };
  deployment.tags = [ "hound" "fleet" ];
}

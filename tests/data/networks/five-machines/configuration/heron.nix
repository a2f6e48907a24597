{ config, pkgs, ... }:

{
  imports = [ ../users/root.nix ];

  networking.hostName = "heron";
  services.openssh = {
    enable = true;
    permitRootLogin = "prohibit-password";
    passwordAuthentication = false;
  };
  environment.systemPackages = with pkgs; [ git htop ];
  deployment.tags = [ "home" "heron" ];
  system.stateVersion = "20.03";
}

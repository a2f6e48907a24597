{ config, pkgs, ... }:

{
  imports = [ ../users/root.nix ];

  networking.hostName = "talon";
  services.openssh = {
    enable = true;
    permitRootLogin = "prohibit-password";
    passwordAuthentication = false;
  };
  environment.systemPackages = with pkgs; [ git htop ];
  deployment.tags = [ "home" "talon" ];
  system.stateVersion = "20.03";
}

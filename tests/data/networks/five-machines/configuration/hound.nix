{ config, pkgs, ... }:

{
  imports = [ ../users/root.nix ];

  networking.hostName = "hound";
  services.openssh = {
    enable = true;
    permitRootLogin = "prohibit-password";
    passwordAuthentication = false;
  };
  environment.systemPackages = with pkgs; [ git htop ];
  deployment.tags = [ "home" "hound" ];
  system.stateVersion = "20.03";
}

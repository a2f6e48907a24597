{ config, pkgs, ... }:

{
  imports = [ ../users/root.nix ];

  networking.hostName = "tiger";
  services.openssh = {
    enable = true;
    permitRootLogin = "prohibit-password";
    passwordAuthentication = false;
  };
  environment.systemPackages = with pkgs; [ git htop ];
  deployment.tags = [ "home" "tiger" ];
  system.stateVersion = "20.03";
}

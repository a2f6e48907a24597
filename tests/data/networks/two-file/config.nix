{
  network.description = "nixops example";
  target = {config, lib, pkgs, ...}: {

  # insert complete config here
  services.openssh.enable = true;
  environment.systemPackages = [ pkgs.htop ];

  };
}

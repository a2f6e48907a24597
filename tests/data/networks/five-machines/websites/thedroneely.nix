{ config, lib, pkgs, ... }:

{
  services.nginx = lib.mkIf (config.deployment.keys ? thedroneely_ssh_known_hosts) {
    enable = true;
    virtualHosts."thedroneely.com".root = "/var/www/thedroneely";
  };
  deployment.tags = lib.mkIf (config.networking.hostName == "pigeon") [ "nginx" ];
}

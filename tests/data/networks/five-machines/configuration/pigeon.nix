{ config, lib, pkgs, ... }:

let user = "thedroneely"; in

{
  imports = [ ../users/root.nix ../websites/thedroneely.nix ];

  networking.hostName = "pigeon";
  deployment.tags = [ "web" ];
  deployment.targetPort = lib.mkForce 2222;

  deployment.keys = {

    thedroneely_cockpit_api_token = {
      user = user;
      keyCommand = [ "pass" "show" "thedroneely/cockpit_api_token" ];
    };

    thedroneely_pgsql_database_password = {
      user = user; group = "postgres"; permissions = "0640";
      keyFile = "/var/lib/secrets/pgsql_database_password";
      uploadAt = "post-activation";
    };

    thedroneely_ssh_known_hosts = {
      inherit user;
      text = "${builtins.getEnv "FERRY_TEST_KNOWN_HOSTS"}";
      destDir = "/run/keys/ssh";
    };
  };

  system.stateVersion = "20.03";
}

{
  network.description = "bad options";
  network.enableRolback = true;

  web = { config, lib, ... }: {
    deployment.targetHost = "10.0.0.5";
    deployment.targetPort = "22";
    deployment.targetPrt = 2222;
    deployment.keys.tls = {
      keyFile = ./secrets/tls.key;
      permissions = "0644";
    };
    deployment.keys.db = {
      text = "hunter2";
      keyCommand = [ "pass" "show" "db" ];
    };
    deployment.keys.api.keyCommand = [ "pass" "show" "api" ];
    deployment.keys.api.uploadAt = "after";
    services.grafana.security.adminPassword = "hunter2";
  };

  web2 = {
    deployment.targetHost = "10.0.0.5";
    deployment.targetEnv = "ec2";
  };

  db = { pkgs, ... }: {
    deployment.targetHost = pkgs.lib.hostName;
    deployment.tags = [ "db" 5 ];
  };

  cache = { lib, ... }: {
    deployment.targetUser = lib.mkMerge [ "deploy" "admin" ];
    deployment.keys.cert.user = "nginx";
  };
}

{ config, pkgs, lib, unusedArg, ... }:
let
  unused = 1;
  port = 22;
in {
  imports = [ ./does-not-exist.nix ];
  deployment.targetPort = port;
  deployment.targetHost = hostname;
  networking.hostName = "é→🦀"; networking.domain = missingDomain;
  users.users.alice.hashedPassword = "$6$abc";
  services.foo.apiToken = "abc";
  services.foo.passwordFile = "${./secrets/foo}";
  environment.etc.x.source = import ./missing.nix;
  f = x: 1;
}

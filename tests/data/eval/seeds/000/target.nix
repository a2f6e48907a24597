{
  target = { config, pkgs, ... }: {
    deployment.targetHost = "123.122.111.110";
  };
}

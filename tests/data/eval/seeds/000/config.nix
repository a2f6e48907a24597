{
  network.description = "nixops example";
  target = {config, lib, pkgs, ...}: {

  # insert complete config here

  };
};

# Fake hardware configuration for the conformance corpus (seed 003 does not include it).
{ config, lib, pkgs, modulesPath, ... }:
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];
  boot.loader.grub.device = "/dev/vda";
  fileSystems."/" = { device = "/dev/disk/by-label/talon"; fsType = "ext4"; };
  networking.hostName = "talon";
}

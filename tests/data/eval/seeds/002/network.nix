{
  network = {
    description = "Blog";
    enableRollback = true;
  };

  webserver =
    { config, pkgs, modulesPath, ... }:
    { nixpkgs.localSystem.system = "x86_64-linux";
      deployment.targetHost = "IP-ADDRESS";

      # hardware-configuration.nix
      imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];
      boot.loader.grub.device = "/dev/vda";
      fileSystems."/" = { device = "/dev/vda1"; fsType = "ext4"; };

      # configuration.nix
      boot.cleanTmpDir = true;
      networking.hostName = "scw-practical-euler";
      networking.firewall.allowPing = true;
      services.openssh.enable = true;
      users.users.root.openssh.authorizedKeys.keys = [
        "ssh-ed25519 PUBLIC-KEY morris@laptop.local"
      ];

      # host.nix
      services.caddy = {
        enable = true;
        email = "EMAIL-ADDRESS";
        config = ''
          (common) {
            encode gzip
            header / -Server
            header / -X-Powered-By
          }
          a.test.morrisjobke.de {
            reverse_proxy 127.0.0.1:2368
          }
          b.test.morrisjobke.de {
            root * /data/http
            import common
            file_server browse
          }
        '';
      };

      virtualisation.oci-containers = {
        backend = "podman";
        containers = {
          ghost = {
            image = "ghost:3-alpine";
            ports = ["127.0.0.1:2368:2368"];
            volumes = [
              "/data/blog:/var/lib/ghost/content"
            ];
            environment = {
              url = "https://a.test.morrisjobke.de";
            };
          };
        };
      };

      # ... further config ...
    };
}

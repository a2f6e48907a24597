{
  "20.03" = { version = "20.03"; channel = "https://nixos.org/channels/nixos-20.03"; };
  "20.09" = { version = "20.09"; channel = "https://nixos.org/channels/nixos-20.09"; };

  unstable = import (builtins.fetchTarball {
    url = "https://github.com/NixOS/nixpkgs/archive/master.tar.gz";
    sha256 = "12n0mzkvs81ygspdjia03fv3v88cbbwznrpn375farcrsjzl86mc"; }) {};
}

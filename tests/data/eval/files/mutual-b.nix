{ b = (import ./mutual-a.nix).a + 1; }

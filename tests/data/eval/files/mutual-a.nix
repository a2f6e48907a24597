let f = import ./mutual-b.nix; in { a = 1; b = f.b; }

{ a = 1;
  b = "two";
  c = import ./double.nix 21;
}

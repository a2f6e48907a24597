let
  x = 1;
  y = "ünïcödé";
in
  { pos = builtins.unsafeGetAttrPos "z" { z = 1; }; inherit x y; }

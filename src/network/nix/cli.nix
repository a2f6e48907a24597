# Runs the driver outside ferry: `nix-instantiate --eval --strict --json -A summary cli.nix --arg files '[ ./a.nix ]'`.
# Tests and the benchmark use it to compare ferry with real Nix on the same work.
{ files, args ? { }, lib ? import ./lib.nix }:
import ./driver.nix {
  inherit lib;
  networks = map (f: let v = import f; in { file = toString f; value = if builtins.isFunction v then v args else v; }) files;
}

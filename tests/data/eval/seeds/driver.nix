# Evaluates a NixOps network the way a discovery pass does: every machine module is called with stub
# arguments, its imports followed, and only `deployment` and `network` are kept.
files:
let
  net = builtins.foldl' (acc: f: acc // import f) {} files;
  args = name: {
    inherit name;
    config = {}; pkgs = {}; lib = {}; nodes = {}; resources = {};
    modulesPath = "/modules";
  };
  load = m: if builtins.isPath m || builtins.isString m then import m else m;
  call = name: m: let m' = load m; in if builtins.isFunction m' then m' (args name) else m';
  collect = name: m:
    let v = call name m;
        imported = builtins.filter (i: !(builtins.isString i)) (v.imports or []);
    in [ (v.deployment or {}) ] ++ builtins.concatMap (collect name) imported;
  machines = removeAttrs net [ "network" "defaults" "resources" "require" ];
in {
  network = net.network or {};
  machines = builtins.mapAttrs (name: m: collect name m) machines;
}

# ferry's network driver: NixOps machine discovery as a Nix expression.
#
# It merges the network files (later files extend earlier ones), treats every top-level attribute except
# `network`, `defaults`, `resources` and `require` as a machine, applies `defaults` to every machine, and
# evaluates each machine's modules (attribute sets or functions of { config, pkgs, lib, name, nodes, modulesPath,
# resources, ... }) with their `imports`. Only what is forced gets evaluated: `deployment.*` and `network.*`.
# Values that discovery cannot provide (pkgs, options, modulesPath, resources) throw a clear error when forced.
#
# Definitions are merged the way the NixOS module system merges them: mkIf, mkMerge and mkOverride are pushed
# down through attribute sets without forcing conditions, then discharged per option; the definitions with the
# highest priority win (mkForce 50 < plain 100 < mkDefault 1000 < option default 1500); lists concatenate;
# other values must agree.
#
# The same file runs on ferry's embedded evaluator and on `nix-instantiate` (tests and benchmarks do that).
{
  # [ { file = "/abs/path.nix"; value = <the file's value, already applied to --arg/--argstr>; } ]
  networks,
  # nixpkgs' lib when <nixpkgs/lib> resolves, else ferry's minimal lib.
  lib,
  # The NixOS modules directory when known, else null (then `modulesPath` throws when forced).
  modulesPath ? null,
}:
let
  inherit (builtins)
    all attrNames concatLists concatMap elem filter foldl' functionArgs genericClosure head isAttrs isFunction
    isList isPath isString length listToAttrs mapAttrs pathExists removeAttrs tail tryEval zipAttrsWith;

  unavailable = what:
    throw "`${what}` is not available during discovery: ferry evaluates only the deployment.* and network.* options of a machine";

  reserved = [ "network" "defaults" "resources" "require" "_file" ];

  imap0 = f: list: builtins.genList (i: f i (builtins.elemAt list i)) (length list);

  showLoc = loc: builtins.concatStringsSep "." loc;

  # ---- module properties (the same attribute layout as nixpkgs' lib.mkIf & co) --------------------------------
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  defaultPriority = 100;

  typeOf' = v: if isAttrs v then v._type or null else null;

  # A value whose properties can be pushed into its attributes: a plain attribute set under mkIf/mkOverride/mkMerge.
  pushable = v:
    isAttrs v && (
      let t = v._type or null; in
      if t == null then !(v ? outPath)
      else if t == "merge" then all pushable v.contents
      else if t == "if" || t == "override" || t == "order" then pushable v.content
      else false);

  # NixOS' pushDownProperties: never forces a condition.
  pushDownProperties = v:
    let t = typeOf' v; in
    if t == "merge" then concatMap pushDownProperties v.contents
    else if t == "if" then map (mapAttrs (_: x: mkIf v.condition x)) (pushDownProperties v.content)
    else if t == "override" then map (mapAttrs (_: x: mkOverride v.priority x)) (pushDownProperties v.content)
    else if t == "order" then pushDownProperties v.content
    else [ v ];

  # Removes mkIf (forcing its condition), mkMerge and mkOrder; records mkOverride's and mkOrder's priorities.
  discharge = def:
    let v = def.value; t = typeOf' v; in
    if t == "merge" then concatMap (c: discharge (def // { value = c; })) v.contents
    else if t == "if" then (if v.condition then discharge (def // { value = v.content; }) else [ ])
    else if t == "override" then discharge (def // { value = v.content; priority = v.priority; })
    else if t == "order" then discharge (def // { value = v.content; order = v.priority; })
    else [ def ];

  # An option whose definitions all vanished (mkIf false): the schema's default applies.
  undefined = { _type = "ferry-undefined"; };
  isUndefined = v: isAttrs v && (v._type or null) == "ferry-undefined";
  orDefault = defaults: mapAttrs (n: v: if isUndefined v then defaults.${n} or v else v);

  # Untyped, lazy merge of module definitions at `loc`. defs: [ { file; value; } ]. `onUndefined loc` is the
  # value of a leaf without definitions.
  mergeWith = onUndefined: loc: defs:
    if defs != [ ] && all (d: pushable d.value) defs then
      zipAttrsWith (n: vs: mergeWith onUndefined (loc ++ [ n ]) vs)
        (concatMap (d: map (attrs: mapAttrs (_: x: { inherit (d) file; value = x; }) attrs) (pushDownProperties d.value)) defs)
    else mergeLeaf onUndefined loc defs;

  mergeAt = mergeWith (loc: throw "The option `${showLoc loc}' is used but not defined.");
  mergeOptional = mergeWith (_: undefined);

  mergeLeaf = onUndefined: loc: defs:
    let
      discharged = concatMap (d: discharge { inherit (d) file value; priority = defaultPriority; }) defs;
      best = foldl' (a: d: if d.priority < a then d.priority else a) 10000 discharged;
      top = filter (d: d.priority == best) discharged;
      values = map (d: d.value) top;
      first = head values;
    in
    if top == [ ] then onUndefined loc
    # Lists concatenate in mkBefore (500) / plain (1000) / mkAfter (1500) order; builtins.sort is stable.
    else if all isList values then concatLists (map (d: d.value) (builtins.sort (a: b: (a.order or 1000) < (b.order or 1000)) top))
    else if length values == 1 then first
    else if all (v: v == first) (tail values) then first
    else throw "The option `${showLoc loc}' has conflicting definition values (${toString (length top)} definitions with the same priority).";

  # The definitions that reach `loc` (pushed through properties), highest priority not considered.
  defsAt = loc: defs:
    if loc == [ ] then defs
    else
      let
        n = head loc;
        pushed = concatMap (d: if pushable d.value then map (a: { inherit (d) file; value = a; }) (pushDownProperties d.value) else [ ]) defs;
      in
      defsAt (tail loc) (concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) pushed);

  filesAt = loc: defs: map (d: d.file) (defsAt loc defs);

  # ---- the option schema ----------------------------------------------------------------------------------------
  deploymentDefaults = name: {
    targetHost = name;
    targetPort = 22;
    targetUser = "root";
    sshOptions = [ ];
    tags = [ ];
    keys = { };
    buildOnTarget = false;
    substituteOnDestination = true;
    privilegeEscalationCommand = [ "sudo" "-H" "--" ];
    provisionSSHKey = true;
    alwaysActivate = true;
  };
  keyDefaults = {
    user = "root";
    group = "root";
    permissions = "0600";
    destDir = "/run/keys";
    uploadAt = "pre-activation";
  };
  keySources = [ "text" "keyFile" "keyCommand" ];
  networkDefaults = {
    description = "Unnamed NixOps network";
    enableRollback = false;
    nixpkgs = null;
  };

  # ---- the network ------------------------------------------------------------------------------------------------
  definitionsOf = attr:
    concatMap (n: if n.value ? ${attr} then [ { inherit (n) file; value = n.value.${attr}; } ] else [ ]) networks;

  networkDefs = definitionsOf "network";
  networkMerged = if networkDefs == [ ] then { } else mergeOptional [ "network" ] networkDefs;
  network = orDefault networkDefaults (networkDefaults // networkMerged);

  machineNames = attrNames (removeAttrs (foldl' (a: n: a // n.value) { } networks) reserved);

  # ---- one machine ------------------------------------------------------------------------------------------------
  evalMachine = name:
    let
      baseArgs = {
        inherit config lib name nodes;
        pkgs = unavailable "pkgs";
        options = unavailable "options";
        modulesPath = if modulesPath == null then unavailable "modulesPath" else modulesPath;
        resources = unavailable "resources";
        uuid = unavailable "uuid";
        deploymentName = unavailable "deploymentName";
        baseModules = unavailable "baseModules";
        specialArgs = { };
      };
      # As NixOS: the requested arguments come from _module.args when not built in (lazily).
      callModule = f:
        f (baseArgs // mapAttrs (n: _: baseArgs.${n} or config._module.args.${n} or (unavailable n)) (functionArgs f));

      load = ref:
        let
          isFile = isPath ref.value || isString ref.value;
          file = if isFile then toString ref.value else ref.file;
          raw = if isFile then import ref.value else ref.value;
          m = if isFunction raw then callModule raw else raw;
          structured = m ? config || m ? options;
        in {
          inherit file;
          imports = (m.imports or [ ]) ++ (m.require or [ ]);
          config =
            if structured then m.config or { }
            else removeAttrs m [ "_file" "key" "disabledModules" "imports" "options" "config" "meta" "freeformType" "require" ];
        };

      mkItem = key: ref: { inherit key; loaded = load ref; };

      importItems = item:
        let r = tryEval item.loaded.imports; in
        if !r.success then [ ]
        else concatLists (imap0 (i: v:
          let
            forced = tryEval v;
            isFile = forced.success && (isPath forced.value || isString forced.value);
          in
          if !forced.success then [ ]
          else if isFile then (if pathExists forced.value then [ (mkItem (toString forced.value) { file = toString forced.value; value = forced.value; }) ] else [ ])
          else [ (mkItem "${item.key}/${toString i}" { inherit (item.loaded) file; value = v; }) ]
        ) r.value);

      startSet =
        imap0 (i: d: mkItem "defaults:${toString i}" d) (definitionsOf "defaults")
        ++ imap0 (i: d: mkItem "machine:${toString i}" d) (definitionsOf name);

      items = genericClosure { inherit startSet; operator = importItems; };

      # A module whose top level throws (say, it matches on pkgs) contributes nothing.
      moduleDefs = concatMap (item:
        let c = tryEval item.loaded.config; in
        if c.success then [ { inherit (item.loaded) file; value = c.value; } ] else [ ]) items;

      merged = if moduleDefs == [ ] then { } else mergeAt [ ] moduleDefs;

      deploymentDefs = defsAt [ "deployment" ] moduleDefs;
      rawDeployment = if deploymentDefs == [ ] then { } else mergeOptional [ "deployment" ] deploymentDefs;
      rawKeys = let k = rawDeployment.keys or { }; in if isUndefined k then { } else k;
      deployment = orDefault (deploymentDefaults name) (deploymentDefaults name // rawDeployment) // {
        keys = mapAttrs (_: k: orDefault keyDefaults (keyDefaults // k)) rawKeys;
      };
      config = merged // { inherit deployment; };
    in {
      inherit config deployment rawDeployment;
      modules = map (i: i.loaded.file) items;
      filesAt = loc: filesAt loc moduleDefs;
    };

  machines = listToAttrs (map (name: { inherit name; value = evalMachine name; }) machineNames);
  nodes = mapAttrs (_: m: { inherit (m) config; options = unavailable "options"; }) machines;

  summary = {
    network = { inherit (network) description enableRollback; };
    machines = mapAttrs (_: m:
      let d = m.deployment; in {
        inherit (d) targetHost targetPort targetUser tags buildOnTarget substituteOnDestination;
        keys = mapAttrs (_: k: {
          inherit (k) user group permissions destDir uploadAt;
          source = head (filter (s: k ? ${s}) keySources ++ [ null ]);
        }) d.keys;
      }) machines;
  };
in
{
  inherit network networkMerged machines machineNames summary keyDefaults keySources;
  networkFilesAt = loc: filesAt loc networkDefs;
}

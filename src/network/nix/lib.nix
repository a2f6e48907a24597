# ferry's minimal `lib`, used when <nixpkgs/lib> does not resolve. It covers the module-system helpers that
# network files use (mkIf, mkDefault, mkForce, mkOverride, mkMerge, mkOption, types…) with the same attribute
# layout as nixpkgs, and the common list, attribute and string functions.
let
  inherit (builtins)
    all any attrNames attrValues concatLists concatMap concatStringsSep elem elemAt filter foldl' genList head
    isAttrs isList isString length listToAttrs mapAttrs removeAttrs replaceStrings stringLength substring tail
    typeOf;

  # trivial
  id = x: x;
  const = x: _: x;
  flip = f: a: b: f b a;
  pipe = foldl' (x: f: f x);
  warn = msg: builtins.trace "warning: ${msg}";
  warnIf = cond: msg: if cond then warn msg else id;
  throwIf = cond: msg: if cond then throw msg else id;
  throwIfNot = cond: msg: if cond then id else throw msg;
  boolToString = b: if b then "true" else "false";
  mod = a: b: a - (a / b) * b;
  min = a: b: if a < b then a else b;
  max = a: b: if a > b then a else b;

  # lists
  foldr = op: nul: list:
    let len = length list; go = n: if n == len then nul else op (elemAt list n) (go (n + 1)); in go 0;
  fold = foldr;
  foldl = op: nul: list: foldl' op nul list;
  imap0 = f: list: genList (n: f n (elemAt list n)) (length list);
  imap1 = f: list: genList (n: f (n + 1) (elemAt list n)) (length list);
  forEach = xs: f: map f xs;
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  toList = x: if isList x then x else [ x ];
  flatten = x: if isList x then concatMap flatten x else [ x ];
  range = first: last: if first > last then [ ] else genList (n: first + n) (last - first + 1);
  last = list: elemAt list (length list - 1);
  init = list: genList (n: elemAt list n) (length list - 1);
  take = count: list: genList (n: elemAt list n) (min count (length list));
  drop = count: list: let l = length list; in genList (n: elemAt list (n + count)) (if count >= l then 0 else l - count);
  reverseList = xs: let l = length xs; in genList (n: elemAt xs (l - n - 1)) l;
  unique = foldl' (acc: e: if elem e acc then acc else acc ++ [ e ]) [ ];
  count = pred: foldl' (c: x: if pred x then c + 1 else c) 0;
  findFirst = pred: default: list: let found = filter pred list; in if found == [ ] then default else head found;
  partition = builtins.partition;
  subtractLists = e: filter (x: !(elem x e));
  intersectLists = e: filter (x: elem x e);
  zipListsWith = f: fst: snd: genList (n: f (elemAt fst n) (elemAt snd n)) (min (length fst) (length snd));
  zipLists = zipListsWith (fst: snd: { inherit fst snd; });
  sort = builtins.sort;
  remove = e: filter (x: x != e);

  # attribute sets
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: listToAttrs (map (attr: f attr set.${attr}) (attrNames set));
  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (attrNames attrs);
  attrsToList = mapAttrsToList nameValuePair;
  filterAttrs = pred: set:
    listToAttrs (concatMap (name: let v = set.${name}; in if pred name v then [ (nameValuePair name v) ] else [ ]) (attrNames set));
  genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
  optionalAttrs = cond: as: if cond then as else { };
  attrByPath = attrPath: default: e:
    if attrPath == [ ] then e
    else let attr = head attrPath; in
      if e ? ${attr} then attrByPath (tail attrPath) default e.${attr} else default;
  hasAttrByPath = attrPath: e:
    if attrPath == [ ] then true
    else let attr = head attrPath; in e ? ${attr} && hasAttrByPath (tail attrPath) e.${attr};
  getAttrFromPath = attrPath: set:
    attrByPath attrPath (throw "cannot find attribute `${concatStringsSep "." attrPath}'") set;
  setAttrByPath = attrPath: value:
    if attrPath == [ ] then value else { ${head attrPath} = setAttrByPath (tail attrPath) value; };
  recursiveUpdateUntil = pred: lhs: rhs:
    let f = attrPath:
      builtins.zipAttrsWith (n: values:
        let here = attrPath ++ [ n ]; in
        if length values == 1 || pred here (elemAt values 1) (head values) then head values
        else f here values);
    in f [ ] [ rhs lhs ];
  recursiveUpdate = recursiveUpdateUntil (path: lhs: rhs: !(isAttrs lhs && isAttrs rhs));
  zipAttrsWith = builtins.zipAttrsWith;
  zipAttrs = builtins.zipAttrsWith (_: values: values);
  foldAttrs = op: nul: list_of_attrs:
    foldr (n: a: foldr (name: o: o // { ${name} = op n.${name} (a.${name} or nul); }) a (attrNames n)) { } list_of_attrs;
  collect = pred: attrs:
    if pred attrs then [ attrs ] else if isAttrs attrs then concatMap (collect pred) (attrValues attrs) else [ ];
  isDerivation = v: isAttrs v && v.type or null == "derivation";

  # strings
  concatStrings = concatStringsSep "";
  concatMapStrings = f: list: concatStrings (map f list);
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  concatImapStrings = f: list: concatStrings (imap1 f list);
  optionalString = cond: s: if cond then s else "";
  hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
  hasSuffix = suffix: content:
    let lenContent = stringLength content; lenSuffix = stringLength suffix; in
    lenContent >= lenSuffix && substring (lenContent - lenSuffix) lenContent content == suffix;
  hasInfix = infix: content: builtins.match ".*${escapeRegex infix}.*" "${content}" != null;
  removePrefix = prefix: str:
    let l = stringLength prefix; in if hasPrefix prefix str then substring l (stringLength str - l) str else str;
  removeSuffix = suffix: str:
    let sl = stringLength suffix; l = stringLength str; in
    if hasSuffix suffix str then substring 0 (l - sl) str else str;
  stringToCharacters = s: genList (p: substring p 1 s) (stringLength s);
  escapeRegex = replaceStrings
    [ "\\" "[" "]" "{" "}" "(" ")" "^" "$" "." "*" "+" "?" "|" ]
    [ "\\\\" "\\[" "\\]" "\\{" "\\}" "\\(" "\\)" "\\^" "\\$" "\\." "\\*" "\\+" "\\?" "\\|" ];
  splitString = sep: s:
    map (v: if isList v then "" else v) (filter isString (builtins.split (escapeRegex sep) s));
  lowerChars = stringToCharacters "abcdefghijklmnopqrstuvwxyz";
  upperChars = stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  toLower = replaceStrings upperChars lowerChars;
  toUpper = replaceStrings lowerChars upperChars;
  escapeShellArg = arg: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;
  fileContents = file: removeSuffix "\n" (builtins.readFile file);
  versionOlder = v1: v2: builtins.compareVersions v2 v1 == 1;
  versionAtLeast = v1: v2: !versionOlder v1 v2;

  # the module system
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkImageMediaOverride = mkOverride 60;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  mkOrder = priority: content: { _type = "order"; inherit priority content; };
  mkBefore = mkOrder 500;
  mkAfter = mkOrder 1500;
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption { default = false; example = true; description = "Whether to enable ${name}."; type = types.bool; };
  mkPackageOption = _pkgs: name: _: mkOption { description = "The ${name} package to use."; };
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  literalExample = literalExpression;
  literalMD = text: { _type = "literalMD"; inherit text; };
  mdDoc = id;
  mkAliasDefinitions = _: { };
  mkRemovedOptionModule = _: _: { };
  mkRenamedOptionModule = _: _: { };
  mkAliasOptionModule = _: _: { };
  mkChangedOptionModule = _: _: _: { };
  mkMergedOptionModule = _: _: _: { };

  # Option types are only declared, never checked, during discovery.
  mkOptionType = attrs: { _type = "option-type"; } // attrs;
  simpleType = name: mkOptionType { inherit name; };
  wrapType = name: _: mkOptionType { inherit name; };
  types = {
    bool = simpleType "bool";
    int = simpleType "int";
    ints = { unsigned = simpleType "unsigned"; positive = simpleType "positive"; u8 = simpleType "u8"; u16 = simpleType "u16"; u32 = simpleType "u32"; between = _: _: simpleType "intBetween"; };
    port = simpleType "port";
    float = simpleType "float";
    number = simpleType "number";
    str = simpleType "str";
    string = simpleType "string";
    lines = simpleType "lines";
    commas = simpleType "commas";
    envVar = simpleType "envVar";
    nonEmptyStr = simpleType "nonEmptyStr";
    singleLineStr = simpleType "singleLineStr";
    path = simpleType "path";
    package = simpleType "package";
    attrs = simpleType "attrs";
    anything = simpleType "anything";
    raw = simpleType "raw";
    unspecified = simpleType "unspecified";
    strMatching = wrapType "strMatching";
    separatedString = wrapType "separatedString";
    enum = wrapType "enum";
    listOf = wrapType "listOf";
    nonEmptyListOf = wrapType "nonEmptyListOf";
    attrsOf = wrapType "attrsOf";
    lazyAttrsOf = wrapType "lazyAttrsOf";
    nullOr = wrapType "nullOr";
    uniq = wrapType "uniq";
    unique = _: wrapType "unique";
    functionTo = wrapType "functionTo";
    submodule = wrapType "submodule";
    submoduleWith = wrapType "submoduleWith";
    either = _: wrapType "either";
    oneOf = wrapType "oneOf";
    coercedTo = _: _: wrapType "coercedTo";
  };
in
{
  inherit
    id const flip pipe warn warnIf throwIf throwIfNot boolToString mod min max
    foldr fold foldl imap0 imap1 forEach optional optionals toList flatten range last init take drop reverseList
    unique count findFirst partition subtractLists intersectLists zipListsWith zipLists sort remove
    nameValuePair mapAttrs' mapAttrsToList attrsToList filterAttrs genAttrs optionalAttrs attrByPath hasAttrByPath
    getAttrFromPath setAttrByPath recursiveUpdateUntil recursiveUpdate zipAttrsWith zipAttrs foldAttrs collect
    isDerivation
    concatStrings concatMapStrings concatMapStringsSep concatImapStrings optionalString hasPrefix hasSuffix hasInfix
    removePrefix removeSuffix stringToCharacters escapeRegex splitString toLower toUpper escapeShellArg
    escapeShellArgs fileContents versionOlder versionAtLeast
    mkIf mkMerge mkOverride mkOptionDefault mkDefault mkImageMediaOverride mkForce mkVMOverride mkOrder mkBefore
    mkAfter mkOption mkEnableOption mkPackageOption literalExpression literalExample literalMD mdDoc
    mkAliasDefinitions mkRemovedOptionModule mkRenamedOptionModule mkAliasOptionModule mkChangedOptionModule
    mkMergedOptionModule mkOptionType types;
  inherit (builtins)
    all any attrNames attrValues concatLists concatMap concatStringsSep elem elemAt filter foldl' genList head
    isAttrs isList isString isBool isInt isFunction length listToAttrs mapAttrs removeAttrs replaceStrings
    stringLength substring tail typeOf toJSON fromJSON readFile pathExists getAttr hasAttr intersectAttrs
    catAttrs functionArgs genericClosure seq deepSeq tryEval trace match split;
  isStorePath = x: isString x && builtins.match "/nix/store/[^/]+" x != null;
  trivial = { inherit id const flip pipe warn boolToString mod min max; };
  lists = { inherit foldr fold foldl imap0 imap1 forEach optional optionals toList flatten range last init take drop reverseList unique count findFirst partition subtractLists intersectLists zipListsWith zipLists sort remove; inherit (builtins) all any concatLists concatMap elem elemAt filter foldl' genList head length tail; };
  attrsets = { inherit nameValuePair mapAttrs' mapAttrsToList attrsToList filterAttrs genAttrs optionalAttrs attrByPath hasAttrByPath getAttrFromPath setAttrByPath recursiveUpdateUntil recursiveUpdate zipAttrsWith zipAttrs foldAttrs collect isDerivation; inherit (builtins) attrNames attrValues mapAttrs listToAttrs removeAttrs catAttrs intersectAttrs; };
  strings = { inherit concatStrings concatMapStrings concatMapStringsSep concatImapStrings optionalString hasPrefix hasSuffix hasInfix removePrefix removeSuffix stringToCharacters escapeRegex splitString toLower toUpper escapeShellArg escapeShellArgs fileContents; inherit (builtins) concatStringsSep replaceStrings stringLength substring; };
  modules = { inherit mkIf mkMerge mkOverride mkOptionDefault mkDefault mkForce mkVMOverride mkOrder mkBefore mkAfter mkAliasDefinitions mkRemovedOptionModule mkRenamedOptionModule mkAliasOptionModule; };
  options = { inherit mkOption mkEnableOption mkPackageOption literalExpression literalExample; };
  versions = { majorMinor = v: concatStringsSep "." (take 2 (builtins.splitVersion v)); major = v: head (builtins.splitVersion v); };
  version = "ferry-minimal";
}

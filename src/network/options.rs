//! The deployment option schema (names, types, defaults, docs) and the typed model that discovery fills in.
//!
//! Key contents are held in [`SecretText`], whose `Debug` never shows them, and which is never serialised.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The type an option must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    Str,
    Port,
    Bool,
    ListOfStr,
    Keys,
    KeyText,
    KeyFile,
    Permissions,
    UploadAt,
    /// `network.nixpkgs`: null, a path or a string.
    NixpkgsPin,
}

impl OptionType {
    /// How the type reads in a message.
    pub fn describe(self) -> &'static str {
        match self {
            OptionType::Str => "a string",
            OptionType::Port => "an integer between 1 and 65535",
            OptionType::Bool => "a boolean",
            OptionType::ListOfStr => "a list of strings",
            OptionType::Keys => "an attribute set of keys",
            OptionType::KeyText => "a string",
            OptionType::KeyFile => "a string (an absolute file name)",
            OptionType::Permissions => "an octal mode string such as \"0600\"",
            OptionType::UploadAt => "\"pre-activation\" or \"post-activation\"",
            OptionType::NixpkgsPin => "null, a path or a string",
        }
    }
}

/// One documented option.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    pub name: &'static str,
    pub ty: OptionType,
    /// The default, as Nix.
    pub default: &'static str,
    pub description: &'static str,
}

const fn opt(
    name: &'static str,
    ty: OptionType,
    default: &'static str,
    description: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        ty,
        default,
        description,
    }
}

/// `deployment.*`.
pub const DEPLOYMENT_OPTIONS: &[OptionSpec] = &[
    opt(
        "targetHost",
        OptionType::Str,
        "the machine's name",
        "Host name or address ferry connects to over SSH.",
    ),
    opt(
        "targetPort",
        OptionType::Port,
        "22",
        "SSH port of the target host.",
    ),
    opt(
        "targetUser",
        OptionType::Str,
        "\"root\"",
        "User ferry logs in as; a user other than root escalates with privilegeEscalationCommand.",
    ),
    opt(
        "sshOptions",
        OptionType::ListOfStr,
        "[ ]",
        "Extra options for the SSH connection, e.g. [ \"-o\" \"ProxyJump=bastion\" ].",
    ),
    opt(
        "tags",
        OptionType::ListOfStr,
        "[ ]",
        "Tags for selecting groups of machines.",
    ),
    opt(
        "keys",
        OptionType::Keys,
        "{ }",
        "Secrets uploaded to the machine outside the Nix store (see deployment.keys.<name>.*).",
    ),
    opt(
        "buildOnTarget",
        OptionType::Bool,
        "false",
        "Build the system closure on the target instead of locally.",
    ),
    opt(
        "substituteOnDestination",
        OptionType::Bool,
        "true",
        "Let the target fetch paths from its binary caches before ferry copies them.",
    ),
    opt(
        "privilegeEscalationCommand",
        OptionType::ListOfStr,
        "[ \"sudo\" \"-H\" \"--\" ]",
        "Command prefix used when targetUser is not root.",
    ),
    opt(
        "provisionSSHKey",
        OptionType::Bool,
        "true",
        "Install ferry's deployment SSH key for root on the target.",
    ),
    opt(
        "alwaysActivate",
        OptionType::Bool,
        "true",
        "Activate the configuration even when it did not change.",
    ),
];

/// `deployment.keys.<name>.*`.
pub const KEY_OPTIONS: &[OptionSpec] = &[
    opt(
        "text",
        OptionType::KeyText,
        "null",
        "The key's contents. Exactly one of text, keyFile and keyCommand.",
    ),
    opt(
        "keyFile",
        OptionType::KeyFile,
        "null",
        "A local file whose contents are the key; read at deploy time, never imported into the store.",
    ),
    opt(
        "keyCommand",
        OptionType::ListOfStr,
        "null",
        "A local command whose standard output is the key, e.g. [ \"pass\" \"show\" \"db\" ].",
    ),
    opt(
        "user",
        OptionType::Str,
        "\"root\"",
        "Owner of the key file on the target.",
    ),
    opt(
        "group",
        OptionType::Str,
        "\"root\"",
        "Group of the key file on the target.",
    ),
    opt(
        "permissions",
        OptionType::Permissions,
        "\"0600\"",
        "Mode of the key file on the target.",
    ),
    opt(
        "destDir",
        OptionType::Str,
        "\"/run/keys\"",
        "Directory the key is written to on the target.",
    ),
    opt(
        "uploadAt",
        OptionType::UploadAt,
        "\"pre-activation\"",
        "Upload the key before (\"pre-activation\") or after (\"post-activation\") activating the new configuration.",
    ),
];

/// `network.*`.
pub const NETWORK_OPTIONS: &[OptionSpec] = &[
    opt(
        "description",
        OptionType::Str,
        "\"Unnamed NixOps network\"",
        "A description of the network.",
    ),
    opt(
        "enableRollback",
        OptionType::Bool,
        "false",
        "Keep previous generations so that a deployment can be rolled back.",
    ),
    opt(
        "nixpkgs",
        OptionType::NixpkgsPin,
        "null",
        "The nixpkgs every machine is built with (a path or a pinned source); null means <nixpkgs>.",
    ),
];

/// NixOps `deployment.*` options ferry recognises but does not implement.
pub const IGNORED_DEPLOYMENT_OPTIONS: &[&str] = &[
    "targetEnv",
    "storeKeysOnMachine",
    "owners",
    "hasFastConnection",
    "autoLuks",
    "autoRaid0",
    "encryptedLinksTo",
    "ec2",
    "gce",
    "azure",
    "virtualbox",
    "libvirtd",
    "hetzner",
    "hetznerCloud",
    "digitalOcean",
    "container",
    "vultr",
    "packet",
    "route53",
];

/// NixOps `network.*` options ferry recognises but does not implement.
pub const IGNORED_NETWORK_OPTIONS: &[&str] = &["storage", "lock"];

/// Key fields NixOps accepts that ferry ignores.
pub const IGNORED_KEY_OPTIONS: &[&str] = &["name", "path"];

/// Key contents. `Debug` never shows them and they are never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(s: String) -> SecretText {
        SecretText(s)
    }

    /// The contents, for the code that uploads them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// Where a key's contents come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `text`; `None` unless discovery was asked to resolve key contents.
    Text(Option<SecretText>),
    /// `keyFile`, as a string (toString semantics: never imported into the store).
    KeyFile(String),
    KeyCommand(Vec<String>),
}

impl KeySource {
    pub fn kind(&self) -> &'static str {
        match self {
            KeySource::Text(_) => "text",
            KeySource::KeyFile(_) => "keyFile",
            KeySource::KeyCommand(_) => "keyCommand",
        }
    }
}

/// When a key is uploaded relative to activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadAt {
    PreActivation,
    PostActivation,
}

impl UploadAt {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadAt::PreActivation => "pre-activation",
            UploadAt::PostActivation => "post-activation",
        }
    }

    pub fn parse(s: &str) -> Option<UploadAt> {
        match s {
            "pre-activation" => Some(UploadAt::PreActivation),
            "post-activation" => Some(UploadAt::PostActivation),
            _ => None,
        }
    }
}

/// `deployment.keys.<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub source: KeySource,
    pub user: String,
    pub group: String,
    /// Validated octal mode, e.g. 0o600.
    pub permissions: u32,
    pub dest_dir: String,
    pub upload_at: UploadAt,
}

impl Key {
    /// The mode as written in Nix ("0600").
    pub fn permissions_string(&self) -> String {
        format!("{:04o}", self.permissions)
    }
}

/// A machine's resolved `deployment.*` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub target_host: String,
    pub target_port: u16,
    pub target_user: String,
    pub ssh_options: Vec<String>,
    pub tags: Vec<String>,
    pub keys: BTreeMap<String, Key>,
    pub build_on_target: bool,
    pub substitute_on_destination: bool,
    pub privilege_escalation_command: Vec<String>,
    pub provision_ssh_key: bool,
    pub always_activate: bool,
}

impl Deployment {
    /// The defaults for machine `name`.
    pub fn defaults(name: &str) -> Deployment {
        Deployment {
            target_host: name.to_string(),
            target_port: 22,
            target_user: "root".into(),
            ssh_options: Vec::new(),
            tags: Vec::new(),
            keys: BTreeMap::new(),
            build_on_target: false,
            substitute_on_destination: true,
            privilege_escalation_command: vec!["sudo".into(), "-H".into(), "--".into()],
            provision_ssh_key: true,
            always_activate: true,
        }
    }
}

/// One machine of the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub name: String,
    pub deployment: Deployment,
    /// Every module file the machine's definition reached (network files and imports), in discovery order.
    pub modules: Vec<PathBuf>,
}

/// The whole network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub description: String,
    pub enable_rollback: bool,
    /// `network.nixpkgs` as a string (a path or a source), when set and computable without a store.
    pub nixpkgs: Option<String>,
    pub machines: BTreeMap<String, Machine>,
}

impl Network {
    /// The `ferry eval --json` shape:
    /// `{"network": {"description", "enableRollback"}, "machines": {"<name>": {"targetHost", "targetPort",
    /// "targetUser", "tags", "buildOnTarget", "substituteOnDestination", "keys": {"<key>": {"user", "group",
    /// "permissions", "destDir", "uploadAt", "source"}}}}}`. Key contents never appear.
    pub fn summary_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let mut machines = Map::new();
        for (name, m) in &self.machines {
            let d = &m.deployment;
            let mut keys = Map::new();
            for (k, key) in &d.keys {
                keys.insert(
                    k.clone(),
                    json!({
                        "user": key.user,
                        "group": key.group,
                        "permissions": key.permissions_string(),
                        "destDir": key.dest_dir,
                        "uploadAt": key.upload_at.as_str(),
                        "source": key.source.kind(),
                    }),
                );
            }
            machines.insert(
                name.clone(),
                json!({
                    "targetHost": d.target_host,
                    "targetPort": d.target_port,
                    "targetUser": d.target_user,
                    "tags": d.tags,
                    "buildOnTarget": d.build_on_target,
                    "substituteOnDestination": d.substitute_on_destination,
                    "keys": Value::Object(keys),
                }),
            );
        }
        json!({
            "network": { "description": self.description, "enableRollback": self.enable_rollback },
            "machines": Value::Object(machines),
        })
    }
}

/// Parses an octal mode string ("0600", "640").
pub fn parse_permissions(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

/// True when `mode` grants anything beyond 0640.
pub fn wider_than_0640(mode: u32) -> bool {
    mode & !0o640 & 0o7777 != 0
}

/// The closest known name to `name` among `candidates`, if close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, strsim::jaro_winkler(&lower, &c.to_lowercase())))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permissions() {
        assert_eq!(parse_permissions("0600"), Some(0o600));
        assert_eq!(parse_permissions("640"), Some(0o640));
        assert_eq!(parse_permissions("0800"), None);
        assert_eq!(parse_permissions("rw"), None);
        assert!(!wider_than_0640(0o600));
        assert!(!wider_than_0640(0o640));
        assert!(!wider_than_0640(0o400));
        assert!(wider_than_0640(0o644));
        assert!(wider_than_0640(0o660));
        assert!(wider_than_0640(0o700));
        assert!(wider_than_0640(0o4600));
    }

    #[test]
    fn suggestions() {
        let names = DEPLOYMENT_OPTIONS.iter().map(|o| o.name);
        assert_eq!(suggest("targetPrt", names.clone()), Some("targetPort"));
        assert_eq!(suggest("targethost", names.clone()), Some("targetHost"));
        assert_eq!(suggest("zzzz", names), None);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = SecretText::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

//! The stable diagnostic codes, with the `What it does / Why / Example` text that `ferry lint --explain`
//! prints. Codes never change meaning once released; retired codes stay reserved.

use super::diagnostic::Severity;

/// Every code ferry emits. `E…` codes are errors, `W…` codes warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// A syntax error.
    ParseError,
    /// Evaluating a deployment or network option failed.
    EvalError,
    /// A `deployment.*` (or `network.*`, or key) option that does not exist.
    UnknownOption,
    /// An option set to a value of the wrong type, or to a value outside its allowed set.
    WrongType,
    /// Two machines deploy to the same host and port.
    DuplicateTargetHost,
    /// A variable that no scope binds.
    UndefinedVariable,
    /// `import` or `imports` of a file that does not exist.
    MissingImport,
    /// A key without exactly one of `text`, `keyFile` and `keyCommand`.
    KeySource,
    /// A `let` binding nothing uses.
    UnusedLet,
    /// A function argument nothing uses.
    UnusedArgument,
    /// `deployment.keys.<name>.text` given as a literal.
    LiteralKeyText,
    /// A password-, secret- or token-like option set to a literal.
    LiteralSecret,
    /// A secret file referenced as a Nix path literal.
    SecretPathLiteral,
    /// `users.users.root.openssh.authorizedKeys.keys` set in a machine.
    RootAuthorizedKeys,
    /// Key permissions wider than 0640.
    WideKeyPermissions,
    /// A NixOps option that ferry recognises but ignores.
    IgnoredOption,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::ParseError,
        Code::EvalError,
        Code::UnknownOption,
        Code::WrongType,
        Code::DuplicateTargetHost,
        Code::UndefinedVariable,
        Code::MissingImport,
        Code::KeySource,
        Code::UnusedLet,
        Code::UnusedArgument,
        Code::LiteralKeyText,
        Code::LiteralSecret,
        Code::SecretPathLiteral,
        Code::RootAuthorizedKeys,
        Code::WideKeyPermissions,
        Code::IgnoredOption,
    ];

    /// The stable code, e.g. `E0003`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ParseError => "E0001",
            Code::EvalError => "E0002",
            Code::UnknownOption => "E0003",
            Code::WrongType => "E0004",
            Code::DuplicateTargetHost => "E0005",
            Code::UndefinedVariable => "E0006",
            Code::MissingImport => "E0007",
            Code::KeySource => "E0008",
            Code::UnusedLet => "W0001",
            Code::UnusedArgument => "W0002",
            Code::LiteralKeyText => "W0003",
            Code::LiteralSecret => "W0004",
            Code::SecretPathLiteral => "W0005",
            Code::RootAuthorizedKeys => "W0006",
            Code::WideKeyPermissions => "W0007",
            Code::IgnoredOption => "W0008",
        }
    }

    /// A short kebab-case name, accepted by `--explain` too.
    pub fn name(self) -> &'static str {
        match self {
            Code::ParseError => "parse-error",
            Code::EvalError => "eval-error",
            Code::UnknownOption => "unknown-option",
            Code::WrongType => "wrong-type",
            Code::DuplicateTargetHost => "duplicate-target-host",
            Code::UndefinedVariable => "undefined-variable",
            Code::MissingImport => "missing-import",
            Code::KeySource => "key-source",
            Code::UnusedLet => "unused-let",
            Code::UnusedArgument => "unused-argument",
            Code::LiteralKeyText => "literal-key-text",
            Code::LiteralSecret => "literal-secret",
            Code::SecretPathLiteral => "secret-path-literal",
            Code::RootAuthorizedKeys => "root-authorized-keys",
            Code::WideKeyPermissions => "wide-key-permissions",
            Code::IgnoredOption => "ignored-option",
        }
    }

    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('E') {
            Severity::Error
        } else {
            Severity::Warning
        }
    }

    /// Looks a code up by its code (`E0003`, case-insensitive) or its name (`unknown-option`).
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s) || c.name() == s)
    }

    /// What it does / Why / Example.
    pub fn explanation(self) -> &'static str {
        match self {
            Code::ParseError => {
                "What it does: reports text that is not valid Nix.\n\n\
                 Why: nothing in the file can be evaluated until it parses.\n\n\
                 Example:\n\n    { web = { deployment.targetHost = \"10.0.0.1\" }; }   # missing `;`\n\n\
                 Use instead:\n\n    { web = { deployment.targetHost = \"10.0.0.1\"; }; }\n"
            }
            Code::EvalError => {
                "What it does: evaluates every machine's deployment.* and network.* options and reports those \
                 that fail (a throw, a missing attribute, a use of `pkgs`, a conflict between definitions of \
                 the same priority).\n\n\
                 Why: ferry cannot deploy a machine whose target or keys it cannot compute.\n\n\
                 Example:\n\n    web = { pkgs, ... }: { deployment.targetHost = pkgs.hostname; };\n\n\
                 Use instead: compute deployment options from plain values, `name`, or `nodes`.\n"
            }
            Code::UnknownOption => {
                "What it does: reports deployment.*, network.* and deployment.keys.<name>.* options that \
                 do not exist, with the closest existing name.\n\n\
                 Why: a misspelt option is silently ignored by the module system's free-form merge, so the \
                 machine deploys with the default instead (port 22 instead of your port).\n\n\
                 Example:\n\n    deployment.targetPrt = 2222;\n\n\
                 Use instead:\n\n    deployment.targetPort = 2222;\n"
            }
            Code::WrongType => {
                "What it does: checks each option's type and allowed values (targetPort an integer in \
                 1..65535, tags a list of strings, uploadAt \"pre-activation\" or \"post-activation\", …).\n\n\
                 Why: NixOps would reject these at deploy time; ferry rejects them before anything runs.\n\n\
                 Example:\n\n    deployment.targetPort = \"22\";\n\n\
                 Use instead:\n\n    deployment.targetPort = 22;\n"
            }
            Code::DuplicateTargetHost => {
                "What it does: reports machines that resolve to the same targetHost and targetPort.\n\n\
                 Why: two configurations would be activated on one host, each overwriting the other.\n\n\
                 Example:\n\n    web1.deployment.targetHost = \"10.0.0.5\";\n    web2.deployment.targetHost = \"10.0.0.5\";\n\n\
                 Use instead: give each machine its own address.\n"
            }
            Code::UndefinedVariable => {
                "What it does: finds variables that no let, function argument, rec set or built-in binds \
                 (variables inside `with` are not reported: they may come from the with'd set).\n\n\
                 Why: the machine fails to evaluate as soon as the variable is forced.\n\n\
                 Example:\n\n    { config, ... }: { deployment.targetHost = hostName; }\n\n\
                 Use instead:\n\n    { config, ... }: { deployment.targetHost = config.networking.hostName; }\n"
            }
            Code::MissingImport => {
                "What it does: checks that every path literal given to `import` or listed in `imports` \
                 exists (a directory needs a default.nix).\n\n\
                 Why: evaluation stops at the first missing file.\n\n\
                 Example:\n\n    imports = [ ./hardware/heron.nix ];   # the file is ./hardware/heron-hw.nix\n"
            }
            Code::KeySource => {
                "What it does: checks that each deployment.keys.<name> has exactly one of `text`, `keyFile` \
                 and `keyCommand`.\n\n\
                 Why: with none ferry has nothing to upload; with several it cannot know which one you meant.\n\n\
                 Example:\n\n    deployment.keys.db = { keyFile = \"/secrets/db\"; keyCommand = [ \"pass\" \"db\" ]; };\n\n\
                 Use instead:\n\n    deployment.keys.db.keyCommand = [ \"pass\" \"show\" \"db\" ];\n"
            }
            Code::UnusedLet => {
                "What it does: reports `let` bindings that nothing uses. Names starting with `_` are \
                 exempt.\n\n\
                 Why: dead bindings are usually leftovers or typos of a binding that is used.\n\n\
                 Example:\n\n    let user = \"alice\"; port = 22; in { deployment.targetUser = user; }\n\n\
                 Use instead:\n\n    let user = \"alice\"; in { deployment.targetUser = user; }\n"
            }
            Code::UnusedArgument => {
                "What it does: reports function arguments that nothing uses: `x: …` arguments, `@` \
                 bindings, and formals of patterns with `...` (removing those changes nothing for callers). \
                 The arguments NixOS and NixOps pass to modules (config, pkgs, lib, options, modulesPath, \
                 name, nodes, resources, …) are exempt: listing them is conventional. Names starting with `_` \
                 are exempt.\n\n\
                 Why: an unused argument is often a sign that the wrong name is used in the body.\n\n\
                 Example:\n\n    map (host: { deployment.targetHost = \"10.0.0.1\"; }) hosts\n\n\
                 Use instead:\n\n    map (host: { deployment.targetHost = host; }) hosts\n"
            }
            Code::LiteralKeyText => {
                "What it does: reports deployment.keys.<name>.text written as a string literal.\n\n\
                 Why: the secret then lives in the network file (and in version control), and anything that \
                 interpolates it puts it in the world-readable Nix store.\n\n\
                 Example:\n\n    deployment.keys.db.text = \"hunter2\";\n\n\
                 Use instead:\n\n    deployment.keys.db.keyCommand = [ \"pass\" \"show\" \"db\" ];\n    # or: deployment.keys.db.keyFile = \"/home/me/secrets/db\";\n"
            }
            Code::LiteralSecret => {
                "What it does: reports options whose name looks like a password, secret or token (and not \
                 like a file, path, command or hash) set to a string literal.\n\n\
                 Why: every option value that reaches the system configuration ends up in the \
                 world-readable Nix store, readable by every user of the machine.\n\n\
                 Example:\n\n    services.grafana.security.adminPassword = \"hunter2\";\n\n\
                 Use instead: the option's *File variant pointing at a deployment key:\n\n    \
                 services.grafana.security.adminPasswordFile = \"/run/keys/grafana-admin\";\n    \
                 deployment.keys.grafana-admin.keyCommand = [ \"pass\" \"show\" \"grafana\" ];\n"
            }
            Code::SecretPathLiteral => {
                "What it does: reports keyFile (and password-, secret- or token-file options) given as a \
                 Nix path literal such as ./secret.\n\n\
                 Why: a path literal is copied into the world-readable Nix store as soon as anything \
                 interpolates it (and flakes copy the whole directory). ferry reads keyFile as a string \
                 and never imports it, but the next edit may.\n\n\
                 Example:\n\n    deployment.keys.db.keyFile = ./secrets/db;\n\n\
                 Use instead:\n\n    deployment.keys.db.keyFile = \"/home/me/secrets/db\";\n    # or: toString ./secrets/db\n"
            }
            Code::RootAuthorizedKeys => {
                "What it does: reports users.users.root.openssh.authorizedKeys.keys set in a machine.\n\n\
                 Why: root's authorized keys written this way replace the key that ferry (like NixOps) \
                 provisions for itself, so the next deploy locks ferry out of the machine.\n\n\
                 Example:\n\n    users.users.root.openssh.authorizedKeys.keys = [ \"ssh-ed25519 AAAA… me@laptop\" ];\n\n\
                 Use instead:\n\n    users.users.root.openssh.authorizedKeys.keyFiles = [ ./keys/me.pub ];\n"
            }
            Code::WideKeyPermissions => {
                "What it does: reports deployment.keys.<name>.permissions that grant more than 0640 (any \
                 write or execute bit for group or others, or any bit for others).\n\n\
                 Why: keys are secrets; only their owner and, at most, a group should read them.\n\n\
                 Example:\n\n    deployment.keys.tls.permissions = \"0644\";\n\n\
                 Use instead:\n\n    deployment.keys.tls = { permissions = \"0640\"; group = \"nginx\"; };\n"
            }
            Code::IgnoredOption => {
                "What it does: reports NixOps options that ferry recognises but does not implement \
                 (cloud backends such as deployment.ec2, targetEnv other than \"none\", \
                 storeKeysOnMachine, …).\n\n\
                 Why: ferry deploys to existing machines over SSH; these settings have no effect.\n\n\
                 Example:\n\n    deployment.targetEnv = \"ec2\";\n"
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert_eq!(Code::parse(&c.as_str().to_lowercase()), Some(c));
            assert_eq!(Code::parse(c.name()), Some(c));
            let e = c.explanation();
            assert!(
                e.contains("What it does") && e.contains("Why") && e.contains("Example"),
                "{c:?}"
            );
        }
    }
}

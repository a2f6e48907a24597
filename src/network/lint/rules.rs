//! Static rules over one file's syntax tree: missing imports, secrets headed for the store, and root's
//! authorized keys. They need no evaluation.

use std::path::{Path, PathBuf};

use rnix::SyntaxKind;
use rnix::ast;
use rowan::ast::AstNode;

use crate::network::ast::{Binding, ends_with};
use crate::syntax::{Code, Diagnostic};

fn range(node: &rnix::SyntaxNode) -> std::ops::Range<usize> {
    let r = node.text_range();
    usize::from(r.start())..usize::from(r.end())
}

/// Strips parentheses.
fn unparen(mut node: rnix::SyntaxNode) -> rnix::SyntaxNode {
    while node.kind() == SyntaxKind::NODE_PAREN {
        match ast::Paren::cast(node.clone()).and_then(|p| p.expr()) {
            Some(e) => node = e.syntax().clone(),
            None => break,
        }
    }
    node
}

/// The file a path literal names, when it has no interpolation and is not a `<search>` path.
fn literal_path(file: &Path, node: &rnix::SyntaxNode) -> Option<PathBuf> {
    let text = node.text().to_string();
    if text.contains("${") {
        return None;
    }
    match node.kind() {
        SyntaxKind::NODE_PATH_ABS => Some(PathBuf::from(text)),
        SyntaxKind::NODE_PATH_REL => Some(file.parent().unwrap_or(Path::new(".")).join(text)),
        SyntaxKind::NODE_PATH_HOME => {
            let home = std::env::var_os("HOME")?;
            Some(PathBuf::from(home).join(text.trim_start_matches("~/")))
        }
        _ => None,
    }
}

fn is_path_literal(node: &rnix::SyntaxNode) -> bool {
    matches!(
        node.kind(),
        SyntaxKind::NODE_PATH_ABS | SyntaxKind::NODE_PATH_REL | SyntaxKind::NODE_PATH_HOME
    )
}

fn missing_import(file: &Path, node: &rnix::SyntaxNode, out: &mut Vec<Diagnostic>) {
    let node = unparen(node.clone());
    let Some(target) = literal_path(file, &node) else {
        return;
    };
    let exists = if target.is_dir() {
        target.join("default.nix").is_file()
    } else {
        target.exists()
    };
    if exists {
        return;
    }
    let shown = node.text().to_string();
    let mut d = Diagnostic::new(
        Code::MissingImport,
        format!("imported file `{shown}` does not exist"),
    )
    .at(file, Some(range(&node)));
    if target.is_dir() {
        d = d.with_note("the directory has no default.nix");
    }
    out.push(d);
}

/// `import ./x.nix` and `imports = [ ./x.nix ]` naming files that don't exist.
pub fn imports(file: &Path, root: &rnix::Root, bindings: &[Binding], out: &mut Vec<Diagnostic>) {
    for node in root.syntax().descendants() {
        let Some(apply) = ast::Apply::cast(node) else {
            continue;
        };
        let (Some(f), Some(arg)) = (apply.lambda(), apply.argument()) else {
            continue;
        };
        let f = unparen(f.syntax().clone());
        let name = f.text().to_string();
        if name == "import" || name == "builtins.import" {
            missing_import(file, arg.syntax(), out);
        }
    }
    for b in bindings {
        if b.in_let || !(ends_with(&b.path, &["imports"]) || ends_with(&b.path, &["require"])) {
            continue;
        }
        let Some(value) = b.value.clone().map(unparen) else {
            continue;
        };
        let Some(list) = ast::List::cast(value) else {
            continue;
        };
        for item in list.items() {
            missing_import(file, item.syntax(), out);
        }
    }
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_lowercase();
    const SECRET: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "privatekey",
        "private_key",
        "psk",
    ];
    const NOT: &[&str] = &[
        "file",
        "path",
        "command",
        "hash",
        "length",
        "enable",
        "authentication",
        "dir",
        "type",
        "format",
        "url",
        "prompt",
        "policy",
        "lifetime",
        "expir",
        "user",
        "name",
        "ttl",
        "timeout",
        "auth",
    ];
    SECRET.iter().any(|s| n.contains(s)) && !NOT.iter().any(|s| n.contains(s))
}

/// Options naming a file that holds a secret.
fn is_secret_file_name(name: &str) -> bool {
    let n = name.to_lowercase();
    if n.contains("authorized") || n.contains("pub") || n.contains("cert") && !n.contains("key") {
        return false;
    }
    let secretish = [
        "password",
        "passwd",
        "secret",
        "token",
        "privatekey",
        "private_key",
        "psk",
    ]
    .iter()
    .any(|s| n.contains(s));
    let fileish = n.ends_with("file") || n.ends_with("path");
    secretish && fileish
        || n == "keyfile"
        || n.ends_with("privatekeyfile")
        || n == "sslcertificatekey"
}

fn in_keys(path: &[String]) -> bool {
    path.len() >= 4 && path[path.len() - 4] == "deployment" && path[path.len() - 3] == "keys"
}

/// A string literal without interpolation, and its text.
fn plain_string(node: &rnix::SyntaxNode) -> Option<String> {
    let s = ast::Str::cast(node.clone())?;
    crate::network::ast::string_literal(&s)
}

/// A string that interpolates a path literal (`"${./secret}"`): the file is copied to the store.
fn interpolates_path(node: &rnix::SyntaxNode) -> bool {
    ast::Str::cast(node.clone()).is_some_and(|s| {
        s.syntax().descendants().any(|d| {
            d.kind() == SyntaxKind::NODE_INTERPOL
                && d.children().any(|c| is_path_literal(&unparen(c)))
        })
    })
}

/// Ranges of string literals that hold secrets: key texts and values of secret-like options.
pub fn secret_literal_ranges(bindings: &[Binding]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    for b in bindings {
        let Some(last) = b.path.last() else { continue };
        let keyed = in_keys(&b.path);
        let secret = (keyed && last == "text")
            || (!keyed && is_secret_name(last))
            || (b.in_let && is_secret_name(last));
        let Some(value) = b.value.clone().map(unparen) else {
            continue;
        };
        if secret && value.kind() == SyntaxKind::NODE_STRING {
            out.push(range(&value));
        }
    }
    out
}

/// Secrets headed for the store, and root's authorized keys.
pub fn secrets(file: &Path, bindings: &[Binding], out: &mut Vec<Diagnostic>) {
    for b in bindings {
        if b.in_let {
            continue;
        }
        let Some(value) = b.value.clone().map(unparen) else {
            continue;
        };
        let Some(last) = b.path.last() else { continue };
        let keyed = in_keys(&b.path);
        if keyed && last == "text" {
            if plain_string(&value).is_some() {
                out.push(
                    Diagnostic::new(Code::LiteralKeyText, "key contents written as a literal in the network file")
                        .at(file, Some(b.value_range.clone()))
                        .with_note("the secret sits in the file (and its history), and anything that interpolates it copies it into the world-readable Nix store")
                        .with_help("use `keyCommand = [ \"pass\" \"show\" \"…\" ]` or `keyFile = \"/abs/path\"`"),
                );
            }
            continue;
        }
        if (keyed && last == "keyFile") || (!keyed && is_secret_file_name(last)) {
            let copied = interpolates_path(&value);
            if is_path_literal(&value) || copied {
                let msg = if copied {
                    format!(
                        "`{last}` interpolates a path literal: the secret file is copied into the world-readable Nix store"
                    )
                } else {
                    format!(
                        "secret file `{}` referenced as a Nix path literal",
                        value.text()
                    )
                };
                out.push(
                    Diagnostic::new(Code::SecretPathLiteral, msg)
                        .at(file, Some(b.value_range.clone()))
                        .with_note("a path literal is copied into the world-readable Nix store as soon as anything interpolates it")
                        .with_help("write the file name as a string: \"/abs/path/to/secret\" (or toString ./secret)"),
                );
            }
            continue;
        }
        if !keyed && is_secret_name(last) {
            if let Some(s) = plain_string(&value) {
                if !s.is_empty() {
                    out.push(
                        Diagnostic::new(Code::LiteralSecret, format!("`{}` is set to a literal secret", b.path.join(".")))
                            .at(file, Some(b.value_range.clone()))
                            .with_note("option values end up in the world-readable Nix store")
                            .with_help("use the option's *File variant with a deployment key (deployment.keys.<name>.keyCommand or keyFile)"),
                    );
                }
            }
        }
        if ends_with(
            &b.path,
            &[
                "users",
                "users",
                "root",
                "openssh",
                "authorizedKeys",
                "keys",
            ],
        ) || ends_with(
            &b.path,
            &[
                "users",
                "extraUsers",
                "root",
                "openssh",
                "authorizedKeys",
                "keys",
            ],
        ) {
            out.push(
                Diagnostic::new(
                    Code::RootAuthorizedKeys,
                    "`users.users.root.openssh.authorizedKeys.keys` replaces the SSH key ferry provisions",
                )
                .at(file, Some(b.attr_range.clone()))
                .with_note("the next deploy may lock ferry out of this machine")
                .with_help("use `users.users.root.openssh.authorizedKeys.keyFiles = [ ./keys/you.pub ];`"),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        assert!(is_secret_name("adminPassword"));
        assert!(is_secret_name("secretKey"));
        assert!(is_secret_name("apiToken"));
        assert!(!is_secret_name("passwordFile"));
        assert!(!is_secret_name("hashedPassword"));
        assert!(!is_secret_name("passwordAuthentication"));
        assert!(is_secret_file_name("passwordFile"));
        assert!(is_secret_file_name("keyFile"));
        assert!(!is_secret_file_name("keyFiles"));
        assert!(!is_secret_file_name("sslCertificate"));
    }
}

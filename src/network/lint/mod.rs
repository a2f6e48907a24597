//! `ferry lint`'s rules. Static rules (syntax, scopes, imports, secrets, root's keys) run on each file's
//! syntax tree without evaluating anything; option rules (evaluation errors, unknown options, types,
//! duplicate hosts, key sources and permissions) come from [`super::discover`].

pub mod rules;
pub mod scope;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::syntax::{Code, Diagnostic, parse_file};

use super::ast::bindings;
use super::discover::{DiscoverOptions, discover, find_nixpkgs};
use super::{Error, Result};

/// How to lint.
#[derive(Clone, Debug, Default)]
pub struct LintOptions {
    pub discover: DiscoverOptions,
    /// Evaluate the network for the option rules (on by default in the CLI).
    pub evaluate: bool,
}

/// Byte ranges of literal secrets in `text` (key `text` literals and literal values of password-, secret- and
/// token-like options): renderers mask them, so that key contents never appear in output.
pub fn secret_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let parsed = parse_file(Path::new(""), text);
    rules::secret_literal_ranges(&bindings(&parsed.root))
}

/// The static rules on one file's text.
pub fn lint_source(path: &Path, text: &str) -> Vec<Diagnostic> {
    let parsed = parse_file(path, text);
    let mut out = parsed.errors;
    let b = bindings(&parsed.root);
    out.extend(scope::check(path, &parsed.root));
    rules::imports(path, &parsed.root, &b, &mut out);
    rules::secrets(path, &b, &mut out);
    sort(&mut out);
    out
}

fn sort(d: &mut Vec<Diagnostic>) {
    d.sort_by(|a, b| {
        (&a.file, a.range.as_ref().map(|r| r.start), a.code).cmp(&(
            &b.file,
            b.range.as_ref().map(|r| r.start),
            b.code,
        ))
    });
    d.dedup();
}

/// True when the file looks like a NixOS module rather than a network: a function whose pattern asks for
/// module arguments (`{ config, pkgs, lib, ... }:`). Such a file cannot be evaluated on its own (the
/// network that imports it provides the arguments), so lint gives it the static rules only.
pub fn is_module_file(text: &str) -> bool {
    use rnix::ast;
    use rowan::ast::AstNode;
    let parsed = parse_file(Path::new(""), text);
    let Some(ast::Expr::Lambda(l)) = parsed.root.expr() else {
        return false;
    };
    let Some(ast::Param::Pattern(p)) = l.param() else {
        return false;
    };
    p.pat_entries().any(|e| {
        e.ident().is_some_and(|i| {
            matches!(
                i.syntax().text().to_string().as_str(),
                "config" | "pkgs" | "lib" | "options" | "modulesPath"
            )
        })
    })
}

/// Lints a network: the static rules on every file it reaches, then the option rules.
pub fn lint(files: &[PathBuf], opts: &LintOptions) -> Result<Vec<Diagnostic>> {
    if files.is_empty() {
        return Err(Error::NoFiles);
    }
    let mut out = Vec::new();
    let mut linted = HashSet::new();
    let mut parse_failed = false;
    let mut networks = Vec::new();
    for f in files {
        let abs = std::path::absolute(f).map_err(|source| Error::Io {
            path: f.clone(),
            source,
        })?;
        let text = std::fs::read_to_string(&abs).map_err(|source| Error::Io {
            path: abs.clone(),
            source,
        })?;
        let d = lint_source(&abs, &text);
        parse_failed |= d.iter().any(|d| d.code == Code::ParseError);
        out.extend(d);
        if !is_module_file(&text) {
            networks.push(abs.clone());
        }
        linted.insert(abs);
    }
    if opts.evaluate && !parse_failed && !networks.is_empty() {
        let discovery = discover(&networks, &opts.discover)?;
        let nixpkgs = find_nixpkgs(&opts.discover.eval.search_path);
        for f in &discovery.files {
            // nixpkgs' own modules are not the user's to fix.
            if linted.contains(f)
                || f.starts_with("/nix/store")
                || nixpkgs.as_ref().is_some_and(|n| f.starts_with(n))
            {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(f) {
                out.extend(lint_source(f, &text));
            }
            linted.insert(f.clone());
        }
        out.extend(discovery.diagnostics);
    }
    sort(&mut out);
    Ok(out)
}

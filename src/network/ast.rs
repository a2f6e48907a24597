//! Static views of a network file's syntax tree: every attribute binding with the full option path it
//! defines (`web.deployment.keys.db.text`, through nested sets, `mkIf c { … }`, `mkMerge [ … ]`, module
//! functions and `let … in` bodies), and the location of an option for diagnostics that come from
//! evaluation.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rnix::SyntaxKind;
use rnix::ast;
use rowan::ast::AstNode;

use crate::syntax::{ParsedFile, SourceFile, parse_file};

/// One `path = value;` binding.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The full attribute path from the file's top level; `${…}` for dynamic parts.
    pub path: Vec<String>,
    /// The range of the binding's own attribute path (`deployment.targetPort`).
    pub attr_range: Range<usize>,
    /// The range of the value.
    pub value_range: Range<usize>,
    /// A `let` binding rather than an attribute.
    pub in_let: bool,
    /// The value's syntax node.
    pub value: Option<rnix::SyntaxNode>,
}

/// The text of an attribute name; `${…}` for dynamic names.
pub fn attr_name(attr: &ast::Attr) -> String {
    match attr {
        ast::Attr::Ident(i) => i.syntax().text().to_string(),
        ast::Attr::Str(s) => string_literal(s).unwrap_or_else(|| "${…}".into()),
        ast::Attr::Dynamic(_) => "${…}".into(),
    }
}

/// The contents of a string without interpolation.
pub fn string_literal(s: &ast::Str) -> Option<String> {
    let mut out = String::new();
    for part in s.normalized_parts() {
        match part {
            ast::InterpolPart::Literal(l) => out.push_str(&l),
            ast::InterpolPart::Interpolation(_) => return None,
        }
    }
    Some(out)
}

fn range(node: &rnix::SyntaxNode) -> Range<usize> {
    let r = node.text_range();
    usize::from(r.start())..usize::from(r.end())
}

fn attrpath_names(path: &ast::Attrpath) -> Vec<String> {
    path.attrs().map(|a| attr_name(&a)).collect()
}

/// Every binding of the file, in source order.
pub fn bindings(root: &rnix::Root) -> Vec<Binding> {
    let mut out = Vec::new();
    for node in root.syntax().descendants() {
        let Some(apv) = ast::AttrpathValue::cast(node.clone()) else {
            continue;
        };
        let Some(attrpath) = apv.attrpath() else {
            continue;
        };
        let mut path = attrpath_names(&attrpath);
        let in_let = node.parent().is_some_and(|p| {
            matches!(
                p.kind(),
                SyntaxKind::NODE_LET_IN | SyntaxKind::NODE_LEGACY_LET
            )
        });
        if !in_let {
            prefix_with_enclosing(&node, &mut path);
        }
        out.push(Binding {
            path,
            attr_range: range(attrpath.syntax()),
            value_range: apv
                .value()
                .map(|v| range(v.syntax()))
                .unwrap_or_else(|| range(&node)),
            in_let,
            value: apv.value().map(|v| v.syntax().clone()),
        });
    }
    out
}

/// Climbs from a binding through enclosing sets, and through the expressions that wrap a set without naming
/// it (application arguments, lists, parentheses, function and let bodies), prepending the names of
/// enclosing bindings. Stops at a `let` binding: its name is a variable, not an option.
fn prefix_with_enclosing(node: &rnix::SyntaxNode, path: &mut Vec<String>) {
    let mut cur = node.parent();
    let mut prefix: Vec<Vec<String>> = Vec::new();
    while let Some(n) = cur {
        match n.kind() {
            SyntaxKind::NODE_ATTRPATH_VALUE => {
                let in_let = n.parent().is_some_and(|p| {
                    matches!(
                        p.kind(),
                        SyntaxKind::NODE_LET_IN | SyntaxKind::NODE_LEGACY_LET
                    )
                });
                if in_let {
                    break;
                }
                if let Some(p) = ast::AttrpathValue::cast(n.clone()).and_then(|a| a.attrpath()) {
                    prefix.push(attrpath_names(&p));
                }
            }
            SyntaxKind::NODE_ROOT => break,
            _ => {}
        }
        cur = n.parent();
    }
    let mut full: Vec<String> = prefix.into_iter().rev().flatten().collect();
    full.append(path);
    *path = full;
}

/// True when `path` ends with `suffix`.
pub fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len()
        && path[path.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(a, b)| a == b)
}

/// True when `path` contains `seq` contiguously.
pub fn contains_seq(path: &[String], seq: &[&str]) -> bool {
    !seq.is_empty()
        && path.len() >= seq.len()
        && path
            .windows(seq.len())
            .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

/// Parsed files, cached, for locating options named by evaluation.
#[derive(Default)]
pub struct Locator {
    files: HashMap<PathBuf, Option<(SourceFile, Vec<Binding>)>>,
}

/// Where an option is defined.
#[derive(Clone, Debug)]
pub struct Location {
    pub file: PathBuf,
    pub attr_range: Range<usize>,
    pub value_range: Range<usize>,
}

impl Locator {
    pub fn new() -> Locator {
        Locator::default()
    }

    fn load(&mut self, file: &Path) -> Option<&(SourceFile, Vec<Binding>)> {
        self.files
            .entry(file.to_path_buf())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(file).ok()?;
                let ParsedFile { root, .. } = parse_file(file, &text);
                let b = bindings(&root);
                Some((SourceFile::new(file, text), b))
            })
            .as_ref()
    }

    /// The source of `file`, if readable.
    pub fn source(&mut self, file: &Path) -> Option<&SourceFile> {
        self.load(file).map(|(s, _)| s)
    }

    /// Finds the binding of `option` (e.g. `["deployment", "targetPort"]`) in `file`, preferring one under
    /// `machine`. Falls back to the longest prefix of `option` that is bound.
    pub fn find(
        &mut self,
        file: &Path,
        option: &[&str],
        machine: Option<&str>,
    ) -> Option<Location> {
        let (_, bindings) = self.load(file)?;
        for len in (1..=option.len()).rev() {
            let suffix = &option[..len];
            let mut candidates: Vec<&Binding> = bindings
                .iter()
                .filter(|b| !b.in_let && ends_with(&b.path, suffix))
                .collect();
            // `deployment.keys.db.user = …` locates `deployment.keys.db` too.
            if candidates.is_empty() && len == option.len() {
                candidates = bindings
                    .iter()
                    .filter(|b| !b.in_let && contains_seq(&b.path, suffix))
                    .collect();
            }
            let best = candidates
                .iter()
                .find(|b| machine.is_some_and(|m| b.path.first().is_some_and(|f| f == m)))
                .or_else(|| candidates.first());
            if let Some(b) = best {
                return Some(Location {
                    file: file.to_path_buf(),
                    attr_range: b.attr_range.clone(),
                    value_range: b.value_range.clone(),
                });
            }
        }
        None
    }

    /// The binding of machine `name` at the top of a network file.
    pub fn find_machine(&mut self, file: &Path, name: &str) -> Option<Location> {
        let (_, bindings) = self.load(file)?;
        bindings
            .iter()
            .find(|b| !b.in_let && b.path.first().is_some_and(|f| f == name))
            .map(|b| Location {
                file: file.to_path_buf(),
                attr_range: b.attr_range.clone(),
                value_range: b.value_range.clone(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn paths(src: &str) -> Vec<String> {
        let root = rnix::Root::parse(src).tree();
        bindings(&root)
            .into_iter()
            .filter(|b| !b.in_let)
            .map(|b| b.path.join("."))
            .collect()
    }

    #[test]
    fn nested_paths() {
        let p = paths(
            r#"{ web = { config, lib, ... }: let x = 1; in {
                 deployment = lib.mkIf true { keys.db = { text = "a"; }; };
                 config = lib.mkMerge [ { users.users.root.openssh.authorizedKeys.keys = [ ]; } ];
                 "quoted".x = 1;
               }; }"#,
        );
        assert!(
            p.contains(&"web.deployment.keys.db.text".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"web.config.users.users.root.openssh.authorizedKeys.keys".to_string()),
            "{p:?}"
        );
        assert!(p.contains(&"web.quoted.x".to_string()), "{p:?}");
        assert!(
            !p.iter()
                .any(|s| s.ends_with(".x") && s.starts_with("web.x"))
        );
    }
}

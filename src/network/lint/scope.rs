//! Scope analysis: undefined variables, unused `let` bindings and unused function arguments.
//!
//! Variables are resolved lexically (let, rec sets, function arguments); a name that no lexical scope binds
//! is fine inside `with` (the with'd set may provide it) and for Nix's global built-ins, and an error
//! elsewhere. Recursion is bounded: nesting deeper than [`MAX_DEPTH`] is not analysed (the parser already
//! limits nesting; this keeps the walk far from the native stack's end).

use std::ops::Range;
use std::path::Path;

use rnix::SyntaxKind;
use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use crate::syntax::{Code, Diagnostic};

/// Deepest expression nesting analysed.
pub const MAX_DEPTH: usize = 1500;

/// Names Nix binds in every scope.
const GLOBALS: &[&str] = &[
    "abort",
    "baseNameOf",
    "break",
    "builtins",
    "derivation",
    "derivationStrict",
    "dirOf",
    "false",
    "fetchGit",
    "fetchMercurial",
    "fetchTarball",
    "fetchTree",
    "fromTOML",
    "import",
    "isNull",
    "map",
    "null",
    "placeholder",
    "removeAttrs",
    "scopedImport",
    "throw",
    "toString",
    "true",
];

/// Arguments NixOS and NixOps pass to every module: listing them unused is conventional, not a mistake.
const MODULE_ARGS: &[&str] = &[
    "config",
    "options",
    "pkgs",
    "lib",
    "modulesPath",
    "name",
    "nodes",
    "resources",
    "specialArgs",
    "uuid",
    "deploymentName",
    "baseModules",
    "utils",
    "inputs",
    "self",
    "extendModules",
    "moduleType",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Let,
    Arg,
    /// A formal of a pattern; `exempt` when unused is not worth reporting.
    Formal {
        exempt: bool,
    },
    AtBind,
    Rec,
}

struct Var {
    name: String,
    range: Range<usize>,
    used: bool,
    kind: Kind,
}

struct Analyzer<'a> {
    file: &'a Path,
    vars: Vec<Var>,
    scopes: Vec<Vec<usize>>,
    with_depth: usize,
    depth: usize,
    diags: Vec<Diagnostic>,
}

fn range(node: &rnix::SyntaxNode) -> Range<usize> {
    let r = node.text_range();
    usize::from(r.start())..usize::from(r.end())
}

/// Runs the scope rules on a parsed file.
pub fn check(file: &Path, root: &rnix::Root) -> Vec<Diagnostic> {
    let mut a = Analyzer {
        file,
        vars: Vec::new(),
        scopes: Vec::new(),
        with_depth: 0,
        depth: 0,
        diags: Vec::new(),
    };
    if let Some(e) = root.expr() {
        a.visit(e.syntax());
    }
    a.diags
}

impl Analyzer<'_> {
    fn define(&mut self, name: String, range: Range<usize>, kind: Kind) {
        let Some(scope) = self.scopes.last() else {
            return;
        };
        // `a.b = 1; a.c = 2;` binds `a` once.
        if scope.iter().any(|&i| self.vars[i].name == name) {
            return;
        }
        self.vars.push(Var {
            name,
            range,
            used: false,
            kind,
        });
        let id = self.vars.len() - 1;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(id);
        }
    }

    fn lookup(&mut self, name: &str, at: Range<usize>) {
        for scope in self.scopes.iter().rev() {
            if let Some(&id) = scope.iter().find(|&&i| self.vars[i].name == name) {
                self.vars[id].used = true;
                return;
            }
        }
        if self.with_depth > 0 || GLOBALS.contains(&name) || name.starts_with("__") {
            return;
        }
        self.diags.push(
            Diagnostic::new(
                Code::UndefinedVariable,
                format!("undefined variable `{name}`"),
            )
            .at(self.file, Some(at)),
        );
    }

    fn pop(&mut self) {
        let Some(scope) = self.scopes.pop() else {
            return;
        };
        for id in scope {
            let v = &self.vars[id];
            if v.used || v.name.starts_with('_') {
                continue;
            }
            let d = match v.kind {
                Kind::Let => {
                    Diagnostic::new(Code::UnusedLet, format!("unused let binding `{}`", v.name))
                        .with_help("remove it, or start its name with `_`")
                }
                Kind::Arg => Diagnostic::new(
                    Code::UnusedArgument,
                    format!("unused function argument `{}`", v.name),
                )
                .with_help(format!("rename it to `_{}` or `_`", v.name)),
                Kind::Formal { exempt: false } => Diagnostic::new(
                    Code::UnusedArgument,
                    format!("unused function argument `{}`", v.name),
                )
                .with_help("remove it: `...` already accepts it"),
                Kind::AtBind => Diagnostic::new(
                    Code::UnusedArgument,
                    format!("unused function argument `{}`", v.name),
                )
                .with_help(format!("remove `@ {}`", v.name)),
                Kind::Formal { exempt: true } | Kind::Rec => continue,
            };
            self.diags.push(d.at(self.file, Some(v.range.clone())));
        }
    }

    fn visit(&mut self, node: &rnix::SyntaxNode) {
        if self.depth >= MAX_DEPTH {
            return;
        }
        self.depth += 1;
        self.visit_inner(node);
        self.depth -= 1;
    }

    fn visit_children(&mut self, node: &rnix::SyntaxNode) {
        for child in node.children() {
            if child.kind() == SyntaxKind::NODE_ATTRPATH {
                self.visit_attrpath(&child);
            } else {
                self.visit(&child);
            }
        }
    }

    /// Only the dynamic parts of an attribute path are expressions.
    fn visit_attrpath(&mut self, node: &rnix::SyntaxNode) {
        let Some(ap) = ast::Attrpath::cast(node.clone()) else {
            return;
        };
        for attr in ap.attrs() {
            match attr {
                ast::Attr::Ident(_) => {}
                ast::Attr::Dynamic(d) => {
                    if let Some(e) = d.expr() {
                        self.visit(e.syntax());
                    }
                }
                ast::Attr::Str(s) => self.visit_children(s.syntax()),
            }
        }
    }

    /// Names bound by the entries of a let or rec set (their first attribute), and `inherit`ed names.
    fn entry_names(entries: impl Iterator<Item = ast::Entry>) -> Vec<(String, Range<usize>, bool)> {
        let mut out = Vec::new();
        for e in entries {
            match e {
                ast::Entry::AttrpathValue(apv) => {
                    if let Some(ast::Attr::Ident(i)) = apv.attrpath().and_then(|p| p.attrs().next())
                    {
                        out.push((i.syntax().text().to_string(), range(i.syntax()), false));
                    }
                }
                ast::Entry::Inherit(inh) => {
                    let from = inh.from().is_some();
                    for a in inh.attrs() {
                        if let ast::Attr::Ident(i) = a {
                            out.push((i.syntax().text().to_string(), range(i.syntax()), !from));
                        }
                    }
                }
            }
        }
        out
    }

    fn visit_entries(
        &mut self,
        entries: impl Iterator<Item = ast::Entry>,
        inherit_plain_resolved: bool,
    ) {
        for e in entries {
            match e {
                ast::Entry::AttrpathValue(apv) => {
                    if let Some(p) = apv.attrpath() {
                        self.visit_attrpath(p.syntax());
                    }
                    if let Some(v) = apv.value() {
                        self.visit(v.syntax());
                    }
                }
                ast::Entry::Inherit(inh) => {
                    if let Some(from) = inh.from().and_then(|f| f.expr()) {
                        self.visit(from.syntax());
                    } else if !inherit_plain_resolved {
                        for a in inh.attrs() {
                            if let ast::Attr::Ident(i) = a {
                                self.lookup(&i.syntax().text().to_string(), range(i.syntax()));
                            }
                        }
                    }
                }
            }
        }
    }

    fn visit_inner(&mut self, node: &rnix::SyntaxNode) {
        match node.kind() {
            SyntaxKind::NODE_IDENT => {
                let name = node.text().to_string();
                self.lookup(&name, range(node));
            }
            SyntaxKind::NODE_LET_IN => {
                let Some(l) = ast::LetIn::cast(node.clone()) else {
                    return;
                };
                let names = Self::entry_names(l.entries());
                // `inherit x;` in a let refers to the enclosing scope.
                for (name, r, plain_inherit) in &names {
                    if *plain_inherit {
                        self.lookup(name, r.clone());
                    }
                }
                self.scopes.push(Vec::new());
                for (name, r, _) in names {
                    self.define(name, r, Kind::Let);
                }
                self.visit_entries(l.entries(), true);
                if let Some(b) = l.body() {
                    self.visit(b.syntax());
                }
                self.pop();
            }
            SyntaxKind::NODE_LEGACY_LET => {
                let Some(l) = ast::LegacyLet::cast(node.clone()) else {
                    return;
                };
                self.scopes.push(Vec::new());
                for (name, r, _) in Self::entry_names(l.entries()) {
                    self.define(name, r, Kind::Rec);
                }
                self.visit_entries(l.entries(), false);
                self.pop();
            }
            SyntaxKind::NODE_ATTR_SET => {
                let Some(s) = ast::AttrSet::cast(node.clone()) else {
                    return;
                };
                if s.rec_token().is_some() {
                    let names = Self::entry_names(s.entries());
                    for (name, r, plain_inherit) in &names {
                        if *plain_inherit {
                            self.lookup(name, r.clone());
                        }
                    }
                    self.scopes.push(Vec::new());
                    for (name, r, _) in names {
                        self.define(name, r, Kind::Rec);
                    }
                    self.visit_entries(s.entries(), true);
                    self.pop();
                } else {
                    self.visit_entries(s.entries(), false);
                }
            }
            SyntaxKind::NODE_LAMBDA => {
                let Some(l) = ast::Lambda::cast(node.clone()) else {
                    return;
                };
                self.scopes.push(Vec::new());
                let mut defaults = Vec::new();
                match l.param() {
                    Some(ast::Param::IdentParam(p)) => {
                        if let Some(i) = p.ident() {
                            self.define(
                                i.syntax().text().to_string(),
                                range(i.syntax()),
                                Kind::Arg,
                            );
                        }
                    }
                    Some(ast::Param::Pattern(p)) => {
                        let ellipsis = p.ellipsis_token().is_some();
                        for entry in p.pat_entries() {
                            if let Some(i) = entry.ident() {
                                let name = i.syntax().text().to_string();
                                let exempt = !ellipsis || MODULE_ARGS.contains(&name.as_str());
                                self.define(name, range(i.syntax()), Kind::Formal { exempt });
                            }
                            if let Some(d) = entry.default() {
                                defaults.push(d.syntax().clone());
                            }
                        }
                        if let Some(i) = p.pat_bind().and_then(|b| b.ident()) {
                            self.define(
                                i.syntax().text().to_string(),
                                range(i.syntax()),
                                Kind::AtBind,
                            );
                        }
                    }
                    None => {}
                }
                for d in defaults {
                    self.visit(&d);
                }
                if let Some(b) = l.body() {
                    self.visit(b.syntax());
                }
                self.pop();
            }
            SyntaxKind::NODE_WITH => {
                let Some(w) = ast::With::cast(node.clone()) else {
                    return;
                };
                if let Some(ns) = w.namespace() {
                    self.visit(ns.syntax());
                }
                self.with_depth += 1;
                if let Some(b) = w.body() {
                    self.visit(b.syntax());
                }
                self.with_depth -= 1;
            }
            SyntaxKind::NODE_SELECT | SyntaxKind::NODE_HAS_ATTR => self.visit_children(node),
            _ => self.visit_children(node),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn codes(src: &str) -> Vec<(Code, String)> {
        let root = rnix::Root::parse(src).tree();
        check(Path::new("t.nix"), &root)
            .into_iter()
            .map(|d| (d.code, d.message))
            .collect()
    }

    #[test]
    fn undefined_and_with() {
        assert_eq!(codes("x: y").len(), 2);
        assert!(codes("x: x").is_empty());
        assert!(
            codes("with pkgs; x")
                .iter()
                .all(|(c, _)| *c == Code::UndefinedVariable)
        );
        assert_eq!(codes("{ pkgs, ... }: with pkgs; hello").len(), 0);
        assert!(codes("builtins.map toString [ true null __curPos ]").is_empty());
        assert!(codes("rec { a = b; b = 1; }").is_empty());
        assert!(codes("let a = 1; in { inherit a; }").is_empty());
        assert_eq!(codes("{ inherit a; }").len(), 1);
        assert!(codes("{ a.${toString 1} = 1; }.a or 2").is_empty());
    }

    #[test]
    fn unused() {
        let c = codes("let a = 1; _b = 2; c = 3; in c");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, Code::UnusedLet);
        let c = codes("{ config, pkgs, lib, foo, ... }: { }");
        assert_eq!(
            c,
            vec![(
                Code::UnusedArgument,
                "unused function argument `foo`".into()
            )]
        );
        assert!(codes("{ a, b }: a").is_empty());
        assert_eq!(codes("x: y: x").len(), 1);
        assert!(codes("let inherit (builtins) map; in map").is_empty());
        assert!(codes("let f = x: x; in f").is_empty());
    }
}

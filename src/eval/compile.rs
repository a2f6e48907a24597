//! Lowering rnix's syntax tree to the evaluator's IR.
//!
//! Variables are resolved here to (frame distance, slot) pairs, so evaluation never looks names up in a
//! map; only names under `with` stay dynamic. Undefined variables, duplicate attributes and similar static
//! errors are reported at this stage, like Nix does when it parses a file.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rnix::ast::{self, AstToken, HasEntry, InterpolPart};
use rnix::{SyntaxKind, SyntaxNode};
use rowan::ast::AstNode;

use super::strings::{self, IndPart};
use super::value::{Sym, V};
use super::{EvalError, EvalErrorKind, Pos};

/// Interns names so equal names share one allocation.
#[derive(Default)]
pub(crate) struct Interner {
    set: HashSet<Rc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(existing) = self.set.get(s) {
            return existing.clone();
        }
        let rc: Rc<str> = Rc::from(s);
        self.set.insert(rc.clone());
        rc
    }
}

/// How a variable is found at run time.
#[derive(Debug)]
pub(crate) enum Var {
    /// `up` frames out, slot `idx`.
    Local { up: usize, idx: usize },
    /// Not bound statically: looked up in the enclosing `with` namespaces, innermost first.
    With { name: Sym, ups: Box<[usize]> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Concat,
    Update,
    Add,
    Sub,
    Mul,
    Div,
    And,
    Or,
    Impl,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub(crate) enum StrPart {
    Lit(Rc<str>),
    Interp(Rc<Expr>, Pos),
}

#[derive(Debug)]
pub(crate) enum AttrKey {
    Static(Sym),
    Dynamic(Rc<Expr>, Pos),
}

#[derive(Debug)]
pub(crate) struct StaticAttr {
    pub name: Sym,
    pub value: Rc<Expr>,
    pub pos: Pos,
}

/// The body of an attribute set, `rec` set or `let`.
#[derive(Debug)]
pub(crate) struct AttrsDef {
    /// Creates a frame whose slots are the static attributes, in order (`rec` and `let`).
    pub rec: bool,
    pub statics: Vec<StaticAttr>,
    pub dynamics: Vec<(Rc<Expr>, Rc<Expr>, Pos)>,
}

#[derive(Debug)]
pub(crate) enum Param {
    /// The parameter's name (for diagnostics and lints).
    Ident(#[allow(dead_code)] Sym),
    Pattern {
        formals: Vec<(Sym, Option<Rc<Expr>>)>,
        ellipsis: bool,
        bind: Option<Sym>,
    },
}

#[derive(Debug)]
pub(crate) struct LambdaDef {
    pub param: Param,
    pub body: Rc<Expr>,
    pub pos: Pos,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Const(V),
    Var(Var, Pos),
    Str(Vec<StrPart>, #[allow(dead_code)] Pos),
    /// An interpolated path; the first part is already absolute.
    Path(Vec<StrPart>, Pos),
    SearchPath(Rc<str>, Pos),
    Select(Rc<Expr>, Box<[AttrKey]>, Option<Rc<Expr>>, Pos),
    HasAttr(Rc<Expr>, Box<[AttrKey]>, Pos),
    Attrs(Rc<AttrsDef>, #[allow(dead_code)] Pos),
    Let(Rc<AttrsDef>, Rc<Expr>),
    List(Box<[Rc<Expr>]>),
    Lambda(Rc<LambdaDef>),
    Apply(Rc<Expr>, Rc<Expr>, Pos),
    If(Rc<Expr>, Rc<Expr>, Rc<Expr>, Pos),
    Assert(Rc<Expr>, Rc<Expr>, Pos),
    With(Rc<Expr>, Rc<Expr>, #[allow(dead_code)] Pos),
    Bin(BinOp, Rc<Expr>, Rc<Expr>, Pos),
    Not(Rc<Expr>, Pos),
    Neg(Rc<Expr>, Pos),
    CurPos(Pos),
}

enum Scope {
    Static(HashMap<Sym, usize>),
    /// The base environment, shared by every file compiled (no per-file copy).
    Global(Rc<HashMap<Sym, usize>>),
    With,
}

pub(crate) struct Compiler<'a> {
    pub interner: &'a mut Interner,
    file: u32,
    /// Directory of the file, for relative paths.
    dir: String,
    home: Option<String>,
    scopes: Vec<Scope>,
    /// Native stack guard, as in evaluation: lowering recurses over the tree.
    stack_base: usize,
    stack_budget: usize,
}

type CResult<T> = Result<T, EvalError>;

/// An attribute-set body under construction: nested paths (`a.b = 1; a.c = 2;`) merge here.
#[derive(Default)]
struct Pending {
    order: Vec<Sym>,
    map: HashMap<Sym, (PendingVal, Pos)>,
    dynamics: Vec<(ast::Expr, PendingVal, Pos)>,
    rec: bool,
}

enum PendingVal {
    Expr(ast::Expr),
    Nested(Pending),
    /// `inherit x;` (variable from the enclosing scope).
    Inherit(Sym, Pos),
    /// `inherit (e) x;`
    InheritFrom(ast::Expr, Sym, Pos),
}

impl<'a> Compiler<'a> {
    pub fn new(
        interner: &'a mut Interner,
        file: u32,
        dir: String,
        globals: Rc<HashMap<Sym, usize>>,
        stack_budget: usize,
    ) -> Self {
        let home = std::env::var("HOME").ok();
        Compiler {
            interner,
            file,
            dir,
            home,
            scopes: vec![Scope::Global(globals)],
            stack_base: super::machine::stack_pointer(),
            stack_budget,
        }
    }

    pub fn set_stack_base(&mut self, base: usize) {
        self.stack_base = base;
    }

    fn pos(&self, node: &SyntaxNode) -> Pos {
        Pos {
            file: self.file,
            off: u32::from(node.text_range().start()),
        }
    }

    fn err(&self, kind: EvalErrorKind, msg: String, node: &SyntaxNode) -> EvalError {
        let mut e = EvalError::new(kind, msg);
        e.pos = Some(self.pos(node));
        e
    }

    fn resolve(&self, name: &str, skip: usize) -> Option<Var> {
        let n = self.scopes.len();
        let mut withs = Vec::new();
        for up in skip..n {
            match &self.scopes[n - 1 - up] {
                Scope::Static(m) => {
                    if let Some(&idx) = m.get(name) {
                        return Some(Var::Local { up, idx });
                    }
                }
                Scope::Global(m) => {
                    if let Some(&idx) = m.get(name) {
                        return Some(Var::Local { up, idx });
                    }
                }
                Scope::With => withs.push(up),
            }
        }
        if withs.is_empty() {
            None
        } else {
            Some(Var::With {
                name: self.interner_get(name),
                ups: withs.into_boxed_slice(),
            })
        }
    }

    fn interner_get(&self, name: &str) -> Sym {
        self.interner
            .set
            .get(name)
            .cloned()
            .unwrap_or_else(|| Rc::from(name))
    }

    fn var(&mut self, name: &str, skip: usize, node: &SyntaxNode) -> CResult<Expr> {
        self.interner.intern(name);
        match self.resolve(name, skip) {
            Some(v) => Ok(Expr::Var(v, self.pos(node))),
            None => Err(self.err(
                EvalErrorKind::UndefinedVariable,
                format!("undefined variable '{name}'"),
                node,
            )),
        }
    }

    pub fn compile_root(&mut self, root: &ast::Root) -> CResult<Rc<Expr>> {
        match root.expr() {
            Some(e) => self.expr(&e),
            None => Err(self.err(
                EvalErrorKind::Parse,
                "syntax error, unexpected end of file".into(),
                root.syntax(),
            )),
        }
    }

    fn opt(&mut self, e: Option<ast::Expr>, parent: &SyntaxNode) -> CResult<Rc<Expr>> {
        match e {
            Some(e) => self.expr(&e),
            None => Err(self.err(EvalErrorKind::Parse, "syntax error".into(), parent)),
        }
    }

    pub fn expr(&mut self, e: &ast::Expr) -> CResult<Rc<Expr>> {
        let node = e.syntax();
        if self.stack_base.abs_diff(super::machine::stack_pointer()) > self.stack_budget {
            return Err(self.err(
                EvalErrorKind::TooDeep,
                "expression nested too deeply".into(),
                node,
            ));
        }
        let pos = self.pos(node);
        let out = match e {
            ast::Expr::Paren(p) => return self.opt(p.expr(), node),
            ast::Expr::Root(r) => return self.opt(r.expr(), node),
            ast::Expr::Error(_) => {
                return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), node));
            }
            ast::Expr::Literal(l) => self.literal(l)?,
            ast::Expr::Ident(id) => {
                let name = ident_text(id);
                self.var(&name, 0, node)?
            }
            ast::Expr::Str(s) => self.string(s)?,
            ast::Expr::PathAbs(p) => self.path(p.parts(), PathKind::Abs, node)?,
            ast::Expr::PathRel(p) => self.path(p.parts(), PathKind::Rel, node)?,
            ast::Expr::PathHome(p) => self.path(p.parts(), PathKind::Home, node)?,
            ast::Expr::PathSearch(p) => {
                let text = p
                    .content()
                    .map(|c| c.text().to_string())
                    .unwrap_or_default();
                let inner = text.trim_start_matches('<').trim_end_matches('>');
                Expr::SearchPath(Rc::from(inner), pos)
            }
            ast::Expr::List(l) => {
                let items = l
                    .items()
                    .map(|i| self.expr(&i))
                    .collect::<CResult<Vec<_>>>()?;
                Expr::List(items.into_boxed_slice())
            }
            ast::Expr::Apply(a) => {
                let f = self.opt(a.lambda(), node)?;
                let x = self.opt(a.argument(), node)?;
                Expr::Apply(f, x, pos)
            }
            ast::Expr::Assert(a) => {
                let c = self.opt(a.condition(), node)?;
                let b = self.opt(a.body(), node)?;
                Expr::Assert(c, b, pos)
            }
            ast::Expr::IfElse(i) => {
                let c = self.opt(i.condition(), node)?;
                let t = self.opt(i.body(), node)?;
                let f = self.opt(i.else_body(), node)?;
                Expr::If(c, t, f, pos)
            }
            ast::Expr::With(w) => {
                let ns = self.opt(w.namespace(), node)?;
                self.scopes.push(Scope::With);
                let body = self.opt(w.body(), node);
                self.scopes.pop();
                Expr::With(ns, body?, pos)
            }
            ast::Expr::Select(s) => {
                let target = self.opt(s.expr(), node)?;
                let path = self.attrpath(s.attrpath(), node)?;
                let default = match s.default_expr() {
                    Some(d) => Some(self.expr(&d)?),
                    None => None,
                };
                Expr::Select(target, path, default, pos)
            }
            ast::Expr::HasAttr(h) => {
                let target = self.opt(h.expr(), node)?;
                let path = self.attrpath(h.attrpath(), node)?;
                Expr::HasAttr(target, path, pos)
            }
            ast::Expr::UnaryOp(u) => {
                let inner = self.opt(u.expr(), node)?;
                match u.operator() {
                    Some(ast::UnaryOpKind::Invert) => Expr::Not(inner, pos),
                    Some(ast::UnaryOpKind::Negate) => Expr::Neg(inner, pos),
                    None => {
                        return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), node));
                    }
                }
            }
            ast::Expr::BinOp(b) => {
                let l = self.opt(b.lhs(), node)?;
                let r = self.opt(b.rhs(), node)?;
                let op = match b.operator() {
                    Some(ast::BinOpKind::Concat) => BinOp::Concat,
                    Some(ast::BinOpKind::Update) => BinOp::Update,
                    Some(ast::BinOpKind::Add) => BinOp::Add,
                    Some(ast::BinOpKind::Sub) => BinOp::Sub,
                    Some(ast::BinOpKind::Mul) => BinOp::Mul,
                    Some(ast::BinOpKind::Div) => BinOp::Div,
                    Some(ast::BinOpKind::And) => BinOp::And,
                    Some(ast::BinOpKind::Or) => BinOp::Or,
                    Some(ast::BinOpKind::Implication) => BinOp::Impl,
                    Some(ast::BinOpKind::Equal) => BinOp::Eq,
                    Some(ast::BinOpKind::NotEqual) => BinOp::Neq,
                    Some(ast::BinOpKind::Less) => BinOp::Lt,
                    Some(ast::BinOpKind::LessOrEq) => BinOp::Le,
                    Some(ast::BinOpKind::More) => BinOp::Gt,
                    Some(ast::BinOpKind::MoreOrEq) => BinOp::Ge,
                    Some(ast::BinOpKind::PipeLeft | ast::BinOpKind::PipeRight) | None => {
                        return Err(self.err(
                            EvalErrorKind::Parse,
                            "syntax error, pipe operators are not supported by Nix 2.8".into(),
                            node,
                        ));
                    }
                };
                Expr::Bin(op, l, r, pos)
            }
            ast::Expr::Lambda(l) => self.lambda(l)?,
            ast::Expr::AttrSet(a) => {
                let mut p = Pending {
                    rec: a.rec_token().is_some(),
                    ..Pending::default()
                };
                self.collect_entries(a, &mut p, false)?;
                Expr::Attrs(Rc::new(self.finish_attrs(p, pos)?), pos)
            }
            ast::Expr::LetIn(l) => {
                let mut p = Pending {
                    rec: true,
                    ..Pending::default()
                };
                self.collect_entries(l, &mut p, true)?;
                let def = self.finish_attrs_with(p, pos, |c| c.opt(l.body(), node))?;
                Expr::Let(Rc::new(def.0), def.1)
            }
            ast::Expr::LegacyLet(l) => {
                // `let { …; body = e; }` is `(rec { … }).body`.
                let mut p = Pending {
                    rec: true,
                    ..Pending::default()
                };
                self.collect_entries(l, &mut p, false)?;
                let body = self.interner.intern("body");
                let attrs = Rc::new(Expr::Attrs(Rc::new(self.finish_attrs(p, pos)?), pos));
                Expr::Select(
                    attrs,
                    vec![AttrKey::Static(body)].into_boxed_slice(),
                    None,
                    pos,
                )
            }
            ast::Expr::CurPos(_) => Expr::CurPos(pos),
        };
        Ok(Rc::new(out))
    }

    fn literal(&mut self, l: &ast::Literal) -> CResult<Expr> {
        let node = l.syntax();
        Ok(match l.kind() {
            ast::LiteralKind::Integer(i) => match i.value() {
                Ok(n) => Expr::Const(V::Int(n)),
                Err(_) => {
                    return Err(self.err(
                        EvalErrorKind::Parse,
                        format!("invalid integer '{}'", i.syntax().text()),
                        node,
                    ));
                }
            },
            ast::LiteralKind::Float(f) => match f.value() {
                Ok(x) => Expr::Const(V::Float(x)),
                Err(_) => {
                    return Err(self.err(
                        EvalErrorKind::Parse,
                        format!("invalid float '{}'", f.syntax().text()),
                        node,
                    ));
                }
            },
            ast::LiteralKind::Uri(u) => Expr::Const(V::str(u.syntax().text())),
        })
    }

    fn string(&mut self, s: &ast::Str) -> CResult<Expr> {
        let node = s.syntax();
        let pos = self.pos(node);
        let multiline = node
            .children_with_tokens()
            .filter_map(|t| t.into_token())
            .next()
            .is_some_and(|t| t.kind() == SyntaxKind::TOKEN_STRING_START && t.text() == "''");
        // Gather raw literal text and interpolations in order, merging adjacent literal tokens.
        let mut raw: Vec<Result<String, ast::Interpol>> = Vec::new();
        for part in s.parts() {
            match part {
                InterpolPart::Literal(t) => match raw.last_mut() {
                    Some(Ok(prev)) => prev.push_str(t.syntax().text()),
                    _ => raw.push(Ok(t.syntax().text().to_string())),
                },
                InterpolPart::Interpolation(i) => raw.push(Err(i)),
            }
        }
        let mut parts = Vec::new();
        if multiline {
            // The lexer drops spaces and a newline right after the opening `''`.
            if let Some(Ok(first)) = raw.first_mut() {
                let spaces = first.bytes().take_while(|&c| c == b' ').count();
                if first.as_bytes().get(spaces) == Some(&b'\n') {
                    first.drain(..=spaces);
                }
            }
            let mut ind = Vec::new();
            let mut interps = Vec::new();
            for r in raw {
                match r {
                    Ok(text) => {
                        let mut toks = Vec::new();
                        strings::tokenize_indented(&text, &mut toks);
                        ind.extend(toks.into_iter().map(IndPart::Tok));
                    }
                    Err(i) => {
                        ind.push(IndPart::Interp(interps.len()));
                        interps.push(i);
                    }
                }
            }
            let mut interps: Vec<Option<ast::Interpol>> = interps.into_iter().map(Some).collect();
            for p in strings::strip_indentation(ind) {
                match p {
                    Ok(text) => parts.push(StrPart::Lit(Rc::from(text))),
                    Err(i) => {
                        if let Some(ip) = interps.get_mut(i).and_then(Option::take) {
                            parts.push(self.interp(&ip)?);
                        }
                    }
                }
            }
        } else {
            for r in raw {
                match r {
                    Ok(text) => parts.push(StrPart::Lit(Rc::from(strings::unescape_dquote(&text)))),
                    Err(i) => parts.push(self.interp(&i)?),
                }
            }
        }
        Ok(simplify_str(parts, pos))
    }

    fn interp(&mut self, i: &ast::Interpol) -> CResult<StrPart> {
        let pos = self.pos(i.syntax());
        let e = self.opt(i.expr(), i.syntax())?;
        Ok(StrPart::Interp(e, pos))
    }

    fn path(
        &mut self,
        parts: Vec<InterpolPart<ast::PathContent>>,
        kind: PathKind,
        node: &SyntaxNode,
    ) -> CResult<Expr> {
        let pos = self.pos(node);
        let mut out = Vec::new();
        for (i, p) in parts.into_iter().enumerate() {
            match p {
                InterpolPart::Literal(t) => {
                    let text = t.text();
                    if i == 0 {
                        let base = match kind {
                            PathKind::Abs => text.to_string(),
                            PathKind::Rel => format!("{}/{}", self.dir, text),
                            PathKind::Home => match &self.home {
                                Some(h) => format!("{h}{}", text.trim_start_matches('~')),
                                None => {
                                    return Err(self.err(
                                        EvalErrorKind::Eval,
                                        "the contents of HOME are needed to resolve '~' paths"
                                            .into(),
                                        node,
                                    ));
                                }
                            },
                        };
                        out.push(StrPart::Lit(Rc::from(base)));
                    } else {
                        out.push(StrPart::Lit(Rc::from(text)));
                    }
                }
                InterpolPart::Interpolation(ip) => out.push(self.interp(&ip)?),
            }
        }
        if let [StrPart::Lit(s)] = out.as_slice() {
            if s.ends_with('/') && s.len() > 1 {
                return Err(self.err(
                    EvalErrorKind::Parse,
                    format!("path '{s}' has a trailing slash"),
                    node,
                ));
            }
            return Ok(Expr::Const(V::Path(Rc::from(super::canon_path(s)))));
        }
        Ok(Expr::Path(out, pos))
    }

    fn attrpath(
        &mut self,
        ap: Option<ast::Attrpath>,
        parent: &SyntaxNode,
    ) -> CResult<Box<[AttrKey]>> {
        let Some(ap) = ap else {
            return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), parent));
        };
        let mut out = Vec::new();
        for a in ap.attrs() {
            out.push(match self.attr_name(&a)? {
                Ok(name) => AttrKey::Static(name),
                Err(e) => {
                    let pos = self.pos(a.syntax());
                    AttrKey::Dynamic(self.expr(&e)?, pos)
                }
            });
        }
        Ok(out.into_boxed_slice())
    }

    /// A static name, or the expression of a dynamic one.
    fn attr_name(&mut self, a: &ast::Attr) -> CResult<Result<Sym, ast::Expr>> {
        match a {
            ast::Attr::Ident(id) => Ok(Ok(self.interner.intern(&ident_text(id)))),
            ast::Attr::Str(s) => match static_str(s) {
                Some(text) => Ok(Ok(self.interner.intern(&text))),
                None => Ok(Err(ast::Expr::Str(s.clone()))),
            },
            ast::Attr::Dynamic(d) => match d.expr() {
                Some(ast::Expr::Str(s)) if static_str(&s).is_some() => {
                    let text = static_str(&s).unwrap_or_default();
                    Ok(Ok(self.interner.intern(&text)))
                }
                Some(e) => Ok(Err(e)),
                None => Err(self.err(EvalErrorKind::Parse, "syntax error".into(), d.syntax())),
            },
        }
    }

    fn collect_entries<N: HasEntry>(
        &mut self,
        n: &N,
        p: &mut Pending,
        is_let: bool,
    ) -> CResult<()> {
        for entry in n.entries() {
            match entry {
                ast::Entry::Inherit(inh) => {
                    let from = inh.from().and_then(|f| f.expr());
                    for a in inh.attrs() {
                        let pos = self.pos(a.syntax());
                        let name = match self.attr_name(&a)? {
                            Ok(name) => name,
                            Err(_) => {
                                return Err(self.err(
                                    EvalErrorKind::Parse,
                                    "dynamic attributes not allowed in inherit".into(),
                                    a.syntax(),
                                ));
                            }
                        };
                        let val = match &from {
                            Some(e) => PendingVal::InheritFrom(e.clone(), name.clone(), pos),
                            None => PendingVal::Inherit(name.clone(), pos),
                        };
                        if let Some((_, prev)) = p.map.get(&name) {
                            return Err(self.dup_attr(&name, pos, *prev));
                        }
                        p.order.push(name.clone());
                        p.map.insert(name, (val, pos));
                    }
                }
                ast::Entry::AttrpathValue(apv) => {
                    let node = apv.syntax().clone();
                    let Some(ap) = apv.attrpath() else {
                        return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), &node));
                    };
                    let Some(value) = apv.value() else {
                        return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), &node));
                    };
                    let attrs: Vec<ast::Attr> = ap.attrs().collect();
                    self.add_attr(p, &attrs, value, is_let)?;
                }
            }
        }
        Ok(())
    }

    fn dup_attr(&self, name: &str, pos: Pos, prev: Pos) -> EvalError {
        let mut e = EvalError::new(
            EvalErrorKind::Parse,
            format!("attribute '{name}' already defined"),
        );
        e.pos = Some(pos);
        e.extra.secondary = Some(prev);
        e
    }

    fn add_attr(
        &mut self,
        p: &mut Pending,
        path: &[ast::Attr],
        value: ast::Expr,
        is_let: bool,
    ) -> CResult<()> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(());
        };
        let pos = self.pos(first.syntax());
        let name = match self.attr_name(first)? {
            Ok(n) => n,
            Err(key) => {
                if is_let {
                    return Err(self.err(
                        EvalErrorKind::Parse,
                        "dynamic attributes not allowed in let".into(),
                        first.syntax(),
                    ));
                }
                let val = if rest.is_empty() {
                    PendingVal::Expr(value)
                } else {
                    let mut nested = Pending::default();
                    self.add_attr(&mut nested, rest, value, false)?;
                    PendingVal::Nested(nested)
                };
                p.dynamics.push((key, val, pos));
                return Ok(());
            }
        };
        if rest.is_empty() {
            // A set literal merges into an existing nested set (`a.b = 1; a = { c = 2; };`).
            let existing = p.map.get_mut(&name);
            match (existing, value) {
                (None, value) => {
                    let val = match &value {
                        ast::Expr::AttrSet(a) => {
                            let mut nested = Pending {
                                rec: a.rec_token().is_some(),
                                ..Pending::default()
                            };
                            self.collect_entries(a, &mut nested, false)?;
                            PendingVal::Nested(nested)
                        }
                        _ => PendingVal::Expr(value),
                    };
                    p.order.push(name.clone());
                    p.map.insert(name, (val, pos));
                }
                (Some((PendingVal::Nested(nested), _)), ast::Expr::AttrSet(a)) => {
                    let mut nested_tmp = std::mem::take(nested);
                    let r = self.collect_entries(&a, &mut nested_tmp, false);
                    if let Some((PendingVal::Nested(n), _)) = p.map.get_mut(&name) {
                        *n = nested_tmp;
                    }
                    r?;
                }
                (Some((_, prev)), _) => {
                    let prev = *prev;
                    return Err(self.dup_attr(&name, pos, prev));
                }
            }
        } else {
            match p.map.get_mut(&name) {
                None => {
                    let mut nested = Pending::default();
                    self.add_attr(&mut nested, rest, value, false)?;
                    p.order.push(name.clone());
                    p.map.insert(name, (PendingVal::Nested(nested), pos));
                }
                Some((PendingVal::Nested(nested), _)) => {
                    let mut tmp = std::mem::take(nested);
                    let r = self.add_attr(&mut tmp, rest, value, false);
                    if let Some((PendingVal::Nested(n), _)) = p.map.get_mut(&name) {
                        *n = tmp;
                    }
                    r?;
                }
                Some((_, prev)) => {
                    let prev = *prev;
                    return Err(self.dup_attr(&name, pos, prev));
                }
            }
        }
        Ok(())
    }

    fn finish_attrs(&mut self, p: Pending, pos: Pos) -> CResult<AttrsDef> {
        Ok(self
            .finish_attrs_with(p, pos, |_| Ok(Rc::new(Expr::Const(V::Null))))?
            .0)
    }

    /// Compiles a pending set; `body` is compiled inside its scope (for `let`).
    fn finish_attrs_with(
        &mut self,
        mut p: Pending,
        pos: Pos,
        body: impl FnOnce(&mut Self) -> CResult<Rc<Expr>>,
    ) -> CResult<(AttrsDef, Rc<Expr>)> {
        let rec = p.rec;
        // Slots and entries in name order, so a set is built already sorted.
        p.order.sort();
        if rec {
            let slots: HashMap<Sym, usize> = p
                .order
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect();
            self.scopes.push(Scope::Static(slots));
        }
        let result = (|| {
            let mut statics = Vec::with_capacity(p.order.len());
            for name in std::mem::take(&mut p.order) {
                let Some((val, apos)) = p.map.remove(&name) else {
                    continue;
                };
                let value = self.pending_value(val, rec)?;
                statics.push(StaticAttr {
                    name,
                    value,
                    pos: apos,
                });
            }
            let mut dynamics = Vec::new();
            for (key, val, dpos) in std::mem::take(&mut p.dynamics) {
                let k = self.expr(&key)?;
                let v = self.pending_value(val, rec)?;
                dynamics.push((k, v, dpos));
            }
            let b = body(self)?;
            Ok((
                AttrsDef {
                    rec,
                    statics,
                    dynamics,
                },
                b,
            ))
        })();
        if rec {
            self.scopes.pop();
        }
        let _ = pos;
        result
    }

    fn pending_value(&mut self, val: PendingVal, in_rec_frame: bool) -> CResult<Rc<Expr>> {
        match val {
            PendingVal::Expr(e) => self.expr(&e),
            PendingVal::Nested(n) => {
                let npos = Pos {
                    file: self.file,
                    off: 0,
                };
                let def = self.finish_attrs(n, npos)?;
                Ok(Rc::new(Expr::Attrs(Rc::new(def), npos)))
            }
            PendingVal::Inherit(name, pos) => {
                // `inherit x;` in a rec set or let looks past the set's own frame.
                let skip = usize::from(in_rec_frame);
                match self.resolve(&name, skip) {
                    Some(v) => Ok(Rc::new(Expr::Var(v, pos))),
                    None => {
                        let mut e = EvalError::new(
                            EvalErrorKind::UndefinedVariable,
                            format!("undefined variable '{name}'"),
                        );
                        e.pos = Some(pos);
                        Err(e)
                    }
                }
            }
            PendingVal::InheritFrom(from, name, pos) => {
                let f = self.expr(&from)?;
                Ok(Rc::new(Expr::Select(
                    f,
                    vec![AttrKey::Static(name)].into_boxed_slice(),
                    None,
                    pos,
                )))
            }
        }
    }

    fn lambda(&mut self, l: &ast::Lambda) -> CResult<Expr> {
        let node = l.syntax();
        let pos = self.pos(node);
        let Some(param) = l.param() else {
            return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), node));
        };
        match param {
            ast::Param::IdentParam(ip) => {
                let Some(id) = ip.ident() else {
                    return Err(self.err(EvalErrorKind::Parse, "syntax error".into(), node));
                };
                let name = self.interner.intern(&ident_text(&id));
                let mut m = HashMap::new();
                m.insert(name.clone(), 0);
                self.scopes.push(Scope::Static(m));
                let body = self.opt(l.body(), node);
                self.scopes.pop();
                Ok(Expr::Lambda(Rc::new(LambdaDef {
                    param: Param::Ident(name),
                    body: body?,
                    pos,
                })))
            }
            ast::Param::Pattern(pat) => {
                let mut names = Vec::new();
                let mut m = HashMap::new();
                for entry in pat.pat_entries() {
                    let Some(id) = entry.ident() else { continue };
                    let name = self.interner.intern(&ident_text(&id));
                    if m.contains_key(&name) {
                        return Err(self.err(
                            EvalErrorKind::Parse,
                            format!("duplicate formal function argument '{name}'"),
                            entry.syntax(),
                        ));
                    }
                    m.insert(name.clone(), names.len());
                    names.push((name, entry.default()));
                }
                let bind = pat
                    .pat_bind()
                    .and_then(|b| b.ident())
                    .map(|id| self.interner.intern(&ident_text(&id)));
                if let Some(b) = &bind {
                    if m.contains_key(b) {
                        return Err(self.err(
                            EvalErrorKind::Parse,
                            format!("duplicate formal function argument '{b}'"),
                            node,
                        ));
                    }
                    m.insert(b.clone(), names.len());
                }
                self.scopes.push(Scope::Static(m));
                let result = (|| {
                    let mut formals = Vec::with_capacity(names.len());
                    for (name, default) in names {
                        let d = match default {
                            Some(d) => Some(self.expr(&d)?),
                            None => None,
                        };
                        formals.push((name, d));
                    }
                    let body = self.opt(l.body(), node)?;
                    Ok((formals, body))
                })();
                self.scopes.pop();
                let (formals, body) = result?;
                let ellipsis = pat.ellipsis_token().is_some();
                Ok(Expr::Lambda(Rc::new(LambdaDef {
                    param: Param::Pattern {
                        formals,
                        ellipsis,
                        bind,
                    },
                    body,
                    pos,
                })))
            }
        }
    }
}

#[derive(Clone, Copy)]
enum PathKind {
    Abs,
    Rel,
    Home,
}

fn ident_text(id: &ast::Ident) -> String {
    id.syntax().text().to_string()
}

/// The text of a `"…"` string without interpolation (used as an attribute name).
fn static_str(s: &ast::Str) -> Option<String> {
    let mut out = String::new();
    for part in s.normalized_parts() {
        match part {
            InterpolPart::Literal(t) => out.push_str(&t),
            InterpolPart::Interpolation(_) => return None,
        }
    }
    Some(out)
}

fn simplify_str(parts: Vec<StrPart>, pos: Pos) -> Expr {
    match parts.as_slice() {
        [] => Expr::Const(V::str("")),
        [StrPart::Lit(s)] => Expr::Const(V::str(s.clone())),
        _ => Expr::Str(parts, pos),
    }
}

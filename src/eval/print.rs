//! The printers of `nix-instantiate --eval` (Nix 2.8's `printValue`) and the float format of C++ streams.

use std::collections::HashSet;
use std::rc::Rc;

use super::value::{Thunk, V};
use super::{Evaluator, IResult as Result};

/// A double as `std::ostream << double` prints it: `%g` with 6 significant digits.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:.5e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&x) {
        let decimals = (5 - x).max(0) as usize;
        trim_zeros(&format!("{f:.decimals$}"))
    } else {
        let m = trim_zeros(mant);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", x.abs())
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// A Nix string literal, escaped like Nix 2.8 prints it.
pub(crate) fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if it.peek() == Some(&'{') => out.push_str("\\$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a name prints bare in a set (Nix's `isVarName`).
pub(crate) fn is_var_name(s: &str) -> bool {
    let Some(first) = s.bytes().next() else {
        return false;
    };
    // Nix 2.8 quotes `if` (and no other keyword); checked against nix-instantiate.
    if s == "if" {
        return false;
    }
    if first.is_ascii_digit() || first == b'-' || first == b'\'' {
        return false;
    }
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'\'')
}

impl Evaluator {
    /// Prints a value; thunks not yet forced print as `<CODE>`.
    pub(crate) fn print_value(&mut self, v: &V, strict: bool) -> Result<String> {
        let v = if strict {
            self.force_deep(v)?
        } else {
            self.force(v)?
        };
        let mut out = String::new();
        let mut seen = HashSet::new();
        let guard = StackGuard {
            base: super::machine::stack_pointer(),
            budget: self
                .options()
                .stack_budget
                .saturating_sub(self.stack_used()),
        };
        print_rec(&v, &mut out, &mut seen, &guard)?;
        Ok(out)
    }
}

/// The printer recurses over already evaluated values, which can nest arbitrarily deep (`foldl'` builds
/// them): it checks the native stack like evaluation does.
struct StackGuard {
    base: usize,
    budget: usize,
}

fn print_rec(v: &V, out: &mut String, seen: &mut HashSet<usize>, guard: &StackGuard) -> Result<()> {
    if guard.base.abs_diff(super::machine::stack_pointer()) > guard.budget {
        return Err(super::machine::err(
            super::EvalErrorKind::TooDeep,
            "value nested too deeply to print",
        ));
    }
    match v {
        V::Null => out.push_str("null"),
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Int(i) => out.push_str(&i.to_string()),
        V::Float(f) => out.push_str(&format_float(*f)),
        V::Str(s) => out.push_str(&escape_string(&s.s)),
        V::Path(p) => out.push_str(p),
        V::Attrs(a) => {
            // Nix shares one empty set, which never prints as repeated.
            if !a.entries.is_empty() && !seen.insert(Rc::as_ptr(a) as *const u8 as usize) {
                out.push_str("«repeated»");
                return Ok(());
            }
            out.push_str("{ ");
            for (n, x, _) in &a.entries {
                if is_var_name(n) {
                    out.push_str(n);
                } else {
                    out.push_str(&escape_string(n));
                }
                out.push_str(" = ");
                print_rec(x, out, seen, guard)?;
                out.push_str("; ");
            }
            out.push('}');
        }
        V::List(l) => {
            if !l.is_empty() && !seen.insert(Rc::as_ptr(l) as *const u8 as usize) {
                out.push_str("«repeated»");
                return Ok(());
            }
            out.push_str("[ ");
            for x in l.iter() {
                print_rec(x, out, seen, guard)?;
                out.push(' ');
            }
            out.push(']');
        }
        V::Lambda(_) => out.push_str("<LAMBDA>"),
        V::PrimOp(p) => out.push_str(if p.args.is_empty() {
            "<PRIMOP>"
        } else {
            "<PRIMOP-APP>"
        }),
        V::Thunk(t) => {
            let done = match &*t.borrow() {
                Thunk::Done(x) => Some(x.clone()),
                _ => None,
            };
            match done {
                Some(x) => print_rec(&x, out, seen, guard)?,
                None => out.push_str("<CODE>"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_cpp_streams() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e20), "1e+20");
        assert_eq!(format_float(123456789.123), "1.23457e+08");
        assert_eq!(format_float(2.5e-7), "2.5e-07");
        assert_eq!(format_float(123456.7), "123457");
        assert_eq!(format_float(0.0001), "0.0001");
        assert_eq!(format_float(1e-5), "1e-05");
    }
}

//! Filtersets (`-E EXPR`), the subset of nextest's language that partest
//! knows: `test()`, `package()`, `binary()`, `binary_id()`, `kind()`,
//! `all()`, `none()`, joined with `and`/`&`, `or`/`|`/`+`, `not`/`!` and
//! `-` (a and not b), grouped with parentheses. A matcher is `=exact`,
//! `~contains`, `/regex/` or `#glob`; without a prefix `test()` matches a
//! substring, `package()`/`binary()`/`binary_id()` a glob and `kind()` the
//! exact text, as nextest does. partest adds `file()` (a test's file:
//! pytest's module, the command adapter's file; glob by default) and
//! `marker()` (a pytest marker on the test; exact by default), so the same
//! expressions select pytest and command tests.

use globset::{Glob, GlobMatcher};
use regex::Regex;

use crate::model::TestCase;

/// A parsed `-E` expression.
#[derive(Clone, Debug)]
pub struct FilterSet {
    text: String,
    expr: Expr,
}

#[derive(Clone, Debug)]
enum Expr {
    All,
    None,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Fn(Field, Matcher),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Test,
    Package,
    Binary,
    BinaryId,
    Kind,
    File,
    Marker,
}

#[derive(Clone, Debug)]
enum Matcher {
    Equal(String),
    Contains(String),
    Glob(GlobMatcher),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, text: &str) -> bool {
        match self {
            Matcher::Equal(s) => text == s,
            Matcher::Contains(s) => text.contains(s.as_str()),
            Matcher::Glob(g) => g.is_match(text),
            Matcher::Regex(r) => r.is_match(text),
        }
    }
}

impl FilterSet {
    pub fn parse(text: &str) -> Result<FilterSet, String> {
        let mut p = Parser { s: text, pos: 0 };
        let expr = p.or()?;
        p.skip_ws();
        if p.pos < text.len() {
            return Err(p.error("an operator (and, or, not, -) or the end"));
        }
        Ok(FilterSet {
            text: text.to_string(),
            expr,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, test: &TestCase) -> bool {
        eval(&self.expr, test)
    }
}

fn eval(expr: &Expr, t: &TestCase) -> bool {
    match expr {
        Expr::All => true,
        Expr::None => false,
        Expr::Not(e) => !eval(e, t),
        Expr::And(a, b) => eval(a, t) && eval(b, t),
        Expr::Or(a, b) => eval(a, t) || eval(b, t),
        Expr::Fn(field, m) => match field {
            Field::Test => m.is_match(t.test_name()),
            Field::Package => m.is_match(&t.meta.package),
            Field::Binary => m.is_match(&t.meta.binary),
            Field::BinaryId => m.is_match(&t.meta.binary_id),
            Field::Kind => m.is_match(&t.meta.kind),
            Field::File => m.is_match(&t.meta.file),
            Field::Marker => t.markers.iter().any(|k| m.is_match(k)),
        },
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    fn error(&self, expected: &str) -> String {
        format!(
            "filterset {:?}: expected {expected} at column {}{}",
            self.s,
            self.pos + 1,
            if self.pos < self.s.len() {
                format!(" (found {:?})", self.rest())
            } else {
                String::new()
            }
        )
    }

    /// A word operator (`and`) not followed by more of a name (`android`).
    fn word(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with(word)
            && !rest[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.pos += word.len();
            return true;
        }
        false
    }

    fn symbol(&mut self, sym: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(sym) {
            self.pos += sym.len_utf8();
            return true;
        }
        false
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.word("or") || self.symbol('|') || self.symbol('+') {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        loop {
            if self.word("and") || self.symbol('&') {
                let right = self.not()?;
                left = Expr::And(Box::new(left), Box::new(right));
            } else if self.symbol('-') {
                let right = self.not()?;
                left = Expr::And(Box::new(left), Box::new(Expr::Not(Box::new(right))));
            } else {
                return Ok(left);
            }
        }
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.word("not") || self.symbol('!') {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        if self.symbol('(') {
            let e = self.or()?;
            if !self.symbol(')') {
                return Err(self.error("`)`"));
            }
            return Ok(e);
        }
        self.skip_ws();
        let start = self.pos;
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let name = &self.s[start..start + name_len];
        if name.is_empty() {
            return Err(self.error("a function such as test(NAME), or `(`"));
        }
        self.pos += name_len;
        if !self.symbol('(') {
            self.pos = start;
            return Err(self.error("`(` after a function name"));
        }
        let field = match name {
            "all" | "none" => {
                if !self.symbol(')') {
                    return Err(self.error("`)`: all() and none() take no argument"));
                }
                return Ok(if name == "all" { Expr::All } else { Expr::None });
            }
            "test" => Field::Test,
            "package" => Field::Package,
            "binary" => Field::Binary,
            "binary_id" => Field::BinaryId,
            "kind" => Field::Kind,
            "file" => Field::File,
            "marker" => Field::Marker,
            "deps" | "rdeps" | "platform" | "group" | "default" => {
                self.pos = start;
                return Err(format!(
                    "filterset {:?}: {name}() is nextest's but partest does not support it; \
                     partest knows test(), package(), binary(), binary_id(), kind(), file(), \
                     marker(), all(), none()",
                    self.s
                ));
            }
            _ => {
                self.pos = start;
                return Err(self.error(
                    "one of test(), package(), binary(), binary_id(), kind(), file(), marker(), all(), none()",
                ));
            }
        };
        let matcher = self.matcher(field)?;
        if !self.symbol(')') {
            return Err(self.error("`)`"));
        }
        Ok(Expr::Fn(field, matcher))
    }

    /// The argument of a function, up to its unescaped `)`.
    fn matcher(&mut self, field: Field) -> Result<Matcher, String> {
        self.skip_ws();
        if self.rest().starts_with('/') {
            // A regex runs to the next unescaped `/`; `\/` is a slash.
            let body_start = self.pos + 1;
            let mut escaped = false;
            let mut text = String::new();
            for (i, c) in self.s[body_start..].char_indices() {
                if escaped {
                    if c != '/' {
                        text.push('\\');
                    }
                    text.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '/' {
                    self.pos = body_start + i + 1;
                    let re = Regex::new(&text)
                        .map_err(|e| format!("filterset {:?}: bad regex /{text}/: {e}", self.s))?;
                    return Ok(Matcher::Regex(re));
                } else {
                    text.push(c);
                }
            }
            return Err(self.error("the closing `/` of the regex"));
        }
        let mut text = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in self.rest().char_indices() {
            if escaped {
                text.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == ')' {
                end = Some(i);
                break;
            } else {
                text.push(c);
            }
        }
        let Some(end) = end else {
            self.pos = self.s.len();
            return Err(self.error("`)`"));
        };
        self.pos += end;
        let text = text.trim().to_string();
        let glob = |g: &str| {
            Glob::new(g)
                .map(|g| Matcher::Glob(g.compile_matcher()))
                .map_err(|e| format!("filterset {:?}: bad glob {g:?}: {}", self.s, e.kind()))
        };
        let (prefix, body) = match text.chars().next() {
            Some(c @ ('=' | '~' | '#')) => (Some(c), text[1..].to_string()),
            _ => (None, text.clone()),
        };
        if body.is_empty() && prefix.is_none() {
            return Err(self.error("a name, `=exact`, `~part`, `/regex/` or `#glob`"));
        }
        Ok(match prefix {
            Some('=') => Matcher::Equal(body),
            Some('~') => Matcher::Contains(body),
            Some('#') => glob(&body)?,
            _ => match field {
                Field::Test => Matcher::Contains(body),
                Field::Kind | Field::Marker => Matcher::Equal(body),
                Field::Package | Field::Binary | Field::BinaryId | Field::File => glob(&body)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TestMeta;
    use std::sync::Arc;

    fn cargo_test(package: &str, binary: &str, kind: &str, name: &str) -> TestCase {
        let binary_id = if kind == "lib" {
            package.to_string()
        } else {
            format!("{package}::{binary}")
        };
        let mut t = TestCase::new(format!("{binary_id} {name}"));
        t.target = name.to_string();
        t.meta = Arc::new(TestMeta {
            package: package.into(),
            binary: binary.into(),
            binary_id,
            kind: kind.into(),
            file: String::new(),
        });
        t
    }

    fn sel(expr: &str, tests: &[TestCase]) -> Vec<String> {
        let f = FilterSet::parse(expr).unwrap_or_else(|e| panic!("{e}"));
        tests
            .iter()
            .filter(|t| f.matches(t))
            .map(|t| t.name.clone())
            .collect()
    }

    fn corpus() -> Vec<TestCase> {
        vec![
            cargo_test("fx", "fx", "lib", "tests::adds"),
            cargo_test("fx", "fx", "lib", "tests::slow_add"),
            cargo_test("fx", "integration", "test", "one"),
            cargo_test("other", "other", "lib", "adds"),
        ]
    }

    #[test]
    fn functions_and_default_matchers_as_nextest() {
        let c = corpus();
        assert_eq!(sel("test(adds)", &c), ["fx tests::adds", "other adds"]);
        assert_eq!(sel("test(=adds)", &c), ["other adds"]);
        assert_eq!(sel("test(/^tests::s/)", &c), ["fx tests::slow_add"]);
        assert_eq!(sel("test(#*add)", &c), ["fx tests::slow_add"]);
        assert_eq!(sel("package(f*)", &c).len(), 3);
        assert_eq!(sel("binary(integration)", &c), ["fx::integration one"]);
        assert_eq!(sel("binary_id(fx::*)", &c), ["fx::integration one"]);
        assert_eq!(sel("kind(test)", &c), ["fx::integration one"]);
        assert_eq!(sel("all()", &c).len(), 4);
        assert!(sel("none()", &c).is_empty());
    }

    #[test]
    fn operators_and_precedence() {
        let c = corpus();
        assert_eq!(
            sel("package(fx) and not test(slow)", &c),
            ["fx tests::adds", "fx::integration one"]
        );
        assert_eq!(
            sel("package(fx) - kind(test) - test(slow)", &c),
            ["fx tests::adds"]
        );
        assert_eq!(
            sel("test(one) | package(other) & test(adds)", &c),
            ["fx::integration one", "other adds"]
        );
        assert_eq!(sel("!(kind(lib))", &c), ["fx::integration one"]);
        assert_eq!(
            sel("(test(one) or test(=adds)) and package(other)", &c),
            ["other adds"]
        );
        assert_eq!(sel("test(=adds) + test(=one)", &c).len(), 2);
    }

    #[test]
    fn escapes_in_matchers() {
        let mut t = TestCase::new("a.py::test_x[(1)]");
        t.markers = vec!["slow".into()];
        assert!(FilterSet::parse(r"test(~[(1\)])").unwrap().matches(&t));
        assert!(FilterSet::parse(r"test(/x\[\(1\)\]/)").unwrap().matches(&t));
        assert!(FilterSet::parse("marker(slow)").unwrap().matches(&t));
        assert!(!FilterSet::parse("marker(slo)").unwrap().matches(&t));
    }

    #[test]
    fn errors_say_where_and_what() {
        for (bad, want) in [
            ("test(", "`)`"),
            ("tset(x)", "one of test()"),
            ("test(x) and", "a function"),
            ("test(x) test(y)", "an operator"),
            ("test(/[/)", "bad regex"),
            ("deps(x)", "does not support"),
            ("all(x)", "take no argument"),
            ("test()", "a name"),
        ] {
            let e = FilterSet::parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}

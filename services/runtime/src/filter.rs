//! List filters: the AIP-160 subset every `List*` method with a `filter` field accepts, and
//! the SQL they become.
//!
//! Grammar (AIP-160; `OR` binds tighter than `AND`, juxtaposition means `AND`):
//!
//! ```text
//! filter     = [expression]
//! expression = sequence { "AND" sequence }
//! sequence   = factor { factor }             (implicit AND)
//! factor     = term { "OR" term }
//! term       = ["NOT" | "-"] simple
//! simple     = "(" expression ")" | field op value
//! op         = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":"
//! value      = "quoted string" | bare-word
//! ```
//!
//! A method describes its fields ([`Field`]: name, column, [`Kind`]); [`Filter::parse`]
//! checks the text against them (known field, an operator the kind allows, a value of the
//! kind) and every error names the offending token and its position. Resource references
//! (`task = "nightly"`) need the service to resolve them ([`Filter::references`]) before
//! [`Filter::push_sql`] writes the `WHERE` condition with bound parameters only.
//!
//! This module knows nothing of any resource; it must not touch the database itself.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

/// Longest filter accepted, in bytes.
pub const MAX_LEN: usize = 2048;
/// Deepest nesting of parentheses and `NOT`.
const MAX_DEPTH: usize = 32;

/// What a field holds, which decides the operators and values it takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text: `=`, `!=`, and `:` (contains).
    Text,
    /// One of these names (compared case-insensitively, an enum's prefix optional): `=`, `!=`.
    Enum {
        /// The stored names (`QUEUED`).
        names: &'static [&'static str],
        /// The proto enum's prefix that may precede a name (`JOB_STATE_`).
        prefix: &'static str,
    },
    /// An RFC 3339 timestamp: every comparison but `:`.
    Time,
    /// `true` or `false`: `=`, `!=`.
    Bool,
    /// A resource named by full name, id or display name (resolved by the service): `=`, `!=`.
    Reference,
    /// A list of labels (restic tags: `key=value` or bare words): `:` only (`labels:"env=prod"`
    /// exactly; `labels:env` for the tag `env` or any value of the key `env`).
    Labels,
}

/// A filterable field of a list.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Its name in filters (the API field name, `create_time`).
    pub name: &'static str,
    /// The SQL expression it reads (`j.create_time`).
    pub column: &'static str,
    /// What it holds.
    pub kind: Kind,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `:` (has)
    Has,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Has => ":",
        }
    }
}

/// A value, checked against its field's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (also a reference before resolution).
    Text(String),
    /// A stored enum name.
    Enum(&'static str),
    /// A time.
    Time(DateTime<Utc>),
    /// A boolean.
    Bool(bool),
}

/// A parsed, checked filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every part holds.
    And(Vec<Expr>),
    /// Any part holds.
    Or(Vec<Expr>),
    /// The part does not hold.
    Not(Box<Expr>),
    /// `field op value`.
    Compare {
        /// The field (index into the method's fields).
        field: usize,
        /// The operator.
        op: Op,
        /// The value.
        value: Value,
    },
}

/// Why a filter was refused: what, and the token and byte position it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset of the token in the filter.
    pub position: usize,
    /// The offending token (empty at the end of the text).
    pub token: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.token.is_empty() {
            write!(f, "{} (at the end, position {})", self.message, self.position)
        } else {
            write!(f, "{} (at {:?}, position {})", self.message, self.token, self.position)
        }
    }
}

impl std::error::Error for FilterError {}

/// A checked filter over a method's fields.
#[derive(Debug, Clone)]
pub struct Filter {
    fields: &'static [Field],
    expr: Option<Expr>,
}

impl Filter {
    /// Parses and checks `text` against `fields`; an empty text is no filter.
    pub fn parse(text: &str, fields: &'static [Field]) -> Result<Self, FilterError> {
        if text.len() > MAX_LEN {
            return Err(FilterError {
                position: MAX_LEN,
                token: String::new(),
                message: format!("the filter is longer than {MAX_LEN} bytes"),
            });
        }
        let mut p = Parser { text, pos: 0, fields, depth: 0 };
        p.skip_space();
        if p.at_end() {
            return Ok(Self { fields, expr: None });
        }
        let expr = p.expression()?;
        p.skip_space();
        if !p.at_end() {
            return Err(p.error_here(if p.peek() == Some(')') {
                "this ')' closes nothing"
            } else {
                "expected AND, OR or the end of the filter"
            }));
        }
        Ok(Self { fields, expr: Some(expr) })
    }

    /// No filter over `fields` (what an empty text parses to).
    pub fn none(fields: &'static [Field]) -> Self {
        Self { fields, expr: None }
    }

    /// Whether there is nothing to filter on.
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// The expression, if any.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    /// Every (field name, raw value) of a [`Kind::Reference`] field, for the service to resolve.
    pub fn references(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(e) = &self.expr {
            collect_references(e, self.fields, &mut out);
        }
        out
    }

    /// Appends the condition to `q` (`true` when there is no filter). References are looked
    /// up in `resolved` by (field name, raw value); one that resolved to nothing matches no
    /// row (`=`) or every row (`!=`), as a missing resource should.
    pub fn push_sql(
        &self,
        q: &mut QueryBuilder<Postgres>,
        resolved: &HashMap<(&'static str, String), uuid::Uuid>,
    ) {
        match &self.expr {
            None => {
                q.push("true");
            }
            Some(e) => push(e, self.fields, resolved, q),
        }
    }
}

fn collect_references(e: &Expr, fields: &[Field], out: &mut Vec<(&'static str, String)>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| collect_references(e, fields, out)),
        Expr::Not(e) => collect_references(e, fields, out),
        Expr::Compare { field, value: Value::Text(t), .. }
            if matches!(fields[*field].kind, Kind::Reference) =>
        {
            out.push((fields[*field].name, t.clone()));
        }
        Expr::Compare { .. } => {}
    }
}

fn push(
    e: &Expr,
    fields: &[Field],
    resolved: &HashMap<(&'static str, String), uuid::Uuid>,
    q: &mut QueryBuilder<Postgres>,
) {
    let join = |parts: &[Expr], sep: &str, q: &mut QueryBuilder<Postgres>| {
        q.push("(");
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                q.push(sep);
            }
            push(p, fields, resolved, q);
        }
        q.push(")");
    };
    match e {
        Expr::And(parts) => join(parts, " AND ", q),
        Expr::Or(parts) => join(parts, " OR ", q),
        Expr::Not(inner) => {
            q.push("NOT (");
            push(inner, fields, resolved, q);
            q.push(")");
        }
        Expr::Compare { field, op, value } => {
            let f = &fields[*field];
            let col = f.column;
            match (f.kind, value) {
                (Kind::Labels, Value::Text(t)) => {
                    // `key=value` exactly, or a bare word: that tag, or any value of that key.
                    q.push(format_args!("({col} @> ARRAY[")).push_bind(t.clone()).push("]::text[]");
                    if !t.contains('=') {
                        q.push(format_args!(" OR EXISTS (SELECT 1 FROM unnest({col}) AS l WHERE l LIKE "))
                            .push_bind(format!("{}=%", like_escape(t)))
                            .push(" ESCAPE '\\')");
                    }
                    q.push(")");
                }
                (Kind::Text, Value::Text(t)) if *op == Op::Has => {
                    q.push(format_args!("({col} ILIKE "))
                        .push_bind(format!("%{}%", like_escape(t)))
                        .push(" ESCAPE '\\')");
                }
                (Kind::Reference, Value::Text(t)) => match resolved.get(&(f.name, t.clone())) {
                    Some(id) => {
                        q.push(format_args!("({col} {} ", op.as_str())).push_bind(*id).push(")");
                    }
                    // A reference to nothing: `=` matches nothing, `!=` everything but NULLs.
                    None if *op == Op::Eq => {
                        q.push("false");
                    }
                    None => {
                        q.push(format_args!("({col} IS NOT NULL)"));
                    }
                },
                (_, v) => {
                    // `!=` also matches rows where the column is NULL (AIP-160: "not equal").
                    if *op == Op::Ne {
                        q.push(format_args!("({col} IS DISTINCT FROM "));
                    } else {
                        q.push(format_args!("({col} {} ", op.as_str()));
                    }
                    match v {
                        Value::Text(t) => q.push_bind(t.clone()),
                        Value::Enum(n) => q.push_bind(*n),
                        Value::Time(t) => q.push_bind(*t),
                        Value::Bool(b) => q.push_bind(*b),
                    };
                    q.push(")");
                }
            }
        }
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    fields: &'static [Field],
    depth: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// The token at the position: a parenthesis, an operator, a quoted string or a word.
    fn token_here(&self) -> String {
        let rest = &self.text[self.pos..];
        let Some(c) = rest.chars().next() else { return String::new() };
        if "()".contains(c) {
            return c.to_string();
        }
        if let Some(op) = ["!=", "<=", ">=", "=", "<", ">", ":"].iter().find(|o| rest.starts_with(**o)) {
            return (*op).to_owned();
        }
        if c == '"' || c == '\'' {
            let end = rest[1..].find(c).map_or(rest.len(), |i| i + 2);
            return rest[..end].to_owned();
        }
        rest.split(|c: char| c.is_whitespace() || "()=<>!:".contains(c)).next().unwrap_or("").to_owned()
    }

    fn error_here(&self, message: impl Into<String>) -> FilterError {
        FilterError { position: self.pos, token: self.token_here(), message: message.into() }
    }

    /// The keyword `word` (a whole word), consumed when present.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = &self.text[self.pos..];
        if rest.starts_with(word)
            && rest[word.len()..].chars().next().is_none_or(|c| c.is_whitespace() || c == '(')
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, FilterError>) -> Result<T, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("the filter nests deeper than {MAX_DEPTH} levels")));
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn expression(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.sequence()?];
        loop {
            self.skip_space();
            if self.keyword("AND") {
                self.skip_space();
                parts.push(self.sequence()?);
            } else {
                break;
            }
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
    }

    fn sequence(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.factor()?];
        loop {
            self.skip_space();
            let rest = &self.text[self.pos..];
            let ends = rest.is_empty()
                || rest.starts_with(')')
                || (rest.starts_with("AND")
                    && rest[3..].chars().next().is_none_or(|c| c.is_whitespace() || c == '('));
            if ends {
                break;
            }
            parts.push(self.factor()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
    }

    fn factor(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.term()?];
        loop {
            self.skip_space();
            if self.keyword("OR") {
                self.skip_space();
                parts.push(self.term()?);
            } else {
                break;
            }
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
    }

    fn term(&mut self) -> Result<Expr, FilterError> {
        self.skip_space();
        if self.keyword("NOT")
            || self.peek() == Some('-') && {
                self.pos += 1;
                true
            }
        {
            self.skip_space();
            return self.nested(|p| Ok(Expr::Not(Box::new(p.term()?))));
        }
        self.simple()
    }

    fn simple(&mut self) -> Result<Expr, FilterError> {
        self.skip_space();
        if self.peek() == Some('(') {
            let open = self.pos;
            self.pos += 1;
            let e = self.nested(|p| p.expression())?;
            self.skip_space();
            if self.peek() != Some(')') {
                return Err(FilterError {
                    position: open,
                    token: "(".into(),
                    message: "this '(' is never closed".into(),
                });
            }
            self.pos += 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let at = self.pos;
        let name: String = self.text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if name.is_empty() {
            return Err(self.error_here("expected a field name"));
        }
        if ["AND", "OR", "NOT"].contains(&name.as_str()) {
            return Err(self.error_here(format!("expected a field name, found the keyword {name}")));
        }
        let Some(index) = self.fields.iter().position(|f| f.name == name) else {
            let known: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
            return Err(FilterError {
                position: at,
                token: name,
                message: format!("unknown field; filterable fields: {}", known.join(", ")),
            });
        };
        self.pos += name.len();
        self.skip_space();
        let op_at = self.pos;
        let rest = &self.text[self.pos..];
        let op = [
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
            (":", Op::Has),
        ]
        .into_iter()
        .find(|(s, _)| rest.starts_with(s));
        let Some((op_text, op)) = op else {
            return Err(
                self.error_here(format!("expected an operator (=, !=, <, <=, >, >=, :) after {name}"))
            );
        };
        self.pos += op_text.len();
        let field = self.fields[index];
        let allowed = match field.kind {
            Kind::Text => matches!(op, Op::Eq | Op::Ne | Op::Has),
            Kind::Enum { .. } | Kind::Bool | Kind::Reference => matches!(op, Op::Eq | Op::Ne),
            Kind::Time => op != Op::Has,
            Kind::Labels => op == Op::Has,
        };
        if !allowed {
            return Err(FilterError {
                position: op_at,
                token: op_text.into(),
                message: format!("{name} does not take the operator {op_text}"),
            });
        }
        self.skip_space();
        let value_at = self.pos;
        let raw = self.value()?;
        let token = self.text[value_at..self.pos].to_owned();
        let bad = |message: String| FilterError { position: value_at, token: token.clone(), message };
        let value = match field.kind {
            Kind::Text | Kind::Reference | Kind::Labels => {
                if raw.is_empty() && !matches!(field.kind, Kind::Text) {
                    return Err(bad(format!("{name} needs a value")));
                }
                Value::Text(raw.clone())
            }
            Kind::Enum { names, prefix } => {
                let upper = raw.to_ascii_uppercase();
                let bare = upper.strip_prefix(prefix).unwrap_or(&upper);
                match names.iter().find(|n| **n == bare) {
                    Some(n) => Value::Enum(n),
                    None => return Err(bad(format!("{name} is one of {}", names.join(", ")))),
                }
            }
            Kind::Time => match DateTime::parse_from_rfc3339(&raw) {
                Ok(t) => Value::Time(t.with_timezone(&Utc)),
                Err(_) => {
                    return Err(bad(format!(
                        "{name} compares with an RFC 3339 time (\"2024-01-30T18:00:00Z\")"
                    )));
                }
            },
            Kind::Bool => match raw.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad(format!("{name} is true or false"))),
            },
        };
        Ok(Expr::Compare { field: index, op, value })
    }

    /// A quoted string (`"…"` or `'…'`, with `\` escapes) or a bare word.
    fn value(&mut self) -> Result<String, FilterError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                let start = self.pos;
                self.pos += 1;
                let mut out = String::new();
                loop {
                    let Some(c) = self.peek() else {
                        return Err(FilterError {
                            position: start,
                            token: self.text[start..].to_owned(),
                            message: "this string is never closed".into(),
                        });
                    };
                    self.pos += c.len_utf8();
                    match c {
                        '\\' => match self.peek() {
                            Some(e) => {
                                self.pos += e.len_utf8();
                                out.push(e);
                            }
                            None => continue,
                        },
                        c if c == q => return Ok(out),
                        c => out.push(c),
                    }
                }
            }
            None | Some(')') => Err(self.error_here("expected a value")),
            Some(_) => {
                let word: String = self.text[self.pos..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '(' && *c != ')')
                    .collect();
                if ["AND", "OR", "NOT"].contains(&word.as_str()) {
                    return Err(self.error_here("expected a value, found a keyword"));
                }
                self.pos += word.len();
                Ok(word)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: &[&str] = &["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"];
    static FIELDS: &[Field] = &[
        Field { name: "state", column: "j.state", kind: Kind::Enum { names: STATES, prefix: "JOB_STATE_" } },
        Field { name: "create_time", column: "j.create_time", kind: Kind::Time },
        Field { name: "display_name", column: "s.display_name", kind: Kind::Text },
        Field { name: "enabled", column: "s.enabled", kind: Kind::Bool },
        Field { name: "task", column: "j.task_id", kind: Kind::Reference },
        Field { name: "labels", column: "n.labels", kind: Kind::Labels },
    ];

    fn sql(text: &str) -> Result<String, FilterError> {
        let f = Filter::parse(text, FIELDS)?;
        let mut q = QueryBuilder::<Postgres>::new("");
        let resolved: HashMap<(&'static str, String), uuid::Uuid> =
            [(("task", "nightly".to_owned()), uuid::Uuid::nil())].into();
        f.push_sql(&mut q, &resolved);
        Ok(q.sql().as_str().to_owned())
    }

    /// Every grammar case: the text, and the SQL it becomes or the token and position of the
    /// error it gets.
    #[test]
    fn grammar_cases() {
        let ok: &[(&str, &str)] = &[
            ("", "true"),
            ("   ", "true"),
            ("state = FAILED", "(j.state = $1)"),
            ("state=failed", "(j.state = $1)"),
            ("state = JOB_STATE_FAILED", "(j.state = $1)"),
            ("state != \"QUEUED\"", "(j.state IS DISTINCT FROM $1)"),
            ("create_time > \"2024-01-30T18:00:00Z\"", "(j.create_time > $1)"),
            ("create_time >= 2024-01-30T18:00:00+01:00", "(j.create_time >= $1)"),
            (
                "create_time < '2024-01-30T18:00:00Z' AND state = FAILED",
                "((j.create_time < $1) AND (j.state = $2))",
            ),
            ("state = FAILED OR state = QUEUED", "((j.state = $1) OR (j.state = $2))"),
            // OR binds tighter than AND.
            (
                "state = FAILED AND state = QUEUED OR state = RUNNING",
                "((j.state = $1) AND ((j.state = $2) OR (j.state = $3)))",
            ),
            // Juxtaposition is AND.
            ("state = FAILED enabled = true", "((j.state = $1) AND (s.enabled = $2))"),
            ("NOT state = FAILED", "NOT ((j.state = $1))"),
            ("-state = FAILED", "NOT ((j.state = $1))"),
            ("NOT (state = FAILED OR state = QUEUED)", "NOT (((j.state = $1) OR (j.state = $2)))"),
            ("(state = FAILED)", "(j.state = $1)"),
            ("((state = FAILED) AND (enabled = false))", "((j.state = $1) AND (s.enabled = $2))"),
            ("display_name : \"web\"", "(s.display_name ILIKE $1 ESCAPE '\\')"),
            ("display_name = \"a \\\" quote\"", "(s.display_name = $1)"),
            ("labels:\"env=prod\"", "(n.labels @> ARRAY[$1]::text[])"),
            (
                "labels:env",
                "(n.labels @> ARRAY[$1]::text[] OR EXISTS (SELECT 1 FROM unnest(n.labels) AS l WHERE l LIKE $2 \
                 ESCAPE '\\'))",
            ),
            ("task = nightly", "(j.task_id = $1)"),
            ("task = missing", "false"),
            ("task != missing", "(j.task_id IS NOT NULL)"),
        ];
        for (text, want) in ok {
            assert_eq!(sql(text).as_deref(), Ok(*want), "{text:?}");
        }
        let bad: &[(&str, usize, &str, &str)] = &[
            ("stat = FAILED", 0, "stat", "unknown field"),
            ("state", 5, "", "expected an operator"),
            ("state ~ FAILED", 6, "~", "expected an operator"),
            ("state = ", 8, "", "expected a value"),
            ("state = DONE", 8, "DONE", "state is one of"),
            ("state < FAILED", 6, "<", "does not take the operator"),
            ("labels = x", 7, "=", "does not take the operator"),
            ("enabled = yes", 10, "yes", "true or false"),
            ("create_time > yesterday", 14, "yesterday", "RFC 3339"),
            ("(state = FAILED", 0, "(", "never closed"),
            ("state = FAILED)", 14, ")", "closes nothing"),
            ("state = \"FAILED", 8, "\"FAILED", "never closed"),
            ("AND state = FAILED", 0, "AND", "keyword"),
            ("state = FAILED AND", 18, "", "expected a field name"),
            ("state = FAILED OR OR state = QUEUED", 18, "OR", "keyword"),
            ("state = AND", 8, "AND", "keyword"),
            ("task = \"\"", 7, "\"\"", "needs a value"),
            ("NOT", 3, "", "expected a field name"),
            ("= FAILED", 0, "=", "expected a field name"),
            ("1state = FAILED", 0, "1state", "unknown field"),
        ];
        for (text, position, token, message) in bad {
            let e = Filter::parse(text, FIELDS).expect_err(text);
            assert_eq!((e.position, e.token.as_str()), (*position, *token), "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
        }
    }

    #[test]
    fn limits_and_references() {
        let deep = format!("{}state = FAILED{}", "(".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&deep, FIELDS).unwrap_err().message.contains("nests deeper"));
        let long = "state = FAILED AND ".repeat(200);
        assert!(Filter::parse(&long, FIELDS).unwrap_err().message.contains("longer than"));
        let f = Filter::parse("task = nightly OR (task != \"x\" AND NOT task = y)", FIELDS).unwrap();
        let refs: Vec<String> = f.references().into_iter().map(|(_, v)| v).collect();
        assert_eq!(refs, ["nightly", "x", "y"]);
        assert!(Filter::parse("", FIELDS).unwrap().is_empty());
    }
}

//! The expression language of programme rules.
//!
//! ```text
//! nationality in ["RU", "BY"] and age >= 18 and age <= param.max_age
//! refusal in ["evaded_callup", "objected", "deserted"] or summons_received
//! current_country in eu_member_states and not sanctions_listed
//! "military_id" in documents or intersects(objection_grounds, ["conscience", "religion"])
//! known(stay_expires_on) and days_until(stay_expires_on) <= 30
//! ```
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum | "not"? "in" sum)?
//! sum     := atom (("+" | "-") atom)*
//! atom    := INT | STRING | "true" | "false" | "(" expr ")" | "[" (expr ("," expr)*)? "]"
//!          | NAME "(" (expr ("," expr)*)? ")" | NAME ("." NAME)?
//! ```
//!
//! Names are facts (see `refuge_core::facts::Fact`), `age` (whole years at the evaluation
//! date), `today`, named sets (from `programmes/sets.toml`) and `param.NAME` (a programme
//! parameter). Functions: `date("YYYY-MM-DD")`, `days_until(date)`, `days_since(date)`,
//! `known(fact)`, `intersects(set_fact, [..])`.
//!
//! Every value may be unknown. Logic is three-valued (Kleene): `false and unknown` is false,
//! `true or unknown` is true, anything else touching unknown is unknown. `known(x)` is never
//! unknown.

use refuge_core::country::Country;
use refuge_core::facts::{Fact, FactType, FactValue, Facts, age_on, parse_date};
use refuge_core::language::{Language, LanguageSet};
use refuge_core::suggest::nearest;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use time::Date;

/// A byte range within the expression text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// An error in an expression, at a span of its text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Where.
    pub span: Span,
    /// What is wrong and what was expected.
    pub message: String,
}

fn err<T>(span: Span, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        span,
        message: message.into(),
    })
}

// ---------------------------------------------------------------- lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Str(String),
    Name(String),
    Op(&'static str),
    End,
}

fn lex(src: &str) -> Result<Vec<(Tok, Span)>, ExprError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let span = Span { start, end: i };
            let n = src[start..i].parse().map_err(|_| ExprError {
                span,
                message: "number too large".into(),
            })?;
            out.push((Tok::Int(n), span));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Name(src[start..i].to_owned()), Span { start, end: i }));
            continue;
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            if i >= b.len() {
                return err(
                    Span { start, end: i },
                    "unterminated string: expected a closing \"",
                );
            }
            out.push((
                Tok::Str(src[start + 1..i].to_owned()),
                Span { start, end: i + 1 },
            ));
            i += 1;
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let op: Option<&'static str> = match two {
            "==" => Some("=="),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(op) = op {
            out.push((Tok::Op(op), Span { start, end: i + 2 }));
            i += 2;
            continue;
        }
        let one: Option<&'static str> = match c {
            b'<' => Some("<"),
            b'>' => Some(">"),
            b'(' => Some("("),
            b')' => Some(")"),
            b'[' => Some("["),
            b']' => Some("]"),
            b',' => Some(","),
            b'.' => Some("."),
            b'+' => Some("+"),
            b'-' => Some("-"),
            _ => None,
        };
        match one {
            Some(op) => {
                out.push((Tok::Op(op), Span { start, end: i + 1 }));
                i += 1;
            }
            None => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return err(
                    Span {
                        start,
                        end: i + ch.len_utf8(),
                    },
                    format!("unexpected character '{ch}'"),
                );
            }
        }
    }
    out.push((
        Tok::End,
        Span {
            start: src.len(),
            end: src.len(),
        },
    ));
    Ok(out)
}

// ---------------------------------------------------------------- syntax tree

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
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
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A parsed, unchecked expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    kind: AstKind,
    span: Span,
}

#[derive(Clone, Debug, PartialEq)]
enum AstKind {
    Bool(bool),
    Int(i64),
    Str(String),
    Name(String),
    Param(String),
    List(Vec<Ast>),
    Call(String, Vec<Ast>),
    Not(Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    Cmp(CmpOp, Box<Ast>, Box<Ast>),
    In(Box<Ast>, Box<Ast>, bool),
    Add(Box<Ast>, Box<Ast>, bool),
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |t| &t.0)
    }

    fn span(&self) -> Span {
        self.toks.get(self.pos).map_or(Span::default(), |t| t.1)
    }

    fn bump(&mut self) -> (Tok, Span) {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, Span::default()));
        self.pos += 1;
        t
    }

    fn is_name(&self, n: &str) -> bool {
        matches!(self.peek(), Tok::Name(x) if x == n)
    }

    fn is_op(&self, o: &str) -> bool {
        matches!(self.peek(), Tok::Op(x) if *x == o)
    }

    fn expect_op(&mut self, o: &str) -> Result<Span, ExprError> {
        if self.is_op(o) {
            Ok(self.bump().1)
        } else {
            err(
                self.span(),
                format!("expected '{o}', found {}", describe(self.peek())),
            )
        }
    }

    /// `next (word next)*`, folded left with `make`.
    fn chain(
        &mut self,
        word: &str,
        next: fn(&mut Self) -> Result<Ast, ExprError>,
        make: fn(Box<Ast>, Box<Ast>) -> AstKind,
    ) -> Result<Ast, ExprError> {
        let mut left = next(self)?;
        while self.is_name(word) {
            self.bump();
            let right = next(self)?;
            let span = Span {
                start: left.span.start,
                end: right.span.end,
            };
            left = Ast {
                kind: make(Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Ast, ExprError> {
        self.chain("or", Self::and, AstKind::Or)
    }

    fn and(&mut self) -> Result<Ast, ExprError> {
        self.chain("and", Self::not, AstKind::And)
    }

    fn not(&mut self) -> Result<Ast, ExprError> {
        if self.is_name("not") {
            let start = self.bump().1.start;
            let inner = self.not()?;
            let span = Span {
                start,
                end: inner.span.end,
            };
            return Ok(Ast {
                kind: AstKind::Not(Box::new(inner)),
                span,
            });
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Ast, ExprError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Tok::Op("==") => Some(CmpOp::Eq),
            Tok::Op("!=") => Some(CmpOp::Ne),
            Tok::Op("<") => Some(CmpOp::Lt),
            Tok::Op("<=") => Some(CmpOp::Le),
            Tok::Op(">") => Some(CmpOp::Gt),
            Tok::Op(">=") => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.sum()?;
            let span = Span {
                start: left.span.start,
                end: right.span.end,
            };
            return Ok(Ast {
                kind: AstKind::Cmp(op, Box::new(left), Box::new(right)),
                span,
            });
        }
        let negated = self.is_name("not")
            && matches!(self.toks.get(self.pos + 1), Some((Tok::Name(n), _)) if n == "in");
        if negated {
            self.bump();
        }
        if self.is_name("in") {
            self.bump();
            let right = self.sum()?;
            let span = Span {
                start: left.span.start,
                end: right.span.end,
            };
            return Ok(Ast {
                kind: AstKind::In(Box::new(left), Box::new(right), negated),
                span,
            });
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.atom()?;
        while self.is_op("+") || self.is_op("-") {
            let minus = self.is_op("-");
            self.bump();
            let right = self.atom()?;
            let span = Span {
                start: left.span.start,
                end: right.span.end,
            };
            left = Ast {
                kind: AstKind::Add(Box::new(left), Box::new(right), minus),
                span,
            };
        }
        Ok(left)
    }

    fn list(&mut self, close: &str) -> Result<(Vec<Ast>, Span), ExprError> {
        let mut items = Vec::new();
        if self.is_op(close) {
            return Ok((items, self.bump().1));
        }
        loop {
            items.push(self.or()?);
            if self.is_op(",") {
                self.bump();
                continue;
            }
            return Ok((items, self.expect_op(close)?));
        }
    }

    fn atom(&mut self) -> Result<Ast, ExprError> {
        let (tok, span) = self.bump();
        match tok {
            Tok::Int(n) => Ok(Ast {
                kind: AstKind::Int(n),
                span,
            }),
            Tok::Str(s) => Ok(Ast {
                kind: AstKind::Str(s),
                span,
            }),
            Tok::Op("(") => {
                let inner = self.or()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Tok::Op("[") => {
                let (items, end) = self.list("]")?;
                Ok(Ast {
                    kind: AstKind::List(items),
                    span: Span {
                        start: span.start,
                        end: end.end,
                    },
                })
            }
            Tok::Name(n) if n == "true" || n == "false" => Ok(Ast {
                kind: AstKind::Bool(n == "true"),
                span,
            }),
            Tok::Name(n) if matches!(n.as_str(), "and" | "or" | "not" | "in") => {
                err(span, format!("expected a value, found the keyword '{n}'"))
            }
            Tok::Name(n) => {
                if self.is_op("(") {
                    self.bump();
                    let (args, end) = self.list(")")?;
                    return Ok(Ast {
                        kind: AstKind::Call(n, args),
                        span: Span {
                            start: span.start,
                            end: end.end,
                        },
                    });
                }
                if n == "param" && self.is_op(".") {
                    self.bump();
                    let (t, s2) = self.bump();
                    return match t {
                        Tok::Name(p) => Ok(Ast {
                            kind: AstKind::Param(p),
                            span: Span {
                                start: span.start,
                                end: s2.end,
                            },
                        }),
                        other => err(
                            s2,
                            format!(
                                "expected a parameter name after 'param.', found {}",
                                describe(&other)
                            ),
                        ),
                    };
                }
                Ok(Ast {
                    kind: AstKind::Name(n),
                    span,
                })
            }
            other => err(
                span,
                format!("expected a value, found {}", describe(&other)),
            ),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(n) => format!("the number {n}"),
        Tok::Str(s) => format!("the text \"{s}\""),
        Tok::Name(n) => format!("'{n}'"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "the end of the expression".into(),
    }
}

/// Parse an expression.
pub fn parse(src: &str) -> Result<Ast, ExprError> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let e = p.or()?;
    if *p.peek() != Tok::End {
        return err(
            p.span(),
            format!(
                "expected 'and', 'or' or the end of the rule, found {}",
                describe(p.peek())
            ),
        );
    }
    Ok(e)
}

// ---------------------------------------------------------------- types and values

/// The type of a (sub)expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// true / false.
    Bool,
    /// A whole number.
    Int,
    /// A calendar date.
    Date,
    /// An ISO 3166-1 country.
    Country,
    /// An ISO 639-1 language.
    Language,
    /// A value of the enumerated fact.
    Enum(Fact),
    /// A set of values of the enumerated set fact.
    EnumSet(Fact),
    /// A set of languages.
    LanguageSet,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("true/false"),
            Type::Int => f.write_str("a number"),
            Type::Date => f.write_str("a date"),
            Type::Country => f.write_str("a country"),
            Type::Language => f.write_str("a language"),
            Type::Enum(fact) => write!(f, "a {} value", fact.name()),
            Type::EnumSet(fact) => write!(f, "a set of {} values", fact.name()),
            Type::LanguageSet => f.write_str("a set of languages"),
        }
    }
}

/// The type a fact has in expressions.
pub fn fact_type(fact: Fact) -> Type {
    match fact.fact_type() {
        FactType::Country => Type::Country,
        FactType::Date => Type::Date,
        FactType::Bool => Type::Bool,
        FactType::Enum { .. } => Type::Enum(fact),
        FactType::EnumSet { .. } => Type::EnumSet(fact),
        FactType::LanguageSet => Type::LanguageSet,
    }
}

/// A known value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// true / false.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A date.
    Date(Date),
    /// A country.
    Country(Country),
    /// A language.
    Language(Language),
    /// An enum value, by its index in the fact's value list.
    Enum(u8),
    /// A set of enum values, as a bitmask by index.
    Set(u32),
}

impl Value {
    /// This value as text, for explanations.
    pub fn display(&self, ty: Type) -> String {
        match (self, ty) {
            (Value::Bool(b), _) => b.to_string(),
            (Value::Int(n), _) => n.to_string(),
            (Value::Date(d), _) => d.to_string(),
            (Value::Country(c), _) => c.as_str().to_owned(),
            (Value::Language(l), _) => l.as_str().to_owned(),
            (Value::Enum(i), Type::Enum(fact)) => enum_name(fact, *i).to_owned(),
            (Value::Set(bits), Type::EnumSet(fact)) => set_names(fact, *bits).join(";"),
            (Value::Enum(i), _) => i.to_string(),
            (Value::Set(bits), _) => format!("{bits:#x}"),
        }
    }
}

fn enum_values(fact: Fact) -> &'static [&'static str] {
    match fact.fact_type() {
        FactType::Enum { values } | FactType::EnumSet { values } => values,
        _ => &[],
    }
}

fn enum_name(fact: Fact, i: u8) -> &'static str {
    enum_values(fact)
        .get(usize::from(i))
        .copied()
        .unwrap_or("?")
}

fn set_names(fact: Fact, bits: u32) -> Vec<&'static str> {
    enum_values(fact)
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// A value of a fact as an expression value, or `None` for languages (handled as sets).
pub fn fact_value(v: &FactValue) -> Option<Value> {
    use FactValue as F;
    Some(match v {
        F::Country(c) => Value::Country(*c),
        F::Date(d) => Value::Date(*d),
        F::Bool(b) => Value::Bool(*b),
        F::Languages(_) => return None,
        other => match (other.enum_index(), other.set_bits()) {
            (Some(i), _) => Value::Enum(i),
            (_, Some(bits)) => Value::Set(bits),
            _ => return None,
        },
    })
}

// ---------------------------------------------------------------- checked expressions

/// A named set of values (e.g. `eu_member_states`), from `programmes/sets.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSet {
    /// Its element type.
    pub ty: Type,
    /// Its members.
    pub values: BTreeSet<Value>,
}

/// What names an expression may use besides the facts: named sets and parameters.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Named sets by name.
    pub sets: BTreeMap<String, NamedSet>,
    /// Parameter types by name.
    pub params: BTreeMap<String, Type>,
}

/// A type-checked expression: names resolved, literals typed.
#[derive(Clone, Debug, PartialEq)]
pub enum Checked {
    /// A constant.
    Const(Value),
    /// A fact's value.
    Fact(Fact),
    /// Whole years of age at the evaluation date (from `birth_date`).
    Age,
    /// The evaluation date.
    Today,
    /// A parameter's value at the evaluation date.
    Param(String),
    /// Negation.
    Not(Box<Checked>),
    /// All of.
    And(Vec<Checked>),
    /// Any of.
    Or(Vec<Checked>),
    /// A comparison of two values of one type.
    Cmp(CmpOp, Box<Checked>, Box<Checked>),
    /// Membership of a value in constant values.
    InValues(Box<Checked>, BTreeSet<Value>),
    /// Membership of a constant in a set fact.
    Member(Value, Fact),
    /// A language in the `languages` fact.
    SpeaksLanguage(Language),
    /// A set fact shares a member with the mask.
    Intersects(Fact, u32),
    /// Whether a fact is known (never unknown).
    Known(Fact),
    /// Whole days from the evaluation date to a date (negative when past).
    DaysUntil(Box<Checked>),
    /// Whole days from a date to the evaluation date.
    DaysSince(Box<Checked>),
    /// Integer sum or difference.
    Add(Box<Checked>, Box<Checked>, bool),
}

impl Checked {
    /// The facts this expression reads (including `birth_date` for `age`).
    pub fn facts(&self) -> BTreeSet<Fact> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut BTreeSet<Fact>) {
        match self {
            Checked::Fact(f)
            | Checked::Member(_, f)
            | Checked::Intersects(f, _)
            | Checked::Known(f) => {
                out.insert(*f);
            }
            Checked::SpeaksLanguage(_) => {
                out.insert(Fact::Languages);
            }
            Checked::Age => {
                out.insert(Fact::BirthDate);
            }
            Checked::Not(a)
            | Checked::DaysUntil(a)
            | Checked::DaysSince(a)
            | Checked::InValues(a, _) => a.collect(out),
            Checked::And(v) | Checked::Or(v) => v.iter().for_each(|x| x.collect(out)),
            Checked::Cmp(_, a, b) | Checked::Add(a, b, _) => {
                a.collect(out);
                b.collect(out);
            }
            Checked::Const(_) | Checked::Today | Checked::Param(_) => {}
        }
    }
}

/// Names an expression may use beyond facts, sets and parameters.
const BUILTINS: [&str; 2] = ["age", "today"];

struct Checker<'a> {
    scope: &'a Scope,
}

/// Type-check `ast` in `scope`; the whole expression must be true/false.
pub fn check(ast: &Ast, scope: &Scope) -> Result<Checked, ExprError> {
    let c = Checker { scope };
    let (e, ty) = c.expr(ast, None)?;
    if ty != Type::Bool {
        return err(
            ast.span,
            format!("a rule must be true or false, but this is {ty}"),
        );
    }
    Ok(e)
}

/// Parse and check in one step.
pub fn compile(src: &str, scope: &Scope) -> Result<Checked, ExprError> {
    check(&parse(src)?, scope)
}

impl Checker<'_> {
    /// Check `a`; `want` is the type the context expects (used to type string literals).
    fn expr(&self, a: &Ast, want: Option<Type>) -> Result<(Checked, Type), ExprError> {
        match &a.kind {
            AstKind::Bool(b) => Ok((Checked::Const(Value::Bool(*b)), Type::Bool)),
            AstKind::Int(n) => Ok((Checked::Const(Value::Int(*n)), Type::Int)),
            AstKind::Str(s) => match want {
                Some(ty) => Ok((Checked::Const(literal(s, ty, a.span)?), ty)),
                None => err(
                    a.span,
                    format!(
                        "cannot tell what \"{s}\" is here: compare it with a fact, e.g. nationality == \"{s}\""
                    ),
                ),
            },
            AstKind::Name(n) => self.name(n, a.span),
            AstKind::Param(p) => match self.scope.params.get(p) {
                Some(ty) => Ok((Checked::Param(p.clone()), *ty)),
                None => {
                    let hint = nearest(p, self.scope.params.keys().map(String::as_str))
                        .map(|s| format!(" (did you mean param.{s}?)"))
                        .unwrap_or_default();
                    err(a.span, format!("unknown parameter param.{p}{hint}"))
                }
            },
            AstKind::List(_) => err(a.span, "a list can only stand after 'in'"),
            AstKind::Not(x) => {
                let x = self.boolean(x)?;
                Ok((Checked::Not(Box::new(x)), Type::Bool))
            }
            AstKind::And(l, r) => {
                let mut v = Vec::new();
                for side in [l, r] {
                    match self.boolean(side)? {
                        Checked::And(inner) => v.extend(inner),
                        other => v.push(other),
                    }
                }
                Ok((Checked::And(v), Type::Bool))
            }
            AstKind::Or(l, r) => {
                let mut v = Vec::new();
                for side in [l, r] {
                    match self.boolean(side)? {
                        Checked::Or(inner) => v.extend(inner),
                        other => v.push(other),
                    }
                }
                Ok((Checked::Or(v), Type::Bool))
            }
            AstKind::Cmp(op, l, r) => self.cmp(*op, l, r, a.span),
            AstKind::In(item, coll, negated) => {
                let e = self.membership(item, coll, a.span)?;
                Ok((
                    if *negated {
                        Checked::Not(Box::new(e))
                    } else {
                        e
                    },
                    Type::Bool,
                ))
            }
            AstKind::Add(l, r, minus) => {
                let (le, lt) = self.expr(l, Some(Type::Int))?;
                let (re, rt) = self.expr(r, Some(Type::Int))?;
                if lt != Type::Int || rt != Type::Int {
                    return err(
                        a.span,
                        format!("'+' and '-' take numbers, not {lt} and {rt}"),
                    );
                }
                Ok((Checked::Add(Box::new(le), Box::new(re), *minus), Type::Int))
            }
            AstKind::Call(f, args) => self.call(f, args, a.span),
        }
    }

    fn boolean(&self, a: &Ast) -> Result<Checked, ExprError> {
        let (e, ty) = self.expr(a, Some(Type::Bool))?;
        if ty != Type::Bool {
            return err(a.span, format!("expected true/false here, found {ty}"));
        }
        Ok(e)
    }

    fn name(&self, n: &str, span: Span) -> Result<(Checked, Type), ExprError> {
        if let Ok(fact) = n.parse::<Fact>() {
            return Ok((Checked::Fact(fact), fact_type(fact)));
        }
        match n {
            "age" => return Ok((Checked::Age, Type::Int)),
            "today" => return Ok((Checked::Today, Type::Date)),
            _ => {}
        }
        if self.scope.sets.contains_key(n) {
            return err(
                span,
                format!("the set {n} can only stand after 'in', e.g. current_country in {n}"),
            );
        }
        let candidates = Fact::ALL
            .iter()
            .map(|f| f.name())
            .chain(BUILTINS)
            .chain(self.scope.sets.keys().map(String::as_str));
        let hint = nearest(n, candidates)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        err(span, format!("unknown fact \"{n}\"{hint}"))
    }

    fn cmp(&self, op: CmpOp, l: &Ast, r: &Ast, span: Span) -> Result<(Checked, Type), ExprError> {
        // Type the side that is not a literal first, so that "RU" can become a country.
        let (le, lt, re, rt) = if matches!(l.kind, AstKind::Str(_)) {
            let (re, rt) = self.expr(r, None)?;
            let (le, lt) = self.expr(l, Some(rt))?;
            (le, lt, re, rt)
        } else {
            let (le, lt) = self.expr(l, None)?;
            let (re, rt) = self.expr(r, Some(lt))?;
            (le, lt, re, rt)
        };
        if lt != rt {
            return err(span, format!("cannot compare {lt} with {rt}"));
        }
        let ordered = matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge);
        if ordered && !matches!(lt, Type::Int | Type::Date) {
            return err(
                span,
                format!("'{}' compares numbers or dates, not {lt}", op.symbol()),
            );
        }
        if matches!(lt, Type::EnumSet(_) | Type::LanguageSet) {
            return err(
                span,
                format!(
                    "sets are not compared with '{}': use 'in' or intersects()",
                    op.symbol()
                ),
            );
        }
        Ok((Checked::Cmp(op, Box::new(le), Box::new(re)), Type::Bool))
    }

    fn membership(&self, item: &Ast, coll: &Ast, span: Span) -> Result<Checked, ExprError> {
        match &coll.kind {
            AstKind::List(items) => {
                let (ie, it) = self.expr(item, None)?;
                let mut values = BTreeSet::new();
                for x in items {
                    match self.expr(x, Some(it))? {
                        (Checked::Const(v), t) if t == it => {
                            values.insert(v);
                        }
                        (_, t) if t != it => {
                            return err(x.span, format!("this list holds {it}, not {t}"));
                        }
                        _ => return err(x.span, "list members must be constants"),
                    }
                }
                Ok(Checked::InValues(Box::new(ie), values))
            }
            AstKind::Name(n) if self.scope.sets.contains_key(n) => {
                let set = &self.scope.sets[n];
                let (ie, it) = self.expr(item, Some(set.ty))?;
                if it != set.ty {
                    return err(span, format!("{n} holds {}, not {it}", set.ty));
                }
                Ok(Checked::InValues(Box::new(ie), set.values.clone()))
            }
            AstKind::Name(n) => match n.parse::<Fact>().map(fact_type) {
                Ok(Type::EnumSet(fact)) => match self.expr(item, Some(Type::Enum(fact)))? {
                    (Checked::Const(Value::Enum(i)), _) => {
                        Ok(Checked::Member(Value::Enum(i), fact))
                    }
                    _ => err(
                        item.span,
                        format!(
                            "write the value to look for in {n} as text, e.g. \"{}\" in {n}",
                            enum_values(fact).first().copied().unwrap_or("x")
                        ),
                    ),
                },
                Ok(Type::LanguageSet) => match self.expr(item, Some(Type::Language))? {
                    (Checked::Const(Value::Language(l)), _) => Ok(Checked::SpeaksLanguage(l)),
                    _ => err(
                        item.span,
                        "write the language to look for as text, e.g. \"ru\" in languages",
                    ),
                },
                Ok(t) => err(
                    coll.span,
                    format!("'in' needs a list, a named set or a set fact after it; {n} is {t}"),
                ),
                Err(_) => {
                    let candidates = self.scope.sets.keys().map(String::as_str).chain(
                        Fact::ALL
                            .iter()
                            .filter(|f| {
                                matches!(fact_type(**f), Type::EnumSet(_) | Type::LanguageSet)
                            })
                            .map(|f| f.name()),
                    );
                    let hint = nearest(n, candidates)
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_default();
                    err(coll.span, format!("unknown set \"{n}\"{hint}"))
                }
            },
            _ => err(
                coll.span,
                "'in' needs a list, a named set or a set fact after it",
            ),
        }
    }

    fn call(&self, f: &str, args: &[Ast], span: Span) -> Result<(Checked, Type), ExprError> {
        let arity = |n: usize| -> Result<(), ExprError> {
            if args.len() == n {
                Ok(())
            } else {
                err(
                    span,
                    format!(
                        "{f}() takes {n} argument{}, found {}",
                        if n == 1 { "" } else { "s" },
                        args.len()
                    ),
                )
            }
        };
        match f {
            "date" => {
                arity(1)?;
                match &args[0].kind {
                    AstKind::Str(s) => Ok((
                        Checked::Const(literal(s, Type::Date, args[0].span)?),
                        Type::Date,
                    )),
                    _ => err(args[0].span, "date() takes text such as \"2022-09-21\""),
                }
            }
            "days_until" | "days_since" => {
                arity(1)?;
                let (e, t) = self.expr(&args[0], Some(Type::Date))?;
                if t != Type::Date {
                    return err(args[0].span, format!("{f}() takes a date, found {t}"));
                }
                let e = Box::new(e);
                Ok((
                    if f == "days_until" {
                        Checked::DaysUntil(e)
                    } else {
                        Checked::DaysSince(e)
                    },
                    Type::Int,
                ))
            }
            "known" => {
                arity(1)?;
                match &args[0].kind {
                    AstKind::Name(n) => match n.parse::<Fact>() {
                        Ok(fact) => Ok((Checked::Known(fact), Type::Bool)),
                        Err(_) if n == "age" => Ok((Checked::Known(Fact::BirthDate), Type::Bool)),
                        Err(e) => err(args[0].span, e.to_string()),
                    },
                    _ => err(args[0].span, "known() takes a fact name"),
                }
            }
            "intersects" => {
                arity(2)?;
                let fact = match &args[0].kind {
                    AstKind::Name(n) => match n.parse::<Fact>().map(|f| (f, fact_type(f))) {
                        Ok((fact, Type::EnumSet(_))) => fact,
                        _ => {
                            return err(
                                args[0].span,
                                "intersects() takes a set fact first, e.g. objection_grounds",
                            );
                        }
                    },
                    _ => {
                        return err(
                            args[0].span,
                            "intersects() takes a set fact first, e.g. objection_grounds",
                        );
                    }
                };
                let AstKind::List(items) = &args[1].kind else {
                    return err(
                        args[1].span,
                        "intersects() takes a list second, e.g. [\"conscience\", \"religion\"]",
                    );
                };
                let mut mask = 0u32;
                for x in items {
                    match &x.kind {
                        AstKind::Str(s) => match literal(s, Type::Enum(fact), x.span)? {
                            Value::Enum(i) => mask |= 1 << i,
                            _ => return err(x.span, "expected a value of the set"),
                        },
                        _ => return err(x.span, "list members must be text"),
                    }
                }
                Ok((Checked::Intersects(fact, mask), Type::Bool))
            }
            _ => {
                let hint = nearest(
                    f,
                    ["date", "days_until", "days_since", "known", "intersects"],
                )
                .map(|s| format!(" (did you mean {s}()?)"))
                .unwrap_or_default();
                err(span, format!("unknown function {f}(){hint}"))
            }
        }
    }
}

/// Read a text literal as a value of `ty`, with a message naming what was expected.
pub fn literal(s: &str, ty: Type, span: Span) -> Result<Value, ExprError> {
    match ty {
        Type::Country => s
            .parse::<Country>()
            .map(Value::Country)
            .map_err(|e| ExprError {
                span,
                message: e.to_string(),
            }),
        Type::Language => s
            .parse::<Language>()
            .map(Value::Language)
            .map_err(|e| ExprError {
                span,
                message: e.to_string(),
            }),
        Type::Date => parse_date(s).map(Value::Date).ok_or_else(|| ExprError {
            span,
            message: format!("expected a date YYYY-MM-DD, found \"{s}\""),
        }),
        Type::Enum(fact) => {
            let values = enum_values(fact);
            match values.iter().position(|v| *v == s) {
                Some(i) => Ok(Value::Enum(u8::try_from(i).unwrap_or(u8::MAX))),
                None => {
                    let hint = nearest(s, values.iter().copied())
                        .map(|x| format!(" (did you mean \"{x}\"?)"))
                        .unwrap_or_default();
                    err(
                        span,
                        format!(
                            "\"{s}\" is not a value of {}: expected one of {}{hint}",
                            fact.name(),
                            values.join(", ")
                        ),
                    )
                }
            }
        }
        other => err(
            span,
            format!("expected {other} here, found the text \"{s}\""),
        ),
    }
}

// ---------------------------------------------------------------- evaluation of one case

/// Three-valued truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tri {
    /// Holds.
    True,
    /// Does not hold.
    False,
    /// Cannot be told from what is known.
    Unknown,
}

/// What one evaluation needs besides the facts.
pub struct Env<'a> {
    /// The evaluation date.
    pub on: Date,
    /// Parameter values at that date.
    pub params: &'a BTreeMap<String, Value>,
}

/// Evaluate a checked boolean expression for one person. Also returns the unknown facts that
/// were read (the facts whose knowledge could change the result).
pub fn decide(e: &Checked, facts: &Facts, env: &Env<'_>) -> (Tri, BTreeSet<Fact>) {
    let mut missing = BTreeSet::new();
    let t = truth(e, facts, env, &mut missing);
    if t != Tri::Unknown {
        missing.clear();
    }
    (t, missing)
}

fn truth(e: &Checked, facts: &Facts, env: &Env<'_>, missing: &mut BTreeSet<Fact>) -> Tri {
    match e {
        Checked::Not(x) => match truth(x, facts, env, missing) {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        },
        Checked::And(v) => kleene(v, Tri::False, facts, env, missing),
        Checked::Or(v) => kleene(v, Tri::True, facts, env, missing),
        Checked::Known(f) => {
            if *f == Fact::Languages {
                bool_tri(facts.languages.is_some())
            } else {
                bool_tri(facts.get(*f).is_some())
            }
        }
        Checked::Member(Value::Enum(i), f) => {
            match value(&Checked::Fact(*f), facts, env, missing) {
                Some(Value::Set(bits)) => bool_tri(bits & (1 << i) != 0),
                _ => Tri::Unknown,
            }
        }
        Checked::Member(..) => Tri::Unknown,
        Checked::SpeaksLanguage(l) => match facts.languages {
            Some(set) => bool_tri(speaks(&set, *l)),
            None => {
                missing.insert(Fact::Languages);
                Tri::Unknown
            }
        },
        Checked::Intersects(f, mask) => match value(&Checked::Fact(*f), facts, env, missing) {
            Some(Value::Set(bits)) => bool_tri(bits & mask != 0),
            _ => Tri::Unknown,
        },
        Checked::InValues(x, values) => match value(x, facts, env, missing) {
            Some(v) => bool_tri(values.contains(&v)),
            None => Tri::Unknown,
        },
        Checked::Cmp(op, a, b) => {
            let (a, b) = (value(a, facts, env, missing), value(b, facts, env, missing));
            match (a, b) {
                (Some(a), Some(b)) => bool_tri(match op {
                    CmpOp::Eq => a == b,
                    CmpOp::Ne => a != b,
                    CmpOp::Lt => a < b,
                    CmpOp::Le => a <= b,
                    CmpOp::Gt => a > b,
                    CmpOp::Ge => a >= b,
                }),
                _ => Tri::Unknown,
            }
        }
        other => match value(other, facts, env, missing) {
            Some(Value::Bool(b)) => bool_tri(b),
            _ => Tri::Unknown,
        },
    }
}

/// Kleene `and` (`wins` = false) or `or` (`wins` = true): the winning value decides at once
/// and drops the missing facts of the others; otherwise any unknown makes the whole unknown.
fn kleene(
    v: &[Checked],
    wins: Tri,
    facts: &Facts,
    env: &Env<'_>,
    missing: &mut BTreeSet<Fact>,
) -> Tri {
    let mut unknown = false;
    let mut local = BTreeSet::new();
    for x in v {
        match truth(x, facts, env, &mut local) {
            t if t == wins => return wins,
            Tri::Unknown => unknown = true,
            _ => {}
        }
    }
    missing.extend(local);
    match (unknown, wins) {
        (true, _) => Tri::Unknown,
        (false, Tri::False) => Tri::True,
        (false, _) => Tri::False,
    }
}

fn speaks(set: &LanguageSet, l: Language) -> bool {
    set.contains(l)
}

fn bool_tri(b: bool) -> Tri {
    if b { Tri::True } else { Tri::False }
}

/// The value of a checked expression for one person (`None` when unknown).
pub fn value(
    e: &Checked,
    facts: &Facts,
    env: &Env<'_>,
    missing: &mut BTreeSet<Fact>,
) -> Option<Value> {
    match e {
        Checked::Const(v) => Some(*v),
        Checked::Fact(f) => {
            let v = facts.get(*f).and_then(|v| fact_value(&v));
            if v.is_none() {
                missing.insert(*f);
            }
            v
        }
        Checked::Age => match facts.birth_date {
            Some(b) => age_on(b, env.on).map(|a| Value::Int(i64::from(a))),
            None => {
                missing.insert(Fact::BirthDate);
                None
            }
        },
        Checked::Today => Some(Value::Date(env.on)),
        Checked::Param(p) => env.params.get(p).copied(),
        Checked::DaysUntil(x) => match value(x, facts, env, missing)? {
            Value::Date(d) => Some(Value::Int((d - env.on).whole_days())),
            _ => None,
        },
        Checked::DaysSince(x) => match value(x, facts, env, missing)? {
            Value::Date(d) => Some(Value::Int((env.on - d).whole_days())),
            _ => None,
        },
        Checked::Add(a, b, minus) => {
            match (value(a, facts, env, missing), value(b, facts, env, missing)) {
                (Some(Value::Int(a)), Some(Value::Int(b))) => {
                    Some(Value::Int(if *minus { a - b } else { a + b }))
                }
                _ => None,
            }
        }
        boolean => match truth(boolean, facts, env, missing) {
            Tri::True => Some(Value::Bool(true)),
            Tri::False => Some(Value::Bool(false)),
            Tri::Unknown => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn scope() -> Scope {
        let mut s = Scope::default();
        let eu: BTreeSet<Value> = ["DE", "NL", "FR", "LT"]
            .iter()
            .map(|c| Value::Country(c.parse().unwrap()))
            .collect();
        s.sets.insert(
            "eu_member_states".into(),
            NamedSet {
                ty: Type::Country,
                values: eu,
            },
        );
        s.params.insert("max_age".into(), Type::Int);
        s
    }

    fn facts(j: serde_json::Value) -> Facts {
        serde_json::from_value(j).unwrap()
    }

    fn run(src: &str, f: &Facts) -> (Tri, BTreeSet<Fact>) {
        let e = compile(src, &scope()).unwrap();
        let params = BTreeMap::from([("max_age".to_owned(), Value::Int(27))]);
        decide(
            &e,
            f,
            &Env {
                on: date!(2026 - 11 - 22),
                params: &params,
            },
        )
    }

    #[test]
    fn moratorium_style_rule_in_three_values() {
        let src = r#"nationality == "RU" and sex == "male" and age >= 18 and age <= param.max_age"#;
        let young = facts(
            serde_json::json!({"nationality": "RU", "sex": "male", "birth_date": "2000-01-01"}),
        );
        assert_eq!(run(src, &young).0, Tri::True);
        let older = facts(
            serde_json::json!({"nationality": "RU", "sex": "male", "birth_date": "1997-06-10"}),
        );
        assert_eq!(run(src, &older).0, Tri::False);
        let unknown_age = facts(serde_json::json!({"nationality": "RU", "sex": "male"}));
        let (t, missing) = run(src, &unknown_age);
        assert_eq!(t, Tri::Unknown);
        assert_eq!(missing, BTreeSet::from([Fact::BirthDate]));
        // false and unknown is false, with nothing missing
        let woman = facts(serde_json::json!({"nationality": "RU", "sex": "female"}));
        assert_eq!(run(src, &woman), (Tri::False, BTreeSet::new()));
    }

    #[test]
    fn or_sets_membership_and_functions() {
        let f = facts(serde_json::json!({
            "current_country": "NL", "documents": ["military_id"], "objection_grounds": ["religion"],
            "stay_expires_on": "2026-12-10", "languages": ["ru", "nl"]
        }));
        assert_eq!(run("current_country in eu_member_states", &f).0, Tri::True);
        assert_eq!(
            run("current_country not in eu_member_states", &f).0,
            Tri::False
        );
        assert_eq!(run(r#""military_id" in documents"#, &f).0, Tri::True);
        assert_eq!(run(r#""summons" in documents"#, &f).0, Tri::False);
        assert_eq!(
            run(
                r#"intersects(objection_grounds, ["conscience", "religion"])"#,
                &f
            )
            .0,
            Tri::True
        );
        assert_eq!(run("days_until(stay_expires_on) <= 30", &f).0, Tri::True);
        assert_eq!(run(r#""nl" in languages"#, &f).0, Tri::True);
        assert_eq!(run("known(prosecution)", &f).0, Tri::False);
        assert_eq!(
            run(r#"prosecution == "none" or current_country == "NL""#, &f).0,
            Tri::True
        );
        let (t, m) = run(r#"prosecution == "none" or current_country == "GE""#, &f);
        assert_eq!((t, m), (Tri::Unknown, BTreeSet::from([Fact::Prosecution])));
        assert_eq!(
            run(r#"stay_expires_on < date("2027-01-01")"#, &f).0,
            Tri::True
        );
    }

    #[test]
    fn errors_point_at_the_fault_with_suggestions() {
        let e = compile(r#"nationalty == "RU""#, &scope()).unwrap_err();
        assert_eq!(e.span, Span { start: 0, end: 10 });
        assert!(
            e.message.contains("did you mean \"nationality\""),
            "{}",
            e.message
        );
        let e = compile(r#"refusal == "deserter""#, &scope()).unwrap_err();
        assert!(
            e.message.contains("did you mean \"deserted\""),
            "{}",
            e.message
        );
        assert_eq!(e.span.start, 11);
        let e = compile(r#"nationality == "RUS""#, &scope()).unwrap_err();
        assert!(e.message.contains("ISO 3166-1"), "{}", e.message);
        let e = compile("age >= 18 and", &scope()).unwrap_err();
        assert!(e.message.contains("end of the expression"), "{}", e.message);
        let e = compile("current_country in eu_membr_states", &scope()).unwrap_err();
        assert!(e.message.contains("eu_member_states"), "{}", e.message);
        let e = compile("age", &scope()).unwrap_err();
        assert!(e.message.contains("true or false"), "{}", e.message);
        let e = compile("sex < \"male\"", &scope()).unwrap_err();
        assert!(e.message.contains("numbers or dates"), "{}", e.message);
        let e = compile("param.max_ag >= age", &scope()).unwrap_err();
        assert!(e.message.contains("param.max_age"), "{}", e.message);
        let e = compile("days_untl(stay_expires_on) < 3", &scope()).unwrap_err();
        assert!(e.message.contains("days_until"), "{}", e.message);
        // Curly quotes pasted from a word processor, and a letter after a bracket.
        for src in ["sex == “male”", "(ё)"] {
            let e = compile(src, &scope()).unwrap_err();
            assert!(e.message.contains("unexpected character"), "{}", e.message);
        }
    }

    #[test]
    fn facts_read_are_listed() {
        let e = compile(
            r#"age > 17 and current_country in eu_member_states"#,
            &scope(),
        )
        .unwrap();
        assert_eq!(
            e.facts(),
            BTreeSet::from([Fact::BirthDate, Fact::CurrentCountry])
        );
    }
}

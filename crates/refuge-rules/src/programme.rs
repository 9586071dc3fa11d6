//! Programme files: one TOML file per protection route, citing its legal basis and source,
//! with dated parameters and rules; reforms as patches over a programme. See
//! `docs/programmes.md` for the language.

use crate::expr::{self, Checked, Env, NamedSet, Scope, Tri, Type, Value, fact_type};
use refuge_core::country::Country;
use refuge_core::facts::{Fact, Facts, age_on, parse_date};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use time::Date;
use toml::Spanned;

/// The languages every text must be given in.
pub const LANGUAGES: [&str; 5] = ["en", "ru", "uk", "de", "nl"];

/// A problem in a programme, sets or scenario file, at a line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1 (0 when the problem is with the file as a whole).
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// The text of one file, for turning byte offsets into lines and columns.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub(crate) fn at(&self, offset: usize, message: impl Into<String>) -> LoadError {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        LoadError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Where the content of a spanned TOML string starts (past its opening quotes).
    fn content_start(&self, span: std::ops::Range<usize>) -> usize {
        let rest = self.text.get(span.start..).unwrap_or("");
        let skip = if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
            let after = rest.get(3..).unwrap_or("");
            3 + usize::from(after.starts_with('\n')) + usize::from(after.starts_with("\r\n")) * 2
        } else {
            1
        };
        span.start + skip
    }

    /// Parse TOML, reporting syntax and shape errors at their position.
    pub(crate) fn toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, LoadError> {
        toml::from_str(self.text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            self.at(at, e.message().trim().to_owned())
        })
    }
}

/// Text in every language of [`LANGUAGES`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Texts(pub BTreeMap<String, String>);

impl Texts {
    /// The text in `lang`, or in English when there is none.
    pub fn get(&self, lang: &str) -> &str {
        self.0
            .get(lang)
            .or_else(|| self.0.get("en"))
            .map_or("", String::as_str)
    }

    fn check(&self, src: &Source<'_>, at: usize, what: &str) -> Result<(), LoadError> {
        for l in LANGUAGES {
            if self.0.get(l).is_none_or(|t| t.trim().is_empty()) {
                return Err(src.at(
                    at,
                    format!(
                        "{what}: the text in \"{l}\" is missing (every text needs {})",
                        LANGUAGES.join(", ")
                    ),
                ));
            }
        }
        if let Some(extra) = self.0.keys().find(|k| !LANGUAGES.contains(&k.as_str())) {
            return Err(src.at(
                at,
                format!(
                    "{what}: unknown language \"{extra}\" (expected {})",
                    LANGUAGES.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// What kind of rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Must hold for eligibility.
    Require,
    /// Holding makes the person ineligible (exclusion clauses, sanctions).
    Exclude,
    /// A priority or risk flag; never changes eligibility.
    Signal,
}

/// What an unknown result means for a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IfUnknown {
    /// The programme's outcome is undetermined until the missing facts are known (default).
    Undetermined,
    /// The rule passes: a requirement counts as met, an exclusion as not applying (written
    /// "pass" or "ignore").
    Pass,
    /// The rule fails: a requirement counts as not met, an exclusion as applying.
    Fail,
}

/// One rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its id, unique in the programme.
    pub id: String,
    /// Its kind.
    pub kind: RuleKind,
    /// The expression as written.
    pub source: String,
    /// The checked expression.
    pub expr: Checked,
    /// The legal basis it applies.
    pub basis: String,
    /// What an unknown result means.
    pub if_unknown: IfUnknown,
    /// Why it matters, per language.
    pub explain: Texts,
}

/// A parameter's value from a date on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dated {
    /// In force from.
    pub from: Date,
    /// The value.
    #[serde(skip)]
    pub value: Value,
    /// The value as written.
    pub text: String,
    /// Where it comes from.
    pub reference: String,
}

/// A parameter with dated values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Param {
    /// Its type.
    #[serde(skip)]
    pub ty: Type,
    /// Values, oldest first.
    pub values: Vec<Dated>,
}

impl Param {
    /// The value in force on `on`.
    pub fn at(&self, on: Date) -> Option<&Dated> {
        self.values.iter().rev().find(|v| v.from <= on)
    }
}

/// Evidence that helps an application.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// Its id.
    pub id: String,
    /// What it is, per language.
    pub text: Texts,
}

/// Where one may apply.
#[derive(Clone, Debug)]
pub struct Apply {
    /// Whether one can apply from where one is (an expression).
    pub when: Checked,
    /// The expression as written.
    pub source: String,
    /// Where and how, per language.
    pub text: Texts,
}

/// A programme: a protection route, or one with a reform applied.
#[derive(Clone, Debug)]
pub struct Programme {
    /// Its id.
    pub id: String,
    /// The statement that it is a model for demonstration.
    pub model: String,
    /// The date the rules describe.
    pub as_of: Date,
    /// The deciding state (country code or "EU").
    pub state: String,
    /// The deciding authority.
    pub authority: String,
    /// Source documents and legal texts.
    pub sources: Vec<String>,
    /// Title per language.
    pub title: Texts,
    /// Summary per language.
    pub summary: Texts,
    /// Where one may apply.
    pub apply: Option<Apply>,
    /// Evidence that helps.
    pub evidence: Vec<Evidence>,
    /// Parameters.
    pub params: BTreeMap<String, Param>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// The reforms applied, by id.
    pub reforms: Vec<String>,
    /// The file it came from.
    pub file: PathBuf,
}

/// A reform: a patch over a programme.
#[derive(Clone, Debug)]
pub struct Reform {
    /// Its id.
    pub id: String,
    /// The programme it changes.
    pub reform_of: String,
    /// The statement that it is a model.
    pub model: String,
    /// Sources of the proposal.
    pub sources: Vec<String>,
    /// Title per language.
    pub title: Texts,
    /// Summary per language.
    pub summary: Texts,
    /// New dated values for parameters (replacing the baseline's).
    pub params: BTreeMap<String, Param>,
    /// Rules added, or replacing the baseline's rule of the same id.
    pub rules: Vec<Rule>,
    /// Rules dropped.
    pub drop_rules: Vec<String>,
    /// The file.
    pub file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    id: Spanned<String>,
    model: Spanned<String>,
    #[serde(default)]
    as_of: Option<Spanned<String>>,
    #[serde(default)]
    reform_of: Option<Spanned<String>>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    sources: Spanned<Vec<String>>,
    title: Spanned<Texts>,
    summary: Spanned<Texts>,
    #[serde(default)]
    apply: Option<Spanned<RawApply>>,
    #[serde(default)]
    evidence: Vec<Spanned<RawEvidence>>,
    #[serde(default)]
    parameters: BTreeMap<String, Spanned<RawParam>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    drop_rules: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApply {
    when: Spanned<String>,
    text: Spanned<Texts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    id: String,
    text: Spanned<Texts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    values: Vec<Spanned<RawDated>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDated {
    from: Spanned<String>,
    value: Spanned<toml::Value>,
    reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    kind: Spanned<String>,
    when: Spanned<String>,
    basis: Spanned<String>,
    #[serde(default)]
    unknown: Option<Spanned<String>>,
    explain: Spanned<Texts>,
}

/// Named sets, from `sets.toml`.
#[derive(Clone, Debug, Default)]
pub struct Sets {
    /// By name.
    pub sets: BTreeMap<String, NamedSet>,
    /// Where each comes from.
    pub sources: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    values: Vec<Spanned<String>>,
    source: String,
}

impl Sets {
    /// Parse `sets.toml`.
    pub fn parse(path: &Path, text: &str) -> Result<Sets, LoadError> {
        let src = Source { path, text };
        let raw: BTreeMap<String, Spanned<RawSet>> = src.toml()?;
        let mut out = Sets::default();
        for (name, set) in raw {
            let set = set.into_inner();
            let ty = match set.ty.get_ref().as_str() {
                "country" => Type::Country,
                "language" => Type::Language,
                other => match other.parse::<Fact>().map(fact_type) {
                    Ok(Type::Enum(f)) => Type::Enum(f),
                    _ => return Err(src.at(set.ty.span().start, format!("set {name}: unknown type \"{other}\" (expected country, language, or an enumerated fact such as refusal)"))),
                },
            };
            let mut values = BTreeSet::new();
            for v in &set.values {
                let at = src.content_start(v.span());
                let value = expr::literal(v.get_ref(), ty, expr::Span::default())
                    .map_err(|e| src.at(at, format!("set {name}: {}", e.message)))?;
                values.insert(value);
            }
            out.sets.insert(name.clone(), NamedSet { ty, values });
            out.sources.insert(name, set.source);
        }
        Ok(out)
    }

    fn scope(&self) -> Scope {
        Scope {
            sets: self.sets.clone(),
            params: BTreeMap::new(),
        }
    }
}

/// Either file kind.
pub enum Loaded {
    /// A programme.
    Programme(Programme),
    /// A reform.
    Reform(Reform),
}

/// Parse and check one programme or reform file.
pub fn parse_file(path: &Path, text: &str, sets: &Sets) -> Result<Loaded, LoadError> {
    let src = Source { path, text };
    let raw: RawFile = src.toml()?;
    let id = raw.id.get_ref().clone();
    if id.parse::<refuge_core::application::ProgrammeId>().is_err() {
        return Err(src.at(
            src.content_start(raw.id.span()),
            format!("\"{id}\" is not a programme id (1-64 lowercase letters, digits, '-' or '_')"),
        ));
    }
    if raw.model.get_ref().trim().is_empty() {
        return Err(src.at(
            raw.model.span().start,
            "model: say that this is a model for demonstration, and what it simplifies",
        ));
    }
    if raw.sources.get_ref().is_empty() {
        return Err(src.at(
            raw.sources.span().start,
            "sources: cite at least one source document or legal text",
        ));
    }
    raw.title
        .get_ref()
        .check(&src, raw.title.span().start, "title")?;
    raw.summary
        .get_ref()
        .check(&src, raw.summary.span().start, "summary")?;

    // Parameters first: rules may use them.
    let mut params = BTreeMap::new();
    for (name, p) in &raw.parameters {
        params.insert(name.clone(), param(&src, name, p)?);
    }
    let mut scope = sets.scope();
    scope.params = params.iter().map(|(n, p)| (n.clone(), p.ty)).collect();

    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &raw.rules {
        let rule = rule(&src, r.get_ref(), &scope)?;
        if !seen.insert(rule.id.clone()) {
            return Err(src.at(
                r.get_ref().id.span().start,
                format!("rule id \"{}\" is used twice", rule.id),
            ));
        }
        rules.push(rule);
    }

    if let Some(base) = &raw.reform_of {
        if raw.apply.is_some() || raw.state.is_some() || raw.authority.is_some() {
            return Err(src.at(
                base.span().start,
                "a reform changes parameters and rules only: it has no apply, state or authority",
            ));
        }
        return Ok(Loaded::Reform(Reform {
            id,
            reform_of: base.get_ref().clone(),
            model: raw.model.into_inner(),
            sources: raw.sources.into_inner(),
            title: raw.title.into_inner(),
            summary: raw.summary.into_inner(),
            params,
            rules,
            drop_rules: raw
                .drop_rules
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            file: path.to_path_buf(),
        }));
    }

    let as_of = match &raw.as_of {
        Some(d) => parse_date(d.get_ref()).ok_or_else(|| {
            src.at(
                src.content_start(d.span()),
                format!(
                    "as_of: expected a date YYYY-MM-DD, found \"{}\"",
                    d.get_ref()
                ),
            )
        })?,
        None => return Err(src.at(0, "as_of: say which date the rules describe (YYYY-MM-DD)")),
    };
    let (Some(state), Some(authority)) = (raw.state, raw.authority) else {
        return Err(src.at(0, "a programme needs its deciding state and authority (state = \"DE\", authority = \"...\")"));
    };
    if state != "EU" && state.parse::<Country>().is_err() {
        return Err(src.at(
            0,
            format!("state: \"{state}\" is neither \"EU\" nor an ISO 3166-1 alpha-2 country code"),
        ));
    }
    if rules.iter().all(|r| r.kind == RuleKind::Signal) && !rules.is_empty() && raw.apply.is_none()
    {
        // A signal-only programme (refoulement risk) needs no apply section.
    }
    let apply = match &raw.apply {
        Some(a) => {
            let a = a.get_ref();
            a.text
                .get_ref()
                .check(&src, a.text.span().start, "apply.text")?;
            let at = src.content_start(a.when.span());
            let when = expr::compile(a.when.get_ref(), &scope)
                .map_err(|e| src.at(at + e.span.start, format!("apply.when: {}", e.message)))?;
            Some(Apply {
                when,
                source: a.when.get_ref().clone(),
                text: a.text.get_ref().clone(),
            })
        }
        None => None,
    };
    let mut evidence = Vec::new();
    for e in &raw.evidence {
        let e = e.get_ref();
        e.text
            .get_ref()
            .check(&src, e.text.span().start, &format!("evidence {}", e.id))?;
        evidence.push(Evidence {
            id: e.id.clone(),
            text: e.text.get_ref().clone(),
        });
    }
    if rules.is_empty() {
        return Err(src.at(0, "a programme needs at least one [[rules]]"));
    }
    Ok(Loaded::Programme(Programme {
        id,
        model: raw.model.into_inner(),
        as_of,
        state,
        authority,
        sources: raw.sources.into_inner(),
        title: raw.title.into_inner(),
        summary: raw.summary.into_inner(),
        apply,
        evidence,
        params,
        rules,
        reforms: Vec::new(),
        file: path.to_path_buf(),
    }))
}

fn param(src: &Source<'_>, name: &str, p: &Spanned<RawParam>) -> Result<Param, LoadError> {
    let raw = p.get_ref();
    let ty = match raw.ty.get_ref().as_str() {
        "int" => Type::Int,
        "date" => Type::Date,
        "country" => Type::Country,
        other => {
            return Err(src.at(
                src.content_start(raw.ty.span()),
                format!(
                    "parameter {name}: unknown type \"{other}\" (expected int, date or country)"
                ),
            ));
        }
    };
    let mut values = Vec::new();
    for v in &raw.values {
        let v = v.get_ref();
        let from = parse_date(v.from.get_ref()).ok_or_else(|| {
            src.at(
                src.content_start(v.from.span()),
                format!(
                    "parameter {name}: from: expected a date YYYY-MM-DD, found \"{}\"",
                    v.from.get_ref()
                ),
            )
        })?;
        let at = v.value.span().start;
        let value = match (ty, v.value.get_ref()) {
            (Type::Int, toml::Value::Integer(n)) => Value::Int(*n),
            (Type::Date | Type::Country, toml::Value::String(s)) => {
                expr::literal(s, ty, expr::Span::default())
                    .map_err(|e| src.at(at, format!("parameter {name}: {}", e.message)))?
            }
            (ty, other) => {
                return Err(src.at(
                    at,
                    format!(
                        "parameter {name}: expected {ty}, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        if values.last().is_some_and(|l: &Dated| l.from >= from) {
            return Err(src.at(
                src.content_start(v.from.span()),
                format!("parameter {name}: values must be in date order"),
            ));
        }
        values.push(Dated {
            from,
            value,
            text: value.display(ty),
            reference: v.reference.clone(),
        });
    }
    if values.is_empty() {
        return Err(src.at(
            p.span().start,
            format!("parameter {name}: give at least one dated value"),
        ));
    }
    Ok(Param { ty, values })
}

fn rule(src: &Source<'_>, r: &RawRule, scope: &Scope) -> Result<Rule, LoadError> {
    let id = r.id.get_ref().clone();
    let kind = match r.kind.get_ref().as_str() {
        "require" => RuleKind::Require,
        "exclude" => RuleKind::Exclude,
        "signal" => RuleKind::Signal,
        other => {
            let hint = refuge_core::suggest::nearest(other, ["require", "exclude", "signal"])
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            return Err(src.at(
                src.content_start(r.kind.span()),
                format!(
                    "rule {id}: unknown kind \"{other}\"{hint}; expected require, exclude or signal"
                ),
            ));
        }
    };
    let at = src.content_start(r.when.span());
    let expr = expr::compile(r.when.get_ref(), scope)
        .map_err(|e| src.at(at + e.span.start, format!("rule {id}: {}", e.message)))?;
    let if_unknown = match r.unknown.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
        None | Some(("undetermined", _)) => IfUnknown::Undetermined,
        Some(("pass" | "ignore", _)) => IfUnknown::Pass,
        Some(("fail", _)) => IfUnknown::Fail,
        Some((other, span)) => return Err(src.at(
            src.content_start(span),
            format!(
                "rule {id}: unknown = \"{other}\"; expected undetermined, pass (or ignore) or fail"
            ),
        )),
    };
    if r.basis.get_ref().trim().is_empty() {
        return Err(src.at(
            r.basis.span().start,
            format!("rule {id}: basis: cite the legal basis the rule applies"),
        ));
    }
    r.explain
        .get_ref()
        .check(src, r.explain.span().start, &format!("rule {id}: explain"))?;
    Ok(Rule {
        id,
        kind,
        source: r.when.get_ref().clone(),
        expr,
        basis: r.basis.get_ref().clone(),
        if_unknown,
        explain: r.explain.get_ref().clone(),
    })
}

impl Programme {
    /// This programme with a reform applied.
    pub fn with_reform(&self, reform: &Reform) -> Result<Programme, String> {
        if reform.reform_of != self.id {
            return Err(format!(
                "reform {} changes {}, not {}",
                reform.id, reform.reform_of, self.id
            ));
        }
        let mut p = self.clone();
        for d in &reform.drop_rules {
            if !p.rules.iter().any(|r| &r.id == d) {
                return Err(format!(
                    "reform {} drops rule {d}, which {} does not have",
                    reform.id, self.id
                ));
            }
            p.rules.retain(|r| &r.id != d);
        }
        for r in &reform.rules {
            match p.rules.iter_mut().find(|x| x.id == r.id) {
                Some(slot) => *slot = r.clone(),
                None => p.rules.push(r.clone()),
            }
        }
        for (name, param) in &reform.params {
            match p.params.get(name) {
                Some(base) if base.ty != param.ty => {
                    return Err(format!(
                        "reform {} gives parameter {name} {}, but it is {}",
                        reform.id, param.ty, base.ty
                    ));
                }
                _ => {
                    p.params.insert(name.clone(), param.clone());
                }
            }
        }
        p.reforms.push(reform.id.clone());
        Ok(p)
    }

    /// Parameter values in force on `on`.
    pub fn params_at(&self, on: Date) -> BTreeMap<String, Value> {
        self.params
            .iter()
            .filter_map(|(n, p)| p.at(on).map(|d| (n.clone(), d.value)))
            .collect()
    }
}

/// The outcome of a programme for one person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every requirement holds and no exclusion applies.
    Eligible,
    /// A requirement fails or an exclusion applies.
    Ineligible,
    /// Only missing facts stand between the person and a result.
    Undetermined,
}

impl Outcome {
    /// The outcome's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Eligible => "eligible",
            Outcome::Ineligible => "ineligible",
            Outcome::Undetermined => "undetermined",
        }
    }
}

/// How one rule came out.
#[derive(Clone, Debug, Serialize)]
pub struct RuleTrace {
    /// The rule's id.
    pub id: String,
    /// Its kind.
    pub kind: RuleKind,
    /// `pass` (requirement holds, exclusion does not apply, signal raised), `fail`, or `unknown`.
    pub result: &'static str,
    /// The facts the rule read and their values (`unknown` when not known).
    pub values: BTreeMap<String, String>,
    /// The legal basis.
    pub basis: String,
    /// The explanation in the requested language.
    pub explanation: String,
}

/// The explained result of one programme for one person.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// The programme.
    pub programme: String,
    /// The reforms applied to it, by id (empty for the programme as in force).
    pub reforms: Vec<String>,
    /// Its title in the requested language.
    pub title: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Facts whose knowledge would decide an undetermined outcome.
    pub missing: Vec<String>,
    /// Signals raised (rule ids).
    pub signals: Vec<String>,
    /// Where to apply, when one can apply from where one is; `null` when one cannot (or it
    /// is not known where the person is).
    pub apply_at: Option<String>,
    /// Whether one can apply from where one is.
    pub can_apply_here: Tri,
    /// Evidence that would help.
    pub evidence: Vec<String>,
    /// Every rule, in order.
    pub trace: Vec<RuleTrace>,
}

/// Decide and explain `programme` for one person on `on`, in `lang`.
pub fn decide(p: &Programme, facts: &Facts, on: Date, lang: &str) -> Decision {
    let params = p.params_at(on);
    let env = Env {
        on,
        params: &params,
    };
    let mut fail = false;
    let mut undetermined = false;
    let mut missing = BTreeSet::new();
    let mut signals = Vec::new();
    let mut trace = Vec::with_capacity(p.rules.len());
    for r in &p.rules {
        let (t, m) = expr::decide(&r.expr, facts, &env);
        // "pass": a requirement holds, an exclusion does not apply, a signal is raised.
        // An unknown result means what the rule says it means; a signal is raised only when
        // its condition is known to hold.
        let result = match (r.kind, t, r.if_unknown) {
            (RuleKind::Signal, Tri::True, _) => "pass",
            (RuleKind::Signal, _, _) => "fail",
            (_, Tri::Unknown, IfUnknown::Undetermined) => "unknown",
            (_, Tri::Unknown, IfUnknown::Pass) => "pass",
            (_, Tri::Unknown, IfUnknown::Fail) => "fail",
            (RuleKind::Require, Tri::True, _) | (RuleKind::Exclude, Tri::False, _) => "pass",
            _ => "fail",
        };
        match (r.kind, result) {
            (RuleKind::Signal, "pass") => signals.push(r.id.clone()),
            (RuleKind::Signal, _) => {}
            (_, "fail") => fail = true,
            (_, "unknown") => {
                undetermined = true;
                missing.extend(m);
            }
            _ => {}
        }
        let mut values = BTreeMap::new();
        for f in r.expr.facts() {
            let v = facts
                .get(f)
                .map_or_else(|| "unknown".to_owned(), |v| v.to_string());
            values.insert(f.name().to_owned(), v);
        }
        if values.contains_key("birth_date") {
            let age = facts
                .birth_date
                .and_then(|b| age_on(b, on))
                .map_or_else(|| "unknown".into(), |a| a.to_string());
            values.insert("age".into(), age);
        }
        trace.push(RuleTrace {
            id: r.id.clone(),
            kind: r.kind,
            result,
            values,
            basis: r.basis.clone(),
            explanation: r.explain.get(lang).to_owned(),
        });
    }
    let outcome = if fail {
        Outcome::Ineligible
    } else if undetermined {
        Outcome::Undetermined
    } else {
        Outcome::Eligible
    };
    if outcome != Outcome::Undetermined {
        missing.clear();
    }
    let (can_apply_here, apply_at) = match &p.apply {
        Some(a) => {
            let (t, _) = expr::decide(&a.when, facts, &env);
            (t, (t == Tri::True).then(|| a.text.get(lang).to_owned()))
        }
        None => (Tri::Unknown, None),
    };
    Decision {
        programme: p.id.clone(),
        reforms: p.reforms.clone(),
        title: p.title.get(lang).to_owned(),
        outcome,
        missing: missing.into_iter().map(|f| f.name().to_owned()).collect(),
        signals,
        apply_at,
        can_apply_here,
        evidence: p
            .evidence
            .iter()
            .map(|e| e.text.get(lang).to_owned())
            .collect(),
        trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const SETS: &str = r#"
[eu_member_states]
type = "country"
values = ["DE", "NL", "FR"]
source = "test"
"#;

    fn texts(s: &str) -> String {
        LANGUAGES
            .iter()
            .map(|l| format!("{l} = \"{s} ({l})\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn programme() -> String {
        format!(
            r#"id = "nl-moratorium"
model = "A model for demonstration."
as_of = "2023-05-01"
state = "NL"
authority = "IND"
sources = ["004_4c814762ab67789f.txt"]
title = {{ {t} }}
summary = {{ {t} }}

[apply]
when = 'current_country == "NL"'
text = {{ {t} }}

[parameters.max_age]
type = "int"
values = [{{ from = "2022-09-21", value = 27, reference = "IND" }}]

[[rules]]
id = "nationality"
kind = "require"
when = 'nationality == "RU"'
basis = "IND policy"
explain = {{ {t} }}

[[rules]]
id = "age"
kind = "require"
when = 'sex == "male" and age >= 18 and age <= param.max_age'
basis = "IND policy"
explain = {{ {t} }}
"#,
            t = texts("x")
        )
    }

    fn load(text: &str) -> Result<Loaded, LoadError> {
        let sets = Sets::parse(Path::new("sets.toml"), SETS).unwrap();
        parse_file(Path::new("p.toml"), text, &sets)
    }

    fn facts(j: serde_json::Value) -> Facts {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn decides_and_explains_with_a_reform() {
        let Ok(Loaded::Programme(p)) = load(&programme()) else {
            panic!()
        };
        let man29 = facts(
            serde_json::json!({"nationality": "RU", "sex": "male", "birth_date": "1997-06-10", "current_country": "NL"}),
        );
        let d = decide(&p, &man29, date!(2026 - 11 - 22), "en");
        assert_eq!(d.outcome, Outcome::Ineligible);
        let age = d.trace.iter().find(|t| t.id == "age").unwrap();
        assert_eq!((age.result, age.values["age"].as_str()), ("fail", "29"));
        assert!(d.apply_at.is_some());
        let reform_src = format!(
            r#"id = "nl-moratorium-35"
reform_of = "nl-moratorium"
model = "A model."
sources = ["004_4c814762ab67789f.txt"]
title = {{ {t} }}
summary = {{ {t} }}
[parameters.max_age]
type = "int"
values = [{{ from = "2022-09-21", value = 35, reference = "Free Russia NL letter" }}]
"#,
            t = texts("y")
        );
        let Ok(Loaded::Reform(r)) = load(&reform_src) else {
            panic!()
        };
        let reformed = p.with_reform(&r).unwrap();
        assert_eq!(
            decide(&reformed, &man29, date!(2026 - 11 - 22), "en").outcome,
            Outcome::Eligible
        );
        let no_birth =
            facts(serde_json::json!({"nationality": "RU", "sex": "male", "current_country": "NL"}));
        for prog in [&p, &reformed] {
            let d = decide(prog, &no_birth, date!(2026 - 11 - 22), "en");
            assert_eq!(d.outcome, Outcome::Undetermined);
            assert_eq!(d.missing, vec!["birth_date"]);
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        let bad = programme().replace("nationality == \"RU\"", "nationalty == \"RU\"");
        let Err(e) = load(&bad) else { panic!() };
        let line = bad.lines().position(|l| l.contains("nationalty")).unwrap() + 1;
        assert_eq!((e.line, e.column), (line, 9), "{e}");
        assert!(e.to_string().starts_with(&format!("p.toml:{line}:9: rule nationality: unknown fact \"nationalty\" (did you mean \"nationality\"?)")), "{e}");
        let bad = programme().replace("kind = \"require\"", "kind = \"requre\"");
        let Err(e) = load(&bad) else { panic!() };
        assert!(e.message.contains("did you mean \"require\""), "{e}");
        let bad = programme().replace("nl = \"x (nl)\"", "");
        let Err(e) = load(&bad) else { panic!() };
        assert!(e.message.contains("\"nl\" is missing"), "{e}");
        let Err(e) = load("id = ") else { panic!() };
        assert_eq!(e.line, 1, "{e}");
    }
}

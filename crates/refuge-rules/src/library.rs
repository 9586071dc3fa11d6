//! A directory of programmes: `sets.toml`, one `*.toml` per programme, `reforms/*.toml`, and
//! scenario tests in `tests/*.toml`.

use crate::programme::{self, LoadError, Loaded, Programme, Reform, RuleKind, Sets, Source};
use refuge_core::facts::{Facts, parse_date};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Every programme and reform of a directory, checked.
#[derive(Clone, Debug)]
pub struct Library {
    /// The directory.
    pub dir: PathBuf,
    /// Named sets.
    pub sets: Sets,
    /// Programmes by id.
    pub programmes: BTreeMap<String, Programme>,
    /// Reforms by id.
    pub reforms: BTreeMap<String, Reform>,
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Load the named sets of a programmes directory.
pub fn load_sets(dir: &Path) -> Result<Sets, LoadError> {
    let path = dir.join("sets.toml");
    if !path.exists() {
        return Ok(Sets::default());
    }
    let text = read(&path)?;
    Sets::parse(&path, &text)
}

/// Check one programme or reform file (with the sets of its directory, or of the directory
/// above for a reform).
pub fn lint_file(path: &Path) -> Result<Loaded, LoadError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let sets_dir = if dir.join("sets.toml").exists() {
        dir
    } else {
        dir.parent().unwrap_or(dir)
    };
    let sets = load_sets(sets_dir)?;
    let text = read(path)?;
    programme::parse_file(path, &text, &sets)
}

impl Library {
    /// Load and check every file; all problems are returned, not just the first.
    pub fn load(dir: &Path) -> Result<Library, Vec<LoadError>> {
        let mut errors = Vec::new();
        let sets = match load_sets(dir) {
            Ok(s) => s,
            Err(e) => return Err(vec![e]),
        };
        let mut lib = Library {
            dir: dir.to_path_buf(),
            sets,
            programmes: BTreeMap::new(),
            reforms: BTreeMap::new(),
        };
        if !dir.is_dir() {
            return Err(vec![LoadError {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
                message: "not a directory of programmes".into(),
            }]);
        }
        let files = toml_files(dir)
            .into_iter()
            .filter(|p| !p.ends_with("sets.toml"))
            .chain(toml_files(&dir.join("reforms")));
        for path in files {
            let loaded =
                read(&path).and_then(|text| programme::parse_file(&path, &text, &lib.sets));
            match loaded {
                Ok(Loaded::Programme(p)) => {
                    if lib.programmes.contains_key(&p.id) {
                        errors.push(LoadError {
                            file: path,
                            line: 0,
                            column: 0,
                            message: format!("programme id {} is used by another file too", p.id),
                        });
                    } else {
                        lib.programmes.insert(p.id.clone(), p);
                    }
                }
                Ok(Loaded::Reform(r)) => {
                    lib.reforms.insert(r.id.clone(), r);
                }
                Err(e) => errors.push(e),
            }
        }
        for r in lib.reforms.values() {
            match lib.programmes.get(&r.reform_of) {
                Some(base) => {
                    if let Err(e) = base.with_reform(r) {
                        errors.push(LoadError {
                            file: r.file.clone(),
                            line: 0,
                            column: 0,
                            message: e,
                        });
                    }
                }
                None => errors.push(LoadError {
                    file: r.file.clone(),
                    line: 0,
                    column: 0,
                    message: format!("reform_of: there is no programme {}", r.reform_of),
                }),
            }
        }
        if errors.is_empty() {
            Ok(lib)
        } else {
            Err(errors)
        }
    }

    /// A programme by id, or a reform by id applied to its programme.
    pub fn resolve(&self, id: &str) -> Option<Programme> {
        if let Some(p) = self.programmes.get(id) {
            return Some(p.clone());
        }
        let r = self.reforms.get(id)?;
        self.programmes.get(&r.reform_of)?.with_reform(r).ok()
    }

    /// Ids of every programme and reform, for suggestions.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.programmes
            .keys()
            .chain(self.reforms.keys())
            .map(String::as_str)
    }

    /// Run every scenario in `tests/`, and check that every rule of every programme and
    /// reform is decisive in at least one scenario.
    pub fn run_scenarios(&self) -> Result<ScenarioReport, Vec<LoadError>> {
        let mut report = ScenarioReport::default();
        let mut errors = Vec::new();
        let mut decisive: BTreeSet<(String, String)> = BTreeSet::new();
        for path in toml_files(&self.dir.join("tests")) {
            let text = match read(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let src = Source {
                path: &path,
                text: &text,
            };
            let file: ScenarioFile = match src.toml() {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Some(p) = self.resolve(file.programme.get_ref()) else {
                let hint = refuge_core::suggest::nearest(file.programme.get_ref(), self.ids())
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                errors.push(src.at(
                    file.programme.span().start,
                    format!("no programme or reform {}{hint}", file.programme.get_ref()),
                ));
                continue;
            };
            for case in &file.cases {
                let c = case.get_ref();
                let Some(on) = parse_date(c.on.get_ref()) else {
                    errors.push(src.at(
                        c.on.span().start,
                        format!(
                            "on: expected a date YYYY-MM-DD, found \"{}\"",
                            c.on.get_ref()
                        ),
                    ));
                    continue;
                };
                let facts: Facts = match serde_json::to_value(c.facts.get_ref())
                    .and_then(serde_json::from_value)
                {
                    Ok(f) => f,
                    Err(e) => {
                        errors.push(src.at(
                            c.facts.span().start,
                            format!("case \"{}\": facts: {e}", c.name),
                        ));
                        continue;
                    }
                };
                let d = programme::decide(&p, &facts, on, "en");
                report.cases += 1;
                for t in &d.trace {
                    let is_decisive = match t.kind {
                        RuleKind::Signal => t.result == "pass",
                        _ => t.result == "fail",
                    };
                    if is_decisive {
                        decisive.insert((
                            p.id.clone()
                                + &p.reforms
                                    .iter()
                                    .map(|r| format!("+{r}"))
                                    .collect::<String>(),
                            t.id.clone(),
                        ));
                    }
                }
                let mut problems = Vec::new();
                if d.outcome.as_str() != c.outcome {
                    let why: Vec<String> = d
                        .trace
                        .iter()
                        .filter(|t| t.result != "pass")
                        .map(|t| format!("{} {}", t.id, t.result))
                        .collect();
                    problems.push(format!(
                        "expected {}, got {} ({})",
                        c.outcome,
                        d.outcome.as_str(),
                        why.join(", ")
                    ));
                }
                if let Some(missing) = &c.missing
                    && &d.missing != missing
                {
                    problems.push(format!("expected missing {missing:?}, got {:?}", d.missing));
                }
                if let Some(fails) = &c.fails {
                    let got: Vec<&str> = d
                        .trace
                        .iter()
                        .filter(|t| t.result == "fail" && t.kind != RuleKind::Signal)
                        .map(|t| t.id.as_str())
                        .collect();
                    if got != fails.iter().map(String::as_str).collect::<Vec<_>>() {
                        problems.push(format!("expected failing rules {fails:?}, got {got:?}"));
                    }
                }
                if let Some(signals) = &c.signals
                    && &d.signals != signals
                {
                    problems.push(format!("expected signals {signals:?}, got {:?}", d.signals));
                }
                if !problems.is_empty() {
                    let at = src.at(case.span().start, "");
                    report.failures.push(format!(
                        "{}:{}: {} / \"{}\": {}",
                        path.display(),
                        at.line,
                        file.programme.get_ref(),
                        c.name,
                        problems.join("; ")
                    ));
                }
            }
        }
        // Coverage: every rule of every programme decisive somewhere.
        let mut all: Vec<Programme> = self.programmes.values().cloned().collect();
        all.extend(self.reforms.keys().filter_map(|id| self.resolve(id)));
        for p in all {
            let key = p.id.clone()
                + &p.reforms
                    .iter()
                    .map(|r| format!("+{r}"))
                    .collect::<String>();
            for r in &p.rules {
                let own = p.reforms.is_empty()
                    || self
                        .reforms
                        .get(&p.reforms[0])
                        .is_some_and(|rf| rf.rules.iter().any(|x| x.id == r.id));
                if own && !decisive.contains(&(key.clone(), r.id.clone())) {
                    report.uncovered.push(format!(
                        "{key}: rule {} is never decisive in a scenario ({})",
                        r.id,
                        match r.kind {
                            RuleKind::Signal => "no scenario raises it",
                            _ => "no scenario fails it",
                        }
                    ));
                }
            }
        }
        report.passed = report.cases - report.failures.len();
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(errors)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    programme: Spanned<String>,
    cases: Vec<Spanned<ScenarioCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioCase {
    name: String,
    on: Spanned<String>,
    facts: Spanned<toml::Table>,
    outcome: String,
    #[serde(default)]
    missing: Option<Vec<String>>,
    #[serde(default)]
    fails: Option<Vec<String>>,
    #[serde(default)]
    signals: Option<Vec<String>>,
}

/// What the scenario tests found.
#[derive(Clone, Debug, Default)]
pub struct ScenarioReport {
    /// Scenarios run.
    pub cases: usize,
    /// Scenarios that passed.
    pub passed: usize,
    /// One line per failed scenario.
    pub failures: Vec<String>,
    /// Rules that no scenario makes decisive.
    pub uncovered: Vec<String>,
}

impl ScenarioReport {
    /// No failures and full coverage.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.uncovered.is_empty()
    }
}

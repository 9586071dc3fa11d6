//! `refuge programmes …` and `refuge check`: the programme library on the command line.

use crate::cli::Format;
use crate::usage;
use clap::{Args, Subcommand};
use refuge_core::facts::{Facts, parse_date};
use refuge_rules::expr::Tri;
use refuge_rules::library::{Library, lint_file};
use refuge_rules::programme::{Decision, LANGUAGES, Loaded, Outcome, Programme, decide};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where programmes are read from.
#[derive(Args, Debug, Clone)]
pub struct ProgrammesDir {
    /// Programmes directory (default: ./programmes, else the copy in the source tree).
    #[arg(long, global = true, env = "REFUGE_PROGRAMMES", value_name = "DIR")]
    pub programmes: Option<PathBuf>,
}

impl ProgrammesDir {
    /// The directory to use.
    pub fn dir(&self) -> PathBuf {
        if let Some(d) = &self.programmes {
            return d.clone();
        }
        let local = PathBuf::from("programmes");
        if local.join("sets.toml").exists() {
            return local;
        }
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programmes")
    }

    /// Load and check the library; problems are usage errors listing every file:line:col.
    pub fn load(&self) -> anyhow::Result<Library> {
        let dir = self.dir();
        Library::load(&dir).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            usage(format!(
                "the programmes in {} do not load:\n{}",
                dir.display(),
                lines.join("\n")
            ))
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum ProgrammesCmd {
    /// List programmes and reforms.
    List,
    /// Show one programme (or a reform applied to its programme): sources, parameters, rules.
    Show {
        /// Programme or reform id.
        id: String,
        /// Language of the texts.
        #[arg(long, default_value = "en", value_parser = parse_lang)]
        lang: String,
    },
    /// Check programme files: without FILE, every programme, reform and scenario test of the
    /// directory (every rule must be decisive in some scenario); with FILE, that file only.
    Lint {
        /// One programme or reform file.
        file: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Facts file (a JSON object keyed by fact name; `-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub facts: PathBuf,
    /// Only these programmes (or reforms); repeatable. Default: every programme.
    #[arg(long, value_name = "ID")]
    pub programme: Vec<String>,
    /// Evaluation date (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub on: Option<String>,
    /// Language of explanations: en, ru, uk, de or nl.
    #[arg(long, default_value = "en", value_parser = parse_lang)]
    pub lang: String,
}

fn parse_lang(s: &str) -> Result<String, String> {
    if LANGUAGES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!("expected one of {}", LANGUAGES.join(", ")))
    }
}

/// Words of the text output, per language.
fn word(lang: &str, key: &str) -> &'static str {
    let table: &[(&str, [&str; 5])] = &[
        (
            "eligible",
            [
                "eligible",
                "подходит",
                "підходить",
                "berechtigt",
                "komt in aanmerking",
            ],
        ),
        (
            "ineligible",
            [
                "not eligible",
                "не подходит",
                "не підходить",
                "nicht berechtigt",
                "komt niet in aanmerking",
            ],
        ),
        (
            "undetermined",
            [
                "undetermined",
                "не определено",
                "не визначено",
                "nicht entschieden",
                "onbepaald",
            ],
        ),
        (
            "missing",
            [
                "would be decided by",
                "решат ответы на",
                "вирішать відповіді на",
                "entscheiden würden",
                "beslist door",
            ],
        ),
        (
            "signals",
            ["signals", "сигналы", "сигнали", "Hinweise", "signalen"],
        ),
        (
            "apply",
            [
                "apply at",
                "куда обращаться",
                "куди звертатися",
                "Antrag bei",
                "aanvragen bij",
            ],
        ),
        (
            "evidence",
            [
                "evidence that helps",
                "полезные доказательства",
                "корисні докази",
                "hilfreiche Nachweise",
                "nuttig bewijs",
            ],
        ),
        (
            "not_here",
            [
                "not from where you are",
                "не из вашего места пребывания",
                "не з вашого місця перебування",
                "nicht von Ihrem Aufenthaltsort aus",
                "niet vanaf uw huidige verblijfplaats",
            ],
        ),
        (
            "pass",
            ["met", "выполнено", "виконано", "erfüllt", "voldaan"],
        ),
        (
            "fail",
            [
                "not met",
                "не выполнено",
                "не виконано",
                "nicht erfüllt",
                "niet voldaan",
            ],
        ),
        (
            "unknown",
            ["unknown", "неизвестно", "невідомо", "unbekannt", "onbekend"],
        ),
        (
            "model",
            [
                "demonstration model",
                "демонстрационная модель",
                "демонстраційна модель",
                "Demonstrationsmodell",
                "demonstratiemodel",
            ],
        ),
    ];
    let i = LANGUAGES.iter().position(|l| *l == lang).unwrap_or(0);
    table
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.get(i).copied())
        .unwrap_or("?")
}

pub fn programmes(
    dir: &ProgrammesDir,
    cmd: ProgrammesCmd,
    format: Format,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ProgrammesCmd::List => {
            let lib = dir.load()?;
            if format == Format::Json {
                let list: Vec<_> = lib
                    .programmes
                    .values()
                    .map(|p| json!({"id": p.id, "kind": "programme", "state": p.state, "authority": p.authority, "as_of": p.as_of.to_string(), "title": p.title.get("en"), "rules": p.rules.len()}))
                    .chain(lib.reforms.values().map(|r| json!({"id": r.id, "kind": "reform", "reform_of": r.reform_of, "title": r.title.get("en")})))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "programmes": list }))?
                );
            } else {
                for p in lib.programmes.values() {
                    println!(
                        "{:<26} {:<4} {:>2} rules  as of {}  {}",
                        p.id,
                        p.state,
                        p.rules.len(),
                        p.as_of,
                        p.title.get("en")
                    );
                }
                for r in lib.reforms.values() {
                    println!(
                        "{:<26} reform of {}: {}",
                        r.id,
                        r.reform_of,
                        r.title.get("en")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ProgrammesCmd::Show { id, lang } => {
            let lib = dir.load()?;
            let p = resolve(&lib, &id)?;
            show(&p, &lang, format)?;
            Ok(ExitCode::SUCCESS)
        }
        ProgrammesCmd::Lint { file: Some(file) } => {
            let loaded = lint_file(&file).map_err(|e| usage(e.to_string()))?;
            let (kind, id, rules) = match &loaded {
                Loaded::Programme(p) => ("programme", p.id.clone(), p.rules.len()),
                Loaded::Reform(r) => ("reform", r.id.clone(), r.rules.len()),
            };
            if format == Format::Json {
                println!(
                    "{}",
                    json!({"file": file, "ok": true, "kind": kind, "id": id, "rules": rules})
                );
            } else {
                println!("{}: ok ({kind} {id}, {rules} rules)", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ProgrammesCmd::Lint { file: None } => {
            let lib = dir.load()?;
            let report = lib.run_scenarios().map_err(|errors| {
                usage(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "ok": report.ok(), "programmes": lib.programmes.len(), "reforms": lib.reforms.len(),
                        "scenarios": report.cases, "passed": report.passed,
                        "failures": report.failures, "uncovered": report.uncovered,
                    }))?
                );
            } else {
                for f in &report.failures {
                    println!("FAIL {f}");
                }
                for u in &report.uncovered {
                    println!("UNCOVERED {u}");
                }
                let plural = |n: usize, one: &str, many: &str| {
                    format!("{n} {}", if n == 1 { one } else { many })
                };
                println!(
                    "{} and {} load; scenarios: {} passed, {} failed; {} never decisive",
                    plural(lib.programmes.len(), "programme", "programmes"),
                    plural(lib.reforms.len(), "reform", "reforms"),
                    report.passed,
                    report.failures.len(),
                    plural(report.uncovered.len(), "rule", "rules")
                );
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `--on`, or today.
fn evaluation_date(on: Option<&str>, today: time::Date) -> anyhow::Result<time::Date> {
    match on {
        Some(s) => parse_date(s)
            .ok_or_else(|| usage(format!("--on: expected a date YYYY-MM-DD, found \"{s}\""))),
        None => Ok(today),
    }
}

/// The programmes named by `--programme` (a reform id gives its programme with the reform),
/// or every programme.
fn select(lib: &Library, ids: &[String]) -> anyhow::Result<Vec<Programme>> {
    if ids.is_empty() {
        Ok(lib.programmes.values().cloned().collect())
    } else {
        ids.iter().map(|id| resolve(lib, id)).collect()
    }
}

fn resolve(lib: &Library, id: &str) -> anyhow::Result<Programme> {
    lib.resolve(id).ok_or_else(|| {
        let hint = refuge_core::suggest::nearest(id, lib.ids())
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        usage(format!(
            "--programme: no programme or reform \"{id}\"{hint}; see `refuge programmes list`"
        ))
    })
}

fn show(p: &Programme, lang: &str, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        let rules: Vec<_> = p.rules.iter().map(|r| json!({"id": r.id, "kind": r.kind, "when": r.source, "basis": r.basis, "explain": r.explain.get(lang)})).collect();
        let params: serde_json::Map<String, serde_json::Value> = p
            .params
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "id": p.id, "reforms": p.reforms, "model": p.model, "as_of": p.as_of.to_string(), "state": p.state,
                "authority": p.authority, "sources": p.sources, "title": p.title.get(lang), "summary": p.summary.get(lang),
                "apply": p.apply.as_ref().map(|a| json!({"when": a.source, "text": a.text.get(lang)})),
                "evidence": p.evidence.iter().map(|e| e.text.get(lang)).collect::<Vec<_>>(),
                "parameters": params, "rules": rules,
            }))?
        );
        return Ok(());
    }
    let reforms = if p.reforms.is_empty() {
        String::new()
    } else {
        format!(" + {}", p.reforms.join(" + "))
    };
    println!("{}{reforms}: {}", p.id, p.title.get(lang));
    println!("{}", p.summary.get(lang));
    println!("{}: {}", word(lang, "model"), p.model);
    println!("state {}, {}; as of {}", p.state, p.authority, p.as_of);
    println!("sources: {}", p.sources.join("; "));
    if let Some(a) = &p.apply {
        println!(
            "{}: {}  [{}]",
            word(lang, "apply"),
            a.text.get(lang),
            a.source
        );
    }
    for (name, param) in &p.params {
        for v in &param.values {
            println!(
                "param.{name} = {} from {} ({})",
                v.text, v.from, v.reference
            );
        }
    }
    for r in &p.rules {
        println!("- {} [{:?}] {}", r.id, r.kind, r.source);
        println!("    basis: {}", r.basis);
        println!("    {}", r.explain.get(lang));
    }
    Ok(())
}

pub fn check(
    dir: &ProgrammesDir,
    a: &CheckArgs,
    format: Format,
    today: time::Date,
) -> anyhow::Result<ExitCode> {
    let facts: Facts = crate::input::read_json(&a.facts, "--facts")?;
    let on = evaluation_date(a.on.as_deref(), today)?;
    let lib = dir.load()?;
    let programmes = select(&lib, &a.programme)?;
    let decisions: Vec<Decision> = programmes
        .iter()
        .map(|p| decide(p, &facts, on, &a.lang))
        .collect();
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "on": on.to_string(), "lang": a.lang, "results": decisions })
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let lang = a.lang.as_str();
    for (p, d) in programmes.iter().zip(&decisions) {
        let reforms = if p.reforms.is_empty() {
            String::new()
        } else {
            format!(" + {}", p.reforms.join(" + "))
        };
        let outcome = word(lang, d.outcome.as_str());
        println!("{}{reforms}: {}", d.programme, d.title);
        println!("  => {}", outcome.to_uppercase());
        for t in &d.trace {
            if t.result == "pass" && t.kind != refuge_rules::programme::RuleKind::Signal {
                continue;
            }
            if t.kind == refuge_rules::programme::RuleKind::Signal && t.result != "pass" {
                continue;
            }
            let values: Vec<String> = t.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let label = if t.kind == refuge_rules::programme::RuleKind::Signal {
                word(lang, "signals")
            } else {
                word(lang, t.result)
            };
            println!("  - {} ({label}): {}", t.id, t.explanation);
            println!("      {} | {}", values.join(", "), t.basis);
        }
        if d.outcome == Outcome::Undetermined {
            println!("  {}: {}", word(lang, "missing"), d.missing.join(", "));
        }
        match (&d.apply_at, d.can_apply_here) {
            (Some(at), _) => println!("  {}: {at}", word(lang, "apply")),
            (None, Tri::False) => println!("  {}: {}", word(lang, "apply"), word(lang, "not_here")),
            _ => {}
        }
        if d.outcome != Outcome::Ineligible && !d.evidence.is_empty() {
            println!("  {}: {}", word(lang, "evidence"), d.evidence.join("; "));
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Caseload: CSV (header = fact names), JSON Lines, or the compact .rcl format.
    #[arg(long, value_name = "FILE")]
    pub caseload: PathBuf,
    /// A reform to compare with its programme: a reform file, or a reform id from the
    /// programmes directory; repeatable.
    #[arg(long, value_name = "FILE|ID")]
    pub reform: Vec<String>,
    /// Only these programmes (default: every programme).
    #[arg(long, value_name = "ID")]
    pub programme: Vec<String>,
    /// Evaluation date (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub on: Option<String>,
    /// Print every breakdown of every programme (text output shows reforms' by default).
    #[arg(long)]
    pub breakdowns: bool,
    /// Write CSV (one line per programme, dimension and group) instead of a table.
    #[arg(long, conflicts_with = "breakdowns")]
    pub csv: bool,
}

/// This process's peak resident memory in MiB (Linux: VmHWM), if known.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn simulate(
    dir: &ProgrammesDir,
    a: &SimulateArgs,
    format: Format,
    today: time::Date,
) -> anyhow::Result<ExitCode> {
    use refuge_rules::caseload::Caseload;
    use refuge_rules::programme::Reform;
    let on = evaluation_date(a.on.as_deref(), today)?;
    let lib = dir.load()?;
    let mut programmes = select(&lib, &a.programme)?;
    let mut reforms: Vec<Reform> = Vec::new();
    for r in &a.reform {
        let reform = if Path::new(r).exists() {
            match lint_file(Path::new(r)).map_err(|e| usage(e.to_string()))? {
                Loaded::Reform(rf) => rf,
                Loaded::Programme(p) => {
                    return Err(usage(format!(
                        "--reform {r}: {} is a programme, not a reform (it has no reform_of)",
                        p.id
                    )));
                }
            }
        } else {
            lib.reforms.get(r).cloned().ok_or_else(|| {
                let hint = refuge_core::suggest::nearest(r, lib.reforms.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                usage(format!("--reform: no file or reform \"{r}\"{hint}"))
            })?
        };
        if !programmes.iter().any(|p| p.id == reform.reform_of) {
            match lib.programmes.get(&reform.reform_of) {
                Some(p) => programmes.push(p.clone()),
                None => {
                    return Err(usage(format!(
                        "--reform {r}: it changes {}, which is not a programme here",
                        reform.reform_of
                    )));
                }
            }
        }
        reforms.push(reform);
    }

    let size = std::fs::metadata(&a.caseload)
        .map_err(|e| usage(format!("--caseload {}: {e}", a.caseload.display())))?
        .len();
    let bar = crate::output::progress(size, "loading caseload");
    let t = std::time::Instant::now();
    let loaded = Caseload::from_path(&a.caseload, &|done| bar.set_position(done));
    bar.finish_and_clear();
    let caseload = loaded.map_err(|e| {
        // The error already names the file, line and column.
        let msg = format!("--caseload: {e}");
        if e.is_input_error() {
            usage(msg)
        } else {
            anyhow::anyhow!(msg)
        }
    })?;
    let load_seconds = t.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sim = refuge_rules::simulate::simulate(&programmes, &reforms, &caseload, on, threads)
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    if a.csv {
        println!(
            "programme,baseline,dimension,group,eligible,ineligible,undetermined,newly_eligible,newly_ineligible"
        );
        let opt = |x: Option<u64>| x.map_or(String::new(), |v| v.to_string());
        for p in &sim.programmes {
            let base = p.baseline.clone().unwrap_or_default();
            let c = &p.counts;
            println!(
                "{},{base},all,all,{},{},{},{},{}",
                p.id,
                c.eligible,
                c.ineligible,
                c.undetermined,
                opt(c.newly_eligible),
                opt(c.newly_ineligible)
            );
            for (dim, groups) in &p.breakdowns {
                for g in groups {
                    let c = &g.counts;
                    println!(
                        "{},{base},{dim},{},{},{},{},{},{}",
                        p.id,
                        g.key,
                        c.eligible,
                        c.ineligible,
                        c.undetermined,
                        opt(c.newly_eligible),
                        opt(c.newly_ineligible)
                    );
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Json {
        let mut v = serde_json::to_value(&sim)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("load_seconds".into(), load_seconds.into());
            m.insert("peak_memory_mib".into(), peak_memory_mib().into());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} people on {}: loaded in {:.2} s, rules evaluated in {:.1} ms, counted in {:.1} ms, peak memory {}",
        thousands(sim.rows as u64),
        sim.on,
        load_seconds,
        sim.evaluation_seconds * 1000.0,
        sim.counting_seconds * 1000.0,
        peak_memory_mib().map_or_else(|| "unknown".to_owned(), |m| format!("{m:.0} MiB"))
    );
    println!();
    println!(
        "{:<44} {:>11} {:>11} {:>13} {:>11} {:>11}",
        "programme", "eligible", "ineligible", "undetermined", "+eligible", "-eligible"
    );
    for p in &sim.programmes {
        let c = &p.counts;
        let name = match &p.baseline {
            Some(b) => format!("{} (vs {b})", p.id),
            None => p.id.clone(),
        };
        let d = |x: Option<u64>| x.map_or_else(|| "".to_owned(), thousands);
        println!(
            "{name:<44} {:>11} {:>11} {:>13} {:>11} {:>11}",
            thousands(c.eligible),
            thousands(c.ineligible),
            thousands(c.undetermined),
            d(c.newly_eligible),
            d(c.newly_ineligible)
        );
    }
    for p in &sim.programmes {
        if !(a.breakdowns || p.baseline.is_some()) {
            continue;
        }
        println!();
        println!("{}:", p.id);
        for (dim, groups) in &p.breakdowns {
            let parts: Vec<String> = groups
                .iter()
                .map(|g| match g.counts.newly_eligible {
                    Some(n) => format!(
                        "{} {}/{}/{} (+{})",
                        g.key,
                        thousands(g.counts.eligible),
                        thousands(g.counts.ineligible),
                        thousands(g.counts.undetermined),
                        thousands(n)
                    ),
                    None => format!(
                        "{} {}/{}/{}",
                        g.key,
                        thousands(g.counts.eligible),
                        thousands(g.counts.ineligible),
                        thousands(g.counts.undetermined)
                    ),
                })
                .collect();
            println!(
                "  by {dim} (eligible/ineligible/undetermined{}): {}",
                if p.baseline.is_some() {
                    ", +newly eligible"
                } else {
                    ""
                },
                parts.join("; ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! The programme language: `Sets::parse` and `parse_file` on arbitrary text, then, for what
//! loads, the row-by-row evaluator (`decide`) against the column kernels (`compile_programme`,
//! `evaluate`) on a fixed set of people and dates.
//!
//! Invariants:
//! - loading never panics; a `LoadError` names the file given and a position (line 0 for the
//!   whole file, else line and column from 1), with a message;
//! - a sets file that loads has a source for every set and every value of the set's type;
//! - a programme that loads decides every person without panicking, with one trace entry per
//!   rule, `missing` only when undetermined, and a result for every rule;
//! - where the programme compiles to column kernels, the columnar outcome of every person
//!   equals `decide`'s, over `FactColumns` and over a `Caseload` alike, and so do the signal
//!   counts;
//! - a reform of a shipped programme is applied with `with_reform` and checked the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refuge_core::facts::Facts;
use refuge_rules::caseload::Caseload;
use refuge_rules::columnar::{FactColumns, compile_programme, evaluate};
use refuge_rules::expr::Type;
use refuge_rules::programme::{
    LoadError, Loaded, Outcome, Programme, RuleKind, Sets, decide, parse_file,
};
use std::path::Path;
use std::sync::OnceLock;
use time::Date;
use time::macros::date;

const SETS_TOML: &str = include_str!("../../programmes/sets.toml");

/// The shipped programmes, for reforms to apply to.
const SHIPPED: &[(&str, &str)] = &[
    (
        "de-admission-22",
        include_str!("../../programmes/de-admission-22.toml"),
    ),
    (
        "eu-humanitarian-visa",
        include_str!("../../programmes/eu-humanitarian-visa.toml"),
    ),
    (
        "eu-reception-programme",
        include_str!("../../programmes/eu-reception-programme.toml"),
    ),
    (
        "nl-moratorium",
        include_str!("../../programmes/nl-moratorium.toml"),
    ),
    (
        "nl-stay-extension",
        include_str!("../../programmes/nl-stay-extension.toml"),
    ),
    (
        "refoulement-risk",
        include_str!("../../programmes/refoulement-risk.toml"),
    ),
    (
        "ua-objector-protection",
        include_str!("../../programmes/ua-objector-protection.toml"),
    ),
    (
        "unhcr-gip10-asylum",
        include_str!("../../programmes/unhcr-gip10-asylum.toml"),
    ),
];

/// Evaluation dates: an ordinary day, a leap day, the day after a 28 February.
const DATES: [Date; 3] = [
    date!(2026 - 11 - 22),
    date!(2028 - 02 - 29),
    date!(2027 - 03 - 01),
];

struct Fixture {
    sets: Sets,
    programmes: Vec<Programme>,
    people: Vec<Facts>,
    columns: FactColumns,
    caseload: Caseload,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sets =
            Sets::parse(Path::new("sets.toml"), SETS_TOML).expect("the shipped sets.toml loads");
        let programmes = SHIPPED
            .iter()
            .map(
                |(name, text)| match parse_file(Path::new(name), text, &sets) {
                    Ok(Loaded::Programme(p)) => p,
                    _ => panic!("the shipped programme {name} loads"),
                },
            )
            .collect();
        // Someone with nothing known, then invented people from the synthetic generator.
        let synth = refuge_rules::synth::synth(48, 7, DATES[0]);
        let mut people = vec![Facts::default()];
        people.extend((0..synth.len()).filter_map(|i| synth.row(i)));
        let columns = FactColumns::new(&people);
        let caseload = people.iter().collect();
        Fixture {
            sets,
            programmes,
            people,
            columns,
            caseload,
        }
    })
}

fn check_error(e: &LoadError, path: &Path) {
    assert_eq!(e.file, path, "the error names the file given");
    assert!(
        !e.message.trim().is_empty(),
        "an error says what is wrong: {e:?}"
    );
    if e.line > 0 {
        assert!(e.column >= 1, "columns count from 1: {e:?}");
    }
    let shown = e.to_string();
    assert!(shown.starts_with(&path.display().to_string()), "{shown}");
}

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Eligible => 0,
        Outcome::Ineligible => 1,
        Outcome::Undetermined => 2,
    }
}

/// `decide` on every person and date, and the column kernels against it.
fn evaluate_programme(p: &Programme) {
    let fx = fixture();
    let signal_rules: Vec<&str> = p
        .rules
        .iter()
        .filter(|r| r.kind == RuleKind::Signal)
        .map(|r| r.id.as_str())
        .collect();
    for on in DATES {
        let decisions: Vec<_> = fx.people.iter().map(|f| decide(p, f, on, "en")).collect();
        for d in &decisions {
            assert_eq!(d.trace.len(), p.rules.len(), "one trace entry per rule");
            assert!(
                d.outcome == Outcome::Undetermined || d.missing.is_empty(),
                "missing facts are named only for an undetermined outcome"
            );
            for t in &d.trace {
                assert!(
                    matches!(t.result, "pass" | "fail" | "unknown"),
                    "{}",
                    t.result
                );
            }
            let any_fail = d
                .trace
                .iter()
                .any(|t| t.kind != RuleKind::Signal && t.result == "fail");
            assert_eq!(
                any_fail,
                d.outcome == Outcome::Ineligible,
                "ineligible exactly when a rule fails"
            );
        }
        // Russian and German texts are there too.
        let _ = decide(p, &fx.people[fx.people.len() - 1], on, "ru");
        let Ok(compiled) = compile_programme(p, on) else {
            // Some expressions have no column kernel (`simulate` reports them); `decide`
            // still works, as checked above.
            continue;
        };
        let by_facts = evaluate(&compiled, &fx.columns, 1);
        let by_caseload = evaluate(&compiled, &fx.caseload, 1);
        assert_eq!(
            by_facts, by_caseload,
            "FactColumns and Caseload give the same outcomes"
        );
        assert_eq!(by_facts.rows, fx.people.len());
        for (i, d) in decisions.iter().enumerate() {
            assert_eq!(
                by_facts.of(i),
                outcome_code(d.outcome),
                "programme {} on {on}: person {i} ({:?}): columnar {} but decide {:?}; trace {:?}",
                p.id,
                fx.people[i],
                by_facts.of(i),
                d.outcome,
                d.trace
                    .iter()
                    .map(|t| (t.id.as_str(), t.result))
                    .collect::<Vec<_>>()
            );
        }
        let want: Vec<u64> = signal_rules
            .iter()
            .map(|id| {
                decisions
                    .iter()
                    .filter(|d| d.signals.iter().any(|s| s == id))
                    .count() as u64
            })
            .collect();
        assert_eq!(
            by_facts.signals, want,
            "signal counts of programme {} on {on}",
            p.id
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let text = String::from_utf8_lossy(data);

    // The input as a sets file.
    let sets_path = Path::new("fuzz/sets.toml");
    match Sets::parse(sets_path, &text) {
        Ok(sets) => {
            assert!(
                sets.sets.keys().eq(sets.sources.keys()),
                "every set has a source"
            );
            for (name, set) in &sets.sets {
                assert!(
                    matches!(set.ty, Type::Country | Type::Language | Type::Enum(_)),
                    "set {name}: type {:?}",
                    set.ty
                );
            }
        }
        Err(e) => check_error(&e, sets_path),
    }

    // The input as a programme or reform file.
    let path = Path::new("fuzz/programme.toml");
    match parse_file(path, &text, &fx.sets) {
        Ok(Loaded::Programme(p)) => {
            assert!(!p.id.is_empty());
            assert!(p.reforms.is_empty(), "a programme as loaded has no reforms");
            evaluate_programme(&p);
        }
        Ok(Loaded::Reform(r)) => {
            if let Some(base) = fx.programmes.iter().find(|p| p.id == r.reform_of) {
                if let Ok(reformed) = base.with_reform(&r) {
                    assert_eq!(reformed.reforms, vec![r.id.clone()]);
                    evaluate_programme(&reformed);
                }
            } else {
                assert!(
                    fx.programmes[0].with_reform(&r).is_err(),
                    "a reform applies only to its programme"
                );
            }
        }
        Err(e) => check_error(&e, path),
    }
});

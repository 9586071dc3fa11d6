//! The columnar engine agrees with the row-by-row decision on every shipped programme and
//! reform, person by person, for a synthetic caseload and for the same people with facts
//! knocked out at random (so that every rule meets unknowns).

use refuge_core::facts::Facts;
use refuge_rules::columnar::{Columns, FactColumns, compile_programme, evaluate, evaluate_all};
use refuge_rules::library::Library;
use refuge_rules::programme::{Outcome, Programme, RuleKind, decide};
use refuge_rules::synth::synth;
use std::path::Path;
use time::macros::date;

fn shipped() -> Vec<Programme> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programmes");
    let lib = match Library::load(&dir) {
        Ok(l) => l,
        Err(e) => panic!("{e:?}"),
    };
    let mut all: Vec<Programme> = lib.programmes.values().cloned().collect();
    for r in lib.reforms.values() {
        all.push(lib.programmes[&r.reform_of].with_reform(r).unwrap());
    }
    assert!(all.len() >= 9, "{} programmes", all.len());
    all
}

/// The same people with each fact dropped with probability 1/4 (deterministically).
fn with_holes(people: &[Facts]) -> Vec<Facts> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    people
        .iter()
        .map(|f| {
            let serde_json::Value::Object(mut m) = serde_json::to_value(f).unwrap() else {
                panic!("facts are an object")
            };
            m.retain(|_, _| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                !x.is_multiple_of(4)
            });
            serde_json::from_value(serde_json::Value::Object(m)).unwrap()
        })
        .collect()
}

fn check(programmes: &[Programme], cols: &dyn Columns, people: &[Facts], on: time::Date) {
    let compiled: Vec<_> = programmes
        .iter()
        .map(|p| compile_programme(p, on).unwrap())
        .collect();
    for threads in [1, 2, 3] {
        let together = evaluate_all(&compiled, cols, threads);
        assert_eq!(together.len(), programmes.len());
        for ((p, c), out) in programmes.iter().zip(&compiled).zip(&together) {
            let alone = evaluate(c, cols, threads);
            assert_eq!(&alone, out, "{} alone and together", c.id);
            let signal_ids: Vec<&str> = p
                .rules
                .iter()
                .filter(|r| r.kind == RuleKind::Signal)
                .map(|r| r.id.as_str())
                .collect();
            let mut signals = vec![0u64; signal_ids.len()];
            let mut seen = [0u64; 3];
            for (i, f) in people.iter().enumerate() {
                let d = decide(p, f, on, "en");
                let want = match d.outcome {
                    Outcome::Eligible => 0,
                    Outcome::Ineligible => 1,
                    Outcome::Undetermined => 2,
                };
                assert_eq!(out.of(i), want, "{} row {i} on {on}: {f:?}", c.id);
                seen[usize::from(want)] += 1;
                for (s, id) in signal_ids.iter().enumerate() {
                    signals[s] += u64::from(d.signals.iter().any(|x| x == id));
                }
            }
            assert_eq!(out.signals, signals, "{} signals on {on}", c.id);
            assert_eq!(out.counts(), (seen[0], seen[1], seen[2]));
        }
    }
}

#[test]
fn columnar_agrees_with_decide_on_every_shipped_programme() {
    let programmes = shipped();
    for on in [
        date!(2026 - 11 - 22),
        date!(2024 - 02 - 29),
        date!(2028 - 03 - 01),
    ] {
        let caseload = synth(6_000, 7, on);
        let people: Vec<Facts> = (0..caseload.rows())
            .map(|i| caseload.row(i).unwrap())
            .collect();
        check(&programmes, &caseload, &people, on);
        let holed = with_holes(&people);
        check(&programmes, &FactColumns::new(&holed), &holed, on);
    }
}

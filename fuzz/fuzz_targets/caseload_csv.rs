//! The caseload CSV reader (`refuge simulate --caseload FILE.csv`): `Caseload::read_csv`, the
//! streaming reader the CLI uses through `Caseload::from_path`, and `Caseload::from_csv_bytes`,
//! on arbitrary bytes.
//!
//! Invariants:
//! - errors are errors (`CaseloadError`), never panics, and are input errors;
//! - both readers agree: the same caseload, or the same error;
//! - what loads has every column as long as the row count, one row per non-blank line after
//!   the header (every line when there is only one column: a blank line is then a person with
//!   nothing known), and `row(i)` exactly for `i < len`;
//! - written back as CSV it reads back the same (a known empty set as unknown, as
//!   documented), and writing that again gives the same bytes; `.rcl` and JSON Lines round
//!   trips are exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refuge_core::facts::{Fact, FactValue, Facts};
use refuge_rules::caseload::Caseload;

/// `facts` with every known empty set made unknown (CSV has no form for a known empty set).
fn as_csv_sees_it(facts: &Facts) -> Facts {
    let mut out = facts.clone();
    for fact in Fact::ALL {
        let empty = match facts.get(*fact) {
            Some(FactValue::ObjectionGrounds(s)) => s.is_empty(),
            Some(FactValue::Documents(s)) => s.is_empty(),
            Some(FactValue::Languages(s)) => s.is_empty(),
            _ => false,
        };
        if empty {
            out.set(*fact, None)
                .expect("unknown is valid for every fact");
        }
    }
    out
}

/// The rows a CSV text should give, counted independently of the reader: one per line after
/// the header; blank lines are skipped when there are several columns.
fn expected_rows(data: &[u8]) -> usize {
    let text = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut lines = text.split(|b| *b == b'\n');
    let header = lines.next().unwrap_or_default();
    // A header that loaded holds fact names only, so a comma always separates two columns.
    let several = header.contains(&b',');
    let mut body: Vec<&[u8]> = lines.collect();
    if body.last().is_some_and(|l| l.is_empty()) {
        body.pop(); // the line end of the last line
    }
    body.iter()
        .filter(|l| !several || !(l.is_empty() || **l == b"\r"))
        .count()
}

fn csv_bytes(c: &Caseload) -> Vec<u8> {
    let mut out = Vec::new();
    c.write_csv(&mut out, &|_| {}).expect("write CSV to memory");
    out
}

fuzz_target!(|data: &[u8]| {
    let streamed = Caseload::read_csv(data, Some(data.len() as u64), &|_| {});
    let in_memory = Caseload::from_csv_bytes(data, &|_| {});
    let c = match (streamed, in_memory) {
        (Ok(a), Ok(b)) => {
            assert!(
                a == b,
                "read_csv and from_csv_bytes give different caseloads"
            );
            a
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "the two readers report different errors"
            );
            assert!(a.is_input_error(), "a bad file is the user's to fix: {a}");
            assert!(!a.to_string().is_empty());
            return;
        }
        (a, b) => panic!(
            "read_csv says {:?}, from_csv_bytes says {:?}",
            a.map(|c| c.len()),
            b.map(|c| c.len())
        ),
    };

    let n = c.len();
    assert_eq!(n, expected_rows(data), "one person per line");
    for fact in Fact::ALL {
        assert_eq!(c.column(*fact).len(), n, "column {fact} has {n} rows");
        assert!(c.known(*fact) <= n);
    }
    assert_eq!(c.languages().len(), n);
    assert!(c.row(n).is_none(), "no row past the end");
    let rows: Vec<Facts> = (0..n)
        .map(|i| c.row(i).unwrap_or_else(|| panic!("row {i} of {n}")))
        .collect();

    // CSV round trip.
    let written = csv_bytes(&c);
    let back = Caseload::from_csv_bytes(&written, &|_| {})
        .unwrap_or_else(|e| panic!("its own CSV does not read back: {e}"));
    assert_eq!(back.len(), n, "CSV round trip: row count");
    for (i, want) in rows.iter().enumerate() {
        assert_eq!(
            back.row(i),
            Some(as_csv_sees_it(want)),
            "CSV round trip: row {i}"
        );
    }
    assert_eq!(
        csv_bytes(&back),
        written,
        "writing CSV is stable after one round trip"
    );

    // The other formats keep everything.
    let mut rcl = Vec::new();
    c.write_binary(&mut rcl, &|_| {}).expect("write .rcl");
    let back = Caseload::from_binary_bytes(&rcl).unwrap_or_else(|e| panic!("its own .rcl: {e}"));
    assert!(back == c, ".rcl round trip");
    let mut jsonl = Vec::new();
    c.write_jsonl(&mut jsonl, &|_| {}).expect("write .jsonl");
    let back = Caseload::from_jsonl_bytes(&jsonl, &|_| {})
        .unwrap_or_else(|e| panic!("its own .jsonl: {e}"));
    assert!(back == c, "JSON Lines round trip");
});

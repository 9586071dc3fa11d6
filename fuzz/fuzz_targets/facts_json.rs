//! Facts and persons as JSON: `serde_json::from_slice::<Facts>` and `::<Person>` on arbitrary
//! bytes.
//!
//! Invariants, for what parses:
//! - JSON round trip: serialise, parse again, get the same value (facts and persons);
//! - the facts agree with the per-fact reader `FactValue::from_json` on the same JSON object;
//! - each known fact's text form (a CSV cell) reads back as the same value (an empty set as
//!   unknown, as documented);
//! - a caseload of this one person gives the same facts back (`Caseload::push` / `row`), and so
//!   do its `.rcl` and JSON Lines forms;
//! - a person's labels are trimmed, non-empty, at most 200 characters, without control
//!   characters, and its `Debug` form shows none of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refuge_core::facts::{Fact, FactValue, Facts};
use refuge_core::person::Person;
use refuge_core::text::Label;
use refuge_rules::caseload::Caseload;

fn is_empty_set(v: &FactValue) -> bool {
    match v {
        FactValue::ObjectionGrounds(s) => s.is_empty(),
        FactValue::Documents(s) => s.is_empty(),
        FactValue::Languages(s) => s.is_empty(),
        _ => false,
    }
}

fn check_facts(data: &[u8], facts: &Facts) {
    // JSON round trip.
    let json = serde_json::to_vec(facts).expect("facts serialise");
    let again: Facts = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "serialised facts do not parse: {e}: {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        &again,
        facts,
        "JSON round trip: {}",
        String::from_utf8_lossy(&json)
    );

    // The per-fact reader agrees with the whole-object reader.
    let value: serde_json::Value =
        serde_json::from_slice(data).expect("input that parses as facts is JSON");
    let object = value
        .as_object()
        .expect("facts are read from an object only");
    for fact in Fact::ALL {
        let v = object.get(fact.name()).unwrap_or(&serde_json::Value::Null);
        match FactValue::from_json(*fact, v) {
            Ok(got) => assert_eq!(got, facts.get(*fact), "{fact}: from_json disagrees"),
            Err(e) => panic!("{fact}: from_json rejects what Facts accepted: {e}"),
        }
    }

    // The text form (CSV cells) of every known value.
    for fact in Fact::ALL {
        if let Some(v) = facts.get(*fact) {
            let text = v.to_string();
            let back = FactValue::parse(*fact, &text)
                .unwrap_or_else(|e| panic!("{fact}: its own text {text:?} does not parse: {e}"));
            let want = if is_empty_set(&v) { None } else { Some(v) };
            assert_eq!(back, want, "{fact}: text {text:?} reads back differently");
        }
    }

    // The columnar form, and the files written from it.
    let caseload: Caseload = std::iter::once(facts).collect();
    assert_eq!(caseload.len(), 1);
    assert_eq!(caseload.row(0).as_ref(), Some(facts), "caseload row 0");
    assert!(caseload.row(1).is_none());
    for fact in Fact::ALL {
        assert_eq!(
            caseload.get(0, *fact),
            facts.get(*fact),
            "{fact}: caseload get"
        );
        assert_eq!(
            caseload.known(*fact),
            usize::from(facts.is_known(*fact)),
            "{fact}: known"
        );
    }
    let mut rcl = Vec::new();
    caseload
        .write_binary(&mut rcl, &|_| {})
        .expect("write .rcl");
    let read = Caseload::from_binary_bytes(&rcl).expect("its own .rcl reads back");
    assert!(read == caseload, ".rcl round trip");
    let mut jsonl = Vec::new();
    caseload
        .write_jsonl(&mut jsonl, &|_| {})
        .expect("write .jsonl");
    let read = Caseload::from_jsonl_bytes(&jsonl, &|_| {}).expect("its own .jsonl reads back");
    assert!(read == caseload, "JSON Lines round trip");
}

fn check_label(l: &Label) {
    let s = l.as_str();
    assert!(!s.is_empty());
    assert_eq!(s, s.trim(), "labels are trimmed");
    assert!(s.chars().count() <= Label::MAX);
    assert!(
        !s.chars().any(char::is_control),
        "no control characters in a label"
    );
}

fn check_person(p: &Person) {
    let json = serde_json::to_vec(p).expect("persons serialise");
    let again: Person = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "serialised person does not parse: {e}: {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert!(
        &again == p,
        "person JSON round trip: {}",
        String::from_utf8_lossy(&json)
    );
    assert!(
        p.pseudonym.is_some() || !p.names.is_empty(),
        "a person needs a pseudonym or a name"
    );
    let labels = p
        .pseudonym
        .iter()
        .chain(p.names.iter().map(|n| &n.value))
        .chain(p.documents.iter().map(|d| &d.number))
        .chain(p.contacts.iter().map(|c| &c.value));
    let debug = format!("{p:?}");
    for l in labels {
        check_label(l);
        // Only labels long enough not to occur by chance in "Person { names: 1, .. }".
        if l.as_str().chars().count() >= 12 {
            assert!(!debug.contains(l.as_str()), "Debug shows personal data");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(facts) = serde_json::from_slice::<Facts>(data) {
        check_facts(data, &facts);
    }
    if let Ok(person) = serde_json::from_slice::<Person>(data) {
        check_person(&person);
    }
});

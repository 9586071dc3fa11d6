//! Every user-facing string exists in all five languages: each language has exactly the
//! English message ids, every id the code and templates use exists, and every placeable of
//! an English message is used by its translations.

use refuge_core::application::ApplicationState;
use refuge_core::event::EventKind;
use refuge_core::facts::Fact;
use refuge_web::i18n::{I18n, LANGS, SOURCES};
use refuge_web::questions::{self, COUNTRIES, LANGUAGE_CHOICES};
use std::collections::BTreeSet;
use std::path::Path;

fn hyphen(s: &str) -> String {
    s.replace('_', "-")
}

/// Message ids the code builds from parts.
fn dynamic_keys() -> BTreeSet<String> {
    let mut k = BTreeSet::new();
    for f in Fact::ALL {
        k.insert(format!("q-{}", hyphen(f.name())));
    }
    for q in questions::all() {
        for v in questions::values(q.fact) {
            k.insert(format!("v-{}-{}", hyphen(q.fact.name()), hyphen(v)));
        }
    }
    for c in COUNTRIES {
        k.insert(format!("country-{c}"));
    }
    for l in LANGUAGE_CHOICES {
        k.insert(format!("language-{l}"));
    }
    for s in ApplicationState::ALL {
        k.insert(format!("state-{}", hyphen(s.as_str())));
    }
    for e in EventKind::ALL {
        k.insert(format!("event-{}", hyphen(e.as_str())));
    }
    for o in ["eligible", "ineligible", "undetermined"] {
        k.insert(format!("outcome-{o}"));
    }
    for r in ["pass", "fail", "unknown"] {
        k.insert(format!("rule-result-{r}"));
    }
    for m in ["info-request", "info-answer", "note"] {
        k.insert(format!("message-{m}"));
    }
    for d in refuge_core::case::DeadlineKind::ALL {
        k.insert(format!("deadline-{}", hyphen(d.as_str())));
    }
    for r in ["pending", "accepted", "declined"] {
        k.insert(format!("referral-{r}"));
    }
    for r in refuge_core::org::Role::ALL {
        k.insert(format!("role-{}", hyphen(r.as_str())));
    }
    for kind in ["ngo", "embassy", "authority"] {
        k.insert(format!("org-kind-{kind}"));
    }
    for n in ["queue", "deadlines", "referrals", "admin"] {
        k.insert(format!("nav-{n}"));
    }
    for s in refuge_web::questions::SECTIONS {
        k.insert(s.key.to_owned());
    }
    k
}

/// Message ids written literally in the code: the string after `t.get("`, `t.arg("`,
/// `t.args("` and error keys `"error-…"` / `"done-…"`.
fn literal_keys() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut keys = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for marker in ["t.get(\"", "t.arg(\"", "t.args(\"", "\"error-", "\"done-"] {
            let mut rest = text.as_str();
            while let Some(i) = rest.find(marker) {
                rest = &rest[i + marker.len()..];
                let prefix = if marker.starts_with("\"error") {
                    "error-"
                } else if marker.starts_with("\"done") {
                    "done-"
                } else {
                    ""
                };
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(0);
                if rest[end..].starts_with('"') && end > 0 {
                    keys.insert(format!("{prefix}{}", &rest[..end]));
                }
            }
        }
    }
    keys
}

fn placeables(value: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = value;
    while let Some(i) = rest.find("{ $") {
        rest = &rest[i + 3..];
        let end = rest.find([' ', '}']).unwrap_or(rest.len());
        out.insert(rest[..end].to_owned());
    }
    out
}

fn messages(src: &str) -> Vec<(String, String)> {
    src.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && l.contains(" = "))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn every_language_has_every_message() {
    let i18n = I18n::embedded().expect("every translation file parses");
    let en = i18n.keys("en");
    assert!(en.len() > 150, "{} English messages", en.len());
    let mut problems = Vec::new();
    for lang in LANGS {
        let keys = i18n.keys(lang);
        for k in en.difference(&keys) {
            problems.push(format!("{lang}: missing {k}"));
        }
        for k in keys.difference(&en) {
            problems.push(format!("{lang}: {k} is not an English message"));
        }
    }
    for k in dynamic_keys().union(&literal_keys()) {
        if !en.contains(k) {
            problems.push(format!("en: the code uses {k}, which is not defined"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn translations_keep_the_placeables() {
    let en: Vec<(String, String)> = messages(SOURCES[0].1);
    let mut problems = Vec::new();
    for (lang, src) in SOURCES.iter().skip(1) {
        let theirs: std::collections::BTreeMap<String, String> =
            messages(src).into_iter().collect();
        for (k, v) in &en {
            let want = placeables(v);
            let got = theirs.get(k).map(|t| placeables(t)).unwrap_or_default();
            if !want.is_subset(&got) {
                problems.push(format!("{lang}: {k} lacks {:?}", want.difference(&got)));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_literal_key_scanner_finds_keys() {
    let keys = literal_keys();
    for k in ["portal-title", "error-csrf", "done-decide", "queue-total"] {
        assert!(keys.contains(k), "{k} not found by the scanner");
    }
}

//! `refuge check`, `programmes` and `simulate` over the shipped programmes.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn programmes() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../programmes")
}

fn refuge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refuge"))
        .arg("--programmes")
        .arg(programmes())
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = refuge(&[args, &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn facts_file(dir: &tempfile::TempDir, name: &str, birth: Option<&str>) -> String {
    let mut f = serde_json::json!({
        "nationality": "RU", "sex": "male", "refusal": "evaded_callup", "summons_received": true,
        "current_country": "NL", "stay_status": "asylum_seeker"
    });
    if let Some(b) = birth {
        f["birth_date"] = b.into();
    }
    let p = dir.path().join(name);
    std::fs::write(&p, f.to_string()).unwrap();
    p.to_string_lossy().into_owned()
}

fn result<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["programme"] == id)
        .unwrap()
}

#[test]
fn a_29_year_old_is_outside_the_moratorium_and_inside_the_reform() {
    let dir = tempfile::tempdir().unwrap();
    let with = facts_file(&dir, "man29.json", Some("1997-06-10"));
    let v = json(&[
        "check",
        "--facts",
        &with,
        "--programme",
        "nl-moratorium",
        "--programme",
        "nl-moratorium-35",
        "--on",
        "2026-11-22",
    ]);
    let base = &v["results"][0];
    assert_eq!(base["outcome"], "ineligible");
    let age = base["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "age")
        .unwrap();
    assert_eq!(age["result"], "fail");
    assert_eq!(age["values"]["age"], "29");
    assert!(!age["basis"].as_str().unwrap().is_empty());
    assert_eq!(v["results"][1]["outcome"], "eligible");

    let without = facts_file(&dir, "man.json", None);
    let v = json(&[
        "check",
        "--facts",
        &without,
        "--programme",
        "nl-moratorium",
        "--programme",
        "nl-moratorium-35",
        "--on",
        "2026-11-22",
    ]);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["outcome"], "undetermined", "{r}");
        assert_eq!(r["missing"], serde_json::json!(["birth_date"]));
    }
    // every shipped programme answers, with explanations in every language
    for lang in ["en", "ru", "uk", "de", "nl"] {
        let v = json(&[
            "check",
            "--facts",
            &with,
            "--on",
            "2026-11-22",
            "--lang",
            lang,
        ]);
        assert!(v["results"].as_array().unwrap().len() >= 8);
        assert!(
            !result(&v, "nl-moratorium")["trace"][0]["explanation"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn programmes_lint_runs_every_scenario_and_catches_typos_with_position() {
    let out = refuge(&["programmes", "lint"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" 0 failed") && stdout.contains("0 rules never decisive"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(programmes().join("sets.toml"), dir.path().join("sets.toml")).unwrap();
    let text = std::fs::read_to_string(programmes().join("nl-moratorium.toml")).unwrap();
    let (line_no, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("nationality =="))
        .unwrap();
    let col = line.find("nationality ==").unwrap() + 1;
    let bad = dir.path().join("nl-moratorium.toml");
    std::fs::write(&bad, text.replacen("nationality ==", "nationalty ==", 1)).unwrap();
    let out = refuge(&["programmes", "lint", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("nl-moratorium.toml:{}:{}:", line_no + 1, col);
    assert!(err.contains(&want), "{err} lacks {want}");
    assert!(
        err.contains("unknown fact \"nationalty\" (did you mean \"nationality\"?)"),
        "{err}"
    );
}

#[test]
fn unknown_programmes_and_bad_dates_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = facts_file(&dir, "f.json", Some("1990-01-01"));
    let out = refuge(&["check", "--facts", &f, "--programme", "nl-moratorim"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean nl-moratorium"));
    let out = refuge(&["check", "--facts", &f, "--on", "2026-02-30"]);
    assert_eq!(out.status.code(), Some(2));
}

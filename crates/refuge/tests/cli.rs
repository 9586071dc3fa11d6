//! The `refuge` binary, end to end, as an operator uses it.

use serde_json::Value;
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PERSON: &str = r#"{"pseudonym": "Sasha",
  "names": [{"value": "Александр Сергеевич Кузнецов"}, {"script": "latin", "value": "Aleksandr Sergeyevich Kuznetsov"}],
  "birth_date": "1994-05-02",
  "documents": [{"kind": "international_passport", "number": "75 1234567", "issuer": "RU"}],
  "contacts": [{"kind": "signal", "value": "+7 900 123 45 67"}]}"#;

const FACTS: &str = r#"{"nationality": "RU", "sex": "male", "birth_date": "1994-05-02",
  "service_status": "mobilised", "refusal": "deserted", "refusal_stage": "in_service",
  "current_country": "FR", "stay_status": "asylum_seeker", "deportation_order": "to_third_country",
  "deportation_destination": "HR", "languages": ["ru", "en"]}"#;

struct Instance {
    dir: tempfile::TempDir,
}

impl Instance {
    fn new() -> Self {
        let i = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        i.ok(&["init", "--org-name", "Connection e.V. (test)"]);
        i
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_refuge"))
            .arg("--data")
            .arg(self.data())
            .args(args)
            .env_remove("REFUGE_PASSPHRASE")
            .env_remove("REFUGE_DATABASE_URL")
            .env_remove("REFUGE_KEY_FILE")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Run, expect exit 2, return stderr.
    fn bad(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn new_case(&self) -> String {
        let p = self.file("person.json", PERSON);
        let f = self.file("facts.json", FACTS);
        let v = self.json(&[
            "case",
            "new",
            "--person",
            p.to_str().unwrap(),
            "--facts",
            f.to_str().unwrap(),
        ]);
        v["case"]["id"].as_str().unwrap().to_owned()
    }

    fn events(&self) -> u64 {
        self.json(&["audit", "verify"])["events"].as_u64().unwrap()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_no_trace(dir: &Path, words: &[&str]) {
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        files_under(dir)
    };
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for w in words {
            for needle in [
                w.as_bytes().to_vec(),
                w.to_lowercase().into_bytes(),
                w.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|x| x == needle.as_slice()),
                    "{} contains {w}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn a_new_case_leaves_no_trace_of_the_name() {
    let i = Instance::new();
    let id = i.new_case();
    let shown = i.ok(&["case", "show", &id, "--reveal-identity"]);
    assert!(
        shown.contains("Кузнецов"),
        "the identity is readable with the key"
    );
    assert_no_trace(
        &i.data(),
        &["Кузнецов", "Kuznetsov", "Aleksandr", "Александр", "1234567"],
    );
    let mode = std::fs::metadata(i.data().join("instance.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(i.data()).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    // the reveal was recorded
    let v = i.json(&["case", "show", &id, "--events"]);
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["case_created", "identity_revealed"]);
    assert!(v["identity"].is_null());
}

#[test]
fn bad_input_exits_2_naming_the_fault_and_writes_nothing() {
    let i = Instance::new();
    let id = i.new_case();
    let before = i.events();
    let person = i.file("p.json", PERSON);
    let p = person.to_str().unwrap();
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "malformed.json",
            r#"{"nationality": "RU""#,
            vec!["malformed.json", "line 1"],
        ),
        (
            "typo.json",
            "{\n  \"nationalty\": \"RU\"\n}",
            vec![
                "typo.json",
                "unknown fact \"nationalty\"",
                "did you mean \"nationality\"",
                "line 2",
            ],
        ),
        (
            "enum.json",
            r#"{"refusal": "deserter"}"#,
            vec!["fact \"refusal\"", "deserted", "found \"deserter\""],
        ),
        (
            "country.json",
            r#"{"current_country": "Georgia"}"#,
            vec!["current_country", "ISO 3166-1"],
        ),
        (
            "date.json",
            r#"{"birth_date": "1990-02-30"}"#,
            vec!["birth_date", "YYYY-MM-DD"],
        ),
    ];
    for (name, content, expect) in &cases {
        let f = i.file(name, content);
        let err = i.bad(&["case", "new", "--person", p, "--facts", f.to_str().unwrap()]);
        for e in expect {
            assert!(err.contains(e), "{name}: {err:?} lacks {e:?}");
        }
        let err = i.bad(&[
            "case",
            "facts",
            &id,
            "--facts",
            f.to_str().unwrap(),
            "--expect-version",
            "1",
        ]);
        assert!(err.contains(name), "{err}");
    }
    let bad_person = i.file("bp.json", r#"{"pseudonym": "x", "nmes": []}"#);
    let facts = i.file("f.json", FACTS);
    let err = i.bad(&[
        "case",
        "new",
        "--person",
        bad_person.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
    ]);
    assert!(err.contains("unknown field `nmes`"), "{err}");
    let err = i.bad(&[
        "case",
        "new",
        "--person",
        "/nonexistent.json",
        "--facts",
        facts.to_str().unwrap(),
    ]);
    assert!(err.contains("/nonexistent.json"), "{err}");

    // version conflicts and illegal transitions
    i.ok(&[
        "case",
        "facts",
        &id,
        "--facts",
        facts.to_str().unwrap(),
        "--expect-version",
        "1",
    ]);
    let after_update = i.events();
    let err = i.bad(&[
        "case",
        "facts",
        &id,
        "--facts",
        facts.to_str().unwrap(),
        "--expect-version",
        "1",
    ]);
    assert!(
        err.contains("expected version 1") && err.contains("version 2"),
        "{err}"
    );
    let app = i.json(&[
        "application",
        "new",
        &id,
        "--programme",
        "eu-humanitarian-visa",
    ]);
    let app = app["application"]["id"].as_str().unwrap().to_owned();
    let after_app = i.events();
    let err = i.bad(&[
        "application",
        "move",
        &app,
        "--to",
        "granted",
        "--basis",
        "Art. 25",
        "--reason",
        "r",
    ]);
    assert!(err.contains("from draft to granted"), "{err}");
    let err = i.bad(&["application", "move", &app, "--to", "decided"]);
    assert!(err.contains("unknown state \"decided\""), "{err}");
    let err = i.bad(&[
        "application",
        "move",
        &app,
        "--to",
        "submitted",
        "--expect-version",
        "7",
    ]);
    assert!(err.contains("expected version 7"), "{err}");
    i.ok(&["application", "move", &app, "--to", "submitted"]);
    i.ok(&["application", "move", &app, "--to", "in_review"]);
    i.ok(&["application", "move", &app, "--to", "interview"]);
    let err = i.bad(&["application", "move", &app, "--to", "refused"]);
    assert!(err.contains("--basis"), "{err}");
    let err = i.bad(&["application", "new", &id, "--programme", "EU Visa"]);
    assert!(err.contains("programme id"), "{err}");
    let err = i.bad(&["case", "show", "RF-0000-0000-0000"]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(after_update, before + 1);
    assert_eq!(i.events(), after_app + 3, "refusals wrote nothing");

    // machine-readable errors
    let out = i.cmd(&["case", "show", "nope", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    let decided = i.json(&[
        "application",
        "move",
        &app,
        "--to",
        "granted",
        "--basis",
        "Regulation (EC) No 810/2009 Art. 25(1)(a)",
        "--reason",
        "Credible risk of prosecution",
    ]);
    assert_eq!(decided["application"]["state"], "granted");
    assert_eq!(decided["application"]["decision"]["decided_by"], "operator");
}

#[test]
fn usage_errors_and_missing_instances_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_refuge"))
        .args(["--data"])
        .arg(dir.path())
        .args(["case", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refuge init"));
    let out = Command::new(env!("CARGO_BIN_EXE_refuge"))
        .args(["case", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let i = Instance::new();
    let err = i.bad(&["init"]);
    assert!(
        err.contains("already exists") || err.contains("already initialised"),
        "{err}"
    );
}

async fn flip(db: &Path, org: &[u8], seq: i64, column: &str) -> Vec<u8> {
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let q =
        format!("SELECT CAST({column} AS BLOB) FROM events WHERE organisation_id = ? AND seq = ?");
    let orig: Vec<u8> = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
        .bind(org)
        .bind(seq)
        .fetch_one(&mut c)
        .await
        .unwrap();
    let mut bad = orig.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    set(&mut c, org, seq, column, bad).await;
    orig
}

async fn set(c: &mut sqlx::SqliteConnection, org: &[u8], seq: i64, column: &str, value: Vec<u8>) {
    let text = matches!(column, "actor" | "kind" | "meta");
    let q = format!(
        "UPDATE events SET {column} = {} WHERE organisation_id = ? AND seq = ?",
        if text { "CAST(? AS TEXT)" } else { "?" }
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(value)
        .bind(org)
        .bind(seq)
        .execute(&mut *c)
        .await
        .unwrap();
}

#[tokio::test]
async fn flipping_one_byte_of_any_event_fails_the_audit_naming_it() {
    let i = Instance::new();
    let id = i.new_case();
    let app = i.json(&["application", "new", &id, "--programme", "nl-moratorium"]);
    let app = app["application"]["id"].as_str().unwrap().to_owned();
    i.ok(&[
        "application",
        "move",
        &app,
        "--to",
        "submitted",
        "--reason",
        "sent",
    ]);
    i.ok(&["case", "show", &id, "--reveal-identity"]);
    let db = i.data().join("refuge.db");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let events: Vec<(Vec<u8>, i64, Vec<u8>)> =
        sqlx::query_as("SELECT organisation_id, seq, id FROM events ORDER BY organisation_id, seq")
            .fetch_all(&mut c)
            .await
            .unwrap();
    drop(c);
    assert!(events.len() >= 5);
    let mut checked = 0;
    for (org, seq, id) in &events {
        let id = uuid_text(id);
        for column in [
            "id",
            "at",
            "actor",
            "kind",
            "subject",
            "meta",
            "body_ct",
            "prev_hash",
            "hash",
        ] {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            let present: Option<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST({column} AS BLOB) FROM events WHERE organisation_id = ? AND seq = ?"
            )))
            .bind(org)
            .bind(seq)
            .fetch_one(&mut c)
            .await
            .unwrap();
            if present.is_none() {
                continue; // e.g. an event without a body
            }
            if column == "at" {
                sqlx::query("UPDATE events SET at = at + 1 WHERE organisation_id = ? AND seq = ?")
                    .bind(org)
                    .bind(seq)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            drop(c);
            let orig = if column == "at" {
                Vec::new()
            } else {
                flip(&db, org, *seq, column).await
            };
            let out = i.cmd(&["audit", "verify"]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(1),
                "flipping {column} of event #{seq} went unnoticed"
            );
            assert!(
                stdout.contains(&format!("event #{seq} ")) || stdout.contains(&id),
                "{column} #{seq}: {stdout}"
            );
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            if column == "at" {
                sqlx::query("UPDATE events SET at = at - 1 WHERE organisation_id = ? AND seq = ?")
                    .bind(org)
                    .bind(seq)
                    .execute(&mut c)
                    .await
                    .unwrap();
            } else {
                set(&mut c, org, *seq, column, orig).await;
            }
            drop(c);
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked}");
    i.ok(&["audit", "verify"]);
}

fn uuid_text(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[test]
fn backup_restores_into_a_clean_data_dir_and_postgres() {
    let i = Instance::new();
    let id = i.new_case();
    let backup = i.dir.path().join("backup.jsonl");
    let b = i.json(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(b["rows"].as_u64().unwrap() > 5);
    assert_no_trace(&backup, &["Кузнецов", "Kuznetsov", "Aleksandr"]);
    let key = i.data().join("instance.key");

    let target = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_refuge"))
            .arg("--data")
            .arg(target.path().join("data"))
            .arg("--key-file")
            .arg(&key)
            .args(extra)
            .args(args)
            .env_remove("REFUGE_PASSPHRASE")
            .output()
            .unwrap()
    };
    let out = run(&[], &["restore", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[], &["case", "show", &id, "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["case"]["facts"]["deportation_destination"], "HR");
    assert!(run(&[], &["audit", "verify"]).status.success());
    // a second restore into the same place is refused, exit 2
    assert_eq!(
        run(&[], &["restore", backup.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );

    // and onto PostgreSQL
    if let Some(url) = fresh_pg("restore") {
        let out = run(
            &["--database-url", &url],
            &["restore", backup.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(
            &["--database-url", &url],
            &["case", "show", &id, "--reveal-identity"],
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Кузнецов"));
        assert!(
            run(&["--database-url", &url], &["audit", "verify"])
                .status
                .success()
        );
    }
}

/// A new, empty PostgreSQL database for one test (`what` keeps tests running at the same time
/// apart), or `None` (skipped) when no server answers and none is required.
fn fresh_pg(what: &str) -> Option<String> {
    let admin = std::env::var("REFUGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let required = std::env::var("REFUGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match sqlx::PgConnection::connect(&admin).await {
            Ok(mut c) => {
                let name = format!("refuge_cli_{what}_{}", std::process::id());
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name}"
                )))
                .execute(&mut c)
                .await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
            }
            Err(e) if required => panic!("PostgreSQL required but unreachable: {e}"),
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL part: {e}");
                None
            }
        }
    })
}

#[test]
fn passphrase_instances_keep_no_key_file_and_refuse_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let run = |pass: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_refuge"))
            .arg("--data")
            .arg(dir.path().join("data"))
            .args(args)
            .env("REFUGE_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    assert!(
        run("correct horse battery staple", &["init"])
            .status
            .success()
    );
    assert!(!dir.path().join("data/instance.key").exists());
    assert!(
        run("correct horse battery staple", &["case", "list"])
            .status
            .success()
    );
    let out = run("wrong", &["case", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
}

/// `refuge person erase` on one instance (`extra` selects its database): refused without
/// --yes, then the person is unreadable for good while the audit still verifies.
fn person_erase_on(dir: &Path, extra: &[&str]) {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_refuge"))
            .arg("--data")
            .arg(dir.join("data"))
            .args(extra)
            .args(args)
            .env_remove("REFUGE_PASSPHRASE")
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["init"]);
    std::fs::write(dir.join("person.json"), PERSON).unwrap();
    std::fs::write(dir.join("facts.json"), FACTS).unwrap();
    let (p, f) = (dir.join("person.json"), dir.join("facts.json"));
    let new = |_: ()| -> Value {
        serde_json::from_str(&ok(&[
            "case",
            "new",
            "--person",
            p.to_str().unwrap(),
            "--facts",
            f.to_str().unwrap(),
            "--format",
            "json",
        ]))
        .unwrap()
    };
    let first = new(());
    let second = new(());
    let reference = first["case"]["reference"].as_str().unwrap().to_owned();
    let person = first["case"]["person_id"].as_str().unwrap().to_owned();

    // Without --yes nothing happens (exit 2), nor with an id that is none.
    let out = run(&["person", "erase", &reference]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(ok(&["case", "show", &reference, "--reveal-identity"]).contains("Кузнецов"));
    let out = run(&["person", "erase", "not-an-id", "--yes"]);
    assert_eq!(out.status.code(), Some(2));

    // By case reference; then by person id it is already done.
    let v: Value = serde_json::from_str(&ok(&[
        "person", "erase", &reference, "--yes", "--format", "json",
    ]))
    .unwrap();
    assert_eq!(v["person_id"], person.as_str());
    let out = run(&["person", "erase", &person, "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("erased"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["case", "show", &reference]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("erased"));
    // The other person is untouched, and the chain verifies with the erasure in it.
    let other = second["case"]["reference"].as_str().unwrap();
    assert!(ok(&["case", "show", other, "--reveal-identity"]).contains("Кузнецов"));
    let audit: Value = serde_json::from_str(&ok(&["audit", "verify", "--format", "json"])).unwrap();
    assert_eq!(audit["intact"], true, "{audit}");
}

#[test]
fn person_erase_shreds_one_person_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    person_erase_on(dir.path(), &[]);
    if let Some(url) = fresh_pg("erase") {
        let dir = tempfile::tempdir().unwrap();
        person_erase_on(dir.path(), &["--database-url", &url]);
    }
}

/// `refuge keys rotate` on one key-file instance (`extra` selects its database).
fn keys_rotate_on(dir: &Path, extra: &[&str]) {
    let run = |key: Option<&Path>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_refuge"));
        c.arg("--data").arg(dir.join("data")).args(extra);
        if let Some(k) = key {
            c.arg("--key-file").arg(k);
        }
        c.args(args)
            .env_remove("REFUGE_PASSPHRASE")
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = run(None, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["init"]);
    std::fs::write(dir.join("person.json"), PERSON).unwrap();
    std::fs::write(dir.join("facts.json"), FACTS).unwrap();
    let v: Value = serde_json::from_str(&ok(&[
        "case",
        "new",
        "--person",
        dir.join("person.json").to_str().unwrap(),
        "--facts",
        dir.join("facts.json").to_str().unwrap(),
        "--format",
        "json",
    ]))
    .unwrap();
    let id = v["case"]["id"].as_str().unwrap().to_owned();
    let key = dir.join("data/instance.key");
    let old_key = std::fs::read(&key).unwrap();

    let r: Value =
        serde_json::from_str(&ok(&["keys", "rotate", "--grace", "0", "--format", "json"])).unwrap();
    assert_ne!(r["old_key_id"], r["new_key_id"]);
    assert!(r["persons"].as_u64().unwrap() >= 1, "{r}");
    assert_ne!(
        std::fs::read(&key).unwrap(),
        old_key,
        "the key file holds the new key"
    );
    let retired = PathBuf::from(r["retired_key_file"].as_str().unwrap());
    assert_eq!(std::fs::read(&retired).unwrap(), old_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&key, &retired] {
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    assert!(!dir.join("data/instance.key.next").exists());

    // Only the new key opens the instance now, and everything is still there.
    let moved = dir.join("old.key");
    std::fs::rename(&retired, &moved).unwrap();
    assert!(ok(&["case", "show", &id, "--reveal-identity"]).contains("Кузнецов"));
    let audit: Value = serde_json::from_str(&ok(&["audit", "verify", "--format", "json"])).unwrap();
    assert_eq!(audit["intact"], true, "{audit}");
    let out = run(Some(&moved), &["case", "show", &id]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_rotate_rewraps_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    keys_rotate_on(dir.path(), &[]);
    if let Some(url) = fresh_pg("rotate") {
        let dir = tempfile::tempdir().unwrap();
        keys_rotate_on(dir.path(), &["--database-url", &url]);
    }
}

#[test]
fn keys_rotate_moves_a_passphrase_instance_to_a_new_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let run = |pass: &str, new: Option<&str>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_refuge"));
        c.arg("--data")
            .arg(dir.path().join("data"))
            .args(args)
            .env("REFUGE_PASSPHRASE", pass)
            .env_remove("REFUGE_NEW_PASSPHRASE");
        if let Some(n) = new {
            c.env("REFUGE_NEW_PASSPHRASE", n);
        }
        c.output().unwrap()
    };
    let old = "correct horse battery staple";
    let new = "a different, longer passphrase";
    assert!(run(old, None, &["init"]).status.success());
    // No new passphrase: refused, nothing changed.
    let out = run(old, None, &["keys", "rotate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REFUGE_NEW_PASSPHRASE"));
    assert!(run(old, None, &["case", "list"]).status.success());
    let out = run(old, Some(new), &["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run(new, None, &["case", "list"]).status.success());
    assert!(run(new, None, &["audit", "verify"]).status.success());
    assert_eq!(run(old, None, &["case", "list"]).status.code(), Some(2));
}

/// `refuge demo` (which `serve --demo` runs first) on a data directory and a database URL.
fn demo_on(dir: &Path, extra: &[&str]) {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_refuge"))
            .arg("--data")
            .arg(dir.join("data"))
            .args(extra)
            .args(args)
            .env_remove("REFUGE_PASSPHRASE")
            .env_remove("REFUGE_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first: Value = serde_json::from_str(&run(&["demo", "--format", "json"])).unwrap();
    assert_eq!(first["created"], true, "{first}");
    let cases = first["cases"].as_array().unwrap().len();
    assert!(cases > 0);
    assert!(dir.join("data/instance.key").exists());
    // Again: the same instance, not a second one, and no second copy of the demo persons.
    let again: Value = serde_json::from_str(&run(&["demo", "--format", "json"])).unwrap();
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["cases"].as_array().unwrap().len(), cases);
    assert!(run(&["audit", "verify"]).contains("OK: "));
}

#[test]
fn demo_sets_up_an_instance_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    demo_on(dir.path(), &[]);
    if let Some(url) = fresh_pg("demo") {
        let dir = tempfile::tempdir().unwrap();
        demo_on(dir.path(), &["--database-url", &url]);
    }
}

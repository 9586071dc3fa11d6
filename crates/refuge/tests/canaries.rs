//! 1,000 canary persons, with names in Cyrillic and Latin script, document numbers, notes and
//! uploaded files that carry them, go in through the API of a running server that logs at
//! `trace`; 50 of them are exported (with a purpose naming a canary, approved, collected); then
//! a backup is made and the server is killed (so the WAL is left as it is). No
//! file that refuge wrote (database, WAL, shared memory, key, backup, log) may contain any
//! canary, in any letter case, as UTF-8 or UTF-16.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use support::{demo_token, ok, refuge, spawn_server};

const CANARIES: usize = 1_000;

/// Every canary contains one of these stems, so a file without any stem (in any case and
/// encoding) contains no canary, not even in part.
const STEMS: [&str; 2] = ["Канарейк", "Kanareik"];

fn person(i: usize) -> Value {
    json!({
        "pseudonym": format!("Канарейкин {i}"),
        "names": [
            {"value": format!("Пётр Канарейкин{i}")},
            {"script": "latin", "value": format!("Pyotr Kanareikin{i}")}
        ],
        "birth_date": "1991-04-12",
        "documents": [{"kind": "international_passport", "number": format!("KANAREIKDOC{i:06}")}],
        "contacts": [{"kind": "signal", "value": format!("Kanareikin{i} +7 900 000 {i:04}")}]
    })
}

/// The byte strings to look for: each stem in three letter cases, as UTF-8 and UTF-16LE.
fn needles() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for stem in STEMS {
        for form in [stem.to_owned(), stem.to_lowercase(), stem.to_uppercase()] {
            out.push(form.as_bytes().to_vec());
            out.push(form.encode_utf16().flat_map(u16::to_le_bytes).collect());
        }
    }
    out
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            files_under(&e.unwrap().path(), out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

/// Files among `paths` (and below them) that hold any needle, with the needle found.
fn hits(paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for p in paths {
        files_under(p, &mut files);
    }
    let needles = needles();
    let mut found = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for n in &needles {
            if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                found.push((f.clone(), String::from_utf8_lossy(n).into_owned()));
            }
        }
    }
    found
}

#[test]
fn a_thousand_canaries_leave_no_trace_at_rest_in_backups_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The search finds what it should (a check of the check).
    let control = dir.path().join("control.txt");
    std::fs::write(&control, "x пётр канарейкин7 x").unwrap();
    assert_eq!(hits(std::slice::from_ref(&control)).len(), 1);
    std::fs::remove_file(&control).unwrap();

    let token = Arc::new(demo_token(&data, &[], "mila.counsel"));

    // The server logs everything it can to a file.
    let log = dir.path().join("serve.log");
    let mut c = refuge(&data, &[]);
    c.env("REFUGE_LOG", "trace")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let (mut server, base) = spawn_server(c, &[]);
    let base = Arc::new(base);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (base, token) = (base.clone(), token.clone());
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                let auth = format!("Bearer {token}");
                for i in (w..CANARIES).step_by(8) {
                    let mut res = agent
                        .post(&format!("{base}/api/v1/cases"))
                        .header("authorization", &auth)
                        .send_json(json!({
                            "person": person(i),
                            "facts": {"nationality": if i % 3 == 0 { "BY" } else { "RU" }, "refusal": "deserted"},
                            "programme": "eu-humanitarian-visa"
                        }))
                        .unwrap();
                    assert_eq!(res.status().as_u16(), 201);
                    let v: Value = res.body_mut().read_json().unwrap();
                    let case = v["case"]["id"].as_str().unwrap().to_owned();
                    if i % 10 == 0 {
                        let r = agent
                            .post(&format!("{base}/api/v1/cases/{case}/messages"))
                            .header("authorization", &auth)
                            .send_json(json!({"kind": "note", "body": format!("Met Kanareikin{i} (Канарейкин{i}) at the border")}))
                            .unwrap();
                        assert_eq!(r.status().as_u16(), 201);
                        let r = agent
                            .post(&format!(
                                "{base}/api/v1/cases/{case}/evidence?name=Kanareikin{i}.txt"
                            ))
                            .header("authorization", &auth)
                            .header("content-type", "application/octet-stream")
                            .send(
                                format!("Statement of Пётр Канарейкин{i} / Pyotr Kanareikin{i}")
                                    .as_bytes(),
                            )
                            .unwrap();
                        assert_eq!(r.status().as_u16(), 201);
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // An export of 50 of them, with a purpose naming a canary, approved by the operator and
    // collected: the purpose is sealed, and the file that leaves is encrypted.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let auth = format!("Bearer {token}");
    let queue: Value = agent
        .get(&format!("{base}/api/v1/queue?limit=50"))
        .header("authorization", &auth)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let cases: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["case"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(cases.len(), 50);
    let mut r = agent
        .post(&format!("{base}/api/v1/exports"))
        .header("authorization", &auth)
        .send_json(json!({"cases": cases, "purpose": "For the lawyer of Pyotr Kanareikin7 (Пётр Канарейкин7)"}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let export: Value = r.body_mut().read_json().unwrap();
    let id = export["id"].as_str().unwrap();
    ok(refuge(&data, &[]).args(["export", "approve", id]));
    let mut r = agent
        .post(&format!("{base}/api/v1/exports/{id}/collect"))
        .header("authorization", &auth)
        .send_json(json!({"passphrase": "river lantern copper meadow"}))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let file = dir.path().join("export.bin");
    std::fs::write(&file, r.body_mut().read_to_vec().unwrap()).unwrap();
    assert!(
        hits(std::slice::from_ref(&file)).is_empty(),
        "a canary in the export file"
    );
    std::fs::remove_file(&file).unwrap();
    // Lookups by name and document work (so the canaries are really there) ...
    let found: Value = serde_json::from_str(&ok(refuge(&data, &[]).args([
        "case",
        "list",
        "--name",
        "Pyotr Kanareikin500",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(found["cases"].as_array().unwrap().len(), 1);
    let backup = dir.path().join("backup.jsonl");
    ok(refuge(&data, &[]).args(["backup", "--out", backup.to_str().unwrap()]));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        std::fs::metadata(&log).unwrap().len() > 0,
        "the server logged nothing"
    );

    // ... and nowhere in plain text.
    let found = hits(&[data.clone(), backup.clone(), log.clone()]);
    assert!(found.is_empty(), "canaries found: {found:?}");
    let mut files = Vec::new();
    for p in [&data, &backup, &log] {
        files_under(p, &mut files);
    }
    eprintln!(
        "{CANARIES} canaries ({} stems × 3 cases × UTF-8/UTF-16) searched in {} files ({} bytes): 0 hits",
        STEMS.len(),
        files.len(),
        files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum::<u64>()
    );
}

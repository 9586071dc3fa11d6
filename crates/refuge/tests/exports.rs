//! `refuge export`: a staff user asks for an export through the API, the operator approves it
//! on the command line (a second person), the staff user collects the encrypted file through
//! the API, and `refuge export decrypt` opens it with the passphrase only.

mod support;

use serde_json::{Value, json};
use support::{agent, demo_server, ok, refuge};

#[test]
fn an_export_is_approved_by_the_operator_and_decrypted_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, base, token) = demo_server(&data, "mila.counsel");
    let auth = format!("Bearer {token}");
    let agent = agent();
    let post = |path: &str, body: Value| {
        agent
            .post(&format!("{base}{path}"))
            .header("authorization", &auth)
            .send_json(body)
            .unwrap()
    };
    let mut r = post(
        "/api/v1/cases",
        json!({
            "person": {"pseudonym": "Sasha", "names": [{"value": "Александр Экспортов"}]},
            "facts": {"nationality": "RU", "refusal": "deserted"},
            "programme": "unhcr-gip10-asylum"
        }),
    );
    assert_eq!(r.status().as_u16(), 201);
    let case: Value = r.body_mut().read_json().unwrap();
    let reference = case["case"]["reference"].as_str().unwrap().to_owned();
    let mut r = post(
        "/api/v1/exports",
        json!({"cases": [reference], "purpose": "For the applicant's lawyer"}),
    );
    assert_eq!(r.status().as_u16(), 201);
    let export: Value = r.body_mut().read_json().unwrap();
    let id = export["id"].as_str().unwrap().to_owned();

    // The operator lists and approves it while the server runs; twice is an error (exit 2).
    let list: Value = serde_json::from_str(&ok(
        refuge(&data, &[]).args(["export", "list", "--format", "json"])
    ))
    .unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "requested");
    assert_eq!(list[0]["purpose"], "For the applicant's lawyer");
    assert!(ok(refuge(&data, &[]).args(["export", "approve", &id])).contains("approved"));
    let again = refuge(&data, &[])
        .args(["export", "refuse", &id])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already approved"));
    let bad = refuge(&data, &[])
        .args(["export", "approve", "not-an-id"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    let mut r = post(
        &format!("/api/v1/exports/{id}/collect"),
        json!({"passphrase": "river lantern copper meadow"}),
    );
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.body_mut().read_to_vec().unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let file = dir.path().join(format!("refuge-export-{id}.bin"));
    std::fs::write(&file, &bytes).unwrap();

    // Decrypting needs no instance: only the file and the passphrase.
    let elsewhere = dir.path().join("no-instance-here");
    let decrypt = |pass: &str, out: Option<&std::path::Path>| {
        let mut c = refuge(&elsewhere, &[]);
        c.args(["export", "decrypt"]).arg(&file);
        if let Some(o) = out {
            c.arg("--out").arg(o);
        }
        c.env("REFUGE_EXPORT_PASSPHRASE", pass).output().unwrap()
    };
    let wrong = decrypt("river lantern copper meadoW", None);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    let out = dir.path().join("cases.json");
    let done = decrypt("river lantern copper meadow", Some(&out));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["format"], "refuge-export-v1");
    assert_eq!(doc["decided_by"], "operator");
    assert_eq!(
        doc["cases"][0]["identity"]["names"][0]["value"],
        "Александр Экспортов"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the decrypted file is owner-only");
    }
    // It never overwrites, and refuses what is not an export.
    let twice = decrypt("river lantern copper meadow", Some(&out));
    assert_eq!(twice.status.code(), Some(2));
    std::fs::write(&file, b"{\"not\": \"an export\"}").unwrap();
    let junk = decrypt("river lantern copper meadow", None);
    assert_eq!(junk.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&junk.stderr).contains("not a refuge export"));

    // The chain holds every step.
    let audit: Value = serde_json::from_str(&ok(
        refuge(&data, &[]).args(["audit", "verify", "--format", "json"])
    ))
    .unwrap();
    assert_eq!(audit["intact"], true, "{audit}");
}

//! Running the `refuge` binary in tests: commands on a data directory, and a server.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `refuge --data DATA [DB…]`, with no key or database settings from the environment.
pub fn refuge(data: &Path, db: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_refuge"));
    c.arg("--data")
        .arg(data)
        .args(db)
        .env_remove("REFUGE_PASSPHRASE")
        .env_remove("REFUGE_DATABASE_URL")
        .env_remove("REFUGE_KEY_FILE")
        .env("REFUGE_LOG", "warn");
    c
}

/// Run it; panics unless it succeeds; returns standard output.
pub fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Start the server on a free port; returns it and its base URL once it listens.
pub fn serve(data: &Path, db: &[String], extra: &[&str]) -> (Child, String) {
    let mut c = refuge(data, db);
    c.stderr(Stdio::inherit());
    spawn_server(c, extra)
}

/// Start `c serve --listen 127.0.0.1:0 EXTRA…` (its standard error as `c` sets it).
pub fn spawn_server(mut c: Command, extra: &[&str]) -> (Child, String) {
    let mut child = c
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until the server says where it listens, then keep draining its output: a closed
    // pipe would make its next line fail.
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in out.lines() {
            let Ok(line) = line else { break };
            if let Some(base) = line.trim().strip_prefix("refuge is serving on ")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(base.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(base) => (child, base),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait();
            panic!("refuge serve did not start: {status:?}");
        }
    }
}

/// Make `data` a demo instance (by starting `serve --demo` once; its staff come with it) and
/// issue an API token to the demo staff user `login`; returns the token.
pub fn demo_token(data: &Path, db: &[String], login: &str) -> String {
    let (mut demo, _) = serve(data, db, &["--demo"]);
    demo.kill().unwrap();
    demo.wait().unwrap();
    let out = ok(refuge(data, db).args(["token", "new", "--login", login, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// An HTTP client that hands back every answer, whatever its status.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// A demo instance in `data`, served in the background (its log discarded), with an API token
/// of the demo staff user `login`: returns the server, its base URL and the token.
pub fn demo_server(data: &Path, login: &str) -> (Child, String, String) {
    let token = demo_token(data, &[], login);
    let mut c = refuge(data, &[]);
    c.stderr(Stdio::null());
    let (server, base) = spawn_server(c, &[]);
    (server, base, token)
}

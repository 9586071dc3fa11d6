//! `refuge token revoke` against a running server: the server caches tokens, so a revocation
//! made by another process must reach it through the store (the access watch), within seconds.

mod support;

use std::time::{Duration, Instant};
use support::{agent, demo_server, ok, refuge};

#[test]
fn a_token_revoked_from_the_command_line_stops_working_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, base, token) = demo_server(&data, "jonas.visa");
    let agent = agent();
    let status = || {
        agent
            .get(&format!("{base}/api/v1/queue"))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    // Used, so the server has it cached.
    assert_eq!(status(), 200);
    assert_eq!(status(), 200);

    let out = ok(refuge(&data, &[]).args([
        "token",
        "revoke",
        "--login",
        "jonas.visa",
        "--token",
        &token,
    ]));
    assert!(out.contains("within 2 seconds"), "{out}");
    let revoked = Instant::now();
    // The cache alone would keep it for 30 s; the access watch looks every 2 s.
    let refused = loop {
        if status() == 401 {
            break revoked.elapsed();
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(10),
            "the revoked token still works 10 s later"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("revoked token refused by the running server after {refused:.1?}");
    // And stays refused.
    assert_eq!(status(), 401);
    server.kill().unwrap();
    server.wait().unwrap();
}

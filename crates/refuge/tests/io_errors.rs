//! I/O errors other than a full disk under `refuge serve` on SQLite. A small `LD_PRELOAD` shim
//! (`support/eio.c`, compiled here with `cc`) makes `write`, `pwrite`, `pwrite64`, `fsync` and
//! `fdatasync` on the database's files (`refuge.db`, its WAL and shared-memory index) fail with
//! `EIO` while a trigger file exists, or only `fsync` and `fdatasync` while a second one does
//! (the data reaches the page cache, but the commit cannot be made durable).
//!
//! Eight clients submit cases through the API throughout, and the faults come in phases of two
//! seconds: writes and syncs fail; only syncs fail; only syncs fail and the server is then
//! killed (`kill -9`) while they still do; and one submission alone, refused while syncs fail,
//! followed at once by `kill -9`. After each phase the disk works again, and the server must
//! take submissions again (if it did not without a restart, the test restarts it and says so).
//!
//! Then, through the command line: every submission answered `201` is in the database under its
//! id and pseudonym and readable; none that started and ended inside a phase was answered
//! `201`; none refused (`5xx`) is stored unless the server was killed before it wrote again (a
//! refused commit whose sync failed has its frames in the WAL, and a restart's recovery can
//! find them complete: a `5xx` caused by an I/O error means "not acknowledged", not "absent";
//! the test reports how often that happened), and sent again with its idempotency key (every
//! submission carries one) such a submission is acknowledged and stored once, not twice; the
//! server stops cleanly on `SIGTERM`, never
//! panics, and `refuge audit verify` finds the chain intact.
//!
//! Without `cc` or a working `LD_PRELOAD`, the test says SKIPPED, unless
//! `REFUGE_REQUIRE_FAULTS=1` (as in CI) makes that a failure.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{demo_token, ok, refuge, spawn_server};

const WRITERS: usize = 8;
const FAULT_FOR: Duration = Duration::from_secs(2);

fn required() -> bool {
    std::env::var("REFUGE_REQUIRE_FAULTS").is_ok_and(|v| v == "1")
}

/// Skip (or, when faults are required, fail) with a reason.
fn skip(why: &str) {
    assert!(!required(), "REFUGE_REQUIRE_FAULTS=1 but {why}");
    eprintln!("SKIPPED: the I/O-error test: {why}");
}

/// Compile the shim into `dir`.
fn compile_shim(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("eio.c");
    let lib = dir.join("eio.so");
    std::fs::write(&src, include_str!("support/eio.c")).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("cc cannot be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(lib)
}

/// Where the shim looks, and what it reports.
struct Faults {
    lib: PathBuf,
    /// While this exists, writes and syncs fail.
    all: PathBuf,
    /// While this exists, syncs fail.
    sync: PathBuf,
    /// One line per injected fault.
    log: PathBuf,
    /// Created by the shim when it is loaded.
    loaded: PathBuf,
    /// The database files' path prefix.
    prefix: PathBuf,
}

impl Faults {
    fn injected(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The server, with the shim preloaded and its standard error in `log`.
fn start(data: &Path, f: &Faults, log: &Path) -> (Child, String) {
    let _ = std::fs::remove_file(&f.loaded);
    let mut c = refuge(data, &[]);
    c.env("LD_PRELOAD", &f.lib)
        .env("REFUGE_FAULT_TRIGGER", &f.all)
        .env("REFUGE_FAULT_SYNC_TRIGGER", &f.sync)
        .env("REFUGE_FAULT_PREFIX", &f.prefix)
        .env("REFUGE_FAULT_LOG", &f.log)
        .env("REFUGE_FAULT_LOADED", &f.loaded)
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        ));
    spawn_server(c, &[])
}

/// The server, killed if the test fails before it stops it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ask the server to stop (SIGTERM) and wait up to `patience` for it to exit.
fn stop(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    if let Some(s) = child.try_wait().unwrap() {
        return Some(s);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let t = Instant::now();
    while t.elapsed() < patience {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A log line without its terminal colours, and with ids replaced by `<id>`.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.split(' ')
        .map(|w| {
            if w.len() >= 36 && w.chars().filter(|c| *c == '-').count() >= 4 {
                "<id>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug)]
enum Outcome {
    /// `201` with the case id.
    Acked(String),
    /// A `5xx`.
    Refused(u16),
    /// Any other status: never expected.
    Unexpected(u16, String),
    /// No answer (the server went away, or did not answer in time).
    NoAnswer(String),
}

struct Attempt {
    pseudonym: String,
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

/// What the clients share with the test.
struct Clients {
    base: Mutex<String>,
    token: String,
    stop: AtomicBool,
    /// While set, clients start no submission.
    pause: AtomicBool,
    in_flight: AtomicUsize,
    log: Mutex<Vec<Attempt>>,
}

impl Clients {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(false)
            .build()
            .new_agent()
    }

    /// Submit one case, with its pseudonym as its idempotency key, and record how it went.
    fn submit(&self, agent: &ureq::Agent, pseudonym: String) -> &'static str {
        let url = format!("{}/api/v1/cases", self.base.lock().unwrap());
        let started = Instant::now();
        let r = agent
            .post(&url)
            .header("authorization", &format!("Bearer {}", self.token))
            .header("idempotency-key", &pseudonym.replace(' ', "-"))
            .send_json(json!({
                "person": {"pseudonym": pseudonym,
                           "names": [{"value": format!("Иван Сбоев {pseudonym}")}]},
                "facts": {"nationality": "RU", "refusal": "evaded_callup"},
                "programme": "eu-humanitarian-visa"
            }));
        let outcome = match r {
            Ok(mut res) => {
                let status = res.status().as_u16();
                let text = res.body_mut().read_to_string().unwrap_or_default();
                match status {
                    // 200: the same key again (a probe sent again), answered with its case.
                    200 | 201 => {
                        let v: Value = serde_json::from_str(&text).unwrap();
                        Outcome::Acked(v["case"]["id"].as_str().unwrap().to_owned())
                    }
                    500..=599 => Outcome::Refused(status),
                    _ => Outcome::Unexpected(status, text),
                }
            }
            Err(e) => Outcome::NoAnswer(e.to_string()),
        };
        let kind = match outcome {
            Outcome::Acked(_) => "acked",
            Outcome::Refused(_) => "refused",
            Outcome::Unexpected(..) => "unexpected",
            Outcome::NoAnswer(_) => "no answer",
        };
        self.log.lock().unwrap().push(Attempt {
            pseudonym,
            started,
            ended: Instant::now(),
            outcome,
        });
        kind
    }

    /// Client `w`: submit one case after the other until told to stop.
    fn run(&self, w: usize) {
        let agent = Self::agent();
        let mut i = 0;
        while !self.stop.load(Ordering::SeqCst) {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if self.pause.load(Ordering::SeqCst) {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let kind = self.submit(&agent, format!("EIO {w}-{i}"));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            i += 1;
            if kind == "no answer" {
                // The server is gone or being restarted: do not spin.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Submissions started after `t` and acknowledged, so far.
    fn acked_since(&self, t: Instant) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.started > t && matches!(a.outcome, Outcome::Acked(_)))
            .count()
    }
}

/// Poll `f` until it holds or `patience` is over.
fn wait_for(patience: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < patience {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// The fault goes away; the server carries on.
    CarryOn,
    /// `kill -9` while the fault lasts, then a restart.
    Kill,
    /// The clients pause; one submission alone while the fault lasts, then `kill -9` before
    /// anything else is written, then a restart.
    ProbeAndKill,
}

struct Phase {
    name: &'static str,
    then: Then,
    on: Instant,
    off: Instant,
    injected: Vec<String>,
    behaviour: String,
}

#[test]
fn io_errors_on_sqlite_refuse_writes_without_acknowledging_or_corrupting() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let lib = match compile_shim(&root) {
        Ok(lib) => lib,
        Err(why) => return skip(&why),
    };
    let data = root.join("data");
    let faults = Faults {
        lib,
        all: root.join("fail-writes"),
        sync: root.join("fail-syncs"),
        log: root.join("faults.log"),
        loaded: root.join("shim-loaded"),
        prefix: data.join("refuge.db"),
    };
    let server_log = root.join("server.log");

    // A demo instance (it has staff), and an API token for one of them; no shim yet.
    let token = demo_token(&data, &[], "mila.counsel");

    let (child, base) = start(&data, &faults, &server_log);
    let mut server = Server(child);
    if !faults.loaded.exists() {
        let _ = stop(&mut server.0, Duration::from_secs(10));
        return skip("LD_PRELOAD had no effect on the refuge binary");
    }
    let began = Instant::now();
    let clients = Arc::new(Clients {
        base: Mutex::new(base),
        token,
        stop: AtomicBool::new(false),
        pause: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let clients = clients.clone();
            std::thread::spawn(move || clients.run(w))
        })
        .collect();
    assert!(
        wait_for(Duration::from_secs(60), || clients.acked_since(began) >= 20),
        "fewer than 20 submissions acknowledged before any fault"
    );

    // Each kind of fault, then none: does the server take submissions again?
    let restart = |child: &mut Child| {
        let (c, b) = start(&data, &faults, &server_log);
        *child = c;
        *clients.base.lock().unwrap() = b;
    };
    let mut phases = Vec::new();
    // Restarts the server needed (it stopped taking submissions), and the test's own kills.
    let (mut restarts, mut kills) = (0, 0);
    let mut probes = Vec::new();
    for (name, trigger, then) in [
        ("writes and syncs fail", &faults.all, Then::CarryOn),
        ("only syncs fail", &faults.sync, Then::CarryOn),
        ("only syncs fail, kill -9", &faults.sync, Then::Kill),
        (
            "one submission while syncs fail, kill -9",
            &faults.sync,
            Then::ProbeAndKill,
        ),
    ] {
        if then == Then::ProbeAndKill {
            clients.pause.store(true, Ordering::SeqCst);
            assert!(
                wait_for(Duration::from_secs(30), || clients
                    .in_flight
                    .load(Ordering::SeqCst)
                    == 0),
                "the clients did not pause"
            );
        }
        let before = faults.injected().len();
        let on = Instant::now();
        std::fs::write(trigger, b"").unwrap();
        if then == Then::ProbeAndKill {
            let pseudonym = format!("EIO probe {}", probes.len());
            let kind = clients.submit(&Clients::agent(), pseudonym.clone());
            assert_eq!(kind, "refused", "{name}: the probe was not refused");
            probes.push(pseudonym);
        } else {
            std::thread::sleep(FAULT_FOR);
        }
        if then != Then::CarryOn {
            server.0.kill().unwrap();
            server.0.wait().unwrap();
        }
        std::fs::remove_file(trigger).unwrap();
        let off = Instant::now();
        let injected = faults.injected().split_off(before);
        let behaviour = if then != Then::CarryOn {
            restart(&mut server.0);
            kills += 1;
            clients.pause.store(false, Ordering::SeqCst);
            assert!(
                wait_for(Duration::from_secs(30), || clients.acked_since(off) >= 5),
                "after \"{name}\" the restarted server takes no submission"
            );
            "was killed; restarted, it took submissions again".to_owned()
        } else if wait_for(Duration::from_secs(10), || clients.acked_since(off) >= 5) {
            let first = clients
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.started > off && matches!(a.outcome, Outcome::Acked(_)))
                .map(|a| a.ended - off)
                .min()
                .unwrap_or_default();
            format!(
                "took submissions again {:.0} ms after the disk recovered, without a restart",
                first.as_secs_f64() * 1000.0
            )
        } else {
            let state = match server.0.try_wait().unwrap() {
                Some(s) => format!("had exited ({s})"),
                None => "was running but took no submission for 10 s".to_owned(),
            };
            let exit = stop(&mut server.0, Duration::from_secs(30));
            restart(&mut server.0);
            restarts += 1;
            let restarted = Instant::now();
            assert!(
                wait_for(Duration::from_secs(30), || clients.acked_since(restarted)
                    >= 5),
                "after \"{name}\" the server {state}, and once restarted it still takes no submission"
            );
            format!("{state}; stopped ({exit:?}) and restarted, it took submissions again")
        };
        phases.push(Phase {
            name,
            then,
            on,
            off,
            injected,
            behaviour,
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    clients.stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    // Each probe was answered 500 and may be stored all the same. Sent again with its
    // idempotency key, it is acknowledged, and stored once: as the case it already is, or now.
    let mut resent = Vec::new();
    for p in &probes {
        let kind = clients.submit(&Clients::agent(), p.clone());
        assert_eq!(
            kind, "acked",
            "the probe {p:?} sent again was not acknowledged"
        );
        resent.push(p.clone());
    }
    let exit = stop(&mut server.0, Duration::from_secs(30));
    assert!(
        exit.is_some_and(|s| s.success()),
        "the server did not stop cleanly on SIGTERM within 30 s: {exit:?}"
    );
    let attempts = std::mem::take(&mut *clients.log.lock().unwrap());
    let server_log = std::fs::read_to_string(&server_log).unwrap_or_default();
    assert!(
        !server_log.contains("panicked"),
        "the server panicked:\n{server_log}"
    );

    // What the server answered.
    let unexpected: Vec<_> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Unexpected(status, text) => Some(format!("{status} {text}")),
            _ => None,
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 201 or 5xx: {unexpected:?}"
    );
    let no_answer: Vec<&str> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::NoAnswer(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        restarts + kills > 0 || no_answer.is_empty(),
        "requests went unanswered although the server was never restarted: {:?}",
        no_answer.first()
    );
    for p in &phases {
        assert!(
            !p.injected.is_empty(),
            "\"{}\": the shim injected no fault",
            p.name
        );
        // A submission that started and ended while the disk failed had to write then.
        let within: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| a.started > p.on + Duration::from_millis(100) && a.ended < p.off)
            .collect();
        assert!(
            p.then == Then::ProbeAndKill || !within.is_empty(),
            "\"{}\": no submission was answered while the disk failed",
            p.name
        );
        let acked: Vec<_> = within
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Acked(_)))
            .map(|a| a.pseudonym.as_str())
            .collect();
        assert!(
            acked.is_empty(),
            "\"{}\": {} of {} submissions were acknowledged while the disk failed, e.g. {:?}",
            p.name,
            acked.len(),
            within.len(),
            acked.first()
        );
    }

    // The database, through the command line: every acknowledged case is there under its
    // pseudonym and readable, no refused one is (unless a kill came before the next write),
    // and the chain verifies.
    let audit: Value = serde_json::from_str(&ok(
        refuge(&data, &[]).args(["audit", "verify", "--format", "json"])
    ))
    .unwrap();
    assert_eq!(audit["intact"], true, "{audit}");
    let listed: Value = serde_json::from_str(&ok(
        refuge(&data, &[]).args(["case", "list", "--limit", "1000000", "--format", "json"])
    ))
    .unwrap();
    let stored: BTreeMap<String, String> = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            Some((
                c["pseudonym"].as_str()?.to_owned(),
                c["id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    // No submission is stored twice: not even a probe refused, stored all the same, and sent
    // again (its idempotency key finds the first).
    let named = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["pseudonym"]
                .as_str()
                .is_some_and(|p| p.starts_with("EIO"))
        })
        .count();
    assert_eq!(
        named,
        stored.keys().filter(|p| p.starts_with("EIO")).count(),
        "a submission is stored twice"
    );
    for p in &resent {
        assert!(
            stored.contains_key(p),
            "the probe {p:?} sent again is not stored"
        );
    }
    let mut lost = Vec::new();
    // Refused submissions that are stored all the same, by the phase they fall in.
    let mut refused_but_stored: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut refused: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut acked, mut unanswered_stored) = (Vec::new(), 0);
    for a in &attempts {
        match &a.outcome {
            Outcome::Acked(id) => {
                if stored.get(&a.pseudonym) != Some(id) {
                    lost.push(a.pseudonym.as_str());
                }
                acked.push(id.as_str());
            }
            Outcome::Refused(status) => {
                *refused.entry(*status).or_default() += 1;
                if stored.contains_key(&a.pseudonym) {
                    let phase = phases
                        .iter()
                        .find(|p| a.started <= p.off && a.ended >= p.on)
                        .map_or("no fault", |p| p.name);
                    refused_but_stored
                        .entry(phase)
                        .or_default()
                        .push(a.pseudonym.as_str());
                }
            }
            Outcome::NoAnswer(_) => {
                unanswered_stored += usize::from(stored.contains_key(&a.pseudonym));
            }
            Outcome::Unexpected(..) => {}
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged submissions are missing, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    for (phase, found) in &refused_but_stored {
        let killed = phases
            .iter()
            .any(|p| p.name == *phase && p.then != Then::CarryOn);
        assert!(
            killed,
            "\"{phase}\": {} refused submissions are stored all the same, although the server \
             wrote on afterwards and stopped cleanly, e.g. {:?}",
            found.len(),
            found.first()
        );
    }
    // Whatever is stored is whole: a sample of acknowledged cases and any refused-but-stored
    // one open in full.
    let sample: BTreeSet<&str> = acked
        .iter()
        .step_by((acked.len() / 20).max(1))
        .chain(acked.last())
        .copied()
        .chain(
            refused_but_stored
                .values()
                .flatten()
                .filter_map(|p| stored.get(*p).map(String::as_str)),
        )
        .collect();
    for id in &sample {
        ok(refuge(&data, &[]).args(["case", "show", id, "--events", "--format", "json"]));
    }

    // What the server logged, without colours, times and ids, with how often.
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for line in server_log.lines().map(plain) {
        if line.contains("ERROR") || line.contains("WARN") {
            let what = line
                .split_once('Z')
                .map_or(line.as_str(), |(_, w)| w)
                .trim();
            *errors.entry(what.to_owned()).or_default() += 1;
        }
    }
    eprintln!(
        "I/O errors on SQLite in {:.0} s: {} submissions: {} acknowledged, all present; refused {refused:?}; {} unanswered ({unanswered_stored} of them stored); {restarts} restarts needed, {kills} kills; chain intact",
        began.elapsed().as_secs_f64(),
        attempts.len(),
        acked.len(),
        no_answer.len(),
    );
    for p in &phases {
        let ops: BTreeSet<&str> = p
            .injected
            .iter()
            .filter_map(|l| l.split(' ').nth(1))
            .collect();
        let back = refused_but_stored.get(p.name).map_or(0, Vec::len);
        eprintln!(
            "  {}: {} faults injected ({ops:?}); {back} refused submissions stored all the same; the server {}",
            p.name,
            p.injected.len(),
            p.behaviour
        );
    }
    let probes_stored = probes.iter().filter(|p| stored.contains_key(*p)).count();
    eprintln!(
        "  refused alone and then killed: {probes_stored} of {} stored after the restart; sent \
         again with its idempotency key, each was acknowledged and is stored once",
        probes.len()
    );
    eprintln!("  server log: {errors:#?}");
}

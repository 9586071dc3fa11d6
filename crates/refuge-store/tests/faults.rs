//! The disk fills up under the store while submissions keep coming, on SQLite and on
//! PostgreSQL: every submission is either acknowledged and stored, or refused with an error and
//! absent; nothing is corrupted; once there is room again, submissions are accepted and the
//! chain still verifies, also after reopening.
//!
//! The disk is a small tmpfs mounted for the test, which needs root (as in CI). Elsewhere the
//! tests say they are skipped, unless `REFUGE_REQUIRE_FAULTS=1` makes that a failure. For
//! PostgreSQL, the tmpfs holds a tablespace of its own and a fresh database is created in it
//! (the server's WAL stays on its own disk); the server is `REFUGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), and when it is unreachable the test is skipped,
//! unless `REFUGE_REQUIRE_POSTGRES=1`.

use refuge_core::clock::SystemClock;
use refuge_core::event::Actor;
use refuge_core::facts::Facts;
use refuge_core::ids::{CaseId, OrgId};
use refuge_core::org::OrganisationKind;
use refuge_core::person::Person;
use refuge_crypto::OsEntropy;
use refuge_store::{KeySource, NewCase, SqlStore, Store, StoreConfig};
use sqlx::Connection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

struct Mount(PathBuf);

impl Mount {
    fn new(at: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            other => {
                let required = std::env::var("REFUGE_REQUIRE_FAULTS").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "REFUGE_REQUIRE_FAULTS=1 but tmpfs cannot be mounted: {other:?}"
                );
                eprintln!("SKIPPED: the disk-full test needs to mount a tmpfs (root): {other:?}");
                None
            }
        }
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {size}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // After a failed test, the store's threads may still hold files open for a moment.
        for _ in 0..20 {
            if Command::new("umount")
                .arg(&self.0)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn config(url: &str, key: &Path) -> StoreConfig {
    StoreConfig::new(
        url,
        KeySource::KeyFile(key.to_path_buf()),
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
    )
}

fn person(i: usize) -> Person {
    // A few KiB of identity per person, so that the disk fills in a few hundred cases.
    let names: Vec<_> = (0..10)
        .map(|n| serde_json::json!({"value": format!("Пётр {} {i} {n}", "Иванович-".repeat(15))}))
        .collect();
    serde_json::from_value(serde_json::json!({"pseudonym": format!("Full {i}"), "names": names}))
        .unwrap()
}

/// Eight writers until each has been refused ten times in a row: the acknowledged case ids and
/// the refusals' messages. A disk that has not filled in a minute fails the test.
async fn fill(store: &Arc<SqlStore>, org: OrgId) -> (BTreeSet<CaseId>, Vec<String>) {
    let started = std::time::Instant::now();
    let patience = std::time::Duration::from_secs(60);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut refused, mut in_a_row) = (Vec::new(), Vec::new(), 0);
            let mut i = w;
            while in_a_row < 10 {
                assert!(
                    started.elapsed() < patience,
                    "the disk did not fill up in {patience:?}: {} cases acknowledged by writer {w}",
                    acked.len()
                );
                let new = NewCase {
                    organisation_id: org,
                    person: person(i),
                    facts: Facts::default(),
                };
                match store.create_case(Actor::Operator, new).await {
                    Ok(c) => {
                        acked.push(c.id);
                        in_a_row = 0;
                    }
                    Err(e) => {
                        refused.push(e.to_string());
                        in_a_row += 1;
                    }
                }
                i += 8;
            }
            (acked, refused)
        }));
    }
    let mut acked = BTreeSet::new();
    let mut refused = Vec::new();
    for t in tasks {
        let (a, r) = t.await.unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    (acked, refused)
}

/// Every acknowledged case is there and readable, nothing else is, and the chain verifies.
async fn check(store: &SqlStore, acked: &BTreeSet<CaseId>) {
    let mut stored = BTreeSet::new();
    let mut after = None;
    loop {
        let page = store
            .cases(refuge_store::Scope::Instance, after, 500)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        stored.extend(page.iter().map(|c| c.id));
    }
    assert_eq!(&stored, acked, "stored cases = acknowledged cases");
    for id in acked.iter().take(20).chain(acked.last()) {
        store
            .case(
                refuge_store::Scope::Instance,
                &refuge_store::CaseKey::Id(*id),
            )
            .await
            .unwrap();
    }
    let report = store.verify_chain().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems.first());
}

/// One more case, which must be accepted.
async fn one_more(store: &SqlStore, org: OrgId) -> CaseId {
    store
        .create_case(
            Actor::Operator,
            NewCase {
                organisation_id: org,
                person: person(999_999),
                facts: Facts::default(),
            },
        )
        .await
        .unwrap()
        .id
}

/// The refusals' messages, with those naming a full disk as one.
fn summary(refused: &[String]) -> BTreeSet<&str> {
    refused
        .iter()
        .map(|e| {
            if names_full_disk(e) {
                "disk full"
            } else {
                e.as_str()
            }
        })
        .collect()
}

fn names_full_disk(e: &str) -> bool {
    e.contains("full") || e.contains("No space left on device")
}

/// Fill, check, make room, check, reopen, check: the common part of both backends' tests.
async fn full_disk(backend: &str, url: &str, key: &Path, mount: &Mount, grow_to: &str) {
    let (store, org) = refuge_store::initialise(
        config(url, key),
        OrganisationKind::Ngo,
        "Full Disk NGO".parse().unwrap(),
    )
    .await
    .unwrap();
    let store = Arc::new(store);
    let (mut acked, refused) = fill(&store, org.id).await;
    assert!(!acked.is_empty(), "nothing fit on the disk");
    assert!(
        refused.iter().any(|e| names_full_disk(e)),
        "the refusals name the full disk: {:?}",
        refused.first()
    );
    check(&store, &acked).await;

    // Room again: writes are accepted, and all is well after reopening.
    mount.resize(grow_to);
    acked.insert(one_more(&store, org.id).await);
    check(&store, &acked).await;
    store.close().await;
    drop(store);
    let reopened = refuge_store::open(config(url, key)).await.unwrap();
    check(&reopened, &acked).await;
    acked.insert(one_more(&reopened, org.id).await);
    check(&reopened, &acked).await;
    reopened.close().await;
    let errors = summary(&refused);
    eprintln!(
        "{backend}: disk full: {} cases acknowledged and present, {} submissions refused ({errors:?}, e.g. {:?}); chain intact before and after reopening",
        acked.len(),
        refused.len(),
        refused.first()
    );
    // No error that would mean a half-done write.
    assert!(
        refused
            .iter()
            .all(|e| !e.contains("changed during") && !e.contains("corrupt")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_without_acknowledging_or_corrupting() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::new(&dir.path().join("disk"), "3m") else {
        return;
    };
    let url = format!("sqlite://{}", mount.0.join("refuge.db").display());
    full_disk(
        "sqlite",
        &url,
        &dir.path().join("instance.key"),
        &mount,
        "64m",
    )
    .await;
}

fn pg_admin_url() -> String {
    std::env::var("REFUGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database and the tablespace it lives in, dropped (in that order) when this is.
struct PgFull {
    admin: String,
    database: String,
    tablespace: String,
}

impl PgFull {
    async fn drop_all(admin: &str, database: &str, tablespace: &str) -> Result<(), sqlx::Error> {
        let mut c = sqlx::PgConnection::connect(admin).await?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            format!("DROP TABLESPACE IF EXISTS {tablespace}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?;
        }
        Ok(())
    }
}

impl Drop for PgFull {
    fn drop(&mut self) {
        let (admin, database, tablespace) = (
            self.admin.clone(),
            self.database.clone(),
            self.tablespace.clone(),
        );
        // On a runtime of its own: this may run while a test's runtime unwinds.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(PgFull::drop_all(&admin, &database, &tablespace))
                .map_err(|e| e.to_string())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop database {} and tablespace {}: {dropped:?}",
                self.database, self.tablespace
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tablespace_refuses_writes_without_acknowledging_or_corrupting_on_postgres() {
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            let required = std::env::var("REFUGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "PostgreSQL is required (REFUGE_REQUIRE_POSTGRES=1) but unreachable at {admin}: {e}"
            );
            eprintln!("SKIPPED: the PostgreSQL disk-full test: cannot connect to {admin}: {e}");
            return;
        }
    };
    // Room for a copy of the template database and the schema, and a few MiB more to fill.
    let (template,): (i64,) = sqlx::query_as("SELECT pg_database_size('template1')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let size = format!("{}k", template / 1024 + 5 * 1024);

    // The server runs as another user: it must reach the mount point.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let Some(mount) = Mount::new(&dir.path().join("disk"), &size) else {
        return;
    };
    let owned = Command::new("chown")
        .arg("postgres:postgres")
        .arg(&mount.0)
        .status()
        .unwrap();
    assert!(owned.success(), "chown postgres:postgres {:?}", mount.0);

    let unique = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let pg = PgFull {
        admin: admin.clone(),
        database: format!("refuge_full_{unique}"),
        tablespace: format!("refuge_full_{unique}"),
    };
    // Neither statement may run in a transaction: each runs on its own on the admin connection.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLESPACE {} LOCATION '{}'",
        pg.tablespace,
        mount.0.display()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    // The server must see the same tmpfs (not the directory under it, as a server in another
    // mount namespace would): its version directory appears on our mount.
    let seen = std::fs::read_dir(&mount.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("PG_"));
    assert!(
        seen,
        "PostgreSQL's tablespace directory is not on the tmpfs at {:?}: is the server in another mount namespace?",
        mount.0
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {} TABLESPACE {}",
        pg.database, pg.tablespace
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{}", pg.database);
    full_disk(
        "postgres",
        &url,
        &dir.path().join("instance.key"),
        &mount,
        "256m",
    )
    .await;
    // Dropped before the mount is: the tablespace's files are on it.
    drop(pg);
}

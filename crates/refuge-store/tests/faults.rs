//! The disk fills up under the SQLite store while submissions keep coming: every submission is
//! either acknowledged and stored, or refused with an error and absent; nothing is corrupted;
//! once there is room again, submissions are accepted and the chain still verifies, also after
//! reopening.
//!
//! The disk is a small tmpfs mounted for the test, which needs root (as in CI). Elsewhere the
//! test says it is skipped, unless `REFUGE_REQUIRE_FAULTS=1` makes that a failure.

use refuge_core::clock::SystemClock;
use refuge_core::event::Actor;
use refuge_core::facts::Facts;
use refuge_core::org::OrganisationKind;
use refuge_core::person::Person;
use refuge_crypto::OsEntropy;
use refuge_store::{KeySource, NewCase, Store, StoreConfig};
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
        let _ = Command::new("umount").arg(&self.0).status();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_without_acknowledging_or_corrupting() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::new(&dir.path().join("disk"), "3m") else {
        return;
    };
    let url = format!("sqlite://{}", mount.0.join("refuge.db").display());
    let key = dir.path().join("instance.key");
    let (store, org) = refuge_store::initialise(
        config(&url, &key),
        OrganisationKind::Ngo,
        "Full Disk NGO".parse().unwrap(),
    )
    .await
    .unwrap();
    let store = Arc::new(store);

    // Eight writers until each has been refused ten times in a row.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut refused, mut in_a_row) = (Vec::new(), Vec::new(), 0);
            let mut i = w;
            while in_a_row < 10 {
                let new = NewCase {
                    organisation_id: org.id,
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
    assert!(!acked.is_empty(), "nothing fit on the disk");
    assert!(
        refused.iter().any(|e| e.contains("full")),
        "the refusals name the full disk: {:?}",
        refused.first()
    );

    // Every acknowledged case is there and readable, nothing else is, and the chain verifies.
    let check = |store: Arc<refuge_store::SqlStore>, acked: BTreeSet<refuge_core::ids::CaseId>| async move {
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
        assert_eq!(stored, acked, "stored cases = acknowledged cases");
        for id in acked.iter().take(20) {
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
    };
    check(store.clone(), acked.clone()).await;

    // Room again: writes are accepted, and all is well after reopening.
    mount.resize("64m");
    let more = store
        .create_case(
            Actor::Operator,
            NewCase {
                organisation_id: org.id,
                person: person(999_999),
                facts: Facts::default(),
            },
        )
        .await
        .unwrap();
    acked.insert(more.id);
    check(store.clone(), acked.clone()).await;
    store.close().await;
    drop(store);
    let reopened = Arc::new(refuge_store::open(config(&url, &key)).await.unwrap());
    check(reopened.clone(), acked.clone()).await;
    reopened.close().await;
    let errors: BTreeSet<&str> = refused
        .iter()
        .map(|e| {
            if e.contains("full") {
                "disk full"
            } else {
                e.as_str()
            }
        })
        .collect();
    eprintln!(
        "disk full: {} cases acknowledged and present, {} submissions refused ({errors:?}); chain intact before and after reopening",
        acked.len(),
        refused.len()
    );
    // No error that would mean a half-done write.
    assert!(
        refused
            .iter()
            .all(|e| !e.contains("changed during") && !e.contains("corrupt")),
        "{errors:?}"
    );
}

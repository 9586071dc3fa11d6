//! Erasing a person on SQLite while another connection holds a read transaction open (as a
//! running server's readers do): the erasure commits, and `erase_person` reports success at
//! once rather than failing because the WAL could not be truncated (which used to make the CLI
//! say "run it again", and the second run "already erased"). Once the reader is gone, the open
//! store's background checkpointer truncates the WAL within seconds, and the destroyed key is
//! in neither the database file nor its WAL; also after the store is closed.

use refuge_core::clock::SystemClock;
use refuge_core::event::Actor;
use refuge_core::facts::Facts;
use refuge_core::org::OrganisationKind;
use refuge_core::person::Person;
use refuge_crypto::OsEntropy;
use refuge_store::{CaseKey, KeySource, NewCase, Scope, Store, StoreConfig, StoreError};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(url: &str, key: &Path) -> StoreConfig {
    StoreConfig::new(
        url,
        KeySource::KeyFile(key.to_path_buf()),
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
    )
}

fn person(name: &str) -> Person {
    serde_json::from_value(serde_json::json!({"pseudonym": "Reader", "names": [{"value": name}]}))
        .unwrap()
}

fn holds(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
}

fn wrapped_key(db: &Path, person: uuid::Uuid) -> Option<Vec<u8>> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT wrapped_key FROM persons WHERE id = ?1",
        [person.as_bytes().as_slice()],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_while_a_reader_holds_the_wal_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refuge.db");
    let url = format!("sqlite://{}", db.display());
    let key = dir.path().join("instance.key");
    let (store, org) = refuge_store::initialise(
        config(&url, &key),
        OrganisationKind::Ngo,
        "Reader NGO".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut cases = Vec::new();
    for name in ["Фёдор Читателев", "Other Person"] {
        let new = NewCase {
            organisation_id: org.id,
            person: person(name),
            facts: Facts::default(),
        };
        cases.push(store.create_case(Actor::Operator, new).await.unwrap());
    }
    let (case, other) = (&cases[0], &cases[1]);
    let wrapped = wrapped_key(&db, case.person_id.0).expect("a wrapped key before the erasure");

    // A second connection on the same file, in a read transaction it keeps open: its
    // snapshot pins the WAL, so no checkpoint can truncate it.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM persons", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 2);

    let started = Instant::now();
    let erased = tokio::time::timeout(
        Duration::from_secs(15),
        store.erase_person(Actor::Operator, Scope::Organisation(org.id), case.person_id),
    )
    .await
    .expect("erase_person waited more than 15 s for the reader");
    let took = started.elapsed();
    erased.expect("the erasure committed, so erase_person must succeed");
    assert!(
        !reader.is_autocommit(),
        "the reader's transaction is still open"
    );
    eprintln!("erased in {:.1} s with a reader open", took.as_secs_f64());

    // The erasure is done: the key is gone from the table, reads say erased, and erasing
    // again says so rather than succeeding twice.
    assert_eq!(wrapped_key(&db, case.person_id.0), None);
    let read = store
        .case(Scope::Instance, &CaseKey::Id(case.id))
        .await
        .unwrap_err();
    assert!(matches!(read, StoreError::Erased(_)), "{read}");
    let again = store
        .erase_person(Actor::Operator, Scope::Organisation(org.id), case.person_id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::AlreadyDone {
                state: "erased",
                ..
            }
        ),
        "{again}"
    );
    store
        .case(Scope::Instance, &CaseKey::Id(other.id))
        .await
        .unwrap();
    assert!(store.verify_chain().await.unwrap().is_intact());
    // The reader still sees its snapshot from before the erasure.
    let still: Option<Vec<u8>> = reader
        .query_row(
            "SELECT wrapped_key FROM persons WHERE id = ?1",
            [case.person_id.0.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(still.as_deref(), Some(wrapped.as_slice()));

    // The reader goes. While the store stays open (a running server), its background
    // checkpointer truncates the WAL within seconds, so the destroyed key is in neither file.
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let wal = dir.path().join("refuge.db-wal");
    let waiting = Instant::now();
    while (holds(&db, &wrapped) || holds(&wal, &wrapped)) && waiting.elapsed().as_secs() < 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !holds(&wal, &wrapped),
        "the erased key is still in the WAL of the running store after {:?}",
        waiting.elapsed()
    );
    eprintln!(
        "the running store's checkpointer cleared the WAL {:?} after the reader went",
        waiting.elapsed()
    );
    store.close().await;
    drop(store);
    let waiting = Instant::now();
    while (holds(&db, &wrapped) || holds(&wal, &wrapped)) && waiting.elapsed().as_secs() < 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !holds(&db, &wrapped),
        "the erased key is still in refuge.db"
    );
    assert!(!holds(&wal, &wrapped), "the erased key is still in the WAL");
}

//! The `Store` contract, run against SQLite and PostgreSQL.
//!
//! PostgreSQL tests use `REFUGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and create a fresh database per test. When the
//! server is unreachable they are skipped with a message, unless `REFUGE_REQUIRE_POSTGRES=1`
//! (as in CI), which turns the skip into a failure.

use refuge_core::application::{ApplicationState, Decision, Move};
use refuge_core::clock::{SystemClock, Timestamp};
use refuge_core::event::{Actor, EventKind};
use refuge_core::facts::Facts;
use refuge_core::org::{OrganisationKind, Role};
use refuge_core::person::Person;
use refuge_crypto::{OsEntropy, SeededEntropy};
use refuge_store::{
    CaseKey, KeySource, Lookup, NewCase, Scope, SqlStore, Store, StoreConfig, StoreError,
};
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

const CANARY_NAMES: [&str; 6] = [
    "Александр Сергеевич Кузнецов",
    "Aleksandr Sergeyevich Kuznetsov",
    "Ёлкина Дарья Витальевна",
    "Yolkina Darya",
    "Мікалай Лукашэвіч",
    "Mikalai Lukashevich",
];

struct Env {
    store: SqlStore,
    org: refuge_core::org::Organisation,
    url: String,
    key: PathBuf,
    dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

struct PgDb {
    admin: String,
    name: String,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Best effort: drop the test database on a fresh runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

fn config(url: &str, key: &std::path::Path) -> StoreConfig {
    StoreConfig::new(
        url,
        KeySource::KeyFile(key.to_path_buf()),
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
    )
}

async fn make_env(url: String, pg: Option<PgDb>, dir: tempfile::TempDir) -> Env {
    let key = dir.path().join("instance.key");
    let (store, org) = refuge_store::initialise(
        config(&url, &key),
        OrganisationKind::Ngo,
        "Test NGO".parse().unwrap(),
    )
    .await
    .unwrap();
    Env {
        store,
        org,
        url,
        key,
        dir,
        pg,
    }
}

async fn sqlite_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("refuge.db").display());
    make_env(url, None, dir).await
}

fn pg_admin_url() -> String {
    std::env::var("REFUGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn fresh_pg_url() -> Option<(String, PgDb)> {
    let admin = pg_admin_url();
    let required = std::env::var("REFUGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if required => panic!(
            "PostgreSQL is required (REFUGE_REQUIRE_POSTGRES=1) but unreachable at {admin}: {e}"
        ),
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL contract test: cannot connect to {admin}: {e}");
            return None;
        }
    };
    let name = format!("refuge_t_{}", hex_lower(&rand16()));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some((format!("{base}/{name}"), PgDb { admin, name }))
}

async fn pg_env() -> Option<Env> {
    let (url, db) = fresh_pg_url().await?;
    Some(make_env(url, Some(db), tempfile::tempdir().unwrap()).await)
}

fn person(name: &str) -> Person {
    serde_json::from_value(serde_json::json!({
        "pseudonym": "Sasha",
        "names": [{"value": name}],
        "birth_date": "1994-05-02",
        "documents": [{"kind": "international_passport", "number": "75 1234567"}]
    }))
    .unwrap()
}

fn facts(json: serde_json::Value) -> Facts {
    serde_json::from_value(json).unwrap()
}

fn new_case(env: &Env, name: &str) -> NewCase {
    NewCase {
        organisation_id: env.org.id,
        person: person(name),
        facts: facts(
            serde_json::json!({"nationality": "RU", "sex": "male", "refusal": "deserted"}),
        ),
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = super::sqlite_env().await;
                    super::$name(env).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = super::pg_env().await {
                        super::$name(env).await;
                    }
                }
            )*
        }
    };
}

contract!(
    create_read_update_with_versions,
    concurrent_updates_lose_nothing,
    state_machine_is_enforced,
    hash_chain_detects_tampering,
    nothing_identifying_at_rest,
    organisations_see_only_their_own,
    identity_reads_are_events,
    group_commit_under_concurrency,
    backup_restores_on_both_backends,
    wrong_key_is_refused,
);

async fn create_read_update_with_versions(env: Env) {
    let s = &env.store;
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Иван Петров"))
        .await
        .unwrap();
    assert_eq!(case.version, 1);
    let read = s
        .case(Scope::Instance, &CaseKey::Id(case.id))
        .await
        .unwrap();
    assert_eq!(read.facts, case.facts);
    let by_ref = s
        .case(Scope::Instance, &CaseKey::Reference(case.reference.clone()))
        .await
        .unwrap();
    assert_eq!(by_ref.id, case.id);

    let new_facts = facts(
        serde_json::json!({"nationality": "RU", "current_country": "GE", "summons_received": true}),
    );
    let updated = s
        .update_facts(
            Actor::Operator,
            Scope::Instance,
            case.id,
            1,
            new_facts.clone(),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(
        s.case(Scope::Instance, &CaseKey::Id(case.id))
            .await
            .unwrap()
            .facts,
        new_facts
    );

    let stale = s
        .update_facts(
            Actor::Operator,
            Scope::Instance,
            case.id,
            1,
            Facts::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{stale}"
    );
    assert_eq!(
        s.case(Scope::Instance, &CaseKey::Id(case.id))
            .await
            .unwrap()
            .facts,
        new_facts,
        "a conflict overwrote data"
    );

    let list = s.cases(Scope::Instance, None, 100).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].pseudonym.as_ref().map(|p| p.as_str()),
        Some("Sasha")
    );
    let found = s
        .find_cases(Scope::Instance, &Lookup::Document("751234567".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let found = s
        .find_cases(Scope::Instance, &Lookup::Name("иван  ПЕТРОВ".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        s.find_cases(Scope::Instance, &Lookup::Name("Someone Else".into()))
            .await
            .unwrap()
            .is_empty()
    );
    let missing = s
        .case(
            Scope::Instance,
            &CaseKey::Id(refuge_core::ids::CaseId(Uuid::nil())),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { what: "case", .. }));
}

async fn concurrent_updates_lose_nothing(env: Env) {
    let first = new_case(&env, "Пётр Сидоров");
    let store = Arc::new(env.store);
    let case = store.create_case(Actor::Operator, first).await.unwrap();
    // 16 updaters, all starting from the same version: each lands or gets a conflict.
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let current = store
                .case(Scope::Instance, &CaseKey::Id(case.id))
                .await
                .unwrap();
            let lang = [
                "ru", "uk", "de", "nl", "en", "fr", "es", "it", "pl", "tr", "ka", "hy", "kk", "mn",
                "sr", "lt",
            ][i as usize];
            let f = facts(serde_json::json!({ "languages": [lang] }));
            match store
                .update_facts(
                    Actor::Operator,
                    Scope::Instance,
                    case.id,
                    current.version,
                    f.clone(),
                )
                .await
            {
                Ok(c) => Some((c.version, f)),
                Err(StoreError::Conflict { .. }) => None,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }));
    }
    let mut landed = Vec::new();
    for t in tasks {
        if let Some(x) = t.await.unwrap() {
            landed.push(x);
        }
    }
    assert!(!landed.is_empty());
    let final_case = store
        .case(Scope::Instance, &CaseKey::Id(case.id))
        .await
        .unwrap();
    assert_eq!(
        final_case.version,
        1 + landed.len() as u64,
        "every landed update bumped the version once"
    );
    let last = landed.iter().max_by_key(|(v, _)| *v).unwrap();
    assert_eq!(
        final_case.facts, last.1,
        "the last landed update is what is stored"
    );
    let events = store.case_events(Scope::Instance, case.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::FactsUpdated)
            .count(),
        landed.len()
    );

    // 16 updaters that retry on conflict: all 16 land, none is lost.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let current = store
                    .case(Scope::Instance, &CaseKey::Id(case.id))
                    .await
                    .unwrap();
                let mut f = current.facts.clone();
                f.summons_received = Some(!f.summons_received.unwrap_or(false));
                match store
                    .update_facts(
                        Actor::Operator,
                        Scope::Instance,
                        case.id,
                        current.version,
                        f,
                    )
                    .await
                {
                    Ok(_) => return,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store
        .case(Scope::Instance, &CaseKey::Id(case.id))
        .await
        .unwrap();
    assert_eq!(after.version, final_case.version + 16);
    assert!(store.verify_chain().await.unwrap().is_intact());
}

fn decision() -> Decision {
    Decision {
        legal_basis: "Regulation (EC) No 810/2009 Art. 25(1)(a)".parse().unwrap(),
        reasons: "Credible risk of prosecution for desertion."
            .parse()
            .unwrap(),
        decided_by: Actor::System,
        decided_at: Timestamp::from_micros(0),
    }
}

fn to(state: ApplicationState) -> Move {
    Move {
        to: state,
        reason: None,
        decision: None,
    }
}

async fn state_machine_is_enforced(env: Env) {
    let s = &env.store;
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Олег Смирнов"))
        .await
        .unwrap();
    let app = s
        .create_application(
            Actor::Operator,
            Scope::Instance,
            case.id,
            "eu-humanitarian-visa".parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(app.state, ApplicationState::Draft);
    let before = s.counts().await.unwrap();

    let e = s
        .move_application(
            Actor::Operator,
            Scope::Instance,
            app.id,
            None,
            to(ApplicationState::Granted),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Transition(_)), "{e}");
    assert!(
        e.to_string().contains("draft") && e.to_string().contains("granted"),
        "{e}"
    );
    assert_eq!(
        s.counts().await.unwrap(),
        before,
        "a refused move wrote something"
    );

    let mut version = app.version;
    for st in [
        ApplicationState::Submitted,
        ApplicationState::InReview,
        ApplicationState::InfoRequested,
        ApplicationState::InReview,
        ApplicationState::Interview,
    ] {
        let moved = s
            .move_application(
                Actor::Operator,
                Scope::Instance,
                app.id,
                Some(version),
                to(st),
            )
            .await
            .unwrap();
        assert_eq!(moved.state, st);
        assert_eq!(moved.version, version + 1);
        version = moved.version;
    }
    // a decision needs a decision
    let e = s
        .move_application(
            Actor::Operator,
            Scope::Instance,
            app.id,
            None,
            to(ApplicationState::Granted),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Transition(_)), "{e}");
    // a stale version conflicts
    let e = s
        .move_application(
            Actor::Operator,
            Scope::Instance,
            app.id,
            Some(version - 1),
            to(ApplicationState::Withdrawn),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    let mv = Move {
        to: ApplicationState::Granted,
        reason: None,
        decision: Some(decision()),
    };
    let decided = s
        .move_application(Actor::Operator, Scope::Instance, app.id, Some(version), mv)
        .await
        .unwrap();
    assert_eq!(decided.state, ApplicationState::Granted);
    let d = decided.decision.unwrap();
    assert_eq!(
        d.decided_by,
        Actor::Operator,
        "the store records who decided, whatever the caller said"
    );
    let again = s.application(Scope::Instance, app.id).await.unwrap();
    assert_eq!(
        again.decision.unwrap().reasons.as_str(),
        "Credible risk of prosecution for desertion."
    );
    // withdrawn is not reachable from a decided state; closed is final
    assert!(
        s.move_application(
            Actor::Operator,
            Scope::Instance,
            app.id,
            None,
            to(ApplicationState::Withdrawn)
        )
        .await
        .is_err()
    );
    s.move_application(
        Actor::Operator,
        Scope::Instance,
        app.id,
        None,
        to(ApplicationState::Closed),
    )
    .await
    .unwrap();
    assert!(
        s.move_application(
            Actor::Operator,
            Scope::Instance,
            app.id,
            None,
            to(ApplicationState::Appealed)
        )
        .await
        .is_err()
    );
    let events = s.case_events(Scope::Instance, case.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::ApplicationMoved)
            .count(),
        7
    );
    assert!(s.verify_chain().await.unwrap().is_intact());
}

// ---- raw access for tampering ----

enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        } else {
            Raw::Pg(sqlx::PgConnection::connect(url).await.unwrap())
        }
    }

    /// Run SQL written with `?` placeholders and one bound blob/text/int value per `?`.
    async fn exec(&mut self, sql: &str, binds: Vec<Val>) {
        match self {
            Raw::Sqlite(c) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
                for b in binds {
                    q = match b {
                        Val::Bytes(v) => q.bind(v),
                        Val::Text(v) => q.bind(v),
                        Val::Int(v) => q.bind(v),
                        Val::Uuid(v) => q.bind(v),
                    };
                }
                q.execute(&mut *c).await.unwrap();
            }
            Raw::Pg(c) => {
                let mut n = 0;
                let sql: String = sql
                    .chars()
                    .map(|ch| {
                        if ch == '?' {
                            n += 1;
                            format!("${n}")
                        } else {
                            ch.to_string()
                        }
                    })
                    .collect();
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = match b {
                        Val::Bytes(v) => q.bind(v),
                        Val::Text(v) => q.bind(v),
                        Val::Int(v) => q.bind(v),
                        Val::Uuid(v) => q.bind(v),
                    };
                }
                q.execute(&mut *c).await.unwrap();
            }
        }
    }

    async fn event(&mut self, seq: i64) -> (Uuid, Uuid, String, String, Vec<u8>) {
        let sql = "SELECT organisation_id, id, actor, meta, hash FROM events WHERE seq = ? ORDER BY organisation_id DESC LIMIT 1";
        match self {
            Raw::Sqlite(c) => sqlx::query_as(sql)
                .bind(seq)
                .fetch_one(&mut *c)
                .await
                .unwrap(),
            Raw::Pg(c) => sqlx::query_as(sqlx::AssertSqlSafe(sql.replace('?', "$1")))
                .bind(seq)
                .fetch_one(&mut *c)
                .await
                .unwrap(),
        }
    }
}

#[derive(Clone)]
enum Val {
    Bytes(Vec<u8>),
    Text(String),
    Int(i64),
    Uuid(Uuid),
}

fn names_event(report: &refuge_store::ChainReport, seq: i64, ids: &[Uuid]) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.seq == Some(seq) || p.event_id.is_some_and(|id| ids.contains(&id)))
}

async fn hash_chain_detects_tampering(env: Env) {
    let s = &env.store;
    for i in 0..3 {
        let case = s
            .create_case(Actor::Operator, new_case(&env, &format!("Person {i}")))
            .await
            .unwrap();
        s.create_application(
            Actor::Operator,
            Scope::Instance,
            case.id,
            "nl-moratorium".parse().unwrap(),
        )
        .await
        .unwrap();
    }
    assert!(s.verify_chain().await.unwrap().is_intact());
    let mut raw = Raw::connect(&env.url).await;
    let seq = 4i64; // a case_created event (it has an encrypted body) in the middle of the chain
    let (org, id, actor, meta, hash) = raw.event(seq).await;
    let key = "WHERE organisation_id = ? AND seq = ?";
    let flipped_id = {
        let mut b = *id.as_bytes();
        b[15] ^= 1;
        Uuid::from_bytes(b)
    };
    let mut flipped_hash = hash.clone();
    flipped_hash[0] ^= 1;
    let mut flipped_meta = meta.clone().into_bytes();
    let last = flipped_meta.len() - 2;
    flipped_meta[last] ^= 1;
    let flipped_meta = String::from_utf8(flipped_meta).unwrap();
    let mut flipped_actor = actor.clone().into_bytes();
    flipped_actor[0] ^= 1;
    let flipped_actor = String::from_utf8(flipped_actor).unwrap();
    // (column, tampered value, original value)
    let cases: Vec<(&str, Val, Val)> = vec![
        ("id", Val::Uuid(flipped_id), Val::Uuid(id)),
        ("hash", Val::Bytes(flipped_hash), Val::Bytes(hash.clone())),
        ("meta", Val::Text(flipped_meta), Val::Text(meta.clone())),
        ("actor", Val::Text(flipped_actor), Val::Text(actor.clone())),
    ];
    for (column, bad, good) in cases {
        raw.exec(
            &format!("UPDATE events SET {column} = ? {key}"),
            vec![bad, Val::Uuid(org), Val::Int(seq)],
        )
        .await;
        let report = s.verify_chain().await.unwrap();
        assert!(!report.is_intact(), "flipping {column} went unnoticed");
        assert!(
            names_event(&report, seq, &[id, flipped_id]),
            "flipping {column}: {:?}",
            report.problems
        );
        raw.exec(
            &format!("UPDATE events SET {column} = ? {key}"),
            vec![good, Val::Uuid(org), Val::Int(seq)],
        )
        .await;
        assert!(
            s.verify_chain().await.unwrap().is_intact(),
            "restoring {column}"
        );
    }
    // flip a byte inside the encrypted body, the timestamp, the subject
    for column in ["body_ct", "prev_hash"] {
        let flip = format!(
            "UPDATE events SET {column} = {} {key}",
            if env.pg.is_some() {
                format!("set_byte({column}, 0, get_byte({column}, 0) # 1)")
            } else {
                format!(
                    "(unhex(printf('%02X', unicode(substr({column},1,1)) # 0)) || substr({column}, 2))"
                )
            }
        );
        if env.pg.is_none() {
            // SQLite has no byte-level update helper: rewrite the blob from Rust instead.
            let blob: Vec<u8> = match &mut raw {
                Raw::Sqlite(c) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT {column} FROM events {key}"
                )))
                .bind(org)
                .bind(seq)
                .fetch_one(&mut *c)
                .await
                .unwrap(),
                Raw::Pg(_) => unreachable!(),
            };
            let mut bad = blob.clone();
            bad[5] ^= 0x40;
            raw.exec(
                &format!("UPDATE events SET {column} = ? {key}"),
                vec![Val::Bytes(bad), Val::Uuid(org), Val::Int(seq)],
            )
            .await;
            let report = s.verify_chain().await.unwrap();
            assert!(
                names_event(&report, seq, &[id]),
                "{column}: {:?}",
                report.problems
            );
            raw.exec(
                &format!("UPDATE events SET {column} = ? {key}"),
                vec![Val::Bytes(blob), Val::Uuid(org), Val::Int(seq)],
            )
            .await;
        } else {
            raw.exec(&flip, vec![Val::Uuid(org), Val::Int(seq)]).await;
            let report = s.verify_chain().await.unwrap();
            assert!(
                names_event(&report, seq, &[id]),
                "{column}: {:?}",
                report.problems
            );
            raw.exec(&flip, vec![Val::Uuid(org), Val::Int(seq)]).await;
        }
        assert!(
            s.verify_chain().await.unwrap().is_intact(),
            "restoring {column}"
        );
    }
    raw.exec(
        &format!("UPDATE events SET at = at + 1 {key}"),
        vec![Val::Uuid(org), Val::Int(seq)],
    )
    .await;
    assert!(names_event(&s.verify_chain().await.unwrap(), seq, &[id]));
    raw.exec(
        &format!("UPDATE events SET at = at - 1 {key}"),
        vec![Val::Uuid(org), Val::Int(seq)],
    )
    .await;
    assert!(s.verify_chain().await.unwrap().is_intact());

    // reorder: swap events 4 and 5
    raw.exec(
        &format!("UPDATE events SET seq = -1 {key}"),
        vec![Val::Uuid(org), Val::Int(4)],
    )
    .await;
    raw.exec(
        &format!("UPDATE events SET seq = 4 {key}"),
        vec![Val::Uuid(org), Val::Int(5)],
    )
    .await;
    raw.exec(
        &format!("UPDATE events SET seq = 5 {key}"),
        vec![Val::Uuid(org), Val::Int(-1)],
    )
    .await;
    let report = s.verify_chain().await.unwrap();
    assert!(!report.is_intact(), "reordering went unnoticed");
    assert!(names_event(&report, 5, &[id]), "{:?}", report.problems);

    // delete one event
    raw.exec(
        &format!("DELETE FROM events {key}"),
        vec![Val::Uuid(org), Val::Int(6)],
    )
    .await;
    let report = s.verify_chain().await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.problem.contains("deleted")),
        "{:?}",
        report.problems
    );

    // truncate the end: detected against the recorded head
    raw.exec(
        "DELETE FROM events WHERE organisation_id = ? AND seq >= 7",
        vec![Val::Uuid(org)],
    )
    .await;
    let report = s.verify_chain().await.unwrap();
    assert!(
        report.problems.iter().any(|p| p.problem.contains("head")),
        "{:?}",
        report.problems
    );
}

fn needles() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in CANARY_NAMES {
        for part in name.split(' ') {
            out.push(part.as_bytes().to_vec());
            out.push(part.to_lowercase().into_bytes());
            out.push(part.encode_utf16().flat_map(|u| u.to_le_bytes()).collect());
        }
    }
    out.push(b"751234567".to_vec());
    out.push(b"75 1234567".to_vec());
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn nothing_identifying_at_rest(env: Env) {
    let s = &env.store;
    for name in CANARY_NAMES {
        let case = s
            .create_case(Actor::Operator, new_case(&env, name))
            .await
            .unwrap();
        let app = s
            .create_application(
                Actor::Operator,
                Scope::Instance,
                case.id,
                "de-admission-22".parse().unwrap(),
            )
            .await
            .unwrap();
        for st in [
            ApplicationState::Submitted,
            ApplicationState::InReview,
            ApplicationState::Interview,
        ] {
            s.move_application(
                Actor::Operator,
                Scope::Instance,
                app.id,
                None,
                Move {
                    to: st,
                    reason: Some(format!("spoke with {name}").parse().unwrap()),
                    decision: None,
                },
            )
            .await
            .unwrap();
        }
        let mut d = decision();
        d.reasons = format!("{name} deserted in 2023").parse().unwrap();
        s.move_application(
            Actor::Operator,
            Scope::Instance,
            app.id,
            None,
            Move {
                to: ApplicationState::Refused,
                reason: None,
                decision: Some(d),
            },
        )
        .await
        .unwrap();
        s.reveal_identity(Actor::Operator, Scope::Instance, case.id)
            .await
            .unwrap();
    }
    s.create_user(
        Actor::Operator,
        env.org.id,
        "kuznetsov".parse().unwrap(),
        "Кузнецов Staff".parse().unwrap(),
        vec![Role::Counsellor],
    )
    .await
    .unwrap();
    let needles = {
        let mut n = needles();
        n.push(b"kuznetsov".to_vec());
        n
    };
    let mut backup = Vec::new();
    s.backup(&mut backup).await.unwrap();
    for needle in &needles {
        assert!(
            !contains(&backup, needle),
            "backup contains {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    if env.pg.is_none() {
        let mut scanned = 0;
        for entry in std::fs::read_dir(env.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            scanned += bytes.len();
            for needle in &needles {
                assert!(
                    !contains(&bytes, needle),
                    "{} contains {:?}",
                    path.display(),
                    String::from_utf8_lossy(needle)
                );
            }
        }
        assert!(scanned > 10_000, "the database files were scanned");
        assert!(
            env.dir.path().join("refuge.db-wal").exists(),
            "the WAL was scanned"
        );
    } else {
        let mut raw = sqlx::PgConnection::connect(&env.url).await.unwrap();
        let mut total = 0;
        for table in [
            "instance_meta",
            "organisations",
            "users",
            "persons",
            "person_lookup",
            "cases",
            "applications",
            "events",
            "chain_heads",
        ] {
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM {table} t"
            )))
            .fetch_all(&mut raw)
            .await
            .unwrap();
            for (row,) in rows {
                total += row.len();
                for needle in &needles {
                    let hexed = hex_lower(needle);
                    assert!(
                        !contains(row.as_bytes(), needle) && !row.contains(&hexed),
                        "{table} contains {:?}",
                        String::from_utf8_lossy(needle)
                    );
                }
            }
        }
        assert!(total > 10_000);
    }
    // and yet everything reads back
    let list = s.cases(Scope::Instance, None, 100).await.unwrap();
    let who = s
        .reveal_identity(Actor::Operator, Scope::Instance, list[0].id)
        .await
        .unwrap();
    assert_eq!(who.names[0].value.as_str(), CANARY_NAMES[0]);
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    refuge_crypto::Entropy::fill(&OsEntropy, &mut b).unwrap();
    b
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn organisations_see_only_their_own(env: Env) {
    let s = &env.store;
    let other = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "German Embassy Tbilisi".parse().unwrap(),
        )
        .await
        .unwrap();
    let mine = s
        .create_case(Actor::Operator, new_case(&env, "A B"))
        .await
        .unwrap();
    let app = s
        .create_application(
            Actor::Operator,
            Scope::Instance,
            mine.id,
            "eu-humanitarian-visa".parse().unwrap(),
        )
        .await
        .unwrap();
    let theirs = Scope::Organisation(other.id);
    assert!(matches!(
        s.case(theirs, &CaseKey::Id(mine.id)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.case(theirs, &CaseKey::Reference(mine.reference.clone()))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.reveal_identity(Actor::Operator, theirs, mine.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.update_facts(Actor::Operator, theirs, mine.id, 1, Facts::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.application(theirs, app.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.move_application(
            Actor::Operator,
            theirs,
            app.id,
            None,
            to(ApplicationState::Submitted)
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.cases(theirs, None, 10).await.unwrap().is_empty());
    assert_eq!(
        s.cases(Scope::Organisation(env.org.id), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let unknown = NewCase {
        organisation_id: refuge_core::ids::OrgId(Uuid::nil()),
        ..new_case(&env, "X")
    };
    assert!(matches!(
        s.create_case(Actor::Operator, unknown).await,
        Err(StoreError::NotFound {
            what: "organisation",
            ..
        })
    ));
}

async fn identity_reads_are_events(env: Env) {
    let s = &env.store;
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Наталья Иванова"))
        .await
        .unwrap();
    let user = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "anna".parse().unwrap(),
            "Anna".parse().unwrap(),
            vec![Role::Counsellor],
        )
        .await
        .unwrap();
    let p = s
        .reveal_identity(
            Actor::User(user.id),
            Scope::Organisation(env.org.id),
            case.id,
        )
        .await
        .unwrap();
    assert_eq!(p.names[0].value.as_str(), "Наталья Иванова");
    let events = s.case_events(Scope::Instance, case.id).await.unwrap();
    let reveal = events
        .iter()
        .find(|e| e.kind == EventKind::IdentityRevealed)
        .expect("reveal event");
    assert_eq!(reveal.actor, Actor::User(user.id));
    let dup = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "anna".parse().unwrap(),
            "Other".parse().unwrap(),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate(_)), "{dup}");
    let users = s.users(Scope::Organisation(env.org.id)).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].login.as_str(), "anna");
}

async fn group_commit_under_concurrency(env: Env) {
    let store = Arc::new(env.store);
    let org = env.org.id;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let new = NewCase {
                    organisation_id: org,
                    person: person(&format!("Writer {w} Person {i}")),
                    facts: Facts::default(),
                };
                let (case, app) = store
                    .submit(Actor::Operator, new, "nl-moratorium".parse().unwrap())
                    .await
                    .unwrap();
                assert_eq!(app.state, ApplicationState::Submitted);
                ids.push(case.id);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 320);
    let counts = store.counts().await.unwrap();
    let get = |t: &str| counts.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!(get("cases"), 320);
    assert_eq!(get("applications"), 320);
    for id in all.iter().step_by(37) {
        store
            .case(Scope::Instance, &CaseKey::Id(*id))
            .await
            .unwrap();
    }
    // The background indexer moves the blind indexes (a name and a document each) into
    // person_lookup within a few seconds; lookups work before and after.
    let found = store
        .find_cases(Scope::Instance, &Lookup::Name("writer 3 person 4".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let mut indexed = 0;
    for _ in 0..100 {
        let counts = store.counts().await.unwrap();
        indexed = counts
            .iter()
            .find(|(n, _)| *n == "person_lookup")
            .unwrap()
            .1;
        if indexed >= 640 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(indexed, 640, "a name and a document number per person");
    let found = store
        .find_cases(Scope::Instance, &Lookup::Name("Writer 3 Person 4".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        store
            .find_cases(Scope::Instance, &Lookup::Document("75 1234567".into()))
            .await
            .unwrap()
            .len(),
        320
    );
    let report = store.verify_chain().await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(
        report.events(),
        320 + 2,
        "one case_submitted event per submission, plus init and organisation"
    );
    let events = store.case_events(Scope::Instance, all[0]).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::CaseSubmitted);
    assert_eq!(events[0].meta["state"], "submitted");
    assert_eq!(events[0].meta["programme"], "nl-moratorium");
}

async fn backup_restores_on_both_backends(env: Env) {
    let s = &env.store;
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Дмитрий Орлов"))
        .await
        .unwrap();
    let app = s
        .create_application(
            Actor::Operator,
            Scope::Instance,
            case.id,
            "nl-stay-extension".parse().unwrap(),
        )
        .await
        .unwrap();
    s.move_application(
        Actor::Operator,
        Scope::Instance,
        app.id,
        None,
        to(ApplicationState::Submitted),
    )
    .await
    .unwrap();
    let mut file = Vec::new();
    let summary = s.backup(&mut file).await.unwrap();
    assert_eq!(summary.counts["cases"], 1);
    let before = s.counts().await.unwrap();

    // same backend, and SQLite in any case; PostgreSQL too when available
    let mut targets = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    targets.push((
        format!("sqlite://{}", dir.path().join("restored.db").display()),
        None,
    ));
    if let Some((url, db)) = fresh_pg_url().await {
        targets.push((url, Some(db)));
    }
    for (url, _db) in targets {
        let restored = refuge_store::restore(config(&url, &env.key), &mut file.as_slice(), &|_| {})
            .await
            .unwrap();
        assert_eq!(restored, summary);
        let store = refuge_store::open(config(&url, &env.key)).await.unwrap();
        let after = store.counts().await.unwrap();
        for ((t, a), (_, b)) in before.iter().zip(after.iter()) {
            if *t == "person_lookup" {
                continue; // derived: the background indexer may fill it on either side
            }
            let extra = i64::from(*t == "events"); // the restore itself is an event
            assert_eq!(
                *a + extra,
                *b,
                "{t} after restore into {}",
                store.backend_name()
            );
        }
        assert!(store.verify_chain().await.unwrap().is_intact());
        let back = store
            .case(Scope::Instance, &CaseKey::Id(case.id))
            .await
            .unwrap();
        assert_eq!(back.facts, case.facts);
        assert_eq!(
            store
                .application(Scope::Instance, app.id)
                .await
                .unwrap()
                .state,
            ApplicationState::Submitted
        );
        // restoring again into a non-empty database is refused, nothing written
        let again = refuge_store::restore(config(&url, &env.key), &mut file.as_slice(), &|_| {})
            .await
            .unwrap_err();
        assert!(again.to_string().contains("not empty"), "{again}");
        store.close().await;
    }
    // a damaged backup is refused and writes nothing
    let dir2 = tempfile::tempdir().unwrap();
    let url2 = format!("sqlite://{}", dir2.path().join("r.db").display());
    let mut damaged = file.clone();
    let mid = damaged.len() / 2;
    damaged[mid] = if damaged[mid] == b'A' { b'B' } else { b'A' };
    assert!(
        refuge_store::restore(config(&url2, &env.key), &mut damaged.as_slice(), &|_| {})
            .await
            .is_err()
    );
    let other_key = dir2.path().join("other.key");
    refuge_crypto::InstanceKey::generate(&SeededEntropy::new(9))
        .unwrap()
        .write_key_file(&other_key)
        .unwrap();
    let e = refuge_store::restore(config(&url2, &other_key), &mut file.as_slice(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::WrongKey), "{e}");
    let e = refuge_store::open(config(&url2, &env.key))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, StoreError::NotInitialised),
        "nothing was written: {e}"
    );
}

async fn wrong_key_is_refused(env: Env) {
    let other = env.dir.path().join("other.key");
    refuge_crypto::InstanceKey::generate(&OsEntropy)
        .unwrap()
        .write_key_file(&other)
        .unwrap();
    let e = refuge_store::open(config(&env.url, &other))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, StoreError::WrongKey), "{e}");
    let e = refuge_store::initialise(
        config(&env.url, &env.dir.path().join("third.key")),
        OrganisationKind::Ngo,
        "X".parse().unwrap(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(e, StoreError::AlreadyInitialised), "{e}");
    assert!(
        !env.dir.path().join("third.key").exists(),
        "no key file was left behind"
    );
}

//! The `Store` contract, run against SQLite and PostgreSQL.
//!
//! PostgreSQL tests use `REFUGE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and create a fresh database per test. When the
//! server is unreachable they are skipped with a message, unless `REFUGE_REQUIRE_POSTGRES=1`
//! (as in CI), which turns the skip into a failure.

use refuge_core::application::{ApplicationState, Decision, Move, TransitionError};
use refuge_core::case::DeadlineKind;
use refuge_core::clock::{SystemClock, Timestamp};
use refuge_core::event::{Actor, EventKind};
use refuge_core::facts::Facts;
use refuge_core::ids::{ApplicationId, CaseId, DeadlineId, EvidenceId, OrgId};
use refuge_core::org::{OrganisationKind, Role};
use refuge_core::person::Person;
use refuge_core::text::Text;
use refuge_crypto::{OsEntropy, SecretString, SeededEntropy, sha256};
use refuge_store::{
    CaseKey, KeySource, Lookup, MessageKind, NewCase, QueueFilter, ReferralState, Scope,
    SecretBytes, SqlStore, Store, StoreConfig, StoreError,
};
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use time::macros::date;
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
    colliding_case_references_are_drawn_again,
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
    applicants_reach_their_case_by_codename,
    applicants_may_only_withdraw,
    evidence_is_sealed_and_scoped,
    messages_are_kept_in_order,
    deadlines_are_listed_by_due_date,
    referrals_decide_who_sees_a_case,
    staff_credentials_and_api_tokens,
    queue_pages_in_id_order,
    erasing_a_person_destroys_their_key,
    rotating_the_instance_key_keeps_a_running_store_working,
    exports_need_a_second_person_and_leave_encrypted,
    a_submission_is_made_once_per_idempotency_key,
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

impl Raw {
    /// A person's wrapped data key as stored (`None` once erased).
    async fn wrapped_key(&mut self, person: Uuid) -> Option<Vec<u8>> {
        let sql = "SELECT wrapped_key FROM persons WHERE id = ?";
        let (k,): (Option<Vec<u8>>,) = match self {
            Raw::Sqlite(c) => sqlx::query_as(sql)
                .bind(person)
                .fetch_one(&mut *c)
                .await
                .unwrap(),
            Raw::Pg(c) => sqlx::query_as(sqlx::AssertSqlSafe(sql.replace('?', "$1")))
                .bind(person)
                .fetch_one(&mut *c)
                .await
                .unwrap(),
        };
        k
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

/// Secrets that must never be stored as they are.
const CANARY_CODENAME: &str = "violet harbour lantern";
const CANARY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Q0FOQVJZU0FMVFNBTFQ$Q0FOQVJZSEFTSENBTkFSWUhBU0g";
const CANARY_TOTP: &[u8] = b"TOTPCANARYSECRET2026";
const CANARY_TOKEN: &[u8] = b"rfg_CANARYTOKEN_never_stored";

async fn nothing_identifying_at_rest(env: Env) {
    let s = &env.store;
    let embassy = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Receiving Embassy".parse().unwrap(),
        )
        .await
        .unwrap();
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
        // Everything else recorded on a case carries the name too.
        let mine = Scope::Organisation(env.org.id);
        s.add_evidence(
            Actor::Operator,
            mine,
            case.id,
            format!("{name} passport.pdf"),
            "application/pdf".into(),
            [
                format!("Passport of {name}").into_bytes(),
                name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
            ]
            .concat(),
        )
        .await
        .unwrap();
        s.add_message(
            Actor::Operator,
            mine,
            case.id,
            MessageKind::InfoRequest,
            text(&format!("Please send {name}'s summons")),
        )
        .await
        .unwrap();
        let deadline = s
            .set_deadline(
                Actor::Operator,
                mine,
                case.id,
                DeadlineKind::DeportationOrder,
                date!(2026 - 12 - 24),
                Some(text(&format!("{name} must leave Armenia by then"))),
            )
            .await
            .unwrap();
        s.complete_deadline(Actor::Operator, mine, deadline.id)
            .await
            .unwrap();
        let referral = s
            .refer(
                Actor::Operator,
                mine,
                case.id,
                embassy.id,
                text(&format!("{name} consented in person")),
            )
            .await
            .unwrap();
        s.answer_referral(
            Actor::Operator,
            Scope::Organisation(embassy.id),
            referral.id,
            true,
        )
        .await
        .unwrap();
        // The applicant's own intake, with a codename naming them.
        s.apply(
            new_case(&env, name),
            "nl-moratorium".parse().unwrap(),
            &secret(&format!("{name} {CANARY_CODENAME}")),
        )
        .await
        .unwrap();
    }
    let staff = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "kuznetsov".parse().unwrap(),
            "Кузнецов Staff".parse().unwrap(),
            vec![Role::Counsellor],
        )
        .await
        .unwrap();
    s.set_password(Actor::Operator, staff.id, secret(CANARY_PHC))
        .await
        .unwrap();
    s.set_totp(
        Actor::Operator,
        staff.id,
        Some(SecretBytes::new(CANARY_TOTP.to_vec())),
    )
    .await
    .unwrap();
    s.create_api_token(
        Actor::Operator,
        staff.id,
        sha256(CANARY_TOKEN),
        "Kuznetsov laptop".into(),
    )
    .await
    .unwrap();
    let needles = {
        let mut n = needles();
        n.push(b"kuznetsov".to_vec());
        n.push(CANARY_CODENAME.as_bytes().to_vec());
        n.push(b"argon2id".to_vec());
        n.push(CANARY_PHC.rsplit('$').next().unwrap().as_bytes().to_vec());
        n.push(CANARY_TOTP.to_vec());
        n.push(CANARY_TOKEN.to_vec());
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
            "applicant_access",
            "evidence",
            "messages",
            "deadlines",
            "referrals",
            "api_tokens",
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
    let evidence = s.evidence_list(Scope::Instance, list[0].id).await.unwrap();
    let name = CANARY_NAMES[0];
    assert_eq!(evidence[0].name, format!("{name} passport.pdf"));
    let (_, content) = s.evidence(Scope::Instance, evidence[0].id).await.unwrap();
    assert!(contains(&content, name.as_bytes()));
    assert!(
        s.messages(Scope::Instance, list[0].id).await.unwrap()[0]
            .body
            .as_str()
            .contains(name)
    );
    assert!(
        s.case_deadlines(Scope::Instance, list[0].id).await.unwrap()[0]
            .note
            .as_ref()
            .unwrap()
            .as_str()
            .contains(name)
    );
    assert!(
        s.referrals(Scope::Instance).await.unwrap()[0]
            .consent
            .as_ref()
            .unwrap()
            .as_str()
            .contains(name)
    );
    assert!(
        s.case_for_codename(&secret(&format!("{name} {CANARY_CODENAME}")))
            .await
            .unwrap()
            .is_some()
    );
    let creds = s
        .user_credentials(&"kuznetsov".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_phc.unwrap().expose(), CANARY_PHC);
    assert_eq!(creds.totp_secret.unwrap().expose(), CANARY_TOTP);
    assert!(
        s.user_for_token(sha256(CANARY_TOKEN))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.api_tokens(Scope::Instance, creds.user.id).await.unwrap()[0]
            .label
            .as_str(),
        "Kuznetsov laptop"
    );
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
    // One record in every table.
    let mine = Scope::Organisation(env.org.id);
    let evidence = s
        .add_evidence(
            Actor::Operator,
            mine,
            case.id,
            "form.pdf".into(),
            "application/pdf".into(),
            vec![9; 5000],
        )
        .await
        .unwrap();
    s.add_message(
        Actor::Operator,
        mine,
        case.id,
        MessageKind::Note,
        text("Restored notes stay sealed."),
    )
    .await
    .unwrap();
    let deadline = s
        .set_deadline(
            Actor::Operator,
            mine,
            case.id,
            DeadlineKind::AppealLimit,
            date!(2027 - 03 - 01),
            Some(text("Appeal")),
        )
        .await
        .unwrap();
    s.complete_deadline(Actor::Operator, mine, deadline.id)
        .await
        .unwrap();
    let embassy = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Embassy".parse().unwrap(),
        )
        .await
        .unwrap();
    let referral = s
        .refer(
            Actor::Operator,
            mine,
            case.id,
            embassy.id,
            text("Consent in writing"),
        )
        .await
        .unwrap();
    let referral = s
        .answer_referral(
            Actor::Operator,
            Scope::Organisation(embassy.id),
            referral.id,
            true,
        )
        .await
        .unwrap();
    let (applied, _) = s
        .apply(
            new_case(&env, "Анна Орлова"),
            "nl-moratorium".parse().unwrap(),
            &secret("north star ferry"),
        )
        .await
        .unwrap();
    let staff = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "restorer".parse().unwrap(),
            "Restorer".parse().unwrap(),
            vec![Role::OrgAdmin],
        )
        .await
        .unwrap();
    s.set_password(Actor::Operator, staff.id, secret(CANARY_PHC))
        .await
        .unwrap();
    s.set_totp(
        Actor::Operator,
        staff.id,
        Some(SecretBytes::new(CANARY_TOTP.to_vec())),
    )
    .await
    .unwrap();
    let token = sha256(b"rfg_restore_token");
    s.create_api_token(Actor::Operator, staff.id, token, "backup check".into())
        .await
        .unwrap();
    let revoked = sha256(b"rfg_revoked_token");
    s.create_api_token(Actor::Operator, staff.id, revoked, "old".into())
        .await
        .unwrap();
    s.revoke_api_token(Actor::Operator, mine, revoked)
        .await
        .unwrap();
    let mut file = Vec::new();
    let summary = s.backup(&mut file).await.unwrap();
    assert_eq!(summary.counts["cases"], 2);
    for table in [
        "applicant_access",
        "evidence",
        "messages",
        "deadlines",
        "referrals",
    ] {
        assert_eq!(summary.counts[table], 1, "{table}");
    }
    assert_eq!(summary.counts["api_tokens"], 2);
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
        assert_eq!(
            store.evidence(mine, evidence.id).await.unwrap().1,
            vec![9; 5000]
        );
        assert_eq!(
            store.messages(mine, case.id).await.unwrap()[0]
                .body
                .as_str(),
            "Restored notes stay sealed."
        );
        // The queue's totals are derived, not backed up: the restore rebuilds them.
        for scope in [mine, Scope::Instance, Scope::Organisation(embassy.id)] {
            assert_eq!(
                store
                    .count_queue(scope, &QueueFilter::default())
                    .await
                    .unwrap(),
                s.count_queue(scope, &QueueFilter::default()).await.unwrap(),
                "queue total of {scope:?} after restore into {}",
                store.backend_name()
            );
        }
        let deadlines = store.case_deadlines(mine, case.id).await.unwrap();
        assert!(deadlines[0].is_done() && deadlines[0].note.is_some());
        assert_eq!(store.referrals(mine).await.unwrap(), vec![referral.clone()]);
        assert!(
            store
                .case(Scope::Organisation(embassy.id), &CaseKey::Id(case.id))
                .await
                .is_ok(),
            "the accepted referral still opens the case"
        );
        assert_eq!(
            store
                .case_for_codename(&secret("North Star ferry"))
                .await
                .unwrap(),
            Some((applied.id, env.org.id))
        );
        let creds = store
            .user_credentials(&"restorer".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(creds.password_phc.unwrap().expose(), CANARY_PHC);
        assert_eq!(creds.totp_secret.unwrap().expose(), CANARY_TOTP);
        assert_eq!(
            store.user_for_token(token).await.unwrap().map(|u| u.id),
            Some(staff.id)
        );
        assert_eq!(store.user_for_token(revoked).await.unwrap(), None);
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

// ---- applicants, evidence, messages, deadlines, referrals, staff, queue ----

fn text(s: &str) -> Text {
    s.parse().unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::new(s.to_owned())
}

impl Raw {
    /// Kind, meta and body of every event about `subject`, in chain order.
    async fn events_about(&mut self, subject: Uuid) -> Vec<(String, String, Option<Vec<u8>>)> {
        let sql = "SELECT kind, meta, body_ct FROM events WHERE subject = ? ORDER BY organisation_id, seq";
        match self {
            Raw::Sqlite(c) => sqlx::query_as(sql)
                .bind(subject)
                .fetch_all(&mut *c)
                .await
                .unwrap(),
            Raw::Pg(c) => sqlx::query_as(sqlx::AssertSqlSafe(sql.replace('?', "$1")))
                .bind(subject)
                .fetch_all(&mut *c)
                .await
                .unwrap(),
        }
    }
}

async fn applicants_reach_their_case_by_codename(env: Env) {
    let s = &env.store;
    let codename = secret("Amber  Falcon river-42");
    let (case, app) = s
        .apply(
            new_case(&env, "Антон Белов"),
            "nl-moratorium".parse().unwrap(),
            &codename,
        )
        .await
        .unwrap();
    assert_eq!(app.state, ApplicationState::Submitted);
    for typed in ["amber falcon river-42", "  AMBER\tFalcon   RIVER-42 "] {
        assert_eq!(
            s.case_for_codename(&secret(typed)).await.unwrap(),
            Some((case.id, env.org.id)),
            "{typed:?}"
        );
    }
    for wrong in ["amber falcon river-43", "amberfalcon river-42", "", "   "] {
        assert_eq!(s.case_for_codename(&secret(wrong)).await.unwrap(), None);
    }
    // One codename, one case.
    let dup = s
        .apply(
            new_case(&env, "Someone Else"),
            "nl-moratorium".parse().unwrap(),
            &secret("amber falcon RIVER-42"),
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate(_)), "{dup}");
    let empty = s
        .apply(
            new_case(&env, "Someone Else"),
            "nl-moratorium".parse().unwrap(),
            &secret(" "),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            empty,
            StoreError::Invalid {
                field: "codename",
                ..
            }
        ),
        "{empty}"
    );
    let counts = s.counts().await.unwrap();
    let get = |t: &str| counts.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!((get("cases"), get("applicant_access")), (1, 1));
    // One change, one event, by the applicant.
    let events = s.case_events(Scope::Instance, case.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::CaseSubmitted);
    assert_eq!(events[0].actor, Actor::Applicant);
    assert_eq!(events[0].meta["programme"], "nl-moratorium");
    // The applicant reads their case in the scope of its organisation.
    let scope = Scope::Organisation(env.org.id);
    assert_eq!(
        s.case(scope, &CaseKey::Id(case.id)).await.unwrap().facts,
        case.facts
    );
}

async fn applicants_may_only_withdraw(env: Env) {
    let s = &env.store;
    let scope = Scope::Organisation(env.org.id);
    let (_, app) = s
        .apply(
            new_case(&env, "Глеб Зайцев"),
            "de-admission-22".parse().unwrap(),
            &secret("quiet harbour seven"),
        )
        .await
        .unwrap();
    for st in [ApplicationState::InReview, ApplicationState::Interview] {
        let e = s
            .move_application(Actor::Applicant, scope, app.id, None, to(st))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Transition(TransitionError::ApplicantMayOnlyWithdraw(_))
            ),
            "{e}"
        );
        s.move_application(Actor::Operator, scope, app.id, None, to(st))
            .await
            .unwrap();
    }
    let before = s.counts().await.unwrap();
    for outcome in [ApplicationState::Granted, ApplicationState::Refused] {
        let e = s
            .move_application(
                Actor::Applicant,
                scope,
                app.id,
                None,
                Move {
                    to: outcome,
                    reason: None,
                    decision: Some(decision()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Transition(TransitionError::ApplicantMayOnlyWithdraw(s)) if s == outcome
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("only withdraw") && e.to_string().contains("decisions"),
            "{e}"
        );
    }
    assert_eq!(
        s.counts().await.unwrap(),
        before,
        "a refused move wrote something"
    );
    let withdrawn = s
        .move_application(
            Actor::Applicant,
            scope,
            app.id,
            None,
            to(ApplicationState::Withdrawn),
        )
        .await
        .unwrap();
    assert_eq!(withdrawn.state, ApplicationState::Withdrawn);
    let events = s
        .case_events(Scope::Instance, withdrawn.case_id)
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().actor, Actor::Applicant);
    assert!(s.verify_chain().await.unwrap().is_intact());
}

async fn evidence_is_sealed_and_scoped(env: Env) {
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Роман Ковалёв"))
        .await
        .unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let first = s
        .add_evidence(
            Actor::Operator,
            mine,
            case.id,
            " summons.pdf ".into(),
            "Application/PDF".into(),
            bytes.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            first.name.as_str(),
            first.media_type.as_str(),
            first.size,
            first.added_by
        ),
        ("summons.pdf", "application/pdf", 100_000, Actor::Operator)
    );
    let second = s
        .add_evidence(
            Actor::Applicant,
            mine,
            case.id,
            "note.txt".into(),
            "text/plain".into(),
            b"second".to_vec(),
        )
        .await
        .unwrap();
    let list = s.evidence_list(Scope::Instance, case.id).await.unwrap();
    assert_eq!(list, vec![first.clone(), second.clone()]);
    let (meta, content) = s.evidence(mine, first.id).await.unwrap();
    assert_eq!((meta, content), (first.clone(), bytes));
    assert_eq!(s.evidence(mine, second.id).await.unwrap().1, b"second");

    for (name, media, len, field) in [
        ("", "text/plain", 1, "name"),
        ("a\u{7}b", "text/plain", 1, "name"),
        ("a.txt", "plain", 1, "media_type"),
        (
            "a.txt",
            "text/plain",
            refuge_store::MAX_EVIDENCE_BYTES + 1,
            "file",
        ),
    ] {
        let e = s
            .add_evidence(
                Actor::Operator,
                mine,
                case.id,
                name.into(),
                media.into(),
                vec![0; len],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { field: f, .. } if f == field),
            "{e}"
        );
    }

    let other = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Other".parse().unwrap(),
        )
        .await
        .unwrap();
    let theirs = Scope::Organisation(other.id);
    assert!(matches!(
        s.evidence(theirs, first.id).await,
        Err(StoreError::NotFound {
            what: "evidence",
            ..
        })
    ));
    assert!(matches!(
        s.evidence_list(theirs, case.id).await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
    assert!(matches!(
        s.add_evidence(
            Actor::Operator,
            theirs,
            case.id,
            "x".into(),
            "text/plain".into(),
            vec![1]
        )
        .await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
    assert!(matches!(
        s.evidence(mine, EvidenceId(Uuid::nil())).await,
        Err(StoreError::NotFound { .. })
    ));

    // The event names the evidence and its size, nothing else in plaintext.
    let events = s.case_events(Scope::Instance, case.id).await.unwrap();
    let added: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::EvidenceAdded)
        .collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].subject, first.id.0);
    assert_eq!(
        added[0].meta,
        serde_json::json!({"id": first.id.to_string(), "size": 100_000})
    );
    assert_eq!(added[1].actor, Actor::Applicant);

    // A sealed file moved onto another record does not open.
    let mut raw = Raw::connect(&env.url).await;
    raw.exec(
        "UPDATE evidence SET content_ct = (SELECT content_ct FROM evidence WHERE id = ?) WHERE id = ?",
        vec![Val::Uuid(second.id.0), Val::Uuid(first.id.0)],
    )
    .await;
    let e = s.evidence(mine, first.id).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Corrupt {
                what: "evidence",
                ..
            }
        ),
        "{e}"
    );
    assert!(s.verify_chain().await.unwrap().is_intact());
}

async fn messages_are_kept_in_order(env: Env) {
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Илья Соколов"))
        .await
        .unwrap();
    let user = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "vera".parse().unwrap(),
            "Vera".parse().unwrap(),
            vec![Role::Caseworker],
        )
        .await
        .unwrap();
    let staff = Actor::User(user.id);
    let m1 = s
        .add_message(
            staff,
            mine,
            case.id,
            MessageKind::InfoRequest,
            text("Please send the summons."),
        )
        .await
        .unwrap();
    let m2 = s
        .add_message(
            Actor::Applicant,
            mine,
            case.id,
            MessageKind::InfoAnswer,
            text("Uploaded it today."),
        )
        .await
        .unwrap();
    let m3 = s
        .add_message(
            staff,
            mine,
            case.id,
            MessageKind::Note,
            text("Summons looks genuine.\nCheck the stamp."),
        )
        .await
        .unwrap();
    let list = s.messages(Scope::Instance, case.id).await.unwrap();
    assert_eq!(list, vec![m1.clone(), m2.clone(), m3.clone()]);
    assert_eq!(list[1].author, Actor::Applicant);
    assert_eq!(
        list[2].body.as_str(),
        "Summons looks genuine.\nCheck the stamp."
    );
    let events = s.case_events(Scope::Instance, case.id).await.unwrap();
    let added: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::MessageAdded)
        .collect();
    assert_eq!(added.len(), 3);
    assert_eq!(added[0].meta, serde_json::json!({"kind": "info_request"}));
    assert_eq!(added[0].actor, staff);
    let other = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Authority,
            "Other".parse().unwrap(),
        )
        .await
        .unwrap();
    let theirs = Scope::Organisation(other.id);
    assert!(matches!(
        s.messages(theirs, case.id).await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
    assert!(matches!(
        s.add_message(staff, theirs, case.id, MessageKind::Note, text("x"))
            .await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
}

async fn deadlines_are_listed_by_due_date(env: Env) {
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let other = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Ngo,
            "Other NGO".parse().unwrap(),
        )
        .await
        .unwrap();
    let theirs = Scope::Organisation(other.id);
    let c1 = s
        .create_case(Actor::Operator, new_case(&env, "One"))
        .await
        .unwrap();
    let c2 = s
        .create_case(Actor::Operator, new_case(&env, "Two"))
        .await
        .unwrap();
    let c3 = s
        .create_case(
            Actor::Operator,
            NewCase {
                organisation_id: other.id,
                ..new_case(&env, "Three")
            },
        )
        .await
        .unwrap();
    let d1 = s
        .set_deadline(
            Actor::Operator,
            mine,
            c1.id,
            DeadlineKind::StayExpiry,
            date!(2026 - 12 - 01),
            Some(text("Visa-free stay in Georgia ends")),
        )
        .await
        .unwrap();
    let d2 = s
        .set_deadline(
            Actor::Operator,
            mine,
            c2.id,
            DeadlineKind::AppealLimit,
            date!(2026 - 11 - 25),
            None,
        )
        .await
        .unwrap();
    let d3 = s
        .set_deadline(
            Actor::Operator,
            mine,
            c1.id,
            DeadlineKind::TransferOrder,
            date!(2027 - 01 - 10),
            None,
        )
        .await
        .unwrap();
    let dx = s
        .set_deadline(
            Actor::Operator,
            theirs,
            c3.id,
            DeadlineKind::DeportationOrder,
            date!(2026 - 11 - 01),
            None,
        )
        .await
        .unwrap();
    assert_eq!((d1.version, d1.done_at), (1, None));
    let ids = |v: Vec<refuge_core::case::Deadline>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let listed = s.deadlines(mine, None, false).await.unwrap();
    assert_eq!(listed[1], d1, "the note reads back");
    assert_eq!(ids(listed), vec![d2.id, d1.id, d3.id]);
    assert_eq!(
        ids(s
            .deadlines(mine, Some(date!(2026 - 12 - 01)), false)
            .await
            .unwrap()),
        vec![d2.id],
        "due_before is exclusive"
    );
    assert_eq!(
        ids(s.deadlines(Scope::Instance, None, false).await.unwrap()),
        vec![dx.id, d2.id, d1.id, d3.id]
    );
    assert_eq!(
        ids(s.deadlines(theirs, None, true).await.unwrap()),
        vec![dx.id]
    );

    s.complete_deadline(Actor::Operator, mine, d2.id)
        .await
        .unwrap();
    let again = s
        .complete_deadline(Actor::Operator, mine, d2.id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::AlreadyDone {
                what: "deadline",
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(
        ids(s.deadlines(mine, None, false).await.unwrap()),
        vec![d1.id, d3.id]
    );
    let all = s.deadlines(mine, None, true).await.unwrap();
    assert_eq!(ids(all.clone()), vec![d2.id, d1.id, d3.id]);
    assert!(all[0].is_done() && all[0].version == 2);
    assert_eq!(
        ids(s.case_deadlines(mine, c1.id).await.unwrap()),
        vec![d1.id, d3.id]
    );
    assert!(matches!(
        s.complete_deadline(Actor::Operator, theirs, d1.id).await,
        Err(StoreError::NotFound {
            what: "deadline",
            ..
        })
    ));
    assert!(matches!(
        s.complete_deadline(Actor::Operator, mine, DeadlineId(Uuid::nil()))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.case_deadlines(theirs, c1.id).await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
    let events = s.case_events(Scope::Instance, c2.id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::CaseCreated,
            EventKind::DeadlineSet,
            EventKind::DeadlineCompleted
        ]
    );
    assert_eq!(events[1].meta["due_on"], "2026-11-25");
    assert_eq!(events[1].meta["kind"], "appeal_limit");
    assert!(s.verify_chain().await.unwrap().is_intact());
}

/// What a probe of one organisation's view of a case touches.
struct Probe {
    case: refuge_core::case::Case,
    app: ApplicationId,
    evidence: EvidenceId,
    deadline: DeadlineId,
}

/// Every way of reaching the case fails for `scope` with `NotFound`, and the error reads
/// exactly as for a case that does not exist.
async fn sees_nothing(s: &SqlStore, scope: Scope, p: &Probe) {
    let id = p.case.id;
    let nil = CaseId(Uuid::nil());
    let same_as_missing = |e: StoreError, missing: StoreError, what: &str| {
        assert_eq!(e.code(), "not_found", "{what}: {e}");
        assert_eq!(
            e.to_string().replace(&id.to_string(), "ID"),
            missing.to_string().replace(&nil.to_string(), "ID"),
            "{what}"
        );
    };
    same_as_missing(
        s.case(scope, &CaseKey::Id(id)).await.unwrap_err(),
        s.case(scope, &CaseKey::Id(nil)).await.unwrap_err(),
        "case",
    );
    assert!(matches!(
        s.case(scope, &CaseKey::Reference(p.case.reference.clone()))
            .await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
    same_as_missing(
        s.applications(scope, id).await.unwrap_err(),
        s.applications(scope, nil).await.unwrap_err(),
        "applications",
    );
    same_as_missing(
        s.case_events(scope, id).await.unwrap_err(),
        s.case_events(scope, nil).await.unwrap_err(),
        "events",
    );
    same_as_missing(
        s.evidence_list(scope, id).await.unwrap_err(),
        s.evidence_list(scope, nil).await.unwrap_err(),
        "evidence",
    );
    same_as_missing(
        s.messages(scope, id).await.unwrap_err(),
        s.messages(scope, nil).await.unwrap_err(),
        "messages",
    );
    same_as_missing(
        s.case_deadlines(scope, id).await.unwrap_err(),
        s.case_deadlines(scope, nil).await.unwrap_err(),
        "deadlines",
    );
    same_as_missing(
        s.reveal_identity(Actor::Operator, scope, id)
            .await
            .unwrap_err(),
        s.reveal_identity(Actor::Operator, scope, nil)
            .await
            .unwrap_err(),
        "identity",
    );
    same_as_missing(
        s.update_facts(Actor::Operator, scope, id, p.case.version, Facts::default())
            .await
            .unwrap_err(),
        s.update_facts(Actor::Operator, scope, nil, 1, Facts::default())
            .await
            .unwrap_err(),
        "facts",
    );
    same_as_missing(
        s.add_message(Actor::Operator, scope, id, MessageKind::Note, text("x"))
            .await
            .unwrap_err(),
        s.add_message(Actor::Operator, scope, nil, MessageKind::Note, text("x"))
            .await
            .unwrap_err(),
        "add message",
    );
    for e in [
        s.application(scope, p.app).await.unwrap_err(),
        s.move_application(
            Actor::Operator,
            scope,
            p.app,
            None,
            to(ApplicationState::Withdrawn),
        )
        .await
        .unwrap_err(),
        s.evidence(scope, p.evidence).await.unwrap_err(),
        s.complete_deadline(Actor::Operator, scope, p.deadline)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    }
    assert!(
        !s.cases(scope, None, 1000)
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
    assert!(
        !s.deadlines(scope, None, true)
            .await
            .unwrap()
            .iter()
            .any(|d| d.case_id == id)
    );
    let q = s
        .queue(scope, &QueueFilter::default(), None, 1000)
        .await
        .unwrap();
    assert!(!q.iter().any(|i| i.case.id == id));
    assert_eq!(
        s.count_queue(scope, &QueueFilter::default()).await.unwrap(),
        q.len() as u64
    );
}

async fn referrals_decide_who_sees_a_case(env: Env) {
    let s = &env.store;
    let a = env.org.id;
    let b = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Embassy B".parse().unwrap(),
        )
        .await
        .unwrap()
        .id;
    let c = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Authority,
            "Authority C".parse().unwrap(),
        )
        .await
        .unwrap()
        .id;
    let (sa, sb, sc) = (
        Scope::Organisation(a),
        Scope::Organisation(b),
        Scope::Organisation(c),
    );
    let case = s
        .create_case(Actor::Operator, new_case(&env, "Фёдор Волков"))
        .await
        .unwrap();
    let app = s
        .create_application(
            Actor::Operator,
            sa,
            case.id,
            "eu-humanitarian-visa".parse().unwrap(),
        )
        .await
        .unwrap();
    s.move_application(
        Actor::Operator,
        sa,
        app.id,
        None,
        to(ApplicationState::Submitted),
    )
    .await
    .unwrap();
    let evidence = s
        .add_evidence(
            Actor::Operator,
            sa,
            case.id,
            "summons.jpg".into(),
            "image/jpeg".into(),
            vec![7; 1000],
        )
        .await
        .unwrap();
    s.add_message(
        Actor::Operator,
        sa,
        case.id,
        MessageKind::Note,
        text("Met in Tbilisi."),
    )
    .await
    .unwrap();
    let deadline = s
        .set_deadline(
            Actor::Operator,
            sa,
            case.id,
            DeadlineKind::StayExpiry,
            date!(2027 - 02 - 01),
            None,
        )
        .await
        .unwrap();
    let probe = Probe {
        case: case.clone(),
        app: app.id,
        evidence: evidence.id,
        deadline: deadline.id,
    };
    // Before any referral, B and C see nothing.
    sees_nothing(s, sb, &probe).await;
    sees_nothing(s, sc, &probe).await;
    assert!(s.referrals(sb).await.unwrap().is_empty());
    // The one-case summary follows the same rule: the holder sees it, nobody else does.
    let own = s.case_summary(sa, case.id).await.unwrap();
    assert_eq!(own.reference, case.reference);
    assert_eq!(own.pseudonym.as_ref().map(|p| p.as_str()), Some("Sasha"));
    for scope in [sb, sc] {
        assert!(matches!(
            s.case_summary(scope, case.id).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    let consent = text("Consent given in person on 2026-11-20, signed form kept on file.");
    // Only the organisation holding a case refers it, and not to itself.
    assert!(matches!(
        s.refer(Actor::Operator, sb, case.id, c, consent.clone())
            .await,
        Err(StoreError::NotFound { what: "case", .. })
    ));
    assert!(matches!(
        s.refer(Actor::Operator, sa, case.id, a, consent.clone())
            .await,
        Err(StoreError::Invalid { field: "to", .. })
    ));
    assert!(matches!(
        s.refer(
            Actor::Operator,
            sa,
            case.id,
            OrgId(Uuid::nil()),
            consent.clone()
        )
        .await,
        Err(StoreError::NotFound {
            what: "organisation",
            ..
        })
    ));
    let first = s
        .refer(Actor::Operator, sa, case.id, b, consent.clone())
        .await
        .unwrap();
    assert_eq!(first.state, ReferralState::Pending);
    assert_eq!((first.from_org, first.to_org), (a, b));
    assert_eq!(first.case_reference, case.reference);
    assert_eq!(first.pseudonym.as_ref().map(|p| p.as_str()), Some("Sasha"));
    assert_eq!(first.consent.as_ref(), Some(&consent));
    assert_eq!(
        s.case_summary(sb, case.id).await.unwrap().reference,
        case.reference,
        "a pending referral shows the receiver the summary"
    );
    assert!(s.case_summary(sc, case.id).await.is_err());
    let dup = s
        .refer(Actor::Operator, sa, case.id, b, consent.clone())
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Duplicate(_)), "{dup}");

    // Pending: B sees the referral with the case's reference and pseudonym, nothing else.
    assert_eq!(s.referrals(sb).await.unwrap(), vec![first.clone()]);
    assert_eq!(s.referrals(sa).await.unwrap(), vec![first.clone()]);
    assert!(s.referrals(sc).await.unwrap().is_empty());
    sees_nothing(s, sb, &probe).await;
    // Only B answers.
    for scope in [sc, sa, Scope::Instance] {
        let e = s
            .answer_referral(Actor::Operator, scope, first.id, true)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::NotFound {
                    what: "referral",
                    ..
                }
            ),
            "{e}"
        );
    }
    let declined = s
        .answer_referral(Actor::Operator, sb, first.id, false)
        .await
        .unwrap();
    assert_eq!(declined.state, ReferralState::Declined);
    assert_eq!(declined.version, 2);
    assert!(declined.answered_at.is_some());
    let again = s
        .answer_referral(Actor::Operator, sb, first.id, true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::AlreadyDone {
                state: "declined",
                ..
            }
        ),
        "{again}"
    );
    // Declined: nothing.
    sees_nothing(s, sb, &probe).await;

    // Referred again and accepted: B works the case as if it held it.
    let second = s
        .refer(Actor::Operator, sa, case.id, b, consent.clone())
        .await
        .unwrap();
    let accepted = s
        .answer_referral(Actor::Operator, sb, second.id, true)
        .await
        .unwrap();
    assert_eq!(accepted.state, ReferralState::Accepted);
    assert_eq!(
        s.case(sb, &CaseKey::Id(case.id)).await.unwrap().facts,
        case.facts
    );
    assert_eq!(
        s.case(sb, &CaseKey::Reference(case.reference.clone()))
            .await
            .unwrap()
            .id,
        case.id
    );
    let listed = s.cases(sb, None, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, case.id);
    assert_eq!(listed[0].organisation_id, a, "still held by A");
    assert_eq!(s.applications(sb, case.id).await.unwrap().len(), 1);
    assert_eq!(s.application(sb, app.id).await.unwrap().id, app.id);
    assert_eq!(s.evidence_list(sb, case.id).await.unwrap().len(), 1);
    assert_eq!(s.evidence(sb, evidence.id).await.unwrap().1, vec![7; 1000]);
    assert_eq!(s.messages(sb, case.id).await.unwrap().len(), 1);
    assert_eq!(s.case_deadlines(sb, case.id).await.unwrap().len(), 1);
    assert_eq!(s.deadlines(sb, None, false).await.unwrap().len(), 1);
    assert_eq!(
        s.reveal_identity(Actor::Operator, sb, case.id)
            .await
            .unwrap()
            .names[0]
            .value
            .as_str(),
        "Фёдор Волков"
    );
    let updated = s
        .update_facts(Actor::Operator, sb, case.id, case.version, Facts::default())
        .await
        .unwrap();
    assert_eq!(updated.version, case.version + 1);
    s.move_application(
        Actor::Operator,
        sb,
        app.id,
        Some(2),
        to(ApplicationState::InReview),
    )
    .await
    .unwrap();
    s.add_message(
        Actor::Operator,
        sb,
        case.id,
        MessageKind::InfoRequest,
        text("Please send the summons."),
    )
    .await
    .unwrap();
    let q = s
        .queue(sb, &QueueFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].application.id, app.id);
    assert_eq!(q[0].case.reference, case.reference);
    assert_eq!(s.count_queue(sb, &QueueFilter::default()).await.unwrap(), 1);
    assert_eq!(s.referrals(sb).await.unwrap().len(), 2);
    // C never sees anything.
    sees_nothing(s, sc, &probe).await;
    assert!(s.referrals(sc).await.unwrap().is_empty());
    // A's own view is unchanged.
    assert_eq!(s.cases(sa, None, 100).await.unwrap().len(), 1);
    assert_eq!(s.count_queue(sa, &QueueFilter::default()).await.unwrap(), 1);

    // The referral's events: made in A's chain; answered in A's and in B's.
    let events = s.case_events(sb, case.id).await.unwrap();
    let made: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::ReferralMade)
        .collect();
    assert_eq!(made.len(), 2);
    assert!(made.iter().all(|e| e.organisation_id == a));
    assert_eq!(made[0].meta["to_org"], b.to_string());
    let answered: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::ReferralAnswered)
        .collect();
    assert_eq!(answered.len(), 4);
    assert_eq!(
        answered.iter().filter(|e| e.organisation_id == a).count(),
        2
    );
    assert_eq!(
        answered.iter().filter(|e| e.organisation_id == b).count(),
        2
    );
    assert!(
        answered
            .iter()
            .any(|e| e.meta["state"] == "accepted" && e.organisation_id == b)
    );
    // B's changes to A's case are in A's chain, by B's actor.
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::FactsUpdated && e.organisation_id == a)
    );
    assert!(s.verify_chain().await.unwrap().is_intact());
}

async fn staff_credentials_and_api_tokens(env: Env) {
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let user = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "olga.k".parse().unwrap(),
            "Olga K".parse().unwrap(),
            vec![Role::Caseworker],
        )
        .await
        .unwrap();
    let other = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Other".parse().unwrap(),
        )
        .await
        .unwrap();
    let theirs = Scope::Organisation(other.id);
    let login = "olga.k".parse().unwrap();
    let fresh = s.user_credentials(&login).await.unwrap().unwrap();
    assert_eq!(fresh.user, user);
    assert!(fresh.password_phc.is_none() && fresh.totp_secret.is_none());
    assert!(
        s.user_credentials(&"nobody".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.user(mine, user.id).await.unwrap(), user);
    assert!(matches!(
        s.user(theirs, user.id).await,
        Err(StoreError::NotFound { what: "user", .. })
    ));

    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let bad = s
        .set_password(Actor::Operator, user.id, secret("hunter2"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            bad,
            StoreError::Invalid {
                field: "password",
                ..
            }
        ),
        "{bad}"
    );
    s.set_password(Actor::Operator, user.id, secret(phc))
        .await
        .unwrap();
    s.set_totp(
        Actor::User(user.id),
        user.id,
        Some(SecretBytes::new(vec![0x42; 20])),
    )
    .await
    .unwrap();
    let creds = s.user_credentials(&login).await.unwrap().unwrap();
    assert_eq!(creds.password_phc.as_ref().unwrap().expose(), phc);
    assert_eq!(creds.totp_secret.as_ref().unwrap().expose(), &[0x42; 20]);
    let shown = format!("{creds:?}");
    assert!(
        !shown.contains("argon2id") && !shown.contains("66, 66") && !shown.contains("c2Fsd"),
        "{shown}"
    );
    s.set_totp(Actor::User(user.id), user.id, None)
        .await
        .unwrap();
    assert!(
        s.user_credentials(&login)
            .await
            .unwrap()
            .unwrap()
            .totp_secret
            .is_none()
    );
    assert!(matches!(
        s.set_totp(Actor::Operator, user.id, Some(SecretBytes::new(Vec::new())))
            .await,
        Err(StoreError::Invalid { field: "totp", .. })
    ));

    // API tokens: only their hash is kept.
    let hash = sha256(b"rfg_token_one");
    let token = s
        .create_api_token(Actor::User(user.id), user.id, hash, "CI export".into())
        .await
        .unwrap();
    assert_eq!(token.label.as_str(), "CI export");
    assert!(matches!(
        s.create_api_token(Actor::Operator, user.id, hash, "again".into())
            .await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(s.user_for_token(hash).await.unwrap(), Some(user.clone()));
    assert_eq!(s.user_for_token(sha256(b"unknown")).await.unwrap(), None);
    assert_eq!(
        s.api_tokens(mine, user.id).await.unwrap(),
        vec![token.clone()]
    );
    assert!(matches!(
        s.api_tokens(theirs, user.id).await,
        Err(StoreError::NotFound { .. })
    ));

    // Disabled users cannot use their tokens; enabled again, they can.
    assert!(matches!(
        s.set_user_disabled(Actor::Operator, theirs, user.id, true)
            .await,
        Err(StoreError::NotFound { what: "user", .. })
    ));
    let access = s.access_state().await.unwrap();
    assert!(access.disabled.is_empty(), "{access:?}");
    assert_eq!(
        s.access_state().await.unwrap(),
        access,
        "unchanged while nothing changes"
    );
    s.set_user_disabled(Actor::Operator, mine, user.id, true)
        .await
        .unwrap();
    let disabled = s.access_state().await.unwrap();
    assert_ne!(disabled.generation, access.generation, "a user disabled");
    assert_eq!(disabled.disabled, vec![user.id]);
    assert_eq!(s.user_for_token(hash).await.unwrap(), None);
    assert!(
        s.user_credentials(&login)
            .await
            .unwrap()
            .unwrap()
            .user
            .disabled
    );
    s.set_user_disabled(Actor::Operator, mine, user.id, false)
        .await
        .unwrap();
    assert!(s.user_for_token(hash).await.unwrap().is_some());

    // Revoked tokens stop working.
    assert!(matches!(
        s.revoke_api_token(Actor::Operator, theirs, hash).await,
        Err(StoreError::NotFound { .. })
    ));
    let before = s.access_state().await.unwrap();
    assert!(before.disabled.is_empty(), "enabled again");
    assert_ne!(before.generation, disabled.generation, "a user enabled");
    s.revoke_api_token(Actor::User(user.id), mine, hash)
        .await
        .unwrap();
    let after = s.access_state().await.unwrap();
    assert_ne!(after.generation, before.generation, "a token revoked");
    assert_eq!(s.user_for_token(hash).await.unwrap(), None);
    assert!(matches!(
        s.revoke_api_token(Actor::Operator, mine, hash).await,
        Err(StoreError::AlreadyDone {
            state: "revoked",
            ..
        })
    ));
    assert!(
        s.api_tokens(mine, user.id).await.unwrap()[0]
            .revoked_at
            .is_some()
    );

    // Every change is an event; none carries a secret, not even sealed.
    let mut raw = Raw::connect(&env.url).await;
    let events = raw.events_about(user.id.0).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "user_created",
            "password_set",
            "totp_set",
            "totp_set",
            "api_token_created",
            "user_disabled",
            "user_enabled",
            "api_token_revoked"
        ]
    );
    for (kind, meta, body) in &events {
        assert!(body.is_none(), "{kind} has a body");
        assert!(
            !meta.contains("argon2") && !meta.contains("CI export"),
            "{kind}: {meta}"
        );
    }
    assert!(events[2].1.contains("\"enabled\":true") && events[3].1.contains("\"enabled\":false"));
    assert!(s.verify_chain().await.unwrap().is_intact());
}

async fn queue_pages_in_id_order(env: Env) {
    let s = &env.store;
    let a = env.org.id;
    let b = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Embassy B".parse().unwrap(),
        )
        .await
        .unwrap()
        .id;
    let (sa, sb) = (Scope::Organisation(a), Scope::Organisation(b));
    let mut apps = Vec::new();
    for i in 0..30 {
        let programme = if i % 3 == 0 { "p-two" } else { "p-one" };
        let (_, app) = s
            .submit(
                Actor::Operator,
                new_case(&env, &format!("Queue Person {i}")),
                programme.parse().unwrap(),
            )
            .await
            .unwrap();
        apps.push(app);
    }
    for app in apps.iter().step_by(4) {
        s.move_application(
            Actor::Operator,
            sa,
            app.id,
            None,
            to(ApplicationState::InReview),
        )
        .await
        .unwrap();
    }
    let mut theirs = Vec::new();
    for i in 0..10 {
        let (case, app) = s
            .submit(
                Actor::Operator,
                NewCase {
                    organisation_id: b,
                    ..new_case(&env, &format!("B Person {i}"))
                },
                "p-one".parse().unwrap(),
            )
            .await
            .unwrap();
        theirs.push((case, app));
    }
    let page_all = |scope: Scope, filter: QueueFilter| async move {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = s.queue(scope, &filter, after, 7).await.unwrap();
            assert!(page.len() <= 7);
            let Some(last) = page.last() else { break };
            after = Some(last.application.id);
            out.extend(page);
        }
        out
    };
    let all = page_all(sa, QueueFilter::default()).await;
    let ids: Vec<ApplicationId> = all.iter().map(|i| i.application.id).collect();
    // Ids are time-ordered to the millisecond and random within one, so the
    // expected order is the ids sorted, not the order they were made in.
    let sorted = |mut ids: Vec<ApplicationId>| {
        ids.sort();
        ids
    };
    assert_eq!(ids, sorted(apps.iter().map(|a| a.id).collect()));
    assert_eq!(
        s.count_queue(sa, &QueueFilter::default()).await.unwrap(),
        30
    );
    let first_made = all.iter().find(|i| i.application.id == apps[0].id).unwrap();
    assert_eq!(
        first_made.case.pseudonym.as_ref().unwrap().as_str(),
        "Sasha"
    );
    assert_eq!(first_made.case.id, apps[0].case_id);

    let submitted = QueueFilter {
        programme: None,
        states: vec![ApplicationState::Submitted],
    };
    let got: Vec<ApplicationId> = page_all(sa, submitted.clone())
        .await
        .iter()
        .map(|i| i.application.id)
        .collect();
    let want: Vec<ApplicationId> = apps
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 != 0)
        .map(|(_, a)| a.id)
        .collect();
    assert_eq!(got, sorted(want));
    assert_eq!(s.count_queue(sa, &submitted).await.unwrap(), 22);

    let two_states = QueueFilter {
        programme: Some("p-two".parse().unwrap()),
        states: vec![ApplicationState::InReview, ApplicationState::Submitted],
    };
    let got: Vec<ApplicationId> = page_all(sa, two_states.clone())
        .await
        .iter()
        .map(|i| i.application.id)
        .collect();
    let want: Vec<ApplicationId> = apps
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, a)| a.id)
        .collect();
    assert_eq!(got, sorted(want));
    assert_eq!(s.count_queue(sa, &two_states).await.unwrap(), 10);
    let none = QueueFilter {
        programme: None,
        states: vec![ApplicationState::Granted],
    };
    assert!(s.queue(sa, &none, None, 10).await.unwrap().is_empty());
    assert_eq!(s.count_queue(sa, &none).await.unwrap(), 0);

    // Each organisation sees its own queue; the instance sees them all.
    assert_eq!(page_all(sb, QueueFilter::default()).await.len(), 10);
    assert_eq!(
        page_all(Scope::Instance, QueueFilter::default())
            .await
            .len(),
        40
    );
    assert_eq!(
        s.count_queue(Scope::Instance, &QueueFilter::default())
            .await
            .unwrap(),
        40
    );

    // A case referred to A and accepted joins A's queue, in id order.
    let (their_case, their_app) = &theirs[4];
    let r = s
        .refer(
            Actor::Operator,
            sb,
            their_case.id,
            a,
            text("Consent by phone, 2026-11-21"),
        )
        .await
        .unwrap();
    assert_eq!(
        s.count_queue(sa, &QueueFilter::default()).await.unwrap(),
        30,
        "not while pending"
    );
    s.answer_referral(Actor::Operator, sa, r.id, true)
        .await
        .unwrap();
    let all = page_all(sa, QueueFilter::default()).await;
    assert_eq!(all.len(), 31);
    let mut with_theirs: Vec<ApplicationId> = apps.iter().map(|a| a.id).collect();
    with_theirs.push(their_app.id);
    assert_eq!(
        all.iter().map(|i| i.application.id).collect::<Vec<_>>(),
        sorted(with_theirs)
    );
    let referred = all.iter().find(|i| i.application.id == their_app.id);
    assert_eq!(referred.map(|i| i.case.organisation_id), Some(b));
    let in_p_one = QueueFilter {
        programme: Some("p-one".parse().unwrap()),
        states: vec![ApplicationState::Submitted],
    };
    assert_eq!(s.count_queue(sa, &in_p_one).await.unwrap(), 15 + 1);

    // A decided application shows its decision.
    let first = &apps[0];
    s.move_application(
        Actor::Operator,
        sa,
        first.id,
        None,
        to(ApplicationState::Interview),
    )
    .await
    .unwrap();
    s.move_application(
        Actor::Operator,
        sa,
        first.id,
        None,
        Move {
            to: ApplicationState::Granted,
            reason: None,
            decision: Some(decision()),
        },
    )
    .await
    .unwrap();
    let granted = QueueFilter {
        programme: None,
        states: vec![ApplicationState::Granted],
    };
    let q = s.queue(sa, &granted, None, 10).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0].application.decision.as_ref().unwrap().reasons.as_str(),
        "Credible risk of prosecution for desertion."
    );
    assert!(s.queue(sa, &granted, None, 0).await.unwrap().is_empty());
}

// ---- scale (ignored by default: `cargo test --release -p refuge-store --test contract -- --ignored --nocapture`) ----

mod scale {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "slow: builds 100,000 cases; run in release with --ignored"]
    async fn sqlite_queue_at_scale() {
        super::queue_at_scale(super::sqlite_env().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "slow: builds 100,000 cases; run in release with --ignored"]
    async fn postgres_queue_at_scale() {
        if let Some(env) = super::pg_env().await {
            super::queue_at_scale(env).await;
        }
    }
}

/// The queue with `REFUGE_SCALE_CASES` (default 100,000) cases: pages and counts stay fast,
/// because they are served by indexes and decrypt no facts.
async fn queue_at_scale(env: Env) {
    let n: usize = std::env::var("REFUGE_SCALE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let store = Arc::new(env.store);
    let org = env.org.id;
    let started = std::time::Instant::now();
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (w..n).step_by(writers) {
                let programme = ["p-one", "p-two", "p-three"][i % 3];
                let new = NewCase {
                    organisation_id: org,
                    person: person(&format!("Scale Person {i}")),
                    facts: Facts::default(),
                };
                let (_, app) = store
                    .submit(Actor::Operator, new, programme.parse().unwrap())
                    .await
                    .unwrap();
                ids.push(app.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort();
    eprintln!(
        "{}: {n} submissions in {:.1} s",
        store.backend_name(),
        started.elapsed().as_secs_f64()
    );
    // Every 100th application moves on to review.
    for id in ids.iter().step_by(100) {
        store
            .move_application(
                Actor::Operator,
                Scope::Organisation(org),
                *id,
                None,
                to(ApplicationState::InReview),
            )
            .await
            .unwrap();
    }
    let open = QueueFilter {
        programme: None,
        states: ApplicationState::ALL
            .into_iter()
            .filter(|s| s.is_open() && *s != ApplicationState::Draft)
            .collect(),
    };
    let in_review_p2 = QueueFilter {
        programme: Some("p-two".parse().unwrap()),
        states: vec![ApplicationState::InReview],
    };
    let scope = Scope::Organisation(org);
    let middle = ids[n / 2];
    for (what, filter, after) in [
        ("open, first page", &open, None),
        ("open, from the middle", &open, Some(middle)),
        ("in review in p-two, first page", &in_review_p2, None),
        (
            "in review in p-two, from the middle",
            &in_review_p2,
            Some(middle),
        ),
    ] {
        let mut best = std::time::Duration::MAX;
        let mut page = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            page = store.queue(scope, filter, after, 50).await.unwrap();
            best = best.min(t.elapsed());
        }
        assert!(!page.is_empty(), "{what}");
        assert!(
            page.windows(2)
                .all(|w| w[0].application.id < w[1].application.id)
        );
        eprintln!(
            "{}: queue page of 50 ({what}): {:.2} ms",
            store.backend_name(),
            best.as_secs_f64() * 1000.0
        );
        assert!(best.as_millis() < 100, "{what}: {best:?}");
    }
    for (what, filter, want) in [
        ("open", &open, Some(n as u64)),
        ("in review in p-two", &in_review_p2, None),
    ] {
        let t = std::time::Instant::now();
        let count = store.count_queue(scope, filter).await.unwrap();
        let took = t.elapsed();
        if let Some(want) = want {
            assert_eq!(count, want);
        }
        eprintln!(
            "{}: count ({what}) = {count}: {:.2} ms",
            store.backend_name(),
            took.as_secs_f64() * 1000.0
        );
        assert!(took.as_millis() < 1000, "{what}: {took:?}");
    }
    store.close().await;
}

/// Entropy that hands the first `collide` case references (5-byte draws; nothing else in the
/// store draws 5 bytes) the same random part.
struct CollidingReferences {
    inner: SeededEntropy,
    collide: std::sync::atomic::AtomicUsize,
}

impl refuge_crypto::Entropy for CollidingReferences {
    fn fill(&self, buf: &mut [u8]) -> refuge_crypto::Result<()> {
        use std::sync::atomic::Ordering;
        if buf.len() == 5
            && self
                .collide
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            buf.fill(0x5A);
            return Ok(());
        }
        self.inner.fill(buf)
    }
}

async fn colliding_case_references_are_drawn_again(env: Env) {
    env.store.close().await;
    let store = refuge_store::open(StoreConfig::new(
        env.url.clone(),
        KeySource::KeyFile(env.key.clone()),
        // One instant: every reference falls in the same minute.
        Arc::new(refuge_core::clock::FixedClock::new(Timestamp::from_micros(
            1_790_000_000_000_000,
        ))),
        Arc::new(CollidingReferences {
            inner: SeededEntropy::new(11),
            collide: 3.into(),
        }),
    ))
    .await
    .unwrap();
    // The first case takes the repeated reference; the next two draw it too, are refused by
    // the database as duplicates, and are staged again with fresh references.
    let a = store
        .create_case(Actor::Operator, new_case(&env, "Иван Первый"))
        .await
        .unwrap();
    let (b, _) = store
        .submit(
            Actor::Operator,
            new_case(&env, "Пётр Второй"),
            "eu-humanitarian-visa".parse().unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(a.reference, b.reference);
    let cases = store.cases(Scope::Instance, None, 10).await.unwrap();
    assert_eq!(cases.len(), 2, "each case stored once");
    assert!(store.verify_chain().await.unwrap().is_intact());
    store.close().await;
}

async fn erasing_a_person_destroys_their_key(env: Env) {
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let codename = secret("quiet harbour lantern seven");
    let (case, app) = s
        .apply(
            new_case(&env, "Григорий Стёпин"),
            "nl-moratorium".parse().unwrap(),
            &codename,
        )
        .await
        .unwrap();
    s.add_evidence(
        Actor::Applicant,
        mine,
        case.id,
        "summons.pdf".into(),
        "application/pdf".into(),
        vec![7; 2048],
    )
    .await
    .unwrap();
    s.add_message(
        Actor::Operator,
        mine,
        case.id,
        MessageKind::Note,
        text("Met at the border crossing."),
    )
    .await
    .unwrap();
    let other = s
        .create_case(Actor::Operator, new_case(&env, "Other Person"))
        .await
        .unwrap();
    s.flush_indexes().await.unwrap();
    let mut raw = Raw::connect(&env.url).await;
    let wrapped = raw.wrapped_key(case.person_id.0).await.unwrap();

    // Only the person's own organisation (or the instance) may erase them.
    let embassy = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Embassy".parse().unwrap(),
        )
        .await
        .unwrap();
    let refused = s
        .erase_person(
            Actor::Operator,
            Scope::Organisation(embassy.id),
            case.person_id,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::NotFound { .. }), "{refused}");
    assert!(raw.wrapped_key(case.person_id.0).await.is_some());

    s.erase_person(Actor::Operator, mine, case.person_id)
        .await
        .unwrap();
    assert_eq!(raw.wrapped_key(case.person_id.0).await, None);
    let again = s
        .erase_person(Actor::Operator, mine, case.person_id)
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

    // Nothing sealed with the key opens; nothing finds the person any more.
    for result in [
        s.case(mine, &CaseKey::Id(case.id)).await.map(|_| ()),
        s.reveal_identity(Actor::Operator, mine, case.id)
            .await
            .map(|_| ()),
        s.messages(mine, case.id).await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(StoreError::Erased(_))), "{result:?}");
    }
    assert_eq!(s.case_for_codename(&codename).await.unwrap(), None);
    assert!(
        s.find_cases(Scope::Instance, &Lookup::Name("Григорий Стёпин".into()))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.find_cases(Scope::Instance, &Lookup::Document("751234567".into()))
            .await
            .unwrap()
            .len(),
        1,
        "only the other person's document is still found"
    );
    // What is operational stays: the application in the queue (no pseudonym), the events.
    let queue = s
        .queue(mine, &QueueFilter::default(), None, 10)
        .await
        .unwrap();
    let item = queue.iter().find(|i| i.application.id == app.id).unwrap();
    assert_eq!(item.case.pseudonym, None);
    let events = s.case_events(Scope::Instance, case.id).await.unwrap();
    assert!(events.len() >= 3);
    let mut raw_events = raw.events_about(case.person_id.0).await;
    let (kind, meta, body) = raw_events.pop().unwrap();
    assert_eq!(kind, "person_erased");
    assert!(body.is_none() && !meta.contains("Григорий"), "{meta}");
    assert!(s.verify_chain().await.unwrap().is_intact());
    // Others are untouched.
    assert_eq!(
        s.case(mine, &CaseKey::Id(other.id)).await.unwrap().facts,
        other.facts
    );

    // On SQLite, the destroyed key is in neither the database file nor its WAL.
    if env.url.starts_with("sqlite:") {
        for name in ["refuge.db", "refuge.db-wal"] {
            let path = env.dir.path().join(name);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            assert!(
                !bytes
                    .windows(wrapped.len())
                    .any(|w| w == wrapped.as_slice()),
                "the erased wrapped key is still in {name}"
            );
        }
    }
}

async fn rotating_the_instance_key_keeps_a_running_store_working(env: Env) {
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let mut before = Vec::new();
    for i in 0..5 {
        before.push(
            s.create_case(Actor::Operator, new_case(&env, &format!("Before {i}")))
                .await
                .unwrap(),
        );
    }
    let user = s
        .create_user(
            Actor::Operator,
            env.org.id,
            "rota.user".parse().unwrap(),
            "Rota User".parse().unwrap(),
            vec![Role::Caseworker],
        )
        .await
        .unwrap();
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g";
    s.set_password(Actor::Operator, user.id, secret(phc))
        .await
        .unwrap();
    s.flush_indexes().await.unwrap();

    // A running server that looks for an announced key every 50 ms, writing all along.
    let mut server_cfg = config(&env.url, &env.key);
    server_cfg.key_watch = std::time::Duration::from_millis(50);
    let server = Arc::new(refuge_store::open(server_cfg).await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let (server, stop, org) = (server.clone(), stop.clone(), env.org.id);
        tokio::spawn(async move {
            let mut made = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let new = NewCase {
                    organisation_id: org,
                    person: person(&format!("During {i}")),
                    facts: Facts::default(),
                };
                made.push(server.create_case(Actor::Operator, new).await.unwrap());
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            made
        })
    };

    let mut rotate_cfg = config(&env.url, &env.key);
    rotate_cfg.key_watch = std::time::Duration::ZERO;
    let report = refuge_store::rotate_key(
        rotate_cfg,
        refuge_store::Rotation {
            new_passphrase: None,
            grace: std::time::Duration::from_millis(400),
        },
        &|_, _| {},
    )
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = writing.await.unwrap();
    assert!(!during.is_empty());
    assert!(report.persons >= 5, "{report:?}");
    assert!(report.users >= 1, "{report:?}");
    assert_ne!(report.old_key_id, report.new_key_id);
    let retired = report.retired_key_file.clone().unwrap();
    assert!(retired.exists());
    assert!(!env.dir.path().join("instance.key.next").exists());

    // The server still writes after the rotation, under the new key.
    let after = server
        .create_case(Actor::Operator, new_case(&env, "After Rotation"))
        .await
        .unwrap();

    // Move the old key away: the new key alone opens everything.
    let elsewhere = tempfile::tempdir().unwrap();
    let old_key = elsewhere.path().join("old.key");
    std::fs::rename(&retired, &old_key).unwrap();
    let mut fresh_cfg = config(&env.url, &env.key);
    fresh_cfg.key_watch = std::time::Duration::ZERO;
    let fresh = refuge_store::open(fresh_cfg).await.unwrap();
    let all: Vec<&refuge_core::case::Case> = before.iter().chain(&during).chain([&after]).collect();
    for (i, case) in all.iter().enumerate() {
        let read = fresh.case(mine, &CaseKey::Id(case.id)).await;
        assert_eq!(
            read.map(|c| c.facts).ok().as_ref(),
            Some(&case.facts),
            "case {i} of {} ({} before, {} during)",
            all.len(),
            before.len(),
            during.len()
        );
    }
    let creds = fresh
        .user_credentials(&"rota.user".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_phc.unwrap().expose(), phc);
    assert_eq!(
        fresh
            .find_cases(Scope::Instance, &Lookup::Name("Before 3".into()))
            .await
            .unwrap()
            .len(),
        1,
        "the blind-index key was re-wrapped too"
    );
    assert!(fresh.verify_chain().await.unwrap().is_intact());
    let mut raw = Raw::connect(&env.url).await;
    let rotated = raw.events_about(env.org.id.0).await;
    assert!(rotated.iter().all(|(k, _, _)| k != "instance_key_rotated"));
    let instance = raw.events_about(Uuid::nil()).await;
    assert!(
        instance
            .iter()
            .any(|(k, meta, _)| k == "instance_key_rotated" && meta.contains(&report.new_key_id)),
        "{instance:?}"
    );
    fresh.close().await;
    server.close().await;

    // The old key alone no longer unlocks the instance.
    let mut old_cfg = config(&env.url, &old_key);
    old_cfg.key_watch = std::time::Duration::ZERO;
    assert!(matches!(
        refuge_store::open(old_cfg).await,
        Err(StoreError::WrongKey)
    ));
}

async fn exports_need_a_second_person_and_leave_encrypted(env: Env) {
    use refuge_store::{EXPORT_FORMAT, ExportState};
    let s = &env.store;
    let mine = Scope::Organisation(env.org.id);
    let user = |login: &'static str, role: Role| async move {
        s.create_user(
            Actor::Operator,
            env.org.id,
            login.parse().unwrap(),
            login.parse().unwrap(),
            vec![role],
        )
        .await
        .unwrap()
    };
    let asker = user("olga.k", Role::Caseworker).await;
    let approver = user("piet.d", Role::DecisionMaker).await;
    let other = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Embassy,
            "Other".parse().unwrap(),
        )
        .await
        .unwrap();
    let theirs = Scope::Organisation(other.id);
    let stranger = s
        .create_user(
            Actor::Operator,
            other.id,
            "eve.x".parse().unwrap(),
            "Eve".parse().unwrap(),
            vec![Role::DecisionMaker],
        )
        .await
        .unwrap();
    let their_case = s
        .create_case(
            Actor::Operator,
            NewCase {
                organisation_id: other.id,
                ..new_case(&env, "Другой Человек")
            },
        )
        .await
        .unwrap();

    let first = s
        .create_case(Actor::Operator, new_case(&env, CANARY_NAMES[0]))
        .await
        .unwrap();
    let second = s
        .create_case(Actor::Operator, new_case(&env, CANARY_NAMES[3]))
        .await
        .unwrap();
    s.add_evidence(
        Actor::Operator,
        mine,
        first.id,
        "Kuznetsov summons.pdf".into(),
        "application/pdf".into(),
        b"%PDF-1.7 summons of Kuznetsov".to_vec(),
    )
    .await
    .unwrap();
    let keys = [CaseKey::Id(first.id), CaseKey::Reference(second.reference)];
    let by = Actor::User(asker.id);
    let events_of = |report: &refuge_store::ChainReport| {
        report
            .chains
            .iter()
            .find(|c| c.organisation_id == env.org.id.0)
            .map(|c| c.events)
            .unwrap()
    };
    let events_before = events_of(&s.verify_chain().await.unwrap());

    // Only staff ask, within their organisation, for cases it holds, saying why.
    for actor in [Actor::System, Actor::Applicant, Actor::Operator] {
        assert!(matches!(
            s.request_export(actor, mine, &keys, text("lawyer")).await,
            Err(StoreError::NotAllowed(_))
        ));
    }
    assert!(matches!(
        s.request_export(by, mine, &[], text("lawyer")).await,
        Err(StoreError::Invalid { field: "cases", .. })
    ));
    assert!(matches!(
        s.request_export(by, mine, &[CaseKey::Id(their_case.id)], text("lawyer"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let export = s
        .request_export(by, mine, &keys, text("transfer to the applicant's lawyer"))
        .await
        .unwrap();
    assert_eq!(export.state, ExportState::Requested);
    assert_eq!(export.cases, vec![first.id, second.id]);
    assert_eq!(export.requested_by, asker.id);
    assert_eq!(
        export.purpose.as_str(),
        "transfer to the applicant's lawyer"
    );
    let pass = secret("river lantern copper meadow");

    // Nothing leaves before a second person approves; the requester cannot approve.
    assert!(matches!(
        s.collect_export(by, mine, export.id, &pass).await,
        Err(StoreError::NotAllowed(_))
    ));
    assert!(matches!(
        s.decide_export(by, mine, export.id, true).await,
        Err(StoreError::NotAllowed(_))
    ));
    // Another organisation does not even see it.
    assert!(matches!(
        s.decide_export(Actor::User(stranger.id), theirs, export.id, true)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.export(theirs, export.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.exports(theirs).await.unwrap().is_empty());
    // Nor does a user of another organisation acting in this one's scope.
    assert!(matches!(
        s.decide_export(Actor::User(stranger.id), mine, export.id, true)
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let approved = s
        .decide_export(Actor::User(approver.id), mine, export.id, true)
        .await
        .unwrap();
    assert_eq!(approved.state, ExportState::Approved);
    assert_eq!(approved.decided_by, Some(Actor::User(approver.id)));
    assert_eq!(s.export(mine, export.id).await.unwrap(), approved);
    assert!(matches!(
        s.decide_export(Actor::User(approver.id), mine, export.id, false)
            .await,
        Err(StoreError::AlreadyDone { .. })
    ));

    // Only the requester collects, with a strong enough passphrase, once.
    assert!(matches!(
        s.collect_export(Actor::User(approver.id), mine, export.id, &pass)
            .await,
        Err(StoreError::NotAllowed(_))
    ));
    assert!(matches!(
        s.collect_export(by, mine, export.id, &secret("short"))
            .await,
        Err(StoreError::Invalid {
            field: "passphrase",
            ..
        })
    ));
    let file = s.collect_export(by, mine, export.id, &pass).await.unwrap();
    assert_eq!(file.cases, 2);
    assert!(file.file_name.ends_with(".bin") && !file.file_name.contains("Kuz"));
    for needle in needles() {
        assert!(
            !contains(&file.bytes, &needle),
            "a canary is readable in the export file"
        );
    }
    assert!(
        refuge_crypto::open_export(&secret("river lantern copper meadoW"), &file.bytes).is_err()
    );
    let plain = refuge_crypto::open_export(&pass, &file.bytes).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(doc["format"], EXPORT_FORMAT);
    assert_eq!(doc["purpose"], "transfer to the applicant's lawyer");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0]["identity"]["names"][0]["value"], CANARY_NAMES[0]);
    assert_eq!(cases[1]["identity"]["names"][0]["value"], CANARY_NAMES[3]);
    assert_eq!(cases[0]["case"]["facts"]["refusal"], "deserted");
    let evidence = &cases[0]["evidence"][0];
    assert_eq!(evidence["name"], "Kuznetsov summons.pdf");
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(evidence["content_base64"].as_str().unwrap())
            .unwrap(),
        b"%PDF-1.7 summons of Kuznetsov"
    );
    assert!(matches!(
        s.collect_export(by, mine, export.id, &pass).await,
        Err(StoreError::AlreadyDone {
            state: "collected",
            ..
        })
    ));
    let listed = s.exports(mine).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ExportState::Collected);
    assert!(listed[0].collected_at.is_some());

    // A refused export is never collected.
    let refused = s
        .request_export(by, mine, &keys[..1], text("press enquiry"))
        .await
        .unwrap();
    s.decide_export(Actor::Operator, mine, refused.id, false)
        .await
        .unwrap();
    assert!(matches!(
        s.collect_export(by, mine, refused.id, &pass).await,
        Err(StoreError::AlreadyDone {
            state: "refused",
            ..
        })
    ));

    // Every step is an event in the organisation's chain: asked, approved, collected, asked,
    // refused; refusals of the rules above wrote nothing.
    let report = s.verify_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(events_of(&report), events_before + 5);
    let counts = s.counts().await.unwrap();
    assert_eq!(counts.iter().find(|(t, _)| *t == "exports").unwrap().1, 2);
}

async fn a_submission_is_made_once_per_idempotency_key(env: Env) {
    let s = &env.store;
    let programme: refuge_core::application::ProgrammeId = "eu-humanitarian-visa".parse().unwrap();
    let cases_now = || async {
        s.counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(t, _)| *t == "cases")
            .unwrap()
            .1
    };
    let (case, app, replayed) = s
        .submit_once(
            Actor::Operator,
            new_case(&env, "Ivan Once"),
            programme.clone(),
            "req-1",
        )
        .await
        .unwrap();
    assert!(!replayed);
    let before = cases_now().await;
    // The same key again, with whatever body: the first case, nothing written.
    let (again, again_app, replayed) = s
        .submit_once(
            Actor::Operator,
            new_case(&env, "Ivan Twice"),
            programme.clone(),
            "req-1",
        )
        .await
        .unwrap();
    assert!(replayed);
    assert_eq!((again.id, again_app.id), (case.id, app.id));
    assert_eq!(cases_now().await, before);
    // Another key, or the same key in another organisation, is another submission.
    let (other, _, replayed) = s
        .submit_once(
            Actor::Operator,
            new_case(&env, "Ivan Other"),
            programme.clone(),
            "req-2",
        )
        .await
        .unwrap();
    assert!(!replayed && other.id != case.id);
    let org2 = s
        .create_organisation(
            Actor::Operator,
            OrganisationKind::Ngo,
            "Second".parse().unwrap(),
        )
        .await
        .unwrap();
    let (theirs, _, replayed) = s
        .submit_once(
            Actor::Operator,
            NewCase {
                organisation_id: org2.id,
                ..new_case(&env, "Ivan Elsewhere")
            },
            programme.clone(),
            "req-1",
        )
        .await
        .unwrap();
    assert!(!replayed && theirs.id != case.id);
    assert!(matches!(
        s.submit_once(Actor::Operator, new_case(&env, "x"), programme.clone(), "")
            .await,
        Err(StoreError::Invalid {
            field: "idempotency_key",
            ..
        })
    ));
    assert!(matches!(
        s.submit_once(
            Actor::Operator,
            new_case(&env, "x"),
            programme.clone(),
            "a key"
        )
        .await,
        Err(StoreError::Invalid {
            field: "idempotency_key",
            ..
        })
    ));

    // Eight at once with one key: one case.
    let before = cases_now().await;
    let news: Vec<NewCase> = (0..8)
        .map(|i| new_case(&env, &format!("Ivan Race {i}")))
        .collect();
    let store = Arc::new(env.store);
    let s = &*store;
    let tasks: Vec<_> = news
        .into_iter()
        .map(|new| {
            let s = store.clone();
            let p = programme.clone();
            tokio::spawn(async move { s.submit_once(Actor::Operator, new, p, "race").await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let (c, _, replayed) = t.await.unwrap().unwrap();
        ids.insert(c.id);
        fresh += usize::from(!replayed);
    }
    assert_eq!(ids.len(), 1, "one case for one key");
    assert_eq!(fresh, 1);
    let after = s
        .counts()
        .await
        .unwrap()
        .into_iter()
        .find(|(t, _)| *t == "cases")
        .unwrap()
        .1;
    assert_eq!(after, before + 1);
    assert!(s.verify_chain().await.unwrap().is_intact());
}

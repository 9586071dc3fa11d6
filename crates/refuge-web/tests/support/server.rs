//! A real refuge web server for tests: a fresh SQLite store in a temporary directory, three
//! organisations, staff users with passwords and TOTP secrets, served on a free port.

#![allow(dead_code)]

use refuge_core::application::ProgrammeId;
use refuge_core::clock::{Clock, SystemClock};
use refuge_core::event::Actor;
use refuge_core::ids::OrgId;
use refuge_core::org::{OrganisationKind, Role};
use refuge_crypto::{OsSeededEntropy, SecretString};
use refuge_rules::library::Library;
use refuge_store::{KeySource, Store, StoreConfig};
use refuge_web::{AppState, WebConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A staff user the tests can sign in as.
pub struct Staff {
    pub login: String,
    pub password: String,
    pub totp: Vec<u8>,
    pub org: OrgId,
}

/// The running server.
pub struct TestServer {
    pub base: String,
    pub embassy: OrgId,
    pub authority: OrgId,
    pub ngo: OrgId,
    pub staff: BTreeMap<&'static str, Staff>,
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl TestServer {
    /// The current TOTP code of a user.
    pub fn code(&self, who: &str) -> String {
        let now = SystemClock.now().as_micros() / 1_000_000;
        refuge_web::totp::code_at(&self.staff[who].totp, now)
    }
}

/// A runtime for a test's own calls to `TestServer::store`. Not a current-thread one: sqlx
/// hands a used connection back to the pool from a task on the caller's runtime, which must
/// keep running between `block_on` calls, or the server's pool (four connections on SQLite)
/// runs dry and its requests wait 30 s for a connection.
pub fn store_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Another web application over `store`, with the default settings and the shipped
/// programmes (a second server on the same database, or the router to inspect).
pub fn state_over(store: Arc<dyn Store>) -> AppState {
    AppState::new(
        store,
        Arc::new(Library::load(&programmes_dir()).unwrap()),
        Arc::new(SystemClock),
        Arc::new(OsSeededEntropy::new().unwrap()),
        WebConfig::default(),
    )
    .unwrap()
}

pub fn programmes_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programmes")
}

/// Start a server.
pub fn start() -> TestServer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("refuge.db").display());
    let entropy: Arc<OsSeededEntropy> = Arc::new(OsSeededEntropy::new().unwrap());
    let cfg = StoreConfig::new(
        url,
        KeySource::KeyFile(dir.path().join("instance.key")),
        Arc::new(SystemClock),
        entropy.clone(),
    );
    let (store, embassy, authority, ngo, staff) = runtime.block_on(async {
        let (store, embassy) = refuge_store::initialise(
            cfg,
            OrganisationKind::Embassy,
            "German Embassy Tbilisi (test)".parse().unwrap(),
        )
        .await
        .unwrap();
        let authority = store
            .create_organisation(
                Actor::Operator,
                OrganisationKind::Authority,
                "Dutch asylum office (test)".parse().unwrap(),
            )
            .await
            .unwrap()
            .id;
        let ngo = store
            .create_organisation(
                Actor::Operator,
                OrganisationKind::Ngo,
                "NGO (test)".parse().unwrap(),
            )
            .await
            .unwrap()
            .id;
        let mut staff = BTreeMap::new();
        for (key, org, roles) in [
            (
                "jonas",
                embassy.id,
                vec![Role::Caseworker, Role::DecisionMaker],
            ),
            (
                "eva",
                authority,
                vec![Role::Caseworker, Role::DecisionMaker],
            ),
            ("mila", ngo, vec![Role::Counsellor]),
            ("admin", embassy.id, vec![Role::OrgAdmin]),
            ("root", embassy.id, vec![Role::InstanceAdmin]),
        ] {
            let login = format!("{key}.test");
            let user = store
                .create_user(
                    Actor::Operator,
                    org,
                    login.parse().unwrap(),
                    format!("{key} (test)").parse().unwrap(),
                    roles,
                )
                .await
                .unwrap();
            let password = format!("pw-{key}-correct-horse");
            let phc = refuge_crypto::hash_password(
                &SecretString::new(password.clone()),
                refuge_crypto::PASSWORD_PARAMS,
                entropy.as_ref(),
            )
            .unwrap();
            store
                .set_password(Actor::Operator, user.id, phc)
                .await
                .unwrap();
            let mut totp = vec![0u8; 20];
            refuge_crypto::Entropy::fill(entropy.as_ref(), &mut totp).unwrap();
            store
                .set_totp(
                    Actor::Operator,
                    user.id,
                    Some(refuge_store::SecretBytes::new(totp.clone())),
                )
                .await
                .unwrap();
            staff.insert(
                key,
                Staff {
                    login,
                    password,
                    totp,
                    org,
                },
            );
        }
        (store, embassy.id, authority, ngo, staff)
    });
    let store: Arc<dyn Store> = Arc::new(store);
    let library = Arc::new(Library::load(&programmes_dir()).unwrap());
    let mut intake = BTreeMap::new();
    for (p, org) in [
        ("eu-humanitarian-visa", embassy),
        ("de-admission-22", embassy),
        ("nl-moratorium", authority),
        ("nl-stay-extension", authority),
    ] {
        intake.insert(p.parse::<ProgrammeId>().unwrap(), org);
    }
    let config = WebConfig {
        intake,
        default_intake: Some(ngo),
        ..WebConfig::default()
    };
    let state = AppState::new(
        store.clone(),
        library,
        Arc::new(SystemClock),
        entropy,
        config,
    )
    .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        axum::serve(listener, refuge_web::app(state)).await.unwrap();
    });
    TestServer {
        base: format!("http://{addr}"),
        embassy,
        authority,
        ngo,
        staff,
        store,
        _dir: dir,
        _runtime: runtime,
    }
}

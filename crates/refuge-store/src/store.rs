//! [`SqlStore`]: the [`Store`] over a [`Backend`], with encryption and the writer.

mod access;
mod casework;
mod exports;
mod queue;
mod rotate;
mod staff;

pub(crate) use access::Access;
pub use exports::{CollectedExport, EXPORT_FORMAT, MAX_EXPORT_BYTES};
pub use rotate::{Rotation, RotationReport, rotate_key};

use crate::backend::{Backend, CaseListRow};
use crate::backup::{self, BackupSummary};
use crate::chain::{self, ChainReport};
use crate::error::{Result, StoreError, bad_column};
use crate::keys::{self, KeySource, Keyring};
use crate::rows::*;
use crate::writer::{Op, Outcome, PendingEvent, Writer};
use crate::{
    AccessState, ApiToken, CaseKey, CaseSummary, Credentials, Lookup, NewCase, QueueFilter,
    QueueItem, Scope, SecretBytes, Store,
};
use async_trait::async_trait;
use refuge_core::application::{Application, ApplicationState, Decision, Move, ProgrammeId};
use refuge_core::case::{Case, Deadline, DeadlineKind};
use refuge_core::casework::{EvidenceMeta, Export, Message, MessageKind, Referral};
use refuge_core::clock::{Clock, Timestamp};
use refuge_core::event::{Actor, Event, EventKind};
use refuge_core::facts::Facts;
use refuge_core::ids::{
    ApplicationId, CaseId, CaseReference, DeadlineId, EventId, EvidenceId, ExportId, OrgId,
    PersonId, ReferralId, UserId,
};
use refuge_core::org::{Login, Organisation, OrganisationKind, Role, User};
use refuge_core::person::Person;
use refuge_core::text::{Label, Text};
use refuge_crypto::{
    Aad, DataKey, Entropy, KdfParams, SecretString, blind_index, normalise_document_number,
    normalise_for_index,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use time::Date;
use uuid::Uuid;

/// How to open a store.
#[derive(Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Where the instance key comes from.
    pub key: KeySource,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The randomness (keys, nonces, ids).
    pub entropy: Arc<dyn Entropy>,
    /// The most requests one group commit takes.
    pub max_batch: usize,
    /// Argon2id parameters for a passphrase-derived key (used at `initialise` and when
    /// rotating to a new passphrase).
    pub kdf: KdfParams,
    /// How often a store unlocked by a key file looks for a next key announced by a key
    /// rotation (default 5 s; zero: never).
    pub key_watch: std::time::Duration,
}

impl StoreConfig {
    /// A configuration with the default batch size and KDF parameters.
    pub fn new(
        url: impl Into<String>,
        key: KeySource,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            url: url.into(),
            key,
            clock,
            entropy,
            max_batch: 512,
            kdf: KdfParams::default(),
            key_watch: std::time::Duration::from_secs(5),
        }
    }
}

/// The [`Store`] over SQLite or PostgreSQL.
pub struct SqlStore {
    backend: Arc<dyn Backend>,
    writer: Writer,
    keys: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    orgs: RwLock<HashSet<Uuid>>,
    backlog: Arc<Backlog>,
    indexer: tokio::task::JoinHandle<()>,
    key_watch: Option<tokio::task::JoinHandle<()>>,
}

/// How many persons one indexing pass takes at most.
const INDEX_BATCH: i64 = 5_000;
/// How often the background indexer looks at the backlog.
const INDEX_TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// Intake must have been quiet this long (µs) before the indexer runs...
const INDEX_WHEN_QUIET_FOR: i64 = 1_000_000;
/// ...unless the backlog reaches this many persons (it bounds what a lookup scans).
const INDEX_BACKLOG_LIMIT: u64 = 200_000;

/// Blind indexes waiting for the indexer, and when intake last wrote.
#[derive(Default)]
pub(crate) struct Backlog {
    persons: AtomicU64,
    last_intake: AtomicI64,
}

/// Move pending blind indexes into `person_lookup`, a pass at a time, until none are left, or
/// (when `yield_to_intake`) until intake resumes.
async fn index_pending(
    writer: &Writer,
    backlog: &Backlog,
    clock: &dyn Clock,
    yield_to_intake: bool,
) -> Result<usize> {
    let mut total = 0;
    loop {
        let started = clock.now().as_micros();
        match writer
            .write(Op::IndexLookups { limit: INDEX_BATCH })
            .await?
        {
            Outcome::Indexed { persons } => {
                total += persons;
                let n = u64::try_from(persons).unwrap_or(0);
                let _ = backlog
                    .persons
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                        Some(p.saturating_sub(n))
                    });
                if i64::try_from(persons).unwrap_or(0) < INDEX_BATCH {
                    backlog.persons.store(0, Ordering::Release);
                    return Ok(total);
                }
            }
            _ => return Ok(total),
        }
        let resumed = backlog.last_intake.load(Ordering::Acquire) > started;
        if yield_to_intake
            && resumed
            && backlog.persons.load(Ordering::Acquire) < INDEX_BACKLOG_LIMIT
        {
            return Ok(total);
        }
    }
}

/// The background indexer. Acknowledged intake never waits for blind-index maintenance: the
/// indexes are durable in each person's row from the start, lookups also scan that backlog,
/// and the backlog is copied into `person_lookup` in sorted bulk when intake is quiet, or when
/// it grows past [`INDEX_BACKLOG_LIMIT`].
async fn indexer_loop(writer: Writer, backlog: Arc<Backlog>, clock: Arc<dyn Clock>) {
    let mut tick = tokio::time::interval(INDEX_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let pending = backlog.persons.load(Ordering::Acquire);
        let quiet = clock.now().as_micros() - backlog.last_intake.load(Ordering::Acquire)
            >= INDEX_WHEN_QUIET_FOR;
        if pending > 0
            && (quiet || pending >= INDEX_BACKLOG_LIMIT)
            && let Err(e) = index_pending(&writer, &backlog, &*clock, true).await
        {
            tracing::warn!(error = %e, "indexing blind indexes failed; will retry");
        }
    }
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        self.indexer.abort();
        if let Some(w) = &self.key_watch {
            w.abort();
        }
    }
}

pub(crate) async fn connect(url: &str) -> Result<Arc<dyn Backend>> {
    let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
        Arc::new(crate::sqlite::SqliteBackend::connect(url).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(crate::postgres::PgBackend::connect(url).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    };
    backend.migrate().await?;
    Ok(backend)
}

/// A URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Open an initialised store: connect, migrate, unlock the keys.
pub async fn open(cfg: StoreConfig) -> Result<SqlStore> {
    let backend = connect(&cfg.url).await?;
    let meta = backend.meta().await?;
    let keys = keys::unlock(&cfg.key, &meta)?;
    SqlStore::start(backend, keys, &cfg).await
}

/// Initialise a new instance: create its keys (writing the key file, or deriving from the
/// passphrase), record them, and create the first organisation.
pub async fn initialise(
    cfg: StoreConfig,
    kind: OrganisationKind,
    name: Label,
) -> Result<(SqlStore, Organisation)> {
    let backend = connect(&cfg.url).await?;
    if keys::is_initialised(&backend.meta().await?) {
        return Err(StoreError::AlreadyInitialised);
    }
    let (keys, meta) = keys::create(&cfg.key, &*cfg.entropy, &cfg.kdf)?;
    let store = SqlStore::start(backend, keys, &cfg).await?;
    let init = async {
        let event = store.event(
            Actor::Operator,
            OrgId::INSTANCE.0,
            EventKind::InstanceInitialised,
            OrgId::INSTANCE.0,
            None,
        )?;
        let rows = RowBatch {
            meta,
            ..RowBatch::default()
        };
        store
            .writer
            .write(Op::Insert {
                what: "instance",
                rows: Box::new(rows),
                events: vec![event],
            })
            .await?;
        store.create_organisation(Actor::Operator, kind, name).await
    }
    .await;
    match init {
        Ok(org) => Ok((store, org)),
        Err(e) => {
            if let KeySource::KeyFile(path) = &cfg.key {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
    }
}

/// Restore a backup into an empty database, checking that the configured key is the one the
/// backup was made under, and that its hash chains verify. `progress` is called with the
/// number of rows read so far.
pub async fn restore(
    cfg: StoreConfig,
    input: &mut (dyn std::io::BufRead + Send),
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<BackupSummary> {
    let backend = connect(&cfg.url).await?;
    let summary = backup::restore(&*backend, &cfg.key, input, progress).await?;
    let meta = backend.meta().await?;
    let keys = keys::unlock(&cfg.key, &meta)?;
    let store = SqlStore::start(backend, keys, &cfg).await?;
    let report = store.verify_chain().await?;
    if !report.is_intact() {
        let first = report
            .problems
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(StoreError::Backup(format!(
            "restored, but its event log does not verify: {first}"
        )));
    }
    let event = store.event(
        Actor::Operator,
        OrgId::INSTANCE.0,
        EventKind::Restored,
        OrgId::INSTANCE.0,
        None,
    )?;
    store.writer.write(Op::Append { event }).await?;
    store.close().await;
    Ok(summary)
}

fn person_owner(id: Uuid) -> Vec<u8> {
    [b"persons/".as_slice(), id.as_bytes()].concat()
}

fn user_owner(id: Uuid) -> Vec<u8> {
    [b"users/".as_slice(), id.as_bytes()].concat()
}

/// The scope a write is checked against in the writer, once [`SqlStore::access`] has allowed
/// it: the organisation holding the record (whose chain its events join).
/// The blind-index domain of submissions' idempotency keys.
const SUBMISSION_KEY_DOMAIN: &str = "submission.idempotency_key";

fn write_scope(owner: Uuid) -> Scope {
    Scope::Organisation(OrgId(owner))
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Database(format!("cannot encode record: {e}")))
}

impl SqlStore {
    async fn start(backend: Arc<dyn Backend>, keys: Keyring, cfg: &StoreConfig) -> Result<Self> {
        let orgs = backend
            .organisations()
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        let writer = Writer::spawn(backend.clone(), cfg.clock.clone(), cfg.max_batch);
        // There may be a backlog from an earlier run: look once.
        let backlog = Arc::new(Backlog {
            persons: AtomicU64::new(1),
            last_intake: AtomicI64::new(0),
        });
        let indexer = tokio::spawn(indexer_loop(
            writer.clone(),
            backlog.clone(),
            cfg.clock.clone(),
        ));
        let keys = Arc::new(keys);
        let key_watch = match &cfg.key {
            KeySource::KeyFile(_) if !cfg.key_watch.is_zero() => {
                Some(tokio::spawn(rotate::key_watch_loop(
                    backend.clone(),
                    keys.clone(),
                    cfg.key.clone(),
                    cfg.key_watch,
                )))
            }
            _ => None,
        };
        Ok(Self {
            backend,
            writer,
            keys,
            key_watch,
            clock: cfg.clock.clone(),
            entropy: cfg.entropy.clone(),
            orgs: RwLock::new(orgs),
            backlog,
            indexer,
        })
    }

    fn random<const N: usize>(&self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.entropy.fill(&mut b)?;
        Ok(b)
    }

    fn new_id(&self) -> Result<Uuid> {
        Ok(refuge_core::ids::uuid_v7(self.clock.now(), self.random()?))
    }

    fn seal(
        &self,
        key: &DataKey,
        table: &str,
        field: &str,
        id: Uuid,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(refuge_crypto::seal(
            key,
            &Aad::new(table, field, id.as_bytes()),
            plain,
            &*self.entropy,
        )?)
    }

    fn open_json<T: DeserializeOwned>(
        &self,
        key: &DataKey,
        what: &'static str,
        table: &str,
        field: &str,
        id: Uuid,
        sealed: &[u8],
    ) -> Result<T> {
        let corrupt = || StoreError::Corrupt {
            what,
            id: id.to_string(),
        };
        let plain = refuge_crypto::open(key, &Aad::new(table, field, id.as_bytes()), sealed)
            .map_err(|_| corrupt())?;
        serde_json::from_slice(&plain).map_err(|_| corrupt())
    }

    fn person_key(&self, id: Uuid, wrapped: Option<&[u8]>) -> Result<DataKey> {
        let wrapped = wrapped.ok_or_else(|| StoreError::Erased(id.to_string()))?;
        self.keys
            .unwrap_data_key(wrapped, &person_owner(id))
            .map_err(|_| StoreError::Corrupt {
                what: "person key",
                id: id.to_string(),
            })
    }

    fn event(
        &self,
        actor: Actor,
        org: Uuid,
        kind: EventKind,
        subject: Uuid,
        person: Option<Uuid>,
    ) -> Result<PendingEvent> {
        Ok(PendingEvent {
            id: self.new_id()?,
            organisation_id: org,
            actor: actor.to_string(),
            kind: kind.as_str(),
            subject,
            person_id: person,
            meta: serde_json::Map::new(),
            body_ct: None,
        })
    }

    async fn ensure_org(&self, org: OrgId) -> Result<()> {
        let known = self
            .orgs
            .read()
            .map(|s| s.contains(&org.0))
            .unwrap_or(false);
        if known {
            return Ok(());
        }
        let all: HashSet<Uuid> = self
            .backend
            .organisations()
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        let found = all.contains(&org.0);
        if let Ok(mut s) = self.orgs.write() {
            *s = all;
        }
        if found {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                what: "organisation",
                id: org.to_string(),
            })
        }
    }

    async fn person_row(&self, id: Uuid) -> Result<PersonRow> {
        self.backend
            .person(id)
            .await?
            .ok_or_else(|| StoreError::Database(format!("person {id} of a case is missing")))
    }

    /// The case row, if `scope` may see all of it (see [`SqlStore::access`]); otherwise
    /// `NotFound`, exactly as for a case that does not exist.
    async fn case_row(&self, scope: Scope, key: &CaseKey) -> Result<CaseRow> {
        let row = match key {
            CaseKey::Id(id) => self.backend.case_by_id(id.0).await?,
            CaseKey::Reference(r) => self.backend.case_by_reference(r.as_str()).await?,
        };
        if let Some(r) = row
            && self.access(scope, r.organisation_id, r.id).await? == Some(Access::Full)
        {
            return Ok(r);
        }
        Err(StoreError::NotFound {
            what: "case",
            id: key.to_string(),
        })
    }

    /// The application row, if `scope` may see all of its case.
    async fn application_row(&self, scope: Scope, id: ApplicationId) -> Result<ApplicationRow> {
        if let Some(r) = self.backend.application(id.0).await?
            && self.access(scope, r.organisation_id, r.case_id).await? == Some(Access::Full)
        {
            return Ok(r);
        }
        Err(StoreError::NotFound {
            what: "application",
            id: id.to_string(),
        })
    }

    /// The case row, its person's data key, and the decrypted case.
    async fn load_case(&self, scope: Scope, key: &CaseKey) -> Result<(Case, DataKey)> {
        let row = self.case_row(scope, key).await?;
        let person = self.person_row(row.person_id).await?;
        let dk = self.person_key(person.id, person.wrapped_key.as_deref())?;
        let facts = self.open_facts(&dk, &row)?;
        Ok((self.case_from_row(row, facts)?, dk))
    }

    /// Decrypt a person's identity with their data key. Callers that hand it to a person
    /// (reveal, export) must make that an audited event.
    fn open_identity(&self, dk: &DataKey, person: &PersonRow) -> Result<Person> {
        self.open_json(
            dk,
            "person",
            "persons",
            "identity",
            person.id,
            &person.identity_ct,
        )
    }

    /// Decrypt a case row's facts with its person's data key.
    fn open_facts(&self, dk: &DataKey, row: &CaseRow) -> Result<Facts> {
        self.open_json(dk, "case", "cases", "facts", row.id, &row.facts_ct)
    }

    fn case_from_row(&self, row: CaseRow, facts: Facts) -> Result<Case> {
        Ok(Case {
            id: CaseId(row.id),
            reference: row
                .reference
                .parse()
                .map_err(|_| bad_column("cases.reference", &row.reference))?,
            organisation_id: OrgId(row.organisation_id),
            person_id: PersonId(row.person_id),
            facts,
            version: to_u64(row.version),
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
        })
    }

    fn summary(&self, r: &CaseListRow) -> Result<CaseSummary> {
        let pseudonym = match (&r.wrapped_key, &r.pseudonym_ct) {
            (Some(_), Some(ct)) => {
                let dk = self.person_key(r.case.person_id, r.wrapped_key.as_deref())?;
                Some(self.open_json::<Label>(
                    &dk,
                    "person",
                    "persons",
                    "pseudonym",
                    r.case.person_id,
                    ct,
                )?)
            }
            _ => None,
        };
        let c = &r.case;
        Ok(CaseSummary {
            id: CaseId(c.id),
            reference: c
                .reference
                .parse()
                .map_err(|_| bad_column("cases.reference", &c.reference))?,
            organisation_id: OrgId(c.organisation_id),
            pseudonym,
            version: to_u64(c.version),
            created_at: Timestamp::from_micros(c.created_at),
            updated_at: Timestamp::from_micros(c.updated_at),
        })
    }

    fn application_from_row(&self, r: ApplicationRow, dk: Option<&DataKey>) -> Result<Application> {
        let decision = match (
            &r.decision_basis,
            &r.decision_ct,
            &r.decided_by,
            r.decided_at,
            dk,
        ) {
            (Some(basis), Some(ct), Some(by), Some(at), Some(dk)) => Some(Decision {
                legal_basis: basis
                    .parse()
                    .map_err(|_| bad_column("applications.decision_basis", "text"))?,
                reasons: self.open_json(dk, "application", "applications", "decision", r.id, ct)?,
                decided_by: by
                    .parse()
                    .map_err(|_| bad_column("applications.decided_by", by))?,
                decided_at: Timestamp::from_micros(at),
            }),
            _ => None,
        };
        Ok(Application {
            id: ApplicationId(r.id),
            case_id: CaseId(r.case_id),
            organisation_id: OrgId(r.organisation_id),
            programme: r
                .programme
                .parse()
                .map_err(|_| bad_column("applications.programme", &r.programme))?,
            state: r
                .state
                .parse()
                .map_err(|_| bad_column("applications.state", &r.state))?,
            version: to_u64(r.version),
            decision,
            created_at: Timestamp::from_micros(r.created_at),
            updated_at: Timestamp::from_micros(r.updated_at),
        })
    }

    /// The person behind a case and their data key (`None` if erased).
    async fn key_of_case(&self, case_id: Uuid) -> Result<(Option<Uuid>, Option<DataKey>)> {
        let Some(case) = self.backend.case_by_id(case_id).await? else {
            return Ok((None, None));
        };
        let person = self.person_row(case.person_id).await?;
        let key = match &person.wrapped_key {
            Some(w) => Some(self.person_key(person.id, Some(w))?),
            None => None,
        };
        Ok((Some(person.id), key))
    }

    /// Stage a new case with `stage` and insert it. A case reference is the creation minute
    /// and 36 random bits, so two cases of the same minute can, rarely, draw the same one
    /// (about n² / 2³⁷ times a minute for n cases in it): the insert is then refused as a
    /// duplicate, and the case is staged again, with fresh ids and a fresh reference.
    pub(crate) async fn insert_new_case<T>(
        &self,
        what: &'static str,
        mut stage: impl FnMut(&mut RowBatch, &mut Vec<PendingEvent>) -> Result<T>,
    ) -> Result<T> {
        const ATTEMPTS: usize = 4;
        let mut attempt = 1;
        loop {
            let mut rows = RowBatch::default();
            let mut events = Vec::new();
            let staged = stage(&mut rows, &mut events)?;
            match self
                .writer
                .write(Op::Insert {
                    what,
                    rows: Box::new(rows),
                    events,
                })
                .await
            {
                Ok(_) => return Ok(staged),
                Err(StoreError::Duplicate(_)) if attempt < ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Everything a new case writes: person, lookups, case, and the `case_created` event.
    fn stage_case(
        &self,
        actor: Actor,
        new: &NewCase,
        rows: &mut RowBatch,
        events: &mut Vec<PendingEvent>,
    ) -> Result<(Case, DataKey)> {
        let now = self.clock.now();
        let org = new.organisation_id.0;
        let person_id = self.new_id()?;
        let case_id = self.new_id()?;
        let dk = DataKey::generate(&*self.entropy)?;
        let wrapping = self.keys.current();
        let wrapped = wrapping.wrap_data_key(&dk, &person_owner(person_id), &*self.entropy)?;
        // Blind indexes of names and document numbers, kept in the person's row until the
        // background indexer copies them into person_lookup (see `indexer_loop`).
        let mut lookup: Vec<u8> = Vec::new();
        let names = new
            .person
            .names
            .iter()
            .map(|n| ("person.name", normalise_for_index(n.value.as_str())));
        let docs = new.person.documents.iter().map(|d| {
            (
                "person.document",
                normalise_document_number(d.number.as_str()),
            )
        });
        for (domain, value) in names.chain(docs).filter(|(_, v)| !v.is_empty()) {
            let bidx = blind_index(&self.keys.index, domain, value.as_bytes());
            if !lookup.chunks_exact(16).any(|c| c == bidx.as_slice()) {
                lookup.extend_from_slice(&bidx);
            }
        }
        let has_lookup = !lookup.is_empty();
        let pseudonym_ct = match &new.person.pseudonym {
            Some(p) => Some(self.seal(&dk, "persons", "pseudonym", person_id, &json(p)?)?),
            None => None,
        };
        rows.persons.push(PersonRow {
            id: person_id,
            organisation_id: org,
            wrapped_key: Some(wrapped),
            key_id: wrapping.key_id().to_vec(),
            pseudonym_ct,
            identity_ct: self.seal(&dk, "persons", "identity", person_id, &json(&new.person)?)?,
            created_at: now.as_micros(),
            erased_at: None,
            lookup_pending: i64::from(has_lookup),
            lookup: has_lookup.then_some(lookup),
        });
        if has_lookup {
            self.backlog.persons.fetch_add(1, Ordering::AcqRel);
        }
        self.backlog
            .last_intake
            .store(now.as_micros(), Ordering::Release);
        let reference = CaseReference::new(now, self.random()?);
        rows.cases.push(CaseRow {
            id: case_id,
            organisation_id: org,
            person_id,
            reference: reference.as_str().to_owned(),
            facts_ct: self.seal(&dk, "cases", "facts", case_id, &json(&new.facts)?)?,
            version: 1,
            created_at: now.as_micros(),
            updated_at: now.as_micros(),
        });
        let mut ev = self.event(actor, org, EventKind::CaseCreated, case_id, Some(person_id))?;
        ev.meta
            .insert("reference".into(), reference.as_str().into());
        ev.meta.insert("version".into(), 1.into());
        let body = serde_json::json!({ "person": new.person, "facts": new.facts });
        ev.body_ct = Some(self.seal(&dk, "events", "body", ev.id, &json(&body)?)?);
        events.push(ev);
        let case = Case {
            id: CaseId(case_id),
            reference,
            organisation_id: new.organisation_id,
            person_id: PersonId(person_id),
            facts: new.facts.clone(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        Ok((case, dk))
    }

    /// Intake: a case and its submitted application, as one change with one
    /// `case_submitted` event carrying both the case's and the application's metadata (and
    /// the case's encrypted body).
    fn stage_submission(
        &self,
        actor: Actor,
        new: &NewCase,
        programme: &ProgrammeId,
        rows: &mut RowBatch,
        events: &mut Vec<PendingEvent>,
    ) -> Result<(Case, Application)> {
        let (case, _) = self.stage_case(actor, new, rows, events)?;
        let app = self.stage_application(
            actor,
            &case,
            programme,
            ApplicationState::Submitted,
            rows,
            events,
        )?;
        if let (Some(app_event), Some(case_event)) = (events.pop(), events.first_mut()) {
            case_event.kind = EventKind::CaseSubmitted.as_str();
            case_event
                .meta
                .insert("application_id".into(), app.id.to_string().into());
            for key in ["programme", "state"] {
                if let Some(v) = app_event.meta.get(key) {
                    case_event.meta.insert(key.into(), v.clone());
                }
            }
        }
        Ok((case, app))
    }

    fn stage_application(
        &self,
        actor: Actor,
        case: &Case,
        programme: &ProgrammeId,
        state: ApplicationState,
        rows: &mut RowBatch,
        events: &mut Vec<PendingEvent>,
    ) -> Result<Application> {
        let now = self.clock.now();
        let id = self.new_id()?;
        rows.applications.push(ApplicationRow {
            id,
            organisation_id: case.organisation_id.0,
            case_id: case.id.0,
            programme: programme.as_str().to_owned(),
            state: state.as_str().to_owned(),
            version: 1,
            decision_basis: None,
            decision_ct: None,
            decided_by: None,
            decided_at: None,
            created_at: now.as_micros(),
            updated_at: now.as_micros(),
        });
        let mut ev = self.event(
            actor,
            case.organisation_id.0,
            EventKind::ApplicationCreated,
            id,
            Some(case.person_id.0),
        )?;
        ev.meta.insert("case_id".into(), case.id.to_string().into());
        ev.meta
            .insert("programme".into(), programme.as_str().into());
        ev.meta.insert("state".into(), state.as_str().into());
        ev.meta.insert("version".into(), 1.into());
        events.push(ev);
        Ok(Application {
            id: ApplicationId(id),
            case_id: case.id,
            organisation_id: case.organisation_id,
            programme: programme.clone(),
            state,
            version: 1,
            decision: None,
            created_at: now,
            updated_at: now,
        })
    }

    fn user_from_row(&self, r: UserRow) -> Result<User> {
        let dk = self
            .keys
            .unwrap_data_key(r.wrapped_key.as_deref().unwrap_or(&[]), &user_owner(r.id))
            .map_err(|_| StoreError::Corrupt {
                what: "user",
                id: r.id.to_string(),
            })?;
        let roles = r
            .roles
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Role>().map_err(|_| bad_column("users.roles", s)))
            .collect::<Result<Vec<_>>>()?;
        Ok(User {
            id: UserId(r.id),
            organisation_id: OrgId(r.organisation_id),
            login: self.open_json(&dk, "user", "users", "login", r.id, &r.login_ct)?,
            display_name: self.open_json(
                &dk,
                "user",
                "users",
                "display_name",
                r.id,
                &r.display_ct,
            )?,
            roles,
            disabled: r.disabled != 0,
            created_at: Timestamp::from_micros(r.created_at),
        })
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    async fn create_organisation(
        &self,
        actor: Actor,
        kind: OrganisationKind,
        name: Label,
    ) -> Result<Organisation> {
        let id = self.new_id()?;
        let now = self.clock.now();
        let rows = RowBatch {
            orgs: vec![OrgRow {
                id,
                kind: kind.as_str().into(),
                name: name.as_str().into(),
                created_at: now.as_micros(),
            }],
            ..RowBatch::default()
        };
        let mut ev = self.event(actor, id, EventKind::OrganisationCreated, id, None)?;
        ev.meta.insert("kind".into(), kind.as_str().into());
        self.writer
            .write(Op::Insert {
                what: "organisation",
                rows: Box::new(rows),
                events: vec![ev],
            })
            .await?;
        if let Ok(mut s) = self.orgs.write() {
            s.insert(id);
        }
        Ok(Organisation {
            id: OrgId(id),
            kind,
            name,
            created_at: now,
        })
    }

    async fn organisations(&self) -> Result<Vec<Organisation>> {
        self.backend
            .organisations()
            .await?
            .into_iter()
            .map(|o| {
                Ok(Organisation {
                    id: OrgId(o.id),
                    kind: o
                        .kind
                        .parse()
                        .map_err(|_| bad_column("organisations.kind", &o.kind))?,
                    name: o
                        .name
                        .parse()
                        .map_err(|_| bad_column("organisations.name", "text"))?,
                    created_at: Timestamp::from_micros(o.created_at),
                })
            })
            .collect()
    }

    async fn create_user(
        &self,
        actor: Actor,
        org: OrgId,
        login: Login,
        display_name: Label,
        roles: Vec<Role>,
    ) -> Result<User> {
        self.ensure_org(org).await?;
        let id = self.new_id()?;
        let now = self.clock.now();
        let dk = DataKey::generate(&*self.entropy)?;
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        let rows = RowBatch {
            users: vec![UserRow {
                id,
                organisation_id: org.0,
                login_bidx: blind_index(&self.keys.index, "user.login", login.as_str().as_bytes())
                    .to_vec(),
                wrapped_key: Some(
                    self.keys
                        .wrap_data_key(&dk, &user_owner(id), &*self.entropy)?,
                ),
                login_ct: self.seal(&dk, "users", "login", id, &json(&login)?)?,
                display_ct: self.seal(&dk, "users", "display_name", id, &json(&display_name)?)?,
                roles: roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                disabled: 0,
                version: 1,
                created_at: now.as_micros(),
                password_ct: None,
                totp_ct: None,
            }],
            ..RowBatch::default()
        };
        let mut ev = self.event(actor, org.0, EventKind::UserCreated, id, None)?;
        ev.meta.insert(
            "roles".into(),
            roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().into(),
        );
        self.writer
            .write(Op::Insert {
                what: "a user with this login",
                rows: Box::new(rows),
                events: vec![ev],
            })
            .await?;
        Ok(User {
            id: UserId(id),
            organisation_id: org,
            login,
            display_name,
            roles,
            disabled: false,
            created_at: now,
        })
    }

    async fn users(&self, scope: Scope) -> Result<Vec<User>> {
        self.backend
            .users(scope.org())
            .await?
            .into_iter()
            .map(|r| self.user_from_row(r))
            .collect()
    }

    async fn user(&self, scope: Scope, id: UserId) -> Result<User> {
        staff::user(self, scope, id).await
    }

    async fn set_password(&self, actor: Actor, user: UserId, phc: SecretString) -> Result<()> {
        staff::set_password(self, actor, user, phc).await
    }

    async fn set_totp(
        &self,
        actor: Actor,
        user: UserId,
        secret: Option<SecretBytes>,
    ) -> Result<()> {
        staff::set_totp(self, actor, user, secret).await
    }

    async fn set_user_disabled(
        &self,
        actor: Actor,
        scope: Scope,
        user: UserId,
        disabled: bool,
    ) -> Result<()> {
        staff::set_user_disabled(self, actor, scope, user, disabled).await
    }

    async fn user_credentials(&self, login: &Login) -> Result<Option<Credentials>> {
        staff::user_credentials(self, login).await
    }

    async fn create_api_token(
        &self,
        actor: Actor,
        user: UserId,
        token_hash: [u8; 32],
        label: String,
    ) -> Result<ApiToken> {
        staff::create_api_token(self, actor, user, token_hash, label).await
    }

    async fn user_for_token(&self, token_hash: [u8; 32]) -> Result<Option<User>> {
        staff::user_for_token(self, token_hash).await
    }

    async fn revoke_api_token(
        &self,
        actor: Actor,
        scope: Scope,
        token_hash: [u8; 32],
    ) -> Result<()> {
        staff::revoke_api_token(self, actor, scope, token_hash).await
    }

    async fn api_tokens(&self, scope: Scope, user: UserId) -> Result<Vec<ApiToken>> {
        staff::api_tokens(self, scope, user).await
    }

    async fn apply(
        &self,
        new: NewCase,
        programme: ProgrammeId,
        codename: &SecretString,
    ) -> Result<(Case, Application)> {
        casework::apply(self, new, programme, codename).await
    }

    async fn case_for_codename(&self, codename: &SecretString) -> Result<Option<(CaseId, OrgId)>> {
        casework::case_for_codename(self, codename).await
    }

    async fn queue(
        &self,
        scope: Scope,
        filter: &QueueFilter,
        after: Option<ApplicationId>,
        limit: u32,
    ) -> Result<Vec<QueueItem>> {
        queue::queue(self, scope, filter, after, limit).await
    }

    async fn count_queue(&self, scope: Scope, filter: &QueueFilter) -> Result<u64> {
        queue::count_queue(self, scope, filter).await
    }

    async fn add_evidence(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        name: String,
        media_type: String,
        bytes: Vec<u8>,
    ) -> Result<EvidenceMeta> {
        casework::add_evidence(self, actor, scope, case, name, media_type, bytes).await
    }

    async fn evidence_list(&self, scope: Scope, case: CaseId) -> Result<Vec<EvidenceMeta>> {
        casework::evidence_list(self, scope, case).await
    }

    async fn evidence(&self, scope: Scope, id: EvidenceId) -> Result<(EvidenceMeta, Vec<u8>)> {
        casework::evidence(self, scope, id).await
    }

    async fn add_message(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        kind: MessageKind,
        body: Text,
    ) -> Result<Message> {
        casework::add_message(self, actor, scope, case, kind, body).await
    }

    async fn messages(&self, scope: Scope, case: CaseId) -> Result<Vec<Message>> {
        casework::messages(self, scope, case).await
    }

    async fn set_deadline(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        kind: DeadlineKind,
        due_on: Date,
        note: Option<Text>,
    ) -> Result<Deadline> {
        casework::set_deadline(self, actor, scope, case, kind, due_on, note).await
    }

    async fn complete_deadline(&self, actor: Actor, scope: Scope, id: DeadlineId) -> Result<()> {
        casework::complete_deadline(self, actor, scope, id).await
    }

    async fn deadlines(
        &self,
        scope: Scope,
        due_before: Option<Date>,
        include_done: bool,
    ) -> Result<Vec<Deadline>> {
        casework::deadlines(self, scope, due_before, include_done).await
    }

    async fn case_deadlines(&self, scope: Scope, case: CaseId) -> Result<Vec<Deadline>> {
        casework::case_deadlines(self, scope, case).await
    }

    async fn refer(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        to: OrgId,
        consent: Text,
    ) -> Result<Referral> {
        access::refer(self, actor, scope, case, to, consent).await
    }

    async fn answer_referral(
        &self,
        actor: Actor,
        scope: Scope,
        id: ReferralId,
        accept: bool,
    ) -> Result<Referral> {
        access::answer_referral(self, actor, scope, id, accept).await
    }

    async fn referrals(&self, scope: Scope) -> Result<Vec<Referral>> {
        access::referrals(self, scope).await
    }

    async fn request_export(
        &self,
        actor: Actor,
        scope: Scope,
        cases: &[CaseKey],
        purpose: Text,
    ) -> Result<Export> {
        exports::request_export(self, actor, scope, cases, purpose).await
    }

    async fn decide_export(
        &self,
        actor: Actor,
        scope: Scope,
        id: ExportId,
        approve: bool,
    ) -> Result<Export> {
        exports::decide_export(self, actor, scope, id, approve).await
    }

    async fn collect_export(
        &self,
        actor: Actor,
        scope: Scope,
        id: ExportId,
        passphrase: &SecretString,
    ) -> Result<CollectedExport> {
        exports::collect_export(self, actor, scope, id, passphrase, &KdfParams::default()).await
    }

    async fn exports(&self, scope: Scope) -> Result<Vec<Export>> {
        exports::exports(self, scope).await
    }

    async fn export(&self, scope: Scope, id: ExportId) -> Result<Export> {
        exports::export(self, scope, id).await
    }

    async fn create_case(&self, actor: Actor, new: NewCase) -> Result<Case> {
        self.ensure_org(new.organisation_id).await?;
        let (case, _) = self
            .insert_new_case("case", |rows, events| {
                self.stage_case(actor, &new, rows, events)
            })
            .await?;
        Ok(case)
    }

    async fn submit(
        &self,
        actor: Actor,
        new: NewCase,
        programme: ProgrammeId,
    ) -> Result<(Case, Application)> {
        self.ensure_org(new.organisation_id).await?;
        self.insert_new_case("case", |rows, events| {
            self.stage_submission(actor, &new, &programme, rows, events)
        })
        .await
    }

    async fn submit_once(
        &self,
        actor: Actor,
        new: NewCase,
        programme: ProgrammeId,
        key: &str,
    ) -> Result<(Case, Application, bool)> {
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StoreError::Invalid {
                field: "idempotency_key",
                message: "expected 1 to 200 visible ASCII characters".into(),
            });
        }
        let org = new.organisation_id;
        self.ensure_org(org).await?;
        let mut value = org.0.as_bytes().to_vec();
        value.extend_from_slice(key.as_bytes());
        let bidx = blind_index(&self.keys.index, SUBMISSION_KEY_DOMAIN, &value).to_vec();
        let replay = |(case, app): (Uuid, Uuid)| async move {
            let scope = Scope::Organisation(org);
            let c = self.case(scope, &CaseKey::Id(CaseId(case))).await?;
            let a = self.application(scope, ApplicationId(app)).await?;
            Ok::<_, StoreError>((c, a, true))
        };
        if let Some(found) = self.backend.submission_key(org.0, &bidx).await? {
            return replay(found).await;
        }
        let now = self.clock.now().as_micros();
        let submitted = self
            .insert_new_case("case", |rows, events| {
                let (case, app) = self.stage_submission(actor, &new, &programme, rows, events)?;
                rows.submission_keys.push(SubmissionKeyRow {
                    organisation_id: org.0,
                    key_bidx: bidx.clone(),
                    case_id: case.id.0,
                    application_id: app.id.0,
                    created_at: now,
                });
                Ok((case, app))
            })
            .await;
        match submitted {
            Ok((case, app)) => Ok((case, app, false)),
            // The same key, sent again while the first was being written.
            Err(StoreError::Duplicate(what)) => {
                match self.backend.submission_key(org.0, &bidx).await? {
                    Some(found) => replay(found).await,
                    None => Err(StoreError::Duplicate(what)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn access_state(&self) -> Result<AccessState> {
        let (revoked, versions, disabled) = self.backend.access_state().await?;
        Ok(AccessState {
            generation: (to_u64(revoked), to_u64(versions)),
            disabled: disabled.into_iter().map(UserId).collect(),
        })
    }

    async fn case(&self, scope: Scope, key: &CaseKey) -> Result<Case> {
        Ok(self.load_case(scope, key).await?.0)
    }

    async fn cases(
        &self,
        scope: Scope,
        after: Option<CaseId>,
        limit: u32,
    ) -> Result<Vec<CaseSummary>> {
        self.backend
            .cases(scope.org(), after.map(|a| a.0), i64::from(limit))
            .await?
            .into_iter()
            .map(|r| self.summary(&r))
            .collect()
    }

    async fn case_summary(&self, scope: Scope, case: CaseId) -> Result<CaseSummary> {
        let not_found = || StoreError::NotFound {
            what: "case",
            id: case.to_string(),
        };
        let row = self
            .backend
            .cases_by_ids(&[case.0])
            .await?
            .pop()
            .ok_or_else(not_found)?;
        match self
            .access(scope, row.case.organisation_id, row.case.id)
            .await?
        {
            Some(_) => self.summary(&row),
            None => Err(not_found()),
        }
    }

    async fn find_cases(&self, scope: Scope, lookup: &Lookup) -> Result<Vec<CaseSummary>> {
        let (domain, value) = match lookup {
            Lookup::Name(n) => ("person.name", normalise_for_index(n)),
            Lookup::Document(d) => ("person.document", normalise_document_number(d)),
        };
        let bidx = blind_index(&self.keys.index, domain, value.as_bytes());
        let mut persons: HashSet<Uuid> = self
            .backend
            .persons_by_index(&bidx)
            .await?
            .into_iter()
            .collect();
        // Persons whose indexes the background indexer has not copied yet.
        for (person, lookup) in self.backend.pending_lookups().await? {
            if lookup.chunks_exact(16).any(|c| c == bidx.as_slice()) {
                persons.insert(person);
            }
        }
        if persons.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.backend.cases(scope.org(), after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.case.id);
            for r in page
                .into_iter()
                .filter(|r| persons.contains(&r.case.person_id))
            {
                out.push(self.summary(&r)?);
            }
        }
        Ok(out)
    }

    async fn reveal_identity(&self, actor: Actor, scope: Scope, case: CaseId) -> Result<Person> {
        let row = self.case_row(scope, &CaseKey::Id(case)).await?;
        let person = self.person_row(row.person_id).await?;
        let dk = self.person_key(person.id, person.wrapped_key.as_deref())?;
        let identity = self.open_identity(&dk, &person)?;
        let mut ev = self.event(
            actor,
            row.organisation_id,
            EventKind::IdentityRevealed,
            row.id,
            Some(person.id),
        )?;
        ev.meta.insert("case_id".into(), row.id.to_string().into());
        // The reveal is durable before the identity is returned.
        self.writer.write(Op::Append { event: ev }).await?;
        Ok(identity)
    }

    async fn erase_person(&self, actor: Actor, scope: Scope, person: PersonId) -> Result<()> {
        let ev = self.event(
            actor,
            Uuid::nil(), // the writer puts it in the person's organisation's chain
            EventKind::PersonErased,
            person.0,
            Some(person.0),
        )?;
        self.writer
            .write(Op::ErasePerson {
                scope,
                person_id: person.0,
                event: ev,
            })
            .await?;
        tracing::info!(person = %person, "person erased");
        self.backend.scrub().await
    }

    async fn update_facts(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        expected_version: u64,
        facts: Facts,
    ) -> Result<Case> {
        let (current, dk) = self.load_case(scope, &CaseKey::Id(case)).await?;
        if current.version != expected_version {
            return Err(StoreError::Conflict {
                what: "case",
                id: case.to_string(),
                expected: expected_version,
                actual: current.version,
            });
        }
        let facts_ct = self.seal(&dk, "cases", "facts", case.0, &json(&facts)?)?;
        let mut ev = self.event(
            actor,
            current.organisation_id.0,
            EventKind::FactsUpdated,
            case.0,
            Some(current.person_id.0),
        )?;
        ev.body_ct = Some(self.seal(
            &dk,
            "events",
            "body",
            ev.id,
            &json(&serde_json::json!({ "facts": facts }))?,
        )?);
        let op = Op::UpdateFacts {
            scope: write_scope(current.organisation_id.0),
            case_id: case.0,
            expected: expected_version,
            facts_ct,
            event: ev,
        };
        match self.writer.write(op).await? {
            Outcome::Updated { version, at, .. } => Ok(Case {
                facts,
                version,
                updated_at: Timestamp::from_micros(at),
                ..current
            }),
            Outcome::Written { .. } | Outcome::Indexed { .. } => {
                Err(StoreError::Database("unexpected write outcome".into()))
            }
        }
    }

    async fn create_application(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        programme: ProgrammeId,
    ) -> Result<Application> {
        let (case, _) = self.load_case(scope, &CaseKey::Id(case)).await?;
        let mut rows = RowBatch::default();
        let mut events = Vec::new();
        let app = self.stage_application(
            actor,
            &case,
            &programme,
            ApplicationState::Draft,
            &mut rows,
            &mut events,
        )?;
        self.writer
            .write(Op::Insert {
                what: "application",
                rows: Box::new(rows),
                events,
            })
            .await?;
        Ok(app)
    }

    async fn application(&self, scope: Scope, id: ApplicationId) -> Result<Application> {
        let row = self.application_row(scope, id).await?;
        let dk = if row.decision_ct.is_some() {
            self.key_of_case(row.case_id).await?.1
        } else {
            None
        };
        self.application_from_row(row, dk.as_ref())
    }

    async fn applications(&self, scope: Scope, case: CaseId) -> Result<Vec<Application>> {
        let row = self.case_row(scope, &CaseKey::Id(case)).await?;
        let rows = self.backend.applications_of_case(row.id).await?;
        let dk = if rows.iter().any(|r| r.decision_ct.is_some()) {
            self.key_of_case(row.id).await?.1
        } else {
            None
        };
        rows.into_iter()
            .map(|r| self.application_from_row(r, dk.as_ref()))
            .collect()
    }

    async fn move_application(
        &self,
        actor: Actor,
        scope: Scope,
        id: ApplicationId,
        expected_version: Option<u64>,
        mv: Move,
    ) -> Result<Application> {
        // The applicant may only withdraw: refused before anything is read or written.
        mv.check_actor(actor)?;
        let row = self.application_row(scope, id).await?;
        let now = self.clock.now();
        let mut mv = mv;
        if let Some(d) = mv.decision.as_mut() {
            d.decided_by = actor;
            d.decided_at = now;
        }
        // Refuse what can be refused before any key is touched; the writer checks again
        // against the state at commit time.
        let current: ApplicationState = row
            .state
            .parse()
            .map_err(|_| bad_column("applications.state", &row.state))?;
        if expected_version.is_none_or(|v| v == to_u64(row.version)) {
            mv.check(current)?;
        }
        let (person, dk) = self.key_of_case(row.case_id).await?;
        let mut ev = self.event(
            actor,
            row.organisation_id,
            EventKind::ApplicationMoved,
            id.0,
            person,
        )?;
        let mut decision = None;
        if let Some(dk) = &dk {
            if let Some(d) = &mv.decision {
                decision = Some((
                    d.legal_basis.as_str().to_owned(),
                    self.seal(dk, "applications", "decision", id.0, &json(&d.reasons)?)?,
                    actor.to_string(),
                    now.as_micros(),
                ));
                ev.meta
                    .insert("legal_basis".into(), d.legal_basis.as_str().into());
            }
            let body = serde_json::json!({
                "reason": mv.reason,
                "reasons": mv.decision.as_ref().map(|d| &d.reasons),
            });
            ev.body_ct = Some(self.seal(dk, "events", "body", ev.id, &json(&body)?)?);
        } else if mv.decision.is_some() {
            return Err(StoreError::Erased(row.case_id.to_string()));
        }
        let op = Op::MoveApplication {
            scope: write_scope(row.organisation_id),
            application_id: id.0,
            expected: expected_version,
            mv: mv.clone(),
            decision,
            event: ev,
        };
        match self.writer.write(op).await? {
            Outcome::Updated { version, at, .. } => {
                let mut app = self.application_from_row(row, None)?;
                app.state = mv.to;
                app.version = version;
                app.updated_at = Timestamp::from_micros(at);
                if let Some(d) = mv.decision {
                    app.decision = Some(d);
                } else if dk.is_some() {
                    app = self.application(scope, id).await?;
                }
                Ok(app)
            }
            Outcome::Written { .. } | Outcome::Indexed { .. } => {
                Err(StoreError::Database("unexpected write outcome".into()))
            }
        }
    }

    async fn case_events(&self, scope: Scope, case: CaseId) -> Result<Vec<Event>> {
        let row = self.case_row(scope, &CaseKey::Id(case)).await?;
        let mut subjects = vec![row.id];
        subjects.extend(self.backend.case_records(row.id).await?);
        self.backend
            .events_about(&subjects)
            .await?
            .into_iter()
            .map(|e| {
                Ok(Event {
                    id: EventId(e.id),
                    organisation_id: OrgId(e.organisation_id),
                    seq: to_u64(e.seq),
                    at: Timestamp::from_micros(e.at),
                    actor: e
                        .actor
                        .parse()
                        .map_err(|_| bad_column("events.actor", &e.actor))?,
                    kind: e
                        .kind
                        .parse()
                        .map_err(|_| bad_column("events.kind", &e.kind))?,
                    subject: e.subject,
                    person_id: e.person_id.map(PersonId),
                    meta: serde_json::from_str(&e.meta)
                        .map_err(|_| bad_column("events.meta", "json"))?,
                })
            })
            .collect()
    }

    async fn index_backlog(&self) -> Result<u64> {
        Ok(self.backend.pending_lookups().await?.len() as u64)
    }

    async fn flush_indexes(&self) -> Result<u64> {
        Ok(index_pending(&self.writer, &self.backlog, &*self.clock, false).await? as u64)
    }

    async fn verify_chain(&self) -> Result<ChainReport> {
        chain::verify(&*self.backend).await
    }

    async fn counts(&self) -> Result<Vec<(&'static str, i64)>> {
        self.backend.counts().await
    }

    async fn backup(&self, out: &mut (dyn std::io::Write + Send)) -> Result<BackupSummary> {
        backup::write(&*self.backend, out).await
    }

    async fn close(&self) {
        self.indexer.abort();
        if let Some(w) = &self.key_watch {
            w.abort();
        }
        if let Err(e) = index_pending(&self.writer, &self.backlog, &*self.clock, false).await {
            tracing::warn!(error = %e, "indexing blind indexes at close failed; they stay pending");
        }
        self.backend.close().await;
    }
}

//! The refuge case store.
//!
//! [`Store`] is the one interface the rest of refuge uses to keep organisations, users,
//! persons, cases, applications and events. [`SqlStore`] implements it over SQLite (the
//! embedded default) or PostgreSQL, chosen by the URL scheme, with:
//!
//! - **encryption at rest**: identity, facts, reasons and event bodies are sealed with
//!   XChaCha20-Poly1305 under a per-person data key, itself wrapped by the instance key, which
//!   never enters the database. Associated data binds each ciphertext to its table, field and
//!   record. Plaintext columns hold only ids, kinds, states, programme ids, versions and times.
//! - **an append-only, hash-chained event log**: every change (and every reveal of identity) is
//!   an event in the same transaction as the projection it updates; `verify_chain` detects
//!   any altered, deleted, inserted or reordered event.
//! - **optimistic concurrency**: updates carry the version they were based on; a stale one is
//!   refused with [`StoreError::Conflict`] and writes nothing.
//! - **group commit**: all writes go through one writer task that commits whatever requests are
//!   waiting in one durable transaction, acknowledging each only after the commit.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod backend;
mod backup;
mod chain;
mod error;
mod keys;
mod postgres;
mod rows;
mod sqlite;
mod store;
mod writer;

pub use backup::BackupSummary;
pub use chain::{ChainProblem, ChainReport, ChainSummary};
pub use error::{Result, StoreError};
pub use keys::KeySource;
pub use store::{SqlStore, StoreConfig, initialise, open, restore};

use async_trait::async_trait;
use refuge_core::application::{Application, Move, ProgrammeId};
use refuge_core::case::Case;
use refuge_core::clock::Timestamp;
use refuge_core::event::{Actor, Event};
use refuge_core::facts::Facts;
use refuge_core::ids::{ApplicationId, CaseId, CaseReference, InvalidId, OrgId};
use refuge_core::org::{Login, Organisation, OrganisationKind, Role, User};
use refuge_core::person::Person;
use refuge_core::text::Label;
use serde::Serialize;
use std::str::FromStr;
use uuid::Uuid;

/// Whose records a caller may see and change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every organisation (the instance operator).
    Instance,
    /// One organisation.
    Organisation(OrgId),
}

impl Scope {
    /// Whether a record of `org` is within this scope.
    pub fn allows(&self, org: Uuid) -> bool {
        match self {
            Scope::Instance => true,
            Scope::Organisation(o) => o.0 == org,
        }
    }

    fn org(&self) -> Option<Uuid> {
        match self {
            Scope::Instance => None,
            Scope::Organisation(o) => Some(o.0),
        }
    }
}

/// A new case and the person it is about.
#[derive(Clone, Debug)]
pub struct NewCase {
    /// The organisation opening it.
    pub organisation_id: OrgId,
    /// Who the person is (stored encrypted).
    pub person: Person,
    /// What is known of their situation (stored encrypted).
    pub facts: Facts,
}

/// A case as listed: no facts, no identity; the pseudonym only.
#[derive(Clone, Debug, Serialize)]
pub struct CaseSummary {
    /// Its id.
    pub id: CaseId,
    /// Its reference.
    pub reference: CaseReference,
    /// The organisation holding it.
    pub organisation_id: OrgId,
    /// The pseudonym staff use (`None` if none was given, or the person was erased).
    pub pseudonym: Option<Label>,
    /// Its version.
    pub version: u64,
    /// Created at.
    pub created_at: Timestamp,
    /// Last changed at.
    pub updated_at: Timestamp,
}

/// How a case is named: by id or by reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseKey {
    /// By id.
    Id(CaseId),
    /// By reference, e.g. `RF-7K3M-Q9TD-2XAB`.
    Reference(CaseReference),
}

impl FromStr for CaseKey {
    type Err = InvalidId;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if let Ok(id) = s.parse::<CaseId>() {
            return Ok(CaseKey::Id(id));
        }
        s.parse::<CaseReference>()
            .map(CaseKey::Reference)
            .map_err(|_| InvalidId(s.to_owned()))
    }
}

impl std::fmt::Display for CaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaseKey::Id(id) => id.fmt(f),
            CaseKey::Reference(r) => r.fmt(f),
        }
    }
}

/// An exact lookup by blind index: the value is never stored, only its keyed hash.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// A full name, compared after normalisation (case, spacing, punctuation).
    Name(String),
    /// A document number, compared on its letters and digits.
    Document(String),
}

/// The store: everything refuge keeps.
#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;

    /// Create an organisation.
    async fn create_organisation(
        &self,
        actor: Actor,
        kind: OrganisationKind,
        name: Label,
    ) -> Result<Organisation>;
    /// All organisations.
    async fn organisations(&self) -> Result<Vec<Organisation>>;
    /// Create a staff user of `org`; the login must be unused.
    async fn create_user(
        &self,
        actor: Actor,
        org: OrgId,
        login: Login,
        display_name: Label,
        roles: Vec<Role>,
    ) -> Result<User>;
    /// Users within scope.
    async fn users(&self, scope: Scope) -> Result<Vec<User>>;

    /// Open a case for a person.
    async fn create_case(&self, actor: Actor, new: NewCase) -> Result<Case>;
    /// Intake: open a case and submit an application to `programme` in one durable write.
    async fn submit(
        &self,
        actor: Actor,
        new: NewCase,
        programme: ProgrammeId,
    ) -> Result<(Case, Application)>;
    /// One case with its facts (never its identity).
    async fn case(&self, scope: Scope, key: &CaseKey) -> Result<Case>;
    /// Cases within scope, oldest first, after a cursor.
    async fn cases(
        &self,
        scope: Scope,
        after: Option<CaseId>,
        limit: u32,
    ) -> Result<Vec<CaseSummary>>;
    /// Cases whose person matches an exact lookup.
    async fn find_cases(&self, scope: Scope, lookup: &Lookup) -> Result<Vec<CaseSummary>>;
    /// Reveal who a case is about. Recorded as an `identity_revealed` event.
    async fn reveal_identity(&self, actor: Actor, scope: Scope, case: CaseId) -> Result<Person>;
    /// Replace a case's facts, if it is still at `expected_version`.
    async fn update_facts(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        expected_version: u64,
        facts: Facts,
    ) -> Result<Case>;

    /// Start a draft application of a case to a programme.
    async fn create_application(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        programme: ProgrammeId,
    ) -> Result<Application>;
    /// One application.
    async fn application(&self, scope: Scope, id: ApplicationId) -> Result<Application>;
    /// A case's applications, oldest first.
    async fn applications(&self, scope: Scope, case: CaseId) -> Result<Vec<Application>>;
    /// Move an application through its state machine; with `expected_version`, only if it
    /// is still at that version. A decision's `decided_by` and `decided_at` are set to
    /// `actor` and the time of the write.
    async fn move_application(
        &self,
        actor: Actor,
        scope: Scope,
        id: ApplicationId,
        expected_version: Option<u64>,
        mv: Move,
    ) -> Result<Application>;

    /// The events about a case and its applications, in order.
    async fn case_events(&self, scope: Scope, case: CaseId) -> Result<Vec<Event>>;
    /// Persons whose blind indexes are still waiting for the background indexer (lookups
    /// find them all the same, by scanning this backlog).
    async fn index_backlog(&self) -> Result<u64>;
    /// Index the whole backlog now; returns how many persons were indexed.
    async fn flush_indexes(&self) -> Result<u64>;
    /// Verify every organisation's hash chain.
    async fn verify_chain(&self) -> Result<ChainReport>;
    /// Row counts per table.
    async fn counts(&self) -> Result<Vec<(&'static str, i64)>>;
    /// Write a consistent, still-encrypted copy of everything to `out`.
    async fn backup(&self, out: &mut (dyn std::io::Write + Send)) -> Result<BackupSummary>;
    /// Finish pending writes and close connections.
    async fn close(&self);
}

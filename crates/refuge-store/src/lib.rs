//! The refuge case store.
//!
//! [`Store`] is the one interface the rest of refuge uses to keep organisations, users (with
//! their credentials and API tokens), persons, cases, applications, evidence, messages,
//! deadlines, referrals and events. [`SqlStore`] implements it over SQLite (the
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
pub use refuge_core::casework::{
    EvidenceMeta, Export, ExportState, Message, MessageKind, Referral, ReferralState,
};
pub use store::{
    CollectedExport, EXPORT_FORMAT, MAX_EXPORT_BYTES, Rotation, RotationReport, SqlStore,
    StoreConfig, initialise, open, restore, rotate_key,
};

use async_trait::async_trait;
use refuge_core::application::{Application, ApplicationState, Move, ProgrammeId};
use refuge_core::case::{Case, Deadline, DeadlineKind};
use refuge_core::clock::Timestamp;
use refuge_core::event::{Actor, Event};
use refuge_core::facts::Facts;
use refuge_core::ids::{
    ApplicationId, CaseId, CaseReference, DeadlineId, EvidenceId, ExportId, InvalidId, OrgId,
    PersonId, ReferralId, UserId,
};
use refuge_core::org::{Login, Organisation, OrganisationKind, Role, User};
use refuge_core::person::Person;
use refuge_core::text::{Label, Text};
use refuge_crypto::{SecretString, Zeroizing};
use serde::Serialize;
use std::str::FromStr;
use time::Date;
use uuid::Uuid;

/// The largest piece of evidence the store takes, in bytes.
pub const MAX_EVIDENCE_BYTES: usize = 32 << 20;

/// Secret bytes (a TOTP secret): wiped from memory on drop, never printed. `Debug` prints
/// `[redacted]`; read them only through [`SecretBytes::expose`], at the point of use.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when this value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Do not log, print or store them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What signing in needs to know of a staff user. The secrets never print.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The user (check `disabled`).
    pub user: User,
    /// Their Argon2id PHC string, if a password was set.
    pub password_phc: Option<SecretString>,
    /// Their TOTP secret, if a second factor was set.
    pub totp_secret: Option<SecretBytes>,
}

/// An API token as listed: never the token, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// SHA-256 of the token (names it; reveals nothing of it).
    pub token_hash: [u8; 32],
    /// Whose it is.
    pub user_id: UserId,
    /// Their organisation.
    pub organisation_id: OrgId,
    /// What it is for (stored encrypted with the user's key).
    pub label: Label,
    /// Issued at.
    pub created_at: Timestamp,
    /// Revoked at.
    pub revoked_at: Option<Timestamp>,
}

/// What decides staff access and can change outside a running server (see
/// [`Store::access_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessState {
    /// Changes whenever an API token is revoked or a staff user changes (disabled, enabled,
    /// roles, credentials); compare two readings for equality only.
    pub generation: (u64, u64),
    /// The staff users disabled now.
    pub disabled: Vec<UserId>,
}

/// Which applications a queue shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Only this programme.
    pub programme: Option<ProgrammeId>,
    /// Only these states; empty means every state.
    pub states: Vec<ApplicationState>,
}

/// One entry of a queue: the application (with its decision, if any) and its case's summary
/// (reference and pseudonym; never facts or identity).
#[derive(Clone, Debug, Serialize)]
pub struct QueueItem {
    /// The application.
    pub application: Application,
    /// Its case.
    pub case: CaseSummary,
}

/// Whose records a caller may see and change.
///
/// `Organisation(o)` sees the cases `o` holds and, once `o` has accepted a referral of a case,
/// that case too, as if it held it; while the referral is pending, only the referral with the
/// case's reference and pseudonym ([`Store::referrals`]). Anything else is `NotFound`, exactly
/// like a record that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every organisation (the instance operator).
    Instance,
    /// One organisation.
    Organisation(OrgId),
}

impl Scope {
    /// Whether a record held by `org` is within this scope (referrals aside: for cases, the
    /// store also applies the referral rule).
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
    /// One user within scope.
    async fn user(&self, scope: Scope, id: UserId) -> Result<User>;
    /// Set a user's password: an Argon2id PHC string (hashed by the caller), stored sealed with
    /// the user's data key. A `password_set` event (with no trace of the password).
    async fn set_password(&self, actor: Actor, user: UserId, phc: SecretString) -> Result<()>;
    /// Set a user's TOTP secret, or remove it with `None`. A `totp_set` event (with no trace of
    /// the secret).
    async fn set_totp(&self, actor: Actor, user: UserId, secret: Option<SecretBytes>)
    -> Result<()>;
    /// Disable or enable a user within scope.
    async fn set_user_disabled(
        &self,
        actor: Actor,
        scope: Scope,
        user: UserId,
        disabled: bool,
    ) -> Result<()>;
    /// A user and their secrets, found by login name (through its blind index); `None` if no
    /// user has this login. Disabled users are returned too: check `user.disabled`.
    async fn user_credentials(&self, login: &Login) -> Result<Option<Credentials>>;
    /// Issue an API token to a user. The caller generates the token and passes its SHA-256;
    /// the token itself is never stored.
    async fn create_api_token(
        &self,
        actor: Actor,
        user: UserId,
        token_hash: [u8; 32],
        label: String,
    ) -> Result<ApiToken>;
    /// The user an API token (by its SHA-256) belongs to; `None` if it is unknown or revoked,
    /// or its user is disabled.
    async fn user_for_token(&self, token_hash: [u8; 32]) -> Result<Option<User>>;
    /// What decides staff access and can change outside this process (the command line, or
    /// another server on the same database): a running server polls it to forget cached
    /// tokens and end disabled users' sessions.
    async fn access_state(&self) -> Result<AccessState>;
    /// Revoke an API token of a user within scope.
    async fn revoke_api_token(
        &self,
        actor: Actor,
        scope: Scope,
        token_hash: [u8; 32],
    ) -> Result<()>;
    /// A user's API tokens (revoked ones included), oldest first.
    async fn api_tokens(&self, scope: Scope, user: UserId) -> Result<Vec<ApiToken>>;

    /// Open a case for a person.
    async fn create_case(&self, actor: Actor, new: NewCase) -> Result<Case>;
    /// Intake: open a case and submit an application to `programme` in one durable write.
    async fn submit(
        &self,
        actor: Actor,
        new: NewCase,
        programme: ProgrammeId,
    ) -> Result<(Case, Application)>;
    /// [`Store::submit`] once per idempotency key: the first call with `key` (any text the
    /// client chose, 1 to 200 visible ASCII characters) submits, and stores a blind index of
    /// the organisation and key with the case in the same write; any later call with the
    /// same key in the same organisation returns that case and application as they are now,
    /// with `true` ("replayed"), and writes nothing. A client that got no answer, or a `500`
    /// after a disk failure, can so send the submission again without creating a second case.
    async fn submit_once(
        &self,
        actor: Actor,
        new: NewCase,
        programme: ProgrammeId,
        key: &str,
    ) -> Result<(Case, Application, bool)>;
    /// Intake by the applicant themselves: [`Store::submit`] with [`Actor::Applicant`], in the
    /// same one durable write storing the keyed hash of `codename` (generated by the caller;
    /// compared in lower case with single spaces), never the codename.
    async fn apply(
        &self,
        new: NewCase,
        programme: ProgrammeId,
        codename: &SecretString,
    ) -> Result<(Case, Application)>;
    /// The case (and its organisation) a codename opens, if any.
    async fn case_for_codename(&self, codename: &SecretString) -> Result<Option<(CaseId, OrgId)>>;
    /// One case with its facts (never its identity).
    async fn case(&self, scope: Scope, key: &CaseKey) -> Result<Case>;
    /// Cases within scope, oldest first, after a cursor.
    async fn cases(
        &self,
        scope: Scope,
        after: Option<CaseId>,
        limit: u32,
    ) -> Result<Vec<CaseSummary>>;
    /// One case as listed (reference and pseudonym, no facts): visible with full access and
    /// also while a referral of it to the scope's organisation is pending.
    async fn case_summary(&self, scope: Scope, case: CaseId) -> Result<CaseSummary>;
    /// Cases whose person matches an exact lookup.
    async fn find_cases(&self, scope: Scope, lookup: &Lookup) -> Result<Vec<CaseSummary>>;
    /// Reveal who a case is about. Recorded as an `identity_revealed` event.
    async fn reveal_identity(&self, actor: Actor, scope: Scope, case: CaseId) -> Result<Person>;
    /// Erase a person by crypto-shredding: their wrapped data key is destroyed, so their
    /// identity, pseudonym, facts, evidence, messages, notes, decisions' reasons and referral
    /// consent can never be opened again; their blind indexes and every codename that reached
    /// their cases are deleted. Cases, applications and events stay (ids, states, dates), so
    /// the hash chain still verifies. Recorded as a `person_erased` event; then the database
    /// is asked to drop the old row versions ([`Store::erase_person`] returns once it has).
    /// Only the person's own organisation (or the instance) may; a second erasure is
    /// `AlreadyDone`. Backups made before stay as they were: see docs/operators.md.
    async fn erase_person(&self, actor: Actor, scope: Scope, person: PersonId) -> Result<()>;
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

    /// Applications of the cases within scope (the organisation's own and those referred to it
    /// and accepted), oldest first, after a cursor: a page of a work queue. Facts are not
    /// decrypted; the summary shows reference and pseudonym.
    async fn queue(
        &self,
        scope: Scope,
        filter: &QueueFilter,
        after: Option<ApplicationId>,
        limit: u32,
    ) -> Result<Vec<QueueItem>>;
    /// How many applications a queue holds.
    async fn count_queue(&self, scope: Scope, filter: &QueueFilter) -> Result<u64>;

    /// Attach a file to a case: name and media type, and the bytes (at most
    /// [`MAX_EVIDENCE_BYTES`]), sealed with the person's data key. An `evidence_added` event.
    async fn add_evidence(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        name: String,
        media_type: String,
        bytes: Vec<u8>,
    ) -> Result<EvidenceMeta>;
    /// A case's evidence, oldest first (without content).
    async fn evidence_list(&self, scope: Scope, case: CaseId) -> Result<Vec<EvidenceMeta>>;
    /// One piece of evidence with its content.
    async fn evidence(&self, scope: Scope, id: EvidenceId) -> Result<(EvidenceMeta, Vec<u8>)>;

    /// Add a message (a request for information, an answer, a note) to a case; the body is
    /// sealed with the person's data key. A `message_added` event.
    async fn add_message(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        kind: MessageKind,
        body: Text,
    ) -> Result<Message>;
    /// A case's messages, oldest first.
    async fn messages(&self, scope: Scope, case: CaseId) -> Result<Vec<Message>>;

    /// Set a deadline on a case. A `deadline_set` event.
    async fn set_deadline(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        kind: DeadlineKind,
        due_on: Date,
        note: Option<Text>,
    ) -> Result<Deadline>;
    /// Mark a deadline done (once: again is [`StoreError::AlreadyDone`]). A
    /// `deadline_completed` event.
    async fn complete_deadline(&self, actor: Actor, scope: Scope, id: DeadlineId) -> Result<()>;
    /// Deadlines of the cases within scope due before `due_before` (exclusive; all if
    /// `None`), open ones only unless `include_done`, by due date.
    async fn deadlines(
        &self,
        scope: Scope,
        due_before: Option<Date>,
        include_done: bool,
    ) -> Result<Vec<Deadline>>;
    /// A case's deadlines (done ones included), by due date.
    async fn case_deadlines(&self, scope: Scope, case: CaseId) -> Result<Vec<Deadline>>;

    /// Refer a case held by the scope's organisation to another organisation, recording the
    /// person's consent (who consented, when, how; sealed). A `referral_made` event in the
    /// sending organisation's chain. At most one referral of a case to an organisation is open
    /// (pending or accepted) at a time.
    async fn refer(
        &self,
        actor: Actor,
        scope: Scope,
        case: CaseId,
        to: OrgId,
        consent: Text,
    ) -> Result<Referral>;
    /// Accept or decline a pending referral: only in the receiving organisation's scope.
    /// `referral_answered` events in both organisations' chains.
    async fn answer_referral(
        &self,
        actor: Actor,
        scope: Scope,
        id: ReferralId,
        accept: bool,
    ) -> Result<Referral>;
    /// Referrals sent or received by the scope's organisation (all for the instance), oldest
    /// first.
    async fn referrals(&self, scope: Scope) -> Result<Vec<Referral>>;

    /// Ask for cases held by the scope's organisation to be exported, saying why. Only a staff
    /// user may (`actor` is `Actor::User`); the purpose is sealed with their data key. An
    /// `export_requested` event. Nothing leaves until a second person approves.
    async fn request_export(
        &self,
        actor: Actor,
        scope: Scope,
        cases: &[CaseKey],
        purpose: Text,
    ) -> Result<Export>;
    /// Approve or refuse a requested export. Anyone of its organisation (or the operator)
    /// but its requester, who gets `NotAllowed`. An `export_decided` event.
    async fn decide_export(
        &self,
        actor: Actor,
        scope: Scope,
        id: ExportId,
        approve: bool,
    ) -> Result<Export>;
    /// Collect an approved export: only its requester, once, within
    /// `EXPORT_COLLECT_WITHIN_HOURS` of the approval. Returns the cases (identity, facts,
    /// applications, messages, deadlines, evidence) as JSON encrypted to `passphrase`
    /// (Argon2id and XChaCha20-Poly1305; see `refuge_crypto::open_export`). An
    /// `export_collected` event naming every case is durable before the file is returned.
    async fn collect_export(
        &self,
        actor: Actor,
        scope: Scope,
        id: ExportId,
        passphrase: &SecretString,
    ) -> Result<CollectedExport>;
    /// The scope's exports (every organisation's for the instance), newest first, at most 200.
    async fn exports(&self, scope: Scope) -> Result<Vec<Export>>;
    /// One export.
    async fn export(&self, scope: Scope, id: ExportId) -> Result<Export>;

    /// The events about a case and everything recorded on it, in order.
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

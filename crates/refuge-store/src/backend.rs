//! The seam between the store's logic and a database. A backend moves [`crate::rows`] in and
//! out; it knows SQL but nothing of keys, facts or the state machine.

use crate::error::Result;
use crate::rows::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One row of a backup, tagged with its table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "table", content = "row", rename_all = "snake_case")]
pub(crate) enum BackupRow {
    InstanceMeta(MetaRow),
    Organisations(OrgRow),
    Users(UserRow),
    Persons(PersonRow),
    PersonLookup(LookupRow),
    Cases(CaseRow),
    Applications(ApplicationRow),
    Events(EventRow),
    ChainHeads(HeadRow),
}

impl BackupRow {
    /// The table name.
    pub(crate) fn table(&self) -> &'static str {
        match self {
            BackupRow::InstanceMeta(_) => "instance_meta",
            BackupRow::Organisations(_) => "organisations",
            BackupRow::Users(_) => "users",
            BackupRow::Persons(_) => "persons",
            BackupRow::PersonLookup(_) => "person_lookup",
            BackupRow::Cases(_) => "cases",
            BackupRow::Applications(_) => "applications",
            BackupRow::Events(_) => "events",
            BackupRow::ChainHeads(_) => "chain_heads",
        }
    }

    /// Add this row to a batch for import.
    pub(crate) fn push_into(self, b: &mut RowBatch) {
        match self {
            BackupRow::InstanceMeta(r) => b.meta.push(r),
            BackupRow::Organisations(r) => b.orgs.push(r),
            BackupRow::Users(r) => b.users.push(r),
            BackupRow::Persons(r) => b.persons.push(r),
            BackupRow::PersonLookup(r) => b.lookups.push(r),
            BackupRow::Cases(r) => b.cases.push(r),
            BackupRow::Applications(r) => b.applications.push(r),
            BackupRow::Events(r) => b.events.push(r),
            BackupRow::ChainHeads(r) => b.heads.push(r),
        }
    }
}

/// Tables in dependency order (backup writes and restore reads them in this order).
pub(crate) const TABLES: [&str; 9] = [
    "instance_meta",
    "organisations",
    "users",
    "persons",
    "person_lookup",
    "cases",
    "applications",
    "events",
    "chain_heads",
];

/// The query that exports one table in a stable order.
pub(crate) fn export_sql(table: &str) -> String {
    use crate::rows::cols;
    match table {
        "instance_meta" => "SELECT key, value FROM instance_meta ORDER BY key".to_owned(),
        "organisations" => format!("SELECT {} FROM organisations ORDER BY id", cols::ORG),
        "users" => format!("SELECT {} FROM users ORDER BY id", cols::USER),
        "persons" => format!("SELECT {} FROM persons ORDER BY id", cols::PERSON),
        "person_lookup" => "SELECT organisation_id, bidx, person_id FROM person_lookup ORDER BY bidx, person_id".to_owned(),
        "cases" => format!("SELECT {} FROM cases ORDER BY id", cols::CASE),
        "applications" => format!("SELECT {} FROM applications ORDER BY id", cols::APPLICATION),
        "events" => format!("SELECT {} FROM events ORDER BY organisation_id, seq", cols::EVENT),
        // A head at seq 0 is only ever a placeholder for a chain that has no event yet.
        _ => "SELECT organisation_id, seq, hash FROM chain_heads WHERE seq > 0 ORDER BY organisation_id".to_owned(),
    }
}

/// A case row joined with what listing needs of its person.
pub(crate) struct CaseListRow {
    pub case: CaseRow,
    pub wrapped_key: Option<Vec<u8>>,
    pub pseudonym_ct: Option<Vec<u8>>,
}

/// The single connection the group-commit writer uses. All calls between `begin` and
/// `commit`/`rollback` run in one transaction that holds the database's write lock.
#[async_trait]
pub(crate) trait WriteConn: Send {
    /// Start a write transaction (SQLite: `BEGIN IMMEDIATE`).
    async fn begin(&mut self) -> Result<()>;
    /// Commit durably.
    async fn commit(&mut self) -> Result<()>;
    /// Roll back.
    async fn rollback(&mut self) -> Result<()>;
    /// The chain head of an organisation, locked until the end of the transaction.
    async fn lock_head(&mut self, org: Uuid) -> Result<Option<(i64, Vec<u8>)>>;
    /// A case's organisation and version.
    async fn case_version(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>>;
    /// An application's organisation, state and version.
    async fn application_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>>;
    /// Persons whose blind indexes are not yet in `person_lookup`: (person, organisation,
    /// concatenated 16-byte indexes), at most `limit`.
    async fn pending_lookups(&mut self, limit: i64) -> Result<Vec<(Uuid, Uuid, Vec<u8>)>>;
    /// Write a batch: inserts, guarded updates, events and chain heads.
    async fn write_rows(&mut self, rows: &RowBatch) -> Result<()>;
}

/// A sink for exported rows.
pub(crate) type ExportSink<'a> = &'a mut (dyn FnMut(BackupRow) -> Result<()> + Send);

/// A database holding refuge's tables.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn name(&self) -> &'static str;
    /// Whether the writer should run on a thread of its own (its connection makes blocking
    /// calls).
    fn dedicated_writer_thread(&self) -> bool {
        false
    }
    /// Open the writer's own connection.
    async fn writer(&self) -> Result<Box<dyn WriteConn>>;
    /// Apply embedded migrations that have not been applied yet.
    async fn migrate(&self) -> Result<()>;
    /// All of `instance_meta`.
    async fn meta(&self) -> Result<Vec<MetaRow>>;
    /// All organisations.
    async fn organisations(&self) -> Result<Vec<OrgRow>>;
    /// Users, of one organisation or all.
    async fn users(&self, org: Option<Uuid>) -> Result<Vec<UserRow>>;
    /// One person.
    async fn person(&self, id: Uuid) -> Result<Option<PersonRow>>;
    /// One case by id.
    async fn case_by_id(&self, id: Uuid) -> Result<Option<CaseRow>>;
    /// One case by reference.
    async fn case_by_reference(&self, reference: &str) -> Result<Option<CaseRow>>;
    /// Cases in id order (oldest first), of one organisation or all, after a cursor.
    async fn cases(
        &self,
        org: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<CaseListRow>>;
    /// Persons whose blind index matches.
    async fn persons_by_index(&self, bidx: &[u8]) -> Result<Vec<Uuid>>;
    /// Persons whose blind indexes are still pending, with their indexes.
    async fn pending_lookups(&self) -> Result<Vec<(Uuid, Vec<u8>)>>;
    /// One application.
    async fn application(&self, id: Uuid) -> Result<Option<ApplicationRow>>;
    /// Applications of a case, oldest first.
    async fn applications_of_case(&self, case_id: Uuid) -> Result<Vec<ApplicationRow>>;
    /// Events about any of these records, in chain order.
    async fn events_about(&self, subjects: &[Uuid]) -> Result<Vec<EventRow>>;
    /// Organisations that have events or a chain head.
    async fn chain_orgs(&self) -> Result<Vec<Uuid>>;
    /// The chain head of one organisation.
    async fn chain_head(&self, org: Uuid) -> Result<Option<HeadRow>>;
    /// A page of one organisation's events with seq > `after`, in seq order.
    async fn events_page(&self, org: Uuid, after: i64, limit: i64) -> Result<Vec<EventRow>>;
    /// Row counts per table, in [`TABLES`] order.
    async fn counts(&self) -> Result<Vec<(&'static str, i64)>>;
    /// Stream every row of every table from one consistent snapshot.
    async fn export(&self, sink: ExportSink<'_>) -> Result<()>;
    /// Close connections.
    async fn close(&self);
}

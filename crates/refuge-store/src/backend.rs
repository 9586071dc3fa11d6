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
    ApplicantAccess(ApplicantAccessRow),
    Evidence(EvidenceRow),
    Messages(MessageRow),
    Deadlines(DeadlineRow),
    Referrals(ReferralRow),
    ApiTokens(ApiTokenRow),
    Exports(ExportRow),
    SubmissionKeys(SubmissionKeyRow),
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
            BackupRow::ApplicantAccess(_) => "applicant_access",
            BackupRow::Evidence(_) => "evidence",
            BackupRow::Messages(_) => "messages",
            BackupRow::Deadlines(_) => "deadlines",
            BackupRow::Referrals(_) => "referrals",
            BackupRow::ApiTokens(_) => "api_tokens",
            BackupRow::Exports(_) => "exports",
            BackupRow::SubmissionKeys(_) => "submission_keys",
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
            BackupRow::ApplicantAccess(r) => b.applicant_access.push(r),
            BackupRow::Evidence(r) => b.evidence.push(r),
            BackupRow::Messages(r) => b.messages.push(r),
            BackupRow::Deadlines(r) => b.deadlines.push(r),
            BackupRow::Referrals(r) => b.referrals.push(r),
            BackupRow::ApiTokens(r) => b.api_tokens.push(r),
            BackupRow::Exports(r) => b.exports.push(r),
            BackupRow::SubmissionKeys(r) => b.submission_keys.push(r),
            BackupRow::Events(r) => b.events.push(r),
            BackupRow::ChainHeads(r) => b.heads.push(r),
        }
    }
}

/// Tables in dependency order (backup writes and restore reads them in this order).
pub(crate) const TABLES: [&str; 17] = [
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
    "exports",
    "submission_keys",
    "events",
    "chain_heads",
];

/// The tables whose rows hold a data key wrapped by the instance key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyTable {
    Persons,
    Users,
}

impl KeyTable {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyTable::Persons => "persons",
            KeyTable::Users => "users",
        }
    }
}

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
        "applicant_access" => format!(
            "SELECT {} FROM applicant_access ORDER BY codename_bidx",
            cols::APPLICANT_ACCESS
        ),
        "evidence" => format!("SELECT {} FROM evidence ORDER BY id", cols::EVIDENCE),
        "messages" => format!("SELECT {} FROM messages ORDER BY id", cols::MESSAGE),
        "deadlines" => format!("SELECT {} FROM deadlines ORDER BY id", cols::DEADLINE),
        "referrals" => format!("SELECT {} FROM referrals ORDER BY id", cols::REFERRAL),
        "api_tokens" => format!(
            "SELECT {} FROM api_tokens ORDER BY token_hash",
            cols::API_TOKEN
        ),
        "exports" => format!("SELECT {} FROM exports ORDER BY id", cols::EXPORT),
        "submission_keys" => format!(
            "SELECT {} FROM submission_keys ORDER BY organisation_id, key_bidx",
            cols::SUBMISSION_KEY
        ),
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

/// A deadline joined with what decrypting its note needs.
pub(crate) struct DeadlineListRow {
    pub deadline: DeadlineRow,
    pub person_id: Uuid,
    pub wrapped_key: Option<Vec<u8>>,
}

/// Which applications a queue shows (see [`Backend::queue`]).
pub(crate) struct QueueQuery<'a> {
    /// Applications of this organisation's cases and of cases referred to it and accepted;
    /// `None`: every organisation.
    pub org: Option<Uuid>,
    /// Only this programme.
    pub programme: Option<&'a str>,
    /// Only these states (never empty).
    pub states: Vec<&'static str>,
}

/// The SQL of a page of cases with what their summaries need: of every organisation, or (with
/// `org`) of one organisation and the cases referred to it and accepted. Every id is above
/// the nil id, so the first page is `after` = nil. Parameters: the organisation (only with
/// `org`), the cursor, the limit; `ph(n)` writes the n-th placeholder.
pub(crate) fn cases_sql(org: bool, ph: fn(usize) -> String) -> String {
    use crate::rows::cols;
    let select = format!(
        "SELECT {}, p.wrapped_key, p.pseudonym_ct FROM",
        cols::qualified(cols::CASE, "c")
    );
    if org {
        let (o, after, limit) = (ph(1), ph(2), ph(3));
        format!(
            "SELECT * FROM ({select} cases c JOIN persons p ON p.id = c.person_id \
             WHERE c.organisation_id = {o} AND c.id > {after} ORDER BY c.id LIMIT {limit}) own \
             UNION ALL SELECT * FROM ({select} referrals r JOIN cases c ON c.id = r.case_id JOIN persons p ON p.id = c.person_id \
             WHERE r.to_org = {o} AND r.state = 'accepted' AND c.id > {after} ORDER BY c.id LIMIT {limit}) referred \
             ORDER BY id LIMIT {limit}"
        )
    } else {
        let (after, limit) = (ph(1), ph(2));
        format!(
            "{select} cases c JOIN persons p ON p.id = c.person_id WHERE c.id > {after} ORDER BY c.id LIMIT {limit}"
        )
    }
}

/// A value bound into a query built at run time.
pub(crate) enum Bind<'a> {
    Uuid(Uuid),
    Text(&'a str),
    Int(i64),
}

/// The SQL of a queue page (`page` = cursor and limit) or count (`page` = `None`), with its
/// parameters; `ph(n)` writes the n-th placeholder (`?n` or `$n`). One index range per state
/// (`applications_state`, or `applications_queue` with a programme), each stopping after
/// `limit` rows, merged in id order; plus the applications of cases referred to the
/// organisation and accepted, found through `referrals_to`.
pub(crate) fn queue_sql<'a>(
    q: &QueueQuery<'a>,
    page: Option<(Uuid, i64)>,
    ph: fn(usize) -> String,
) -> (String, Vec<Bind<'a>>) {
    use crate::rows::cols;
    let mut binds: Vec<Bind<'a>> = Vec::new();
    let mut bind = |b: Bind<'a>| {
        binds.push(b);
        ph(binds.len())
    };
    let org = q.org.map(|o| bind(Bind::Uuid(o)));
    let programme = q.programme.map(|p| bind(Bind::Text(p)));
    let states: Vec<String> = q.states.iter().map(|s| bind(Bind::Text(s))).collect();
    let page = page.map(|(after, limit)| (bind(Bind::Uuid(after)), bind(Bind::Int(limit))));
    let prog = |alias: &str| {
        programme
            .as_ref()
            .map(|p| format!(" AND {alias}programme = {p}"))
            .unwrap_or_default()
    };
    let in_states = states.join(", ");
    let referred = |o: &str, what: &str, tail: &str| {
        format!(
            "SELECT {what} FROM referrals r JOIN applications a ON a.case_id = r.case_id \
             WHERE r.to_org = {o} AND r.state = 'accepted' AND a.state IN ({in_states}){}{tail}",
            prog("a.")
        )
    };
    let sql = match (page, &org) {
        // Counts come from `queue_counts`, which triggers keep in step with `applications`:
        // a handful of rows instead of every application in the queue.
        (None, Some(o)) => format!(
            "SELECT CAST((SELECT COALESCE(SUM(n), 0) FROM queue_counts WHERE organisation_id = {o}{} AND state IN ({in_states})) + ({}) AS BIGINT)",
            prog(""),
            referred(o, "COUNT(*)", "")
        ),
        (None, None) => format!(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM queue_counts WHERE state IN ({in_states}){}",
            prog("")
        ),
        (Some((after, limit)), Some(o)) => {
            let mut branches: Vec<String> = states
                .iter()
                .map(|s| {
                    format!(
                        "SELECT {} FROM applications WHERE organisation_id = {o}{} AND state = {s} AND id > {after} ORDER BY id LIMIT {limit}",
                        cols::APPLICATION,
                        prog("")
                    )
                })
                .collect();
            branches.push(referred(
                o,
                &cols::qualified(cols::APPLICATION, "a"),
                &format!(" AND a.id > {after} ORDER BY a.id LIMIT {limit}"),
            ));
            let union = branches
                .iter()
                .enumerate()
                .map(|(i, b)| format!("SELECT * FROM ({b}) q{i}"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            format!("{union} ORDER BY id LIMIT {limit}")
        }
        (Some((after, limit)), None) => format!(
            "SELECT {} FROM applications WHERE state IN ({in_states}){} AND id > {after} ORDER BY id LIMIT {limit}",
            cols::APPLICATION,
            prog("")
        ),
    };
    (sql, binds)
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
    /// A deadline's organisation, whether it is done, and its version.
    async fn deadline_state(&mut self, id: Uuid) -> Result<Option<(Uuid, bool, i64)>>;
    /// An export's organisation, state and version.
    async fn export_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>>;
    /// A referral's sending and receiving organisations, state and version.
    async fn referral_state(&mut self, id: Uuid) -> Result<Option<(Uuid, Uuid, String, i64)>>;
    /// A user's organisation and version.
    async fn user_state(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>>;
    /// A person's organisation, and whether they are erased.
    async fn person_state(&mut self, id: Uuid) -> Result<Option<(Uuid, bool)>>;
    /// An API token's organisation, user, and whether it is revoked.
    async fn token_state(&mut self, token_hash: &[u8]) -> Result<Option<(Uuid, Uuid, bool)>>;
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
    /// One user.
    async fn user(&self, id: Uuid) -> Result<Option<UserRow>>;
    /// The user with this login blind index.
    async fn user_by_login(&self, login_bidx: &[u8]) -> Result<Option<UserRow>>;
    /// The user an API token belongs to, and when the token was revoked.
    async fn user_for_token(&self, token_hash: &[u8]) -> Result<Option<(UserRow, Option<i64>)>>;
    /// A user's API tokens, oldest first.
    async fn api_tokens_of_user(&self, user: Uuid) -> Result<Vec<ApiTokenRow>>;
    /// Revoked API tokens (a count that only grows), the sum of every user's version (grows
    /// with any change to a user), and the ids of the disabled users.
    async fn access_state(&self) -> Result<(i64, i64, Vec<Uuid>)>;
    /// Cases in id order (oldest first), of one organisation (with the cases referred to it
    /// and accepted) or all, after a cursor.
    async fn cases(
        &self,
        org: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<CaseListRow>>;
    /// Cases (with what a summary needs) by id, in id order.
    async fn cases_by_ids(&self, ids: &[Uuid]) -> Result<Vec<CaseListRow>>;
    /// The case and organisation whose codename has this keyed hash.
    async fn case_for_codename(&self, bidx: &[u8]) -> Result<Option<(Uuid, Uuid)>>;
    /// The state of the referral of `case` to `org` that is not declined (at most one is).
    async fn referral_to(&self, case: Uuid, org: Uuid) -> Result<Option<String>>;
    /// The case and application a submission with this idempotency key created.
    async fn submission_key(&self, org: Uuid, key_bidx: &[u8]) -> Result<Option<(Uuid, Uuid)>>;
    /// One export.
    async fn export_by_id(&self, id: Uuid) -> Result<Option<ExportRow>>;
    /// An organisation's exports (all if `None`), newest first, at most `limit`.
    async fn exports(&self, org: Option<Uuid>, limit: i64) -> Result<Vec<ExportRow>>;
    /// One referral.
    async fn referral(&self, id: Uuid) -> Result<Option<ReferralRow>>;
    /// Referrals sent or received by an organisation (all if `None`), oldest first.
    async fn referrals(&self, org: Option<Uuid>) -> Result<Vec<ReferralRow>>;
    /// One piece of evidence, with its content.
    async fn evidence(&self, id: Uuid) -> Result<Option<EvidenceRow>>;
    /// A case's evidence, oldest first, without content.
    async fn evidence_of_case(&self, case_id: Uuid) -> Result<Vec<EvidenceRow>>;
    /// A case's messages, oldest first.
    async fn messages_of_case(&self, case_id: Uuid) -> Result<Vec<MessageRow>>;
    /// One deadline.
    async fn deadline(&self, id: Uuid) -> Result<Option<DeadlineRow>>;
    /// A case's deadlines, by due date.
    async fn deadlines_of_case(&self, case_id: Uuid) -> Result<Vec<DeadlineRow>>;
    /// Deadlines of an organisation's cases (and of cases referred to it and accepted; all if
    /// `None`), due before `due_before` (an ISO date, exclusive), open ones only unless
    /// `include_done`, by due date.
    async fn deadlines(
        &self,
        org: Option<Uuid>,
        due_before: Option<&str>,
        include_done: bool,
    ) -> Result<Vec<DeadlineListRow>>;
    /// The ids of everything recorded on a case (applications, evidence, messages, deadlines,
    /// referrals): the subjects of its events besides the case itself.
    async fn case_records(&self, case_id: Uuid) -> Result<Vec<Uuid>>;
    /// A page of a queue: applications in id order after a cursor, served by an index.
    async fn queue(
        &self,
        q: &QueueQuery<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ApplicationRow>>;
    /// How many applications a queue holds.
    async fn count_queue(&self, q: &QueueQuery<'_>) -> Result<i64>;
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
    /// Up to `limit` rows of `table` with a wrapped data key and an id after `after`, in id
    /// order: (id, wrapped key).
    async fn wrapped_keys(
        &self,
        table: KeyTable,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<(Uuid, Vec<u8>)>>;
    /// After an erasure: make the database drop the overwritten rows' old versions from its
    /// files now rather than eventually (SQLite: checkpoint and truncate the WAL, with
    /// `secure_delete` having zeroed the old cells; PostgreSQL: `VACUUM` the tables touched).
    async fn scrub(&self) -> Result<()>;
    /// Row counts per table, in [`TABLES`] order.
    async fn counts(&self) -> Result<Vec<(&'static str, i64)>>;
    /// Stream every row of every table from one consistent snapshot.
    async fn export(&self, sink: ExportSink<'_>) -> Result<()>;
    /// Close connections.
    async fn close(&self);
}

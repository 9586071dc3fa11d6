//! The SQLite backend: one file in the data directory, WAL journal, `synchronous=FULL` (a
//! commit is on disk before it is acknowledged), a busy timeout, a small pool of readers and
//! one dedicated writer connection.

use crate::backend::{
    Backend, Bind, CaseListRow, DeadlineListRow, ExportSink, KeyTable, QueueQuery, WriteConn,
    cases_sql, queue_sql,
};
use crate::error::{Result, StoreError};
use crate::rows::*;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Sqlite};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

row_decoders!(SqliteRow);

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_exports.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_submission_keys.sql"),
    ),
];

/// SQLite, embedded.
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
    opts: SqliteConnectOptions,
    checkpointer: tokio::task::JoinHandle<()>,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Every this many checkpoints, the WAL file is also truncated, at the next lull.
const TRUNCATE_EVERY: u32 = 25;

/// Checkpoint the WAL from a connection of its own, so that commits never wait for a
/// checkpoint (the writer connection has automatic checkpoints turned off). PASSIVE never
/// blocks readers or the writer; SQLite restarts the WAL once it is fully checkpointed, but
/// keeps the file and whatever old frames lie beyond what it rewrites. So every few seconds,
/// at the next lull (the WAL fully copied into the database and no frame added since the
/// previous run, so no writer is waiting), a TRUNCATE without waiting (busy timeout 0) empties
/// the file: rows overwritten or erased (a destroyed data key, see `scrub`) do not linger in
/// it while the server runs. Under sustained writes it waits for the lull rather than stall
/// them while it truncates a large file.
async fn checkpoint_loop(opts: SqliteConnectOptions) {
    let opts = opts.busy_timeout(Duration::ZERO);
    let mut conn = None;
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u32;
    let mut truncate_due = false;
    let mut last_log = -1i64;
    loop {
        tick.tick().await;
        n = n.wrapping_add(1);
        truncate_due |= n.is_multiple_of(TRUNCATE_EVERY);
        if conn.is_none() {
            conn = SqliteConnection::connect_with(&opts).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let passive: std::result::Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut *c)
                .await;
        let outcome = match passive {
            Ok((busy, log, copied)) => {
                let lull = busy == 0 && log == copied && log == last_log;
                last_log = log;
                if truncate_due && lull {
                    sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(&mut *c)
                        .await
                        .map(|(busy, _, _)| truncate_due = busy != 0)
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "background checkpoint failed");
            conn = None;
        }
    }
}

impl SqliteBackend {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        let checkpointer = tokio::spawn(checkpoint_loop(opts.clone()));
        Ok(Self {
            pool,
            opts,
            checkpointer,
        })
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::raw_sql(sql).execute(conn).await?;
    Ok(())
}

/// The writer's connection. It uses rusqlite rather than sqlx: the writer runs on a thread of its
/// own (see [`Backend::dedicated_writer_thread`]), and each statement is then a direct call into
/// SQLite with a cached prepared statement, rather than a hand-off to a worker thread with its
/// arguments copied. Both libraries link the same bundled SQLite.
struct SqliteWriter {
    conn: rusqlite::Connection,
}

fn lite(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    {
        return StoreError::Database(format!("unique constraint violated: {e}"));
    }
    StoreError::Database(e.to_string())
}

/// A guarded update must have changed exactly one row.
fn changed(n: usize, what: &str, id: impl std::fmt::Display) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "{what} {id} changed during the write"
        )))
    }
}

fn uuid_from(b: Vec<u8>) -> Result<Uuid> {
    Uuid::from_slice(&b).map_err(|_| crate::error::bad_column("id", "length"))
}

impl SqliteWriter {
    fn open(path: &std::path::Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).map_err(lite)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(lite)?;
        // Durability: every commit is synced before it is acknowledged. Checkpoints run in the
        // background (see checkpoint_loop), never inside a commit.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; \
             PRAGMA secure_delete = FAST;",
        )
        .map_err(lite)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self { conn })
    }

    fn run(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(params))
            .map_err(lite)
    }

    fn row<T>(
        &self,
        sql: &str,
        id: Uuid,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row([id.as_bytes().as_slice()], f).optional())
            .map_err(lite)
    }
}

#[async_trait]
impl WriteConn for SqliteWriter {
    async fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(lite)
    }

    async fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(lite)
    }

    async fn rollback(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK").map_err(lite)
    }

    async fn lock_head(&mut self, org: Uuid) -> Result<Option<(i64, Vec<u8>)>> {
        self.row(
            "SELECT seq, hash FROM chain_heads WHERE organisation_id = ?1",
            org,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    async fn case_version(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>> {
        let row: Option<(Vec<u8>, i64)> = self.row(
            "SELECT organisation_id, version FROM cases WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        row.map(|(org, v)| Ok((uuid_from(org)?, v))).transpose()
    }

    async fn application_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>> {
        let row: Option<(Vec<u8>, String, i64)> = self.row(
            "SELECT organisation_id, state, version FROM applications WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        row.map(|(org, st, v)| Ok((uuid_from(org)?, st, v)))
            .transpose()
    }

    async fn deadline_state(&mut self, id: Uuid) -> Result<Option<(Uuid, bool, i64)>> {
        let row: Option<(Vec<u8>, Option<i64>, i64)> = self.row(
            "SELECT organisation_id, done_at, version FROM deadlines WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        row.map(|(org, done, v)| Ok((uuid_from(org)?, done.is_some(), v)))
            .transpose()
    }

    async fn export_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>> {
        let row: Option<(Vec<u8>, String, i64)> = self.row(
            "SELECT organisation_id, state, version FROM exports WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        row.map(|(org, st, v)| Ok((uuid_from(org)?, st, v)))
            .transpose()
    }

    async fn referral_state(&mut self, id: Uuid) -> Result<Option<(Uuid, Uuid, String, i64)>> {
        let row: Option<(Vec<u8>, Vec<u8>, String, i64)> = self.row(
            "SELECT from_org, to_org, state, version FROM referrals WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        row.map(|(from, to, st, v)| Ok((uuid_from(from)?, uuid_from(to)?, st, v)))
            .transpose()
    }

    async fn user_state(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>> {
        let row: Option<(Vec<u8>, i64)> = self.row(
            "SELECT organisation_id, version FROM users WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        row.map(|(org, v)| Ok((uuid_from(org)?, v))).transpose()
    }

    async fn person_state(&mut self, id: Uuid) -> Result<Option<(Uuid, bool)>> {
        let row: Option<(Vec<u8>, Option<i64>)> = self.row(
            "SELECT organisation_id, erased_at FROM persons WHERE id = ?1",
            id,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        row.map(|(org, erased)| Ok((uuid_from(org)?, erased.is_some())))
            .transpose()
    }

    async fn token_state(&mut self, token_hash: &[u8]) -> Result<Option<(Uuid, Uuid, bool)>> {
        use rusqlite::OptionalExtension;
        let row: Option<(Vec<u8>, Vec<u8>, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT organisation_id, user_id, revoked_at FROM api_tokens WHERE token_hash = ?1",
            )
            .and_then(|mut st| {
                st.query_row([token_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(lite)?;
        row.map(|(org, user, revoked)| Ok((uuid_from(org)?, uuid_from(user)?, revoked.is_some())))
            .transpose()
    }

    async fn pending_lookups(&mut self, limit: i64) -> Result<Vec<(Uuid, Uuid, Vec<u8>)>> {
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT id, organisation_id, lookup FROM persons WHERE lookup_pending = 1 LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([limit], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
                    ))
                })?
                .collect()
            })
            .map_err(lite)?;
        rows.into_iter()
            .map(|(p, o, l)| Ok((uuid_from(p)?, uuid_from(o)?, l)))
            .collect()
    }

    async fn write_rows(&mut self, b: &RowBatch) -> Result<()> {
        use rusqlite::params;
        let id = |u: &Uuid| *u.as_bytes();
        let opt = |u: &Option<Uuid>| u.map(|u| *u.as_bytes());
        for r in &b.meta {
            self.run(
                "INSERT INTO instance_meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![r.key, r.value],
            )?;
        }
        for r in &b.orgs {
            self.run(
                "INSERT INTO organisations (id, kind, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id(&r.id), r.kind, r.name, r.created_at],
            )?;
        }
        for r in &b.users {
            self.run(
                "INSERT INTO users (id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at, password_ct, totp_ct) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![id(&r.id), id(&r.organisation_id), r.login_bidx, r.wrapped_key, r.login_ct, r.display_ct, r.roles, r.disabled, r.version, r.created_at, r.password_ct, r.totp_ct],
            )?;
        }
        for r in &b.persons {
            self.run(
                "INSERT INTO persons (id, organisation_id, wrapped_key, key_id, pseudonym_ct, identity_ct, created_at, erased_at, lookup, lookup_pending) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![id(&r.id), id(&r.organisation_id), r.wrapped_key, r.key_id, r.pseudonym_ct, r.identity_ct, r.created_at, r.erased_at, r.lookup, r.lookup_pending],
            )?;
        }
        for r in &b.lookups {
            self.run(
                "INSERT INTO person_lookup (organisation_id, bidx, person_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![id(&r.organisation_id), r.bidx, id(&r.person_id)],
            )?;
        }
        for p in &b.indexed {
            self.run(
                "UPDATE persons SET lookup_pending = 0 WHERE id = ?1",
                params![id(p)],
            )?;
        }
        for r in &b.cases {
            self.run(
                "INSERT INTO cases (id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id(&r.id), id(&r.organisation_id), id(&r.person_id), r.reference, r.facts_ct, r.version, r.created_at, r.updated_at],
            )?;
        }
        for r in &b.applications {
            self.run(
                "INSERT INTO applications (id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![id(&r.id), id(&r.organisation_id), id(&r.case_id), r.programme, r.state, r.version, r.decision_basis, r.decision_ct, r.decided_by, r.decided_at, r.created_at, r.updated_at],
            )?;
        }
        for r in &b.applicant_access {
            self.run(
                "INSERT INTO applicant_access (codename_bidx, case_id, organisation_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![r.codename_bidx, id(&r.case_id), id(&r.organisation_id), r.created_at],
            )?;
        }
        for r in &b.evidence {
            self.run(
                "INSERT INTO evidence (id, organisation_id, case_id, meta_ct, content_ct, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id(&r.id), id(&r.organisation_id), id(&r.case_id), r.meta_ct, r.content_ct, r.size, r.created_at],
            )?;
        }
        for r in &b.messages {
            self.run(
                "INSERT INTO messages (id, organisation_id, case_id, kind, author, body_ct, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id(&r.id), id(&r.organisation_id), id(&r.case_id), r.kind, r.author, r.body_ct, r.created_at],
            )?;
        }
        for r in &b.deadlines {
            self.run(
                "INSERT INTO deadlines (id, organisation_id, case_id, kind, due_on, note_ct, done_at, version, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id(&r.id), id(&r.organisation_id), id(&r.case_id), r.kind, r.due_on, r.note_ct, r.done_at, r.version, r.created_at],
            )?;
        }
        for r in &b.referrals {
            self.run(
                "INSERT INTO referrals (id, case_id, from_org, to_org, state, consent_ct, version, created_at, answered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id(&r.id), id(&r.case_id), id(&r.from_org), id(&r.to_org), r.state, r.consent_ct, r.version, r.created_at, r.answered_at],
            )?;
        }
        for r in &b.api_tokens {
            self.run(
                "INSERT INTO api_tokens (token_hash, user_id, organisation_id, label_ct, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.token_hash, id(&r.user_id), id(&r.organisation_id), r.label_ct, r.created_at, r.revoked_at],
            )?;
        }
        for u in &b.deadline_updates {
            let n = self.run(
                "UPDATE deadlines SET done_at = ?1, version = ?2 WHERE id = ?3 AND version = ?4 AND done_at IS NULL",
                params![u.done_at, u.version, id(&u.id), u.version - 1],
            )?;
            changed(n, "deadline", u.id)?;
        }
        for r in &b.submission_keys {
            self.run(
                "INSERT INTO submission_keys (organisation_id, key_bidx, case_id, application_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id(&r.organisation_id), r.key_bidx, id(&r.case_id), id(&r.application_id), r.created_at],
            )?;
        }
        for r in &b.exports {
            self.run(
                "INSERT INTO exports (id, organisation_id, requested_by, case_ids, purpose_ct, state, decided_by, version, created_at, decided_at, collected_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![id(&r.id), id(&r.organisation_id), id(&r.requested_by), r.case_ids, r.purpose_ct, r.state, r.decided_by, r.version, r.created_at, r.decided_at, r.collected_at],
            )?;
        }
        for u in &b.export_updates {
            let n = self.run(
                "UPDATE exports SET state = ?1, decided_by = COALESCE(?2, decided_by), \
                 decided_at = CASE WHEN ?1 IN ('approved', 'refused') THEN ?3 ELSE decided_at END, \
                 collected_at = CASE WHEN ?1 = 'collected' THEN ?3 ELSE collected_at END, version = ?4 \
                 WHERE id = ?5 AND version = ?6 AND state = ?7",
                params![u.state, u.decided_by, u.at, u.version, id(&u.id), u.version - 1, u.from],
            )?;
            changed(n, "export", u.id)?;
        }
        for u in &b.referral_updates {
            let n = self.run(
                "UPDATE referrals SET state = ?1, answered_at = ?2, version = ?3 WHERE id = ?4 AND version = ?5 AND state = 'pending'",
                params![u.state, u.answered_at, u.version, id(&u.id), u.version - 1],
            )?;
            changed(n, "referral", u.id)?;
        }
        for u in &b.user_updates {
            let n = match &u.change {
                UserChange::Password(ct) => self.run(
                    "UPDATE users SET password_ct = ?1, version = ?2 WHERE id = ?3 AND version = ?4",
                    params![ct, u.version, id(&u.id), u.version - 1],
                )?,
                UserChange::Totp(ct) => self.run(
                    "UPDATE users SET totp_ct = ?1, version = ?2 WHERE id = ?3 AND version = ?4",
                    params![ct, u.version, id(&u.id), u.version - 1],
                )?,
                UserChange::Disabled(d) => self.run(
                    "UPDATE users SET disabled = ?1, version = ?2 WHERE id = ?3 AND version = ?4",
                    params![d, u.version, id(&u.id), u.version - 1],
                )?,
            };
            changed(n, "user", u.id)?;
        }
        for r in &b.token_revocations {
            let n = self.run(
                "UPDATE api_tokens SET revoked_at = ?1 WHERE token_hash = ?2 AND revoked_at IS NULL",
                params![r.revoked_at, r.token_hash],
            )?;
            changed(n, "API token", crate::writer::token_ref(&r.token_hash))?;
        }
        for r in &b.person_rewraps {
            self.run(
                "UPDATE persons SET wrapped_key = ?1, key_id = ?2 WHERE id = ?3 AND wrapped_key = ?4",
                params![r.new, r.key_id, id(&r.id), r.old],
            )?;
        }
        for r in &b.user_rewraps {
            self.run(
                "UPDATE users SET wrapped_key = ?1 WHERE id = ?2 AND wrapped_key = ?3",
                params![r.new, id(&r.id), r.old],
            )?;
        }
        for m in &b.meta_set {
            self.run(
                "INSERT INTO instance_meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![m.key, m.value],
            )?;
        }
        for k in &b.meta_removed {
            self.run("DELETE FROM instance_meta WHERE key = ?1", params![k])?;
        }
        for r in &b.person_erasures {
            let n = self.run(
                "UPDATE persons SET wrapped_key = NULL, pseudonym_ct = NULL, identity_ct = X'', \
                 lookup = NULL, lookup_pending = 0, erased_at = ?1 WHERE id = ?2 AND erased_at IS NULL",
                params![r.erased_at, id(&r.id)],
            )?;
            changed(n, "person", r.id)?;
            self.run(
                "DELETE FROM person_lookup WHERE person_id = ?1",
                params![id(&r.id)],
            )?;
            self.run(
                "DELETE FROM applicant_access WHERE case_id IN (SELECT id FROM cases WHERE person_id = ?1)",
                params![id(&r.id)],
            )?;
        }
        for u in &b.case_updates {
            let n = self.run(
                "UPDATE cases SET facts_ct = ?1, version = ?2, updated_at = ?3 WHERE id = ?4 AND version = ?5",
                params![u.facts_ct, u.version, u.updated_at, id(&u.id), u.version - 1],
            )?;
            if n != 1 {
                return Err(StoreError::Database(format!(
                    "case {} changed during the write",
                    u.id
                )));
            }
        }
        for u in &b.application_updates {
            let (basis, ct, by, at) = match &u.decision {
                Some((basis, ct, by, at)) => (Some(basis), Some(ct), Some(by), Some(*at)),
                None => (None, None, None, None),
            };
            let n = self.run(
                "UPDATE applications SET state = ?1, version = ?2, updated_at = ?3, \
                 decision_basis = COALESCE(?4, decision_basis), decision_ct = COALESCE(?5, decision_ct), \
                 decided_by = COALESCE(?6, decided_by), decided_at = COALESCE(?7, decided_at) \
                 WHERE id = ?8 AND version = ?9",
                params![u.state, u.version, u.updated_at, basis, ct, by, at, id(&u.id), u.version - 1],
            )?;
            if n != 1 {
                return Err(StoreError::Database(format!(
                    "application {} changed during the write",
                    u.id
                )));
            }
        }
        for r in &b.events {
            self.run(
                "INSERT INTO events (organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![id(&r.organisation_id), r.seq, id(&r.id), r.at, r.actor, r.kind, id(&r.subject), opt(&r.person_id), r.meta, r.body_ct, r.prev_hash, r.hash],
            )?;
        }
        for r in &b.heads {
            self.run(
                "INSERT INTO chain_heads (organisation_id, seq, hash) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(organisation_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                params![id(&r.organisation_id), r.seq, r.hash],
            )?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn dedicated_writer_thread(&self) -> bool {
        true
    }

    async fn writer(&self) -> Result<Box<dyn WriteConn>> {
        Ok(Box::new(SqliteWriter::open(self.opts.get_filename())?))
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = SqliteConnection::connect_with(&self.opts).await?;
        exec(&mut conn, "CREATE TABLE IF NOT EXISTS refuge_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)").await?;
        exec(&mut conn, "BEGIN IMMEDIATE").await?;
        let result = async {
            let (current,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM refuge_migrations")
                .fetch_one(&mut conn)
                .await?;
            for (version, script) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                sqlx::raw_sql(*script).execute(&mut conn).await?;
                sqlx::query("INSERT INTO refuge_migrations (version, applied_at) VALUES (?, strftime('%s','now'))")
                    .bind(version)
                    .execute(&mut conn)
                    .await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        match result {
            Ok(()) => exec(&mut conn, "COMMIT").await?,
            Err(e) => {
                let _ = exec(&mut conn, "ROLLBACK").await;
                return Err(e);
            }
        }
        conn.close().await?;
        Ok(())
    }

    async fn meta(&self) -> Result<Vec<MetaRow>> {
        let rows = sqlx::query("SELECT key, value FROM instance_meta ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(meta_row).collect::<Result<_, _>>()?)
    }

    async fn organisations(&self) -> Result<Vec<OrgRow>> {
        let rows = sqlx::query("SELECT id, kind, name, created_at FROM organisations ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(org_row).collect::<Result<_, _>>()?)
    }

    async fn users(&self, org: Option<Uuid>) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE ?1 IS NULL OR organisation_id = ?1 ORDER BY id",
            cols::USER
        )))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
    }

    async fn user(&self, id: Uuid) -> Result<Option<UserRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE id = ?",
            cols::USER
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    async fn user_by_login(&self, login_bidx: &[u8]) -> Result<Option<UserRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE login_bidx = ?",
            cols::USER
        )))
        .bind(login_bidx)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    async fn user_for_token(&self, token_hash: &[u8]) -> Result<Option<(UserRow, Option<i64>)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, t.revoked_at AS token_revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
            cols::qualified(cols::USER, "u")
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .as_ref()
            .map(|r| {
                Ok::<_, sqlx::Error>((user_row(r)?, sqlx::Row::try_get(r, "token_revoked_at")?))
            })
            .transpose()?)
    }

    async fn api_tokens_of_user(&self, user: Uuid) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM api_tokens WHERE user_id = ? ORDER BY created_at, token_hash",
            cols::API_TOKEN
        )))
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(api_token_row).collect::<Result<_, _>>()?)
    }

    async fn cases_by_ids(&self, ids: &[Uuid]) -> Result<Vec<CaseListRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {}, p.wrapped_key, p.pseudonym_ct FROM cases c JOIN persons p ON p.id = c.person_id WHERE c.id IN (",
            cols::qualified(cols::CASE, "c")
        ));
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(") ORDER BY c.id");
        let rows = qb.build().persistent(false).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(case_list_row).collect::<Result<_, _>>()?)
    }

    async fn case_for_codename(&self, bidx: &[u8]) -> Result<Option<(Uuid, Uuid)>> {
        Ok(sqlx::query_as(
            "SELECT case_id, organisation_id FROM applicant_access WHERE codename_bidx = ?",
        )
        .bind(bidx)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn referral_to(&self, case: Uuid, org: Uuid) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM referrals WHERE case_id = ? AND to_org = ? AND state <> 'declined'",
        )
        .bind(case)
        .bind(org)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(s,)| s))
    }

    async fn submission_key(&self, org: Uuid, key_bidx: &[u8]) -> Result<Option<(Uuid, Uuid)>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT case_id, application_id FROM submission_keys WHERE organisation_id = ? AND key_bidx = ?",
        )
        .bind(org)
        .bind(key_bidx)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(c, a)| Ok((uuid_from(c)?, uuid_from(a)?)))
            .transpose()
    }

    async fn export_by_id(&self, id: Uuid) -> Result<Option<ExportRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM exports WHERE id = ?",
            cols::EXPORT
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(export_row).transpose()?)
    }

    async fn exports(&self, org: Option<Uuid>, limit: i64) -> Result<Vec<ExportRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM exports WHERE ?1 IS NULL OR organisation_id = ?1 ORDER BY id DESC LIMIT ?2",
            cols::EXPORT
        )))
        .bind(org)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(export_row).collect::<Result<_, _>>()?)
    }

    async fn referral(&self, id: Uuid) -> Result<Option<ReferralRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM referrals WHERE id = ?",
            cols::REFERRAL
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(referral_row).transpose()?)
    }

    async fn referrals(&self, org: Option<Uuid>) -> Result<Vec<ReferralRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM referrals WHERE ?1 IS NULL OR from_org = ?1 OR to_org = ?1 ORDER BY id",
            cols::REFERRAL
        )))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(referral_row).collect::<Result<_, _>>()?)
    }

    async fn evidence(&self, id: Uuid) -> Result<Option<EvidenceRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM evidence WHERE id = ?",
            cols::EVIDENCE
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(evidence_row).transpose()?)
    }

    async fn evidence_of_case(&self, case_id: Uuid) -> Result<Vec<EvidenceRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM evidence WHERE case_id = ? ORDER BY id",
            cols::EVIDENCE_META
        )))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(evidence_meta_row)
            .collect::<Result<_, _>>()?)
    }

    async fn messages_of_case(&self, case_id: Uuid) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM messages WHERE case_id = ? ORDER BY id",
            cols::MESSAGE
        )))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(message_row).collect::<Result<_, _>>()?)
    }

    async fn deadline(&self, id: Uuid) -> Result<Option<DeadlineRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM deadlines WHERE id = ?",
            cols::DEADLINE
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(deadline_row).transpose()?)
    }

    async fn deadlines_of_case(&self, case_id: Uuid) -> Result<Vec<DeadlineRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM deadlines WHERE case_id = ? ORDER BY due_on, id",
            cols::DEADLINE
        )))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(deadline_row).collect::<Result<_, _>>()?)
    }

    async fn deadlines(
        &self,
        org: Option<Uuid>,
        due_before: Option<&str>,
        include_done: bool,
    ) -> Result<Vec<DeadlineListRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, c.person_id, p.wrapped_key FROM deadlines d JOIN cases c ON c.id = d.case_id JOIN persons p ON p.id = c.person_id \
             WHERE (?1 IS NULL OR d.organisation_id = ?1 OR d.case_id IN (SELECT case_id FROM referrals WHERE to_org = ?1 AND state = 'accepted')) \
             AND (?2 IS NULL OR d.due_on < ?2) AND (?3 = 1 OR d.done_at IS NULL) ORDER BY d.due_on, d.id",
            cols::qualified(cols::DEADLINE, "d")
        )))
        .bind(org)
        .bind(due_before)
        .bind(i64::from(include_done))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(deadline_list_row)
            .collect::<Result<_, _>>()?)
    }

    async fn access_state(&self) -> Result<(i64, i64, Vec<Uuid>)> {
        let (revoked, versions): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL), \
             (SELECT coalesce(sum(version), 0) FROM users)",
        )
        .fetch_one(&self.pool)
        .await?;
        let disabled: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM users WHERE disabled <> 0")
            .fetch_all(&self.pool)
            .await?;
        Ok((
            revoked,
            versions,
            disabled.into_iter().map(|(id,)| id).collect(),
        ))
    }

    async fn case_records(&self, case_id: Uuid) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM applications WHERE case_id = ?1 UNION ALL SELECT id FROM evidence WHERE case_id = ?1 \
             UNION ALL SELECT id FROM messages WHERE case_id = ?1 UNION ALL SELECT id FROM deadlines WHERE case_id = ?1 \
             UNION ALL SELECT id FROM referrals WHERE case_id = ?1",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn queue(
        &self,
        q: &QueueQuery<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ApplicationRow>> {
        let (sql, binds) = queue_sql(q, Some((after.unwrap_or(Uuid::nil()), limit)), |n| {
            format!("?{n}")
        });
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Uuid(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
                Bind::Int(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(application_row).collect::<Result<_, _>>()?)
    }

    async fn count_queue(&self, q: &QueueQuery<'_>) -> Result<i64> {
        let (sql, binds) = queue_sql(q, None, |n| format!("?{n}"));
        let mut query = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Uuid(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
                Bind::Int(v) => query.bind(v),
            };
        }
        Ok(query.fetch_one(&self.pool).await?.0)
    }

    async fn pending_lookups(&self) -> Result<Vec<(Uuid, Vec<u8>)>> {
        Ok(sqlx::query_as(
            "SELECT id, lookup FROM persons WHERE lookup_pending = 1 AND lookup IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn person(&self, id: Uuid) -> Result<Option<PersonRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM persons WHERE id = ?",
            cols::PERSON
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(person_row).transpose()?)
    }

    async fn case_by_id(&self, id: Uuid) -> Result<Option<CaseRow>> {
        let row = sqlx::query("SELECT id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at FROM cases WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(case_row).transpose()?)
    }

    async fn case_by_reference(&self, reference: &str) -> Result<Option<CaseRow>> {
        let row = sqlx::query("SELECT id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at FROM cases WHERE reference = ?")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(case_row).transpose()?)
    }

    async fn cases(
        &self,
        org: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<CaseListRow>> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(cases_sql(org.is_some(), |n| {
            format!("?{n}")
        })));
        if let Some(o) = org {
            query = query.bind(o);
        }
        let rows = query
            .bind(after.unwrap_or(Uuid::nil()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(case_list_row).collect::<Result<_, _>>()?)
    }

    async fn persons_by_index(&self, bidx: &[u8]) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> =
            sqlx::query_as("SELECT person_id FROM person_lookup WHERE bidx = ?")
                .bind(bidx)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn application(&self, id: Uuid) -> Result<Option<ApplicationRow>> {
        let row = sqlx::query("SELECT id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at FROM applications WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(application_row).transpose()?)
    }

    async fn applications_of_case(&self, case_id: Uuid) -> Result<Vec<ApplicationRow>> {
        let rows = sqlx::query("SELECT id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at FROM applications WHERE case_id = ? ORDER BY id")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(application_row).collect::<Result<_, _>>()?)
    }

    async fn events_about(&self, subjects: &[Uuid]) -> Result<Vec<EventRow>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM events WHERE subject IN (",
            cols::EVENT
        ));
        let mut sep = qb.separated(", ");
        for s in subjects {
            sep.push_bind(*s);
        }
        qb.push(") ORDER BY organisation_id, seq");
        let rows = qb.build().persistent(false).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(event_row).collect::<Result<_, _>>()?)
    }

    async fn chain_orgs(&self) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT organisation_id FROM chain_heads UNION SELECT DISTINCT organisation_id FROM events ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn chain_head(&self, org: Uuid) -> Result<Option<HeadRow>> {
        let row = sqlx::query(
            "SELECT organisation_id, seq, hash FROM chain_heads WHERE organisation_id = ?",
        )
        .bind(org)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(head_row).transpose()?)
    }

    async fn events_page(&self, org: Uuid, after: i64, limit: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query("SELECT organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash FROM events WHERE organisation_id = ? AND seq > ? ORDER BY seq LIMIT ?")
            .bind(org)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect::<Result<_, _>>()?)
    }

    async fn counts(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for t in crate::backend::TABLES {
            let (n,): (i64,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
                    .fetch_one(&self.pool)
                    .await?;
            out.push((t, n));
        }
        Ok(out)
    }

    async fn export(&self, sink: ExportSink<'_>) -> Result<()> {
        // One read transaction: in WAL mode it sees one consistent snapshot while writers go on.
        let mut conn = self.pool.acquire().await?;
        exec(&mut conn, "BEGIN").await?;
        let result = async {
            for t in crate::backend::TABLES {
                let mut stream = sqlx::query(sqlx::AssertSqlSafe(crate::backend::export_sql(t)))
                    .fetch(&mut *conn);
                while let Some(r) = stream.try_next().await? {
                    let row = backup_row(t, &r)?;
                    sink(row)?;
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let _ = exec(&mut conn, "COMMIT").await;
        result
    }

    async fn wrapped_keys(
        &self,
        table: KeyTable,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<(Uuid, Vec<u8>)>> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, wrapped_key FROM {} WHERE wrapped_key IS NOT NULL AND id > ?1 ORDER BY id LIMIT ?2",
            table.name()
        )))
        .bind(after.as_bytes().as_slice())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, k)| Ok((uuid_from(id)?, k)))
            .collect()
    }

    async fn scrub(&self) -> Result<()> {
        // The erasure has committed by now: a reader that keeps the WAL busy (a running server,
        // a long read) must not turn it into a failure. Try for a short while, each attempt
        // waiting briefly for readers (the pool's 30 s busy timeout would hold the caller that
        // long), and collide at worst with the background checkpointer's PASSIVE runs.
        const PATIENCE: Duration = Duration::from_secs(2);
        const WAIT_PER_TRY: Duration = Duration::from_millis(200);
        const PAUSE: Duration = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let mut conn =
            SqliteConnection::connect_with(&self.opts.clone().busy_timeout(WAIT_PER_TRY)).await?;
        let mut tries = 0u32;
        let outcome = loop {
            tries += 1;
            let (busy, wal_frames, copied): (i64, i64, i64) =
                match sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok(row) => row,
                    Err(e) => break Err(e.into()),
                };
            if busy == 0 {
                break Ok(());
            }
            if started.elapsed() + WAIT_PER_TRY + PAUSE > PATIENCE {
                // Ids and counts only: which person was erased is logged by the caller.
                tracing::warn!(
                    tries,
                    wal_frames,
                    copied,
                    "erasure committed, but readers kept the WAL busy, so it was not truncated: \
                     the old row versions stay in the WAL file until a running server's \
                     background checkpointer truncates it (at the next lull, at most every \
                     5 s) or the last connection to the database closes"
                );
                break Ok(());
            }
            tokio::time::sleep(PAUSE).await;
        };
        let _ = conn.close().await;
        outcome
    }

    async fn close(&self) {
        self.checkpointer.abort();
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of each statement, one line per step.
    fn plan(conn: &rusqlite::Connection, sql: &str, binds: &[Bind<'_>]) -> Vec<String> {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        for (i, b) in binds.iter().enumerate() {
            match b {
                Bind::Uuid(u) => st.raw_bind_parameter(i + 1, u.as_bytes().as_slice()),
                Bind::Text(t) => st.raw_bind_parameter(i + 1, *t),
                Bind::Int(n) => st.raw_bind_parameter(i + 1, *n),
            }
            .unwrap();
        }
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            out.push(r.get::<_, String>(3).unwrap());
        }
        out
    }

    #[test]
    fn case_pages_are_served_by_indexes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        let org = Uuid::from_bytes([1; 16]);
        let sql = cases_sql(true, |n| format!("?{n}"));
        let steps = plan(
            &conn,
            &sql,
            &[Bind::Uuid(org), Bind::Uuid(Uuid::nil()), Bind::Int(50)],
        );
        assert!(
            steps.iter().any(|s| s.contains("INDEX cases_org")),
            "{steps:#?}"
        );
        assert!(
            steps.iter().any(|s| s.contains("INDEX referrals_to")),
            "{steps:#?}"
        );
        assert!(
            !steps
                .iter()
                .any(|s| s.starts_with("SCAN c") || s.starts_with("SCAN p")),
            "{steps:#?}"
        );
    }

    #[test]
    fn queue_pages_and_counts_are_served_by_indexes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        let org = Uuid::from_bytes([1; 16]);
        for programme in [None, Some("p-one")] {
            let q = QueueQuery {
                org: Some(org),
                programme,
                states: vec!["submitted", "in_review", "interview"],
            };
            for page in [Some((Uuid::nil(), 50)), None] {
                let (sql, binds) = queue_sql(&q, page, |n| format!("?{n}"));
                let steps = plan(&conn, &sql, &binds);
                let on_applications: Vec<&String> = steps
                    .iter()
                    .filter(|s| s.contains(" applications") || s.contains(" a "))
                    .collect();
                assert!(!on_applications.is_empty(), "{steps:#?}");
                for s in &on_applications {
                    assert!(
                        s.starts_with("SEARCH") && s.contains("INDEX"),
                        "{programme:?} {page:?}: {s} in {steps:#?}"
                    );
                }
                assert!(
                    steps.iter().any(|s| s.contains("referrals_to")),
                    "{steps:#?}"
                );
                // Each branch on the organisation's own applications reads its index range in
                // id order and stops at the limit: no sort of its own (the branches are merged
                // after, at most `limit` rows each).
                for w in steps.windows(2) {
                    assert!(
                        !(w[0].starts_with("SEARCH applications") && w[1].contains("TEMP B-TREE")),
                        "{steps:#?}"
                    );
                }
            }
        }
    }
}

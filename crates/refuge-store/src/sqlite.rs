//! The SQLite backend: one file in the data directory, WAL journal, `synchronous=FULL` (a
//! commit is on disk before it is acknowledged), a busy timeout, a small pool of readers and
//! one dedicated writer connection.

use crate::backend::{Backend, CaseListRow, ExportSink, WriteConn};
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

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite/0001_init.sql"))];

/// SQLite, embedded.
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
    opts: SqliteConnectOptions,
    checkpointer: tokio::task::JoinHandle<()>,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Checkpoint the WAL from a connection of its own, so that commits never wait for a
/// checkpoint (the writer connection has automatic checkpoints turned off). PASSIVE never
/// blocks readers or the writer; SQLite restarts the WAL once it is fully checkpointed.
async fn checkpoint_loop(opts: SqliteConnectOptions) {
    let mut conn = None;
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if conn.is_none() {
            conn = SqliteConnection::connect_with(&opts).await.ok();
        }
        if let Some(c) = conn.as_mut()
            && let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *c)
                .await
        {
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
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
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
                "INSERT INTO users (id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![id(&r.id), id(&r.organisation_id), r.login_bidx, r.wrapped_key, r.login_ct, r.display_ct, r.roles, r.disabled, r.version, r.created_at],
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
        let rows = sqlx::query("SELECT id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at FROM users WHERE ?1 IS NULL OR organisation_id = ?1 ORDER BY id")
            .bind(org)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
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
        let rows = sqlx::query(
            "SELECT c.id, c.organisation_id, c.person_id, c.reference, c.facts_ct, c.version, c.created_at, c.updated_at, \
             p.wrapped_key, p.pseudonym_ct FROM cases c JOIN persons p ON p.id = c.person_id \
             WHERE (?1 IS NULL OR c.organisation_id = ?1) AND (?2 IS NULL OR c.id > ?2) ORDER BY c.id LIMIT ?3",
        )
        .bind(org)
        .bind(after)
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

    async fn close(&self) {
        self.checkpointer.abort();
        self.pool.close().await;
    }
}

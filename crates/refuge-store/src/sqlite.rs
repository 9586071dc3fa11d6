//! The SQLite backend: one file in the data directory, WAL journal, `synchronous=FULL` (a
//! commit is on disk before it is acknowledged), a busy timeout, a small pool of readers and
//! one dedicated writer connection.

use crate::backend::{Backend, CaseListRow, ExportSink, WriteConn};
use crate::error::{Result, StoreError};
use crate::rows::*;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::query_builder::Separated;
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
/// SQLite's limit on bound parameters per statement (32766 since 3.32) with headroom.
const MAX_PARAMS: usize = 30_000;

/// SQLite, embedded.
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
    opts: SqliteConnectOptions,
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
        Ok(Self { pool, opts })
    }
}

struct SqliteWriter {
    conn: SqliteConnection,
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::raw_sql(sql).execute(conn).await?;
    Ok(())
}

async fn insert<T>(
    conn: &mut SqliteConnection,
    head: &'static str,
    tail: &'static str,
    ncols: usize,
    rows: &[T],
    mut push: impl FnMut(&mut Separated<'_, Sqlite, &'static str>, &T),
) -> Result<()> {
    for chunk in rows.chunks((MAX_PARAMS / ncols).max(1)) {
        let mut qb = QueryBuilder::<Sqlite>::new(head);
        qb.push_values(chunk, |mut b, r| push(&mut b, r));
        qb.push(tail);
        qb.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl WriteConn for SqliteWriter {
    async fn begin(&mut self) -> Result<()> {
        exec(&mut self.conn, "BEGIN IMMEDIATE").await
    }

    async fn commit(&mut self) -> Result<()> {
        exec(&mut self.conn, "COMMIT").await
    }

    async fn rollback(&mut self) -> Result<()> {
        exec(&mut self.conn, "ROLLBACK").await
    }

    async fn lock_head(&mut self, org: Uuid) -> Result<Option<(i64, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT seq, hash FROM chain_heads WHERE organisation_id = ?")
                .bind(org)
                .fetch_optional(&mut self.conn)
                .await?,
        )
    }

    async fn case_version(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>> {
        Ok(
            sqlx::query_as("SELECT organisation_id, version FROM cases WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut self.conn)
                .await?,
        )
    }

    async fn application_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>> {
        Ok(
            sqlx::query_as("SELECT organisation_id, state, version FROM applications WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut self.conn)
                .await?,
        )
    }

    async fn write_rows(&mut self, b: &RowBatch) -> Result<()> {
        let c = &mut self.conn;
        insert(
            c,
            "INSERT INTO instance_meta (key, value) ",
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            2,
            &b.meta,
            |q, r| {
                q.push_bind(r.key.clone()).push_bind(r.value.clone());
            },
        )
        .await?;
        insert(
            c,
            "INSERT INTO organisations (id, kind, name, created_at) ",
            "",
            4,
            &b.orgs,
            |q, r| {
                q.push_bind(r.id)
                    .push_bind(r.kind.clone())
                    .push_bind(r.name.clone())
                    .push_bind(r.created_at);
            },
        )
        .await?;
        insert(c, "INSERT INTO users (id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at) ", "", 10, &b.users, |q, r| {
            q.push_bind(r.id)
                .push_bind(r.organisation_id)
                .push_bind(r.login_bidx.clone())
                .push_bind(r.wrapped_key.clone())
                .push_bind(r.login_ct.clone())
                .push_bind(r.display_ct.clone())
                .push_bind(r.roles.clone())
                .push_bind(r.disabled)
                .push_bind(r.version)
                .push_bind(r.created_at);
        })
        .await?;
        insert(c, "INSERT INTO persons (id, organisation_id, wrapped_key, key_id, pseudonym_ct, identity_ct, created_at, erased_at) ", "", 8, &b.persons, |q, r| {
            q.push_bind(r.id)
                .push_bind(r.organisation_id)
                .push_bind(r.wrapped_key.clone())
                .push_bind(r.key_id.clone())
                .push_bind(r.pseudonym_ct.clone())
                .push_bind(r.identity_ct.clone())
                .push_bind(r.created_at)
                .push_bind(r.erased_at);
        })
        .await?;
        insert(
            c,
            "INSERT INTO person_lookup (organisation_id, bidx, person_id) ",
            " ON CONFLICT DO NOTHING",
            3,
            &b.lookups,
            |q, r| {
                q.push_bind(r.organisation_id)
                    .push_bind(r.bidx.clone())
                    .push_bind(r.person_id);
            },
        )
        .await?;
        insert(c, "INSERT INTO cases (id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at) ", "", 8, &b.cases, |q, r| {
            q.push_bind(r.id)
                .push_bind(r.organisation_id)
                .push_bind(r.person_id)
                .push_bind(r.reference.clone())
                .push_bind(r.facts_ct.clone())
                .push_bind(r.version)
                .push_bind(r.created_at)
                .push_bind(r.updated_at);
        })
        .await?;
        insert(c, "INSERT INTO applications (id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at) ", "", 12, &b.applications, |q, r| {
            q.push_bind(r.id)
                .push_bind(r.organisation_id)
                .push_bind(r.case_id)
                .push_bind(r.programme.clone())
                .push_bind(r.state.clone())
                .push_bind(r.version)
                .push_bind(r.decision_basis.clone())
                .push_bind(r.decision_ct.clone())
                .push_bind(r.decided_by.clone())
                .push_bind(r.decided_at)
                .push_bind(r.created_at)
                .push_bind(r.updated_at);
        })
        .await?;
        for u in &b.case_updates {
            let done = sqlx::query("UPDATE cases SET facts_ct = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?")
                .bind(&u.facts_ct)
                .bind(u.version)
                .bind(u.updated_at)
                .bind(u.id)
                .bind(u.version - 1)
                .execute(&mut *c)
                .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Database(format!(
                    "case {} changed during the write",
                    u.id
                )));
            }
        }
        for u in &b.application_updates {
            let (basis, ct, by, at) = match &u.decision {
                Some((basis, ct, by, at)) => (
                    Some(basis.clone()),
                    Some(ct.clone()),
                    Some(by.clone()),
                    Some(*at),
                ),
                None => (None, None, None, None),
            };
            let done = sqlx::query(
                "UPDATE applications SET state = ?, version = ?, updated_at = ?, \
                 decision_basis = COALESCE(?, decision_basis), decision_ct = COALESCE(?, decision_ct), \
                 decided_by = COALESCE(?, decided_by), decided_at = COALESCE(?, decided_at) \
                 WHERE id = ? AND version = ?",
            )
            .bind(&u.state)
            .bind(u.version)
            .bind(u.updated_at)
            .bind(basis)
            .bind(ct)
            .bind(by)
            .bind(at)
            .bind(u.id)
            .bind(u.version - 1)
            .execute(&mut *c)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Database(format!(
                    "application {} changed during the write",
                    u.id
                )));
            }
        }
        insert(c, "INSERT INTO events (organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash) ", "", 12, &b.events, |q, r| {
            q.push_bind(r.organisation_id)
                .push_bind(r.seq)
                .push_bind(r.id)
                .push_bind(r.at)
                .push_bind(r.actor.clone())
                .push_bind(r.kind.clone())
                .push_bind(r.subject)
                .push_bind(r.person_id)
                .push_bind(r.meta.clone())
                .push_bind(r.body_ct.clone())
                .push_bind(r.prev_hash.clone())
                .push_bind(r.hash.clone());
        })
        .await?;
        insert(
            c,
            "INSERT INTO chain_heads (organisation_id, seq, hash) ",
            " ON CONFLICT(organisation_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            3,
            &b.heads,
            |q, r| {
                q.push_bind(r.organisation_id)
                    .push_bind(r.seq)
                    .push_bind(r.hash.clone());
            },
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn writer(&self) -> Result<Box<dyn WriteConn>> {
        let conn = SqliteConnection::connect_with(&self.opts).await?;
        Ok(Box::new(SqliteWriter { conn }))
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

    async fn person(&self, id: Uuid) -> Result<Option<PersonRow>> {
        let row = sqlx::query("SELECT id, organisation_id, wrapped_key, key_id, pseudonym_ct, identity_ct, created_at, erased_at FROM persons WHERE id = ?")
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
        self.pool.close().await;
    }
}

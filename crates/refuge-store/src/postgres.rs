//! The PostgreSQL backend. Bulk inserts bind one array per column and `UNNEST` them, so a
//! group commit costs one statement per table whatever its size; the writer keeps its own
//! connection. Chain heads are locked `FOR UPDATE`, so several refuge processes can share
//! one database without forking a chain.

use crate::backend::{
    Backend, Bind, CaseListRow, DeadlineListRow, ExportSink, KeyTable, QueueQuery, WriteConn,
    cases_sql, queue_sql,
};
use crate::error::{Result, StoreError};
use crate::rows::*;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

row_decoders!(PgRow);

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_exports.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_submission_keys.sql"),
    ),
];
/// Advisory lock key serialising migrations between processes ("refuge" in ASCII).
const MIGRATION_LOCK: i64 = 0x7265_6675_6765;

/// PostgreSQL.
pub(crate) struct PgBackend {
    pool: PgPool,
    opts: PgConnectOptions,
}

impl PgBackend {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("postgres URL: {e}")))?
            .application_name("refuge")
            // Statements are prepared once per connection; a generic plan chosen without the
            // parameter values can scan a whole table (the work queue's referral branch did,
            // 90-100 ms at 100,000 applications, when statistics were missing). Plan each
            // execution for its values instead: planning costs far less than such a scan.
            .options([("plan_cache_mode", "force_custom_plan")])
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        Ok(Self { pool, opts })
    }
}

struct PgWriter {
    conn: PgConnection,
}

async fn exec(conn: &mut PgConnection, sql: &'static str) -> Result<()> {
    sqlx::raw_sql(sql).execute(conn).await?;
    Ok(())
}

/// A guarded update must have changed exactly one row.
fn changed(n: u64, what: &str, id: impl std::fmt::Display) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "{what} {id} changed during the write"
        )))
    }
}

fn col<T, U>(rows: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

#[async_trait]
impl WriteConn for PgWriter {
    async fn begin(&mut self) -> Result<()> {
        exec(&mut self.conn, "BEGIN").await
    }

    async fn commit(&mut self) -> Result<()> {
        exec(&mut self.conn, "COMMIT").await
    }

    async fn rollback(&mut self) -> Result<()> {
        exec(&mut self.conn, "ROLLBACK").await
    }

    async fn lock_head(&mut self, org: Uuid) -> Result<Option<(i64, Vec<u8>)>> {
        // Make sure a head row exists so that it can be locked even for a new chain.
        sqlx::query("INSERT INTO chain_heads (organisation_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING")
            .bind(org)
            .bind(vec![0u8; 32])
            .execute(&mut self.conn)
            .await?;
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, hash FROM chain_heads WHERE organisation_id = $1 FOR UPDATE",
        )
        .bind(org)
        .fetch_optional(&mut self.conn)
        .await?;
        Ok(head.filter(|(seq, _)| *seq > 0))
    }

    async fn case_version(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>> {
        Ok(
            sqlx::query_as("SELECT organisation_id, version FROM cases WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut self.conn)
                .await?,
        )
    }

    async fn application_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT organisation_id, state, version FROM applications WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?)
    }

    async fn deadline_state(&mut self, id: Uuid) -> Result<Option<(Uuid, bool, i64)>> {
        let row: Option<(Uuid, Option<i64>, i64)> = sqlx::query_as(
            "SELECT organisation_id, done_at, version FROM deadlines WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?;
        Ok(row.map(|(org, done, v)| (org, done.is_some(), v)))
    }

    async fn export_state(&mut self, id: Uuid) -> Result<Option<(Uuid, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT organisation_id, state, version FROM exports WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?)
    }

    async fn referral_state(&mut self, id: Uuid) -> Result<Option<(Uuid, Uuid, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT from_org, to_org, state, version FROM referrals WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?)
    }

    async fn user_state(&mut self, id: Uuid) -> Result<Option<(Uuid, i64)>> {
        Ok(
            sqlx::query_as("SELECT organisation_id, version FROM users WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut self.conn)
                .await?,
        )
    }

    async fn person_state(&mut self, id: Uuid) -> Result<Option<(Uuid, bool)>> {
        let row: Option<(Uuid, Option<i64>)> = sqlx::query_as(
            "SELECT organisation_id, erased_at FROM persons WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut self.conn)
        .await?;
        Ok(row.map(|(org, erased)| (org, erased.is_some())))
    }

    async fn token_state(&mut self, token_hash: &[u8]) -> Result<Option<(Uuid, Uuid, bool)>> {
        let row: Option<(Uuid, Uuid, Option<i64>)> = sqlx::query_as(
            "SELECT organisation_id, user_id, revoked_at FROM api_tokens WHERE token_hash = $1 FOR UPDATE",
        )
        .bind(token_hash)
        .fetch_optional(&mut self.conn)
        .await?;
        Ok(row.map(|(org, user, revoked)| (org, user, revoked.is_some())))
    }

    async fn pending_lookups(&mut self, limit: i64) -> Result<Vec<(Uuid, Uuid, Vec<u8>)>> {
        let rows: Vec<(Uuid, Uuid, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT id, organisation_id, lookup FROM persons WHERE lookup_pending = 1 LIMIT $1 FOR UPDATE",
        )
        .bind(limit)
        .fetch_all(&mut self.conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(p, o, l)| (p, o, l.unwrap_or_default()))
            .collect())
    }

    async fn write_rows(&mut self, b: &RowBatch) -> Result<()> {
        let c = &mut self.conn;
        if !b.meta.is_empty() {
            sqlx::query("INSERT INTO instance_meta (key, value) SELECT * FROM UNNEST($1::text[], $2::bytea[]) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(col(&b.meta, |r| r.key.clone()))
                .bind(col(&b.meta, |r| r.value.clone()))
                .execute(&mut *c)
                .await?;
        }
        if !b.orgs.is_empty() {
            sqlx::query("INSERT INTO organisations (id, kind, name, created_at) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[])")
                .bind(col(&b.orgs, |r| r.id))
                .bind(col(&b.orgs, |r| r.kind.clone()))
                .bind(col(&b.orgs, |r| r.name.clone()))
                .bind(col(&b.orgs, |r| r.created_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.users.is_empty() {
            sqlx::query("INSERT INTO users (id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at, password_ct, totp_ct) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::bytea[], $12::bytea[])")
                .bind(col(&b.users, |r| r.id))
                .bind(col(&b.users, |r| r.organisation_id))
                .bind(col(&b.users, |r| r.login_bidx.clone()))
                .bind(col(&b.users, |r| r.wrapped_key.clone()))
                .bind(col(&b.users, |r| r.login_ct.clone()))
                .bind(col(&b.users, |r| r.display_ct.clone()))
                .bind(col(&b.users, |r| r.roles.clone()))
                .bind(col(&b.users, |r| r.disabled))
                .bind(col(&b.users, |r| r.version))
                .bind(col(&b.users, |r| r.created_at))
                .bind(col(&b.users, |r| r.password_ct.clone()))
                .bind(col(&b.users, |r| r.totp_ct.clone()))
                .execute(&mut *c)
                .await?;
        }
        if !b.persons.is_empty() {
            sqlx::query("INSERT INTO persons (id, organisation_id, wrapped_key, key_id, pseudonym_ct, identity_ct, created_at, erased_at, lookup, lookup_pending) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::int8[], $8::int8[], $9::bytea[], $10::int8[])")
                .bind(col(&b.persons, |r| r.id))
                .bind(col(&b.persons, |r| r.organisation_id))
                .bind(col(&b.persons, |r| r.wrapped_key.clone()))
                .bind(col(&b.persons, |r| r.key_id.clone()))
                .bind(col(&b.persons, |r| r.pseudonym_ct.clone()))
                .bind(col(&b.persons, |r| r.identity_ct.clone()))
                .bind(col(&b.persons, |r| r.created_at))
                .bind(col(&b.persons, |r| r.erased_at))
                .bind(col(&b.persons, |r| r.lookup.clone()))
                .bind(col(&b.persons, |r| r.lookup_pending))
                .execute(&mut *c)
                .await?;
        }
        if !b.lookups.is_empty() {
            sqlx::query("INSERT INTO person_lookup (organisation_id, bidx, person_id) SELECT * FROM UNNEST($1::uuid[], $2::bytea[], $3::uuid[]) ON CONFLICT DO NOTHING")
                .bind(col(&b.lookups, |r| r.organisation_id))
                .bind(col(&b.lookups, |r| r.bidx.clone()))
                .bind(col(&b.lookups, |r| r.person_id))
                .execute(&mut *c)
                .await?;
        }
        if !b.indexed.is_empty() {
            sqlx::query("UPDATE persons SET lookup_pending = 0 WHERE id = ANY($1)")
                .bind(&b.indexed)
                .execute(&mut *c)
                .await?;
        }
        if !b.cases.is_empty() {
            sqlx::query("INSERT INTO cases (id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bytea[], $6::int8[], $7::int8[], $8::int8[])")
                .bind(col(&b.cases, |r| r.id))
                .bind(col(&b.cases, |r| r.organisation_id))
                .bind(col(&b.cases, |r| r.person_id))
                .bind(col(&b.cases, |r| r.reference.clone()))
                .bind(col(&b.cases, |r| r.facts_ct.clone()))
                .bind(col(&b.cases, |r| r.version))
                .bind(col(&b.cases, |r| r.created_at))
                .bind(col(&b.cases, |r| r.updated_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.applications.is_empty() {
            sqlx::query("INSERT INTO applications (id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::bytea[], $9::text[], $10::int8[], $11::int8[], $12::int8[])")
                .bind(col(&b.applications, |r| r.id))
                .bind(col(&b.applications, |r| r.organisation_id))
                .bind(col(&b.applications, |r| r.case_id))
                .bind(col(&b.applications, |r| r.programme.clone()))
                .bind(col(&b.applications, |r| r.state.clone()))
                .bind(col(&b.applications, |r| r.version))
                .bind(col(&b.applications, |r| r.decision_basis.clone()))
                .bind(col(&b.applications, |r| r.decision_ct.clone()))
                .bind(col(&b.applications, |r| r.decided_by.clone()))
                .bind(col(&b.applications, |r| r.decided_at))
                .bind(col(&b.applications, |r| r.created_at))
                .bind(col(&b.applications, |r| r.updated_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.applicant_access.is_empty() {
            sqlx::query("INSERT INTO applicant_access (codename_bidx, case_id, organisation_id, created_at) SELECT * FROM UNNEST($1::bytea[], $2::uuid[], $3::uuid[], $4::int8[])")
                .bind(col(&b.applicant_access, |r| r.codename_bidx.clone()))
                .bind(col(&b.applicant_access, |r| r.case_id))
                .bind(col(&b.applicant_access, |r| r.organisation_id))
                .bind(col(&b.applicant_access, |r| r.created_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.evidence.is_empty() {
            sqlx::query("INSERT INTO evidence (id, organisation_id, case_id, meta_ct, content_ct, size, created_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::bytea[], $5::bytea[], $6::int8[], $7::int8[])")
                .bind(col(&b.evidence, |r| r.id))
                .bind(col(&b.evidence, |r| r.organisation_id))
                .bind(col(&b.evidence, |r| r.case_id))
                .bind(col(&b.evidence, |r| r.meta_ct.clone()))
                .bind(col(&b.evidence, |r| r.content_ct.clone()))
                .bind(col(&b.evidence, |r| r.size))
                .bind(col(&b.evidence, |r| r.created_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.messages.is_empty() {
            sqlx::query("INSERT INTO messages (id, organisation_id, case_id, kind, author, body_ct, created_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bytea[], $7::int8[])")
                .bind(col(&b.messages, |r| r.id))
                .bind(col(&b.messages, |r| r.organisation_id))
                .bind(col(&b.messages, |r| r.case_id))
                .bind(col(&b.messages, |r| r.kind.clone()))
                .bind(col(&b.messages, |r| r.author.clone()))
                .bind(col(&b.messages, |r| r.body_ct.clone()))
                .bind(col(&b.messages, |r| r.created_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.deadlines.is_empty() {
            sqlx::query("INSERT INTO deadlines (id, organisation_id, case_id, kind, due_on, note_ct, done_at, version, created_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bytea[], $7::int8[], $8::int8[], $9::int8[])")
                .bind(col(&b.deadlines, |r| r.id))
                .bind(col(&b.deadlines, |r| r.organisation_id))
                .bind(col(&b.deadlines, |r| r.case_id))
                .bind(col(&b.deadlines, |r| r.kind.clone()))
                .bind(col(&b.deadlines, |r| r.due_on.clone()))
                .bind(col(&b.deadlines, |r| r.note_ct.clone()))
                .bind(col(&b.deadlines, |r| r.done_at))
                .bind(col(&b.deadlines, |r| r.version))
                .bind(col(&b.deadlines, |r| r.created_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.referrals.is_empty() {
            sqlx::query("INSERT INTO referrals (id, case_id, from_org, to_org, state, consent_ct, version, created_at, answered_at) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[], $7::int8[], $8::int8[], $9::int8[])")
                .bind(col(&b.referrals, |r| r.id))
                .bind(col(&b.referrals, |r| r.case_id))
                .bind(col(&b.referrals, |r| r.from_org))
                .bind(col(&b.referrals, |r| r.to_org))
                .bind(col(&b.referrals, |r| r.state.clone()))
                .bind(col(&b.referrals, |r| r.consent_ct.clone()))
                .bind(col(&b.referrals, |r| r.version))
                .bind(col(&b.referrals, |r| r.created_at))
                .bind(col(&b.referrals, |r| r.answered_at))
                .execute(&mut *c)
                .await?;
        }
        if !b.api_tokens.is_empty() {
            sqlx::query("INSERT INTO api_tokens (token_hash, user_id, organisation_id, label_ct, created_at, revoked_at) SELECT * FROM UNNEST($1::bytea[], $2::uuid[], $3::uuid[], $4::bytea[], $5::int8[], $6::int8[])")
                .bind(col(&b.api_tokens, |r| r.token_hash.clone()))
                .bind(col(&b.api_tokens, |r| r.user_id))
                .bind(col(&b.api_tokens, |r| r.organisation_id))
                .bind(col(&b.api_tokens, |r| r.label_ct.clone()))
                .bind(col(&b.api_tokens, |r| r.created_at))
                .bind(col(&b.api_tokens, |r| r.revoked_at))
                .execute(&mut *c)
                .await?;
        }
        for u in &b.deadline_updates {
            let done = sqlx::query("UPDATE deadlines SET done_at = $1, version = $2 WHERE id = $3 AND version = $4 AND done_at IS NULL")
                .bind(u.done_at)
                .bind(u.version)
                .bind(u.id)
                .bind(u.version - 1)
                .execute(&mut *c)
                .await?;
            changed(done.rows_affected(), "deadline", u.id)?;
        }
        for r in &b.submission_keys {
            sqlx::query("INSERT INTO submission_keys (organisation_id, key_bidx, case_id, application_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(r.organisation_id)
                .bind(&r.key_bidx)
                .bind(r.case_id)
                .bind(r.application_id)
                .bind(r.created_at)
                .execute(&mut *c)
                .await?;
        }
        // Exports are few: one statement each.
        for r in &b.exports {
            sqlx::query("INSERT INTO exports (id, organisation_id, requested_by, case_ids, purpose_ct, state, decided_by, version, created_at, decided_at, collected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(r.id)
                .bind(r.organisation_id)
                .bind(r.requested_by)
                .bind(&r.case_ids)
                .bind(&r.purpose_ct)
                .bind(&r.state)
                .bind(&r.decided_by)
                .bind(r.version)
                .bind(r.created_at)
                .bind(r.decided_at)
                .bind(r.collected_at)
                .execute(&mut *c)
                .await?;
        }
        for u in &b.export_updates {
            let done = sqlx::query(
                "UPDATE exports SET state = $1, decided_by = COALESCE($2, decided_by), \
                 decided_at = CASE WHEN $1::text IN ('approved', 'refused') THEN $3 ELSE decided_at END, \
                 collected_at = CASE WHEN $1::text = 'collected' THEN $3 ELSE collected_at END, version = $4 \
                 WHERE id = $5 AND version = $6 AND state = $7",
            )
            .bind(&u.state)
            .bind(&u.decided_by)
            .bind(u.at)
            .bind(u.version)
            .bind(u.id)
            .bind(u.version - 1)
            .bind(&u.from)
            .execute(&mut *c)
            .await?;
            changed(done.rows_affected(), "export", u.id)?;
        }
        for u in &b.referral_updates {
            let done = sqlx::query("UPDATE referrals SET state = $1, answered_at = $2, version = $3 WHERE id = $4 AND version = $5 AND state = 'pending'")
                .bind(&u.state)
                .bind(u.answered_at)
                .bind(u.version)
                .bind(u.id)
                .bind(u.version - 1)
                .execute(&mut *c)
                .await?;
            changed(done.rows_affected(), "referral", u.id)?;
        }
        for u in &b.user_updates {
            let q = match &u.change {
                UserChange::Password(ct) => sqlx::query(
                    "UPDATE users SET password_ct = $1, version = $2 WHERE id = $3 AND version = $4",
                )
                .bind(ct.clone()),
                UserChange::Totp(ct) => sqlx::query(
                    "UPDATE users SET totp_ct = $1, version = $2 WHERE id = $3 AND version = $4",
                )
                .bind(ct.clone()),
                UserChange::Disabled(d) => sqlx::query(
                    "UPDATE users SET disabled = $1, version = $2 WHERE id = $3 AND version = $4",
                )
                .bind(*d),
            };
            let done = q
                .bind(u.version)
                .bind(u.id)
                .bind(u.version - 1)
                .execute(&mut *c)
                .await?;
            changed(done.rows_affected(), "user", u.id)?;
        }
        for r in &b.token_revocations {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
            )
            .bind(r.revoked_at)
            .bind(&r.token_hash)
            .execute(&mut *c)
            .await?;
            changed(
                done.rows_affected(),
                "API token",
                crate::writer::token_ref(&r.token_hash),
            )?;
        }
        for r in &b.person_rewraps {
            sqlx::query(
                "UPDATE persons SET wrapped_key = $1, key_id = $2 WHERE id = $3 AND wrapped_key = $4",
            )
            .bind(&r.new)
            .bind(&r.key_id)
            .bind(r.id)
            .bind(&r.old)
            .execute(&mut *c)
            .await?;
        }
        for r in &b.user_rewraps {
            sqlx::query("UPDATE users SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3")
                .bind(&r.new)
                .bind(r.id)
                .bind(&r.old)
                .execute(&mut *c)
                .await?;
        }
        for m in &b.meta_set {
            sqlx::query(
                "INSERT INTO instance_meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(&m.key)
            .bind(&m.value)
            .execute(&mut *c)
            .await?;
        }
        for k in &b.meta_removed {
            sqlx::query("DELETE FROM instance_meta WHERE key = $1")
                .bind(k)
                .execute(&mut *c)
                .await?;
        }
        for r in &b.person_erasures {
            let done = sqlx::query(
                "UPDATE persons SET wrapped_key = NULL, pseudonym_ct = NULL, identity_ct = ''::bytea, \
                 lookup = NULL, lookup_pending = 0, erased_at = $1 WHERE id = $2 AND erased_at IS NULL",
            )
            .bind(r.erased_at)
            .bind(r.id)
            .execute(&mut *c)
            .await?;
            changed(done.rows_affected(), "person", r.id)?;
            sqlx::query("DELETE FROM person_lookup WHERE person_id = $1")
                .bind(r.id)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "DELETE FROM applicant_access WHERE case_id IN (SELECT id FROM cases WHERE person_id = $1)",
            )
            .bind(r.id)
            .execute(&mut *c)
            .await?;
        }
        for u in &b.case_updates {
            let done = sqlx::query("UPDATE cases SET facts_ct = $1, version = $2, updated_at = $3 WHERE id = $4 AND version = $5")
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
                "UPDATE applications SET state = $1, version = $2, updated_at = $3, \
                 decision_basis = COALESCE($4, decision_basis), decision_ct = COALESCE($5, decision_ct), \
                 decided_by = COALESCE($6, decided_by), decided_at = COALESCE($7, decided_at) \
                 WHERE id = $8 AND version = $9",
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
        if !b.events.is_empty() {
            sqlx::query("INSERT INTO events (organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash) SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::uuid[], $8::uuid[], $9::text[], $10::bytea[], $11::bytea[], $12::bytea[])")
                .bind(col(&b.events, |r| r.organisation_id))
                .bind(col(&b.events, |r| r.seq))
                .bind(col(&b.events, |r| r.id))
                .bind(col(&b.events, |r| r.at))
                .bind(col(&b.events, |r| r.actor.clone()))
                .bind(col(&b.events, |r| r.kind.clone()))
                .bind(col(&b.events, |r| r.subject))
                .bind(col(&b.events, |r| r.person_id))
                .bind(col(&b.events, |r| r.meta.clone()))
                .bind(col(&b.events, |r| r.body_ct.clone()))
                .bind(col(&b.events, |r| r.prev_hash.clone()))
                .bind(col(&b.events, |r| r.hash.clone()))
                .execute(&mut *c)
                .await?;
        }
        if !b.heads.is_empty() {
            sqlx::query("INSERT INTO chain_heads (organisation_id, seq, hash) SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::bytea[]) ON CONFLICT (organisation_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
                .bind(col(&b.heads, |r| r.organisation_id))
                .bind(col(&b.heads, |r| r.seq))
                .bind(col(&b.heads, |r| r.hash.clone()))
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for PgBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn writer(&self) -> Result<Box<dyn WriteConn>> {
        let conn = PgConnection::connect_with(&self.opts).await?;
        Ok(Box::new(PgWriter { conn }))
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = PgConnection::connect_with(&self.opts).await?;
        exec(&mut conn, "BEGIN").await?;
        let result = async {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await?;
            sqlx::raw_sql("CREATE TABLE IF NOT EXISTS refuge_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                .execute(&mut conn)
                .await?;
            let (current,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0)::int8 FROM refuge_migrations")
                .fetch_one(&mut conn)
                .await?;
            for (version, script) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                sqlx::raw_sql(*script).execute(&mut conn).await?;
                sqlx::query("INSERT INTO refuge_migrations (version) VALUES ($1)").bind(version).execute(&mut conn).await?;
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
            "SELECT {} FROM users WHERE $1::uuid IS NULL OR organisation_id = $1 ORDER BY id",
            cols::USER
        )))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
    }

    async fn user(&self, id: Uuid) -> Result<Option<UserRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE id = $1",
            cols::USER
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    async fn user_by_login(&self, login_bidx: &[u8]) -> Result<Option<UserRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE login_bidx = $1",
            cols::USER
        )))
        .bind(login_bidx)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    async fn user_for_token(&self, token_hash: &[u8]) -> Result<Option<(UserRow, Option<i64>)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, t.revoked_at AS token_revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
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
            "SELECT {} FROM api_tokens WHERE user_id = $1 ORDER BY created_at, token_hash",
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, p.wrapped_key, p.pseudonym_ct FROM cases c JOIN persons p ON p.id = c.person_id WHERE c.id = ANY($1) ORDER BY c.id",
            cols::qualified(cols::CASE, "c")
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(case_list_row).collect::<Result<_, _>>()?)
    }

    async fn case_for_codename(&self, bidx: &[u8]) -> Result<Option<(Uuid, Uuid)>> {
        Ok(sqlx::query_as(
            "SELECT case_id, organisation_id FROM applicant_access WHERE codename_bidx = $1",
        )
        .bind(bidx)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn referral_to(&self, case: Uuid, org: Uuid) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM referrals WHERE case_id = $1 AND to_org = $2 AND state <> 'declined'",
        )
        .bind(case)
        .bind(org)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(s,)| s))
    }

    async fn submission_key(&self, org: Uuid, key_bidx: &[u8]) -> Result<Option<(Uuid, Uuid)>> {
        Ok(sqlx::query_as(
            "SELECT case_id, application_id FROM submission_keys WHERE organisation_id = $1 AND key_bidx = $2",
        )
        .bind(org)
        .bind(key_bidx)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn export_by_id(&self, id: Uuid) -> Result<Option<ExportRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM exports WHERE id = $1",
            cols::EXPORT
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(export_row).transpose()?)
    }

    async fn exports(&self, org: Option<Uuid>, limit: i64) -> Result<Vec<ExportRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM exports WHERE $1::uuid IS NULL OR organisation_id = $1 ORDER BY id DESC LIMIT $2",
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
            "SELECT {} FROM referrals WHERE id = $1",
            cols::REFERRAL
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(referral_row).transpose()?)
    }

    async fn referrals(&self, org: Option<Uuid>) -> Result<Vec<ReferralRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM referrals WHERE $1::uuid IS NULL OR from_org = $1 OR to_org = $1 ORDER BY id",
            cols::REFERRAL
        )))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(referral_row).collect::<Result<_, _>>()?)
    }

    async fn evidence(&self, id: Uuid) -> Result<Option<EvidenceRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM evidence WHERE id = $1",
            cols::EVIDENCE
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(evidence_row).transpose()?)
    }

    async fn evidence_of_case(&self, case_id: Uuid) -> Result<Vec<EvidenceRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM evidence WHERE case_id = $1 ORDER BY id",
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
            "SELECT {} FROM messages WHERE case_id = $1 ORDER BY id",
            cols::MESSAGE
        )))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(message_row).collect::<Result<_, _>>()?)
    }

    async fn deadline(&self, id: Uuid) -> Result<Option<DeadlineRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM deadlines WHERE id = $1",
            cols::DEADLINE
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(deadline_row).transpose()?)
    }

    async fn deadlines_of_case(&self, case_id: Uuid) -> Result<Vec<DeadlineRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM deadlines WHERE case_id = $1 ORDER BY due_on, id",
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
             WHERE ($1::uuid IS NULL OR d.organisation_id = $1 OR d.case_id IN (SELECT case_id FROM referrals WHERE to_org = $1 AND state = 'accepted')) \
             AND ($2::text IS NULL OR d.due_on < $2) AND ($3::bool OR d.done_at IS NULL) ORDER BY d.due_on, d.id",
            cols::qualified(cols::DEADLINE, "d")
        )))
        .bind(org)
        .bind(due_before)
        .bind(include_done)
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
             (SELECT coalesce(sum(version), 0)::BIGINT FROM users)",
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
            "SELECT id FROM applications WHERE case_id = $1 UNION ALL SELECT id FROM evidence WHERE case_id = $1 \
             UNION ALL SELECT id FROM messages WHERE case_id = $1 UNION ALL SELECT id FROM deadlines WHERE case_id = $1 \
             UNION ALL SELECT id FROM referrals WHERE case_id = $1",
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
            format!("${n}")
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
        let (sql, binds) = queue_sql(q, None, |n| format!("${n}"));
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
            "SELECT {} FROM persons WHERE id = $1",
            cols::PERSON
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(person_row).transpose()?)
    }

    async fn case_by_id(&self, id: Uuid) -> Result<Option<CaseRow>> {
        let row = sqlx::query("SELECT id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at FROM cases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(case_row).transpose()?)
    }

    async fn case_by_reference(&self, reference: &str) -> Result<Option<CaseRow>> {
        let row = sqlx::query("SELECT id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at FROM cases WHERE reference = $1")
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
            format!("${n}")
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
            sqlx::query_as("SELECT person_id FROM person_lookup WHERE bidx = $1")
                .bind(bidx)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn application(&self, id: Uuid) -> Result<Option<ApplicationRow>> {
        let row = sqlx::query("SELECT id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(application_row).transpose()?)
    }

    async fn applications_of_case(&self, case_id: Uuid) -> Result<Vec<ApplicationRow>> {
        let rows = sqlx::query("SELECT id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at FROM applications WHERE case_id = $1 ORDER BY id")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(application_row).collect::<Result<_, _>>()?)
    }

    async fn events_about(&self, subjects: &[Uuid]) -> Result<Vec<EventRow>> {
        let rows = sqlx::query("SELECT organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash FROM events WHERE subject = ANY($1) ORDER BY organisation_id, seq")
            .bind(subjects)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect::<Result<_, _>>()?)
    }

    async fn chain_orgs(&self) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT organisation_id FROM chain_heads WHERE seq > 0 UNION SELECT DISTINCT organisation_id FROM events ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn chain_head(&self, org: Uuid) -> Result<Option<HeadRow>> {
        let row = sqlx::query("SELECT organisation_id, seq, hash FROM chain_heads WHERE organisation_id = $1 AND seq > 0")
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(head_row).transpose()?)
    }

    async fn events_page(&self, org: Uuid, after: i64, limit: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query("SELECT organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash FROM events WHERE organisation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(org)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect::<Result<_, _>>()?)
    }

    async fn wrapped_keys(
        &self,
        table: KeyTable,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<(Uuid, Vec<u8>)>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, wrapped_key FROM {} WHERE wrapped_key IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
            table.name()
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn scrub(&self) -> Result<()> {
        sqlx::raw_sql("VACUUM persons, person_lookup, applicant_access")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn counts(&self) -> Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for t in crate::backend::TABLES {
            let filter = if t == "chain_heads" {
                " WHERE seq > 0"
            } else {
                ""
            };
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*)::int8 FROM {t}{filter}"
            )))
            .fetch_one(&self.pool)
            .await?;
            out.push((t, n));
        }
        Ok(out)
    }

    async fn export(&self, sink: ExportSink<'_>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        exec(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
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

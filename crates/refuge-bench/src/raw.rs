//! The raw-insert baseline: what the same database does at the same durability with no store
//! in between. One connection, plain single-row `INSERT`s of a UUID key and ~600 random bytes,
//! 64 rows per transaction, for a fixed time.

use crate::data::Rng;
use anyhow::{Context, Result};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Bytes of payload per row.
pub const ROW_BYTES: usize = 600;
/// Rows per transaction.
pub const ROWS_PER_TX: usize = 64;

/// What the baseline measured.
#[derive(Clone, Debug)]
pub struct RawResult {
    /// Rows inserted and committed.
    pub rows: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl RawResult {
    /// Committed rows per second.
    pub fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    /// Commits (durable flushes) per second.
    pub fn commits_per_s(&self) -> f64 {
        self.commits as f64 / self.seconds
    }
}

struct Payloads {
    rng: Rng,
    blobs: Vec<Vec<u8>>,
    next: usize,
}

impl Payloads {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let blobs = (0..256)
            .map(|_| {
                let mut b = vec![0u8; ROW_BYTES];
                rng.fill(&mut b);
                b
            })
            .collect();
        Self {
            rng,
            blobs,
            next: 0,
        }
    }

    fn row(&mut self) -> (Uuid, &[u8]) {
        let mut id = [0u8; 16];
        self.rng.fill(&mut id);
        let blob = &self.blobs[self.next % self.blobs.len()];
        self.next += 1;
        (uuid::Builder::from_random_bytes(id).into_uuid(), blob)
    }
}

/// SQLite at the store's settings (WAL, `synchronous=FULL`), table `bench_raw` in the same file,
/// through the same direct calls with a cached prepared statement that the store's writer uses.
pub async fn sqlite(url: &str, duration: Duration, seed: u64) -> Result<RawResult> {
    let path = SqliteConnectOptions::from_str(url)?
        .get_filename()
        .to_path_buf();
    tokio::task::spawn_blocking(move || sqlite_blocking(&path, duration, seed)).await?
}

fn sqlite_blocking(path: &std::path::Path, duration: Duration, seed: u64) -> Result<RawResult> {
    let conn =
        rusqlite::Connection::open(path).context("raw baseline: cannot open the SQLite file")?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         CREATE TABLE IF NOT EXISTS bench_raw (id BLOB PRIMARY KEY, data BLOB NOT NULL);",
    )?;
    let mut payloads = Payloads::new(seed);
    let start = Instant::now();
    let (mut rows, mut commits) = (0u64, 0u64);
    while start.elapsed() < duration {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut insert =
                conn.prepare_cached("INSERT INTO bench_raw (id, data) VALUES (?1, ?2)")?;
            for _ in 0..ROWS_PER_TX {
                let (id, data) = payloads.row();
                insert.execute(rusqlite::params![id.as_bytes().as_slice(), data])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        rows += ROWS_PER_TX as u64;
        commits += 1;
    }
    Ok(RawResult {
        rows,
        commits,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// PostgreSQL with the server's default durability (`synchronous_commit=on`), table
/// `bench_raw` in the benchmark database.
pub async fn postgres(url: &str, duration: Duration, seed: u64) -> Result<RawResult> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("raw baseline: cannot connect to PostgreSQL")?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bench_raw (id uuid PRIMARY KEY, data bytea NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    let mut payloads = Payloads::new(seed);
    let start = Instant::now();
    let (mut rows, mut commits) = (0u64, 0u64);
    while start.elapsed() < duration {
        let mut tx = conn.begin().await?;
        for _ in 0..ROWS_PER_TX {
            let (id, data) = payloads.row();
            sqlx::query("INSERT INTO bench_raw (id, data) VALUES ($1, $2)")
                .bind(id)
                .bind(data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        rows += ROWS_PER_TX as u64;
        commits += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(RawResult {
        rows,
        commits,
        seconds,
    })
}

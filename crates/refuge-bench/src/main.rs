//! `refuge-bench`: measurements of the refuge store.
//!
//! `refuge-bench intake` runs N concurrent writers, each calling `Store::submit` (a new case
//! with its person, facts and a submitted application: one durable write) as fast as the
//! store acknowledges, and reports the durable submission rate and latency, next to the raw
//! insert rate of the same database at the same durability, then checks that every
//! acknowledged submission is there and the event log's hash chain is intact.
//!
//! `refuge-bench rules` measures the rules engine over a synthetic caseload, and
//! `refuge-bench http` the web server in the same process over real connections: submissions
//! through the API, and page latency with many cases stored.
//! See README.md for what is measured and the JSON keys.

mod data;
mod http;
mod raw;
mod rules;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use refuge_core::application::ProgrammeId;
use refuge_core::clock::SystemClock;
use refuge_core::event::Actor;
use refuge_core::ids::OrgId;
use refuge_core::org::OrganisationKind;
use refuge_crypto::{Entropy, OsEntropy, OsSeededEntropy};
use refuge_store::{KeySource, NewCase, SqlStore, Store, StoreConfig};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Parser)]
#[command(
    name = "refuge-bench",
    version,
    about = "Measure refuge: durable intake against the raw insert rate of the same database, the rules engine, and the web server under HTTP load."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Concurrent durable intake (`Store::submit`): rate, latency, raw baseline, integrity check.
    Intake(IntakeArgs),
    /// The rules engine over a synthetic caseload: load, evaluation, one decision, simulate.
    Rules(rules::RulesArgs),
    /// The web server under HTTP load: API submissions, and page latency over a large store.
    Http(http::HttpArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

impl BackendChoice {
    /// The name `--backend` takes.
    fn name(self) -> &'static str {
        match self {
            BackendChoice::Sqlite => "sqlite",
            BackendChoice::Postgres => "postgres",
            BackendChoice::Both => "both",
        }
    }
}

/// The header's line about the machine, with `note` after it (may be empty).
fn print_machine(note: &str) {
    println!(
        "machine: {} cores (available_parallelism), {}, {}/{}{note}",
        cores(),
        cpu_model(),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Args, Clone)]
struct IntakeArgs {
    /// Which backend(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// Concurrent writers (tokio tasks).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    writers: u32,
    /// Measured duration in seconds, after the warm-up [default: 10, or 3 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Warm-up in seconds, excluded from the figures [default: 2, or 1 with --quick].
    #[arg(long)]
    warmup: Option<f64>,
    /// Duration of the raw-insert baseline in seconds [default: 3, or 1 with --quick].
    #[arg(long)]
    raw_seconds: Option<f64>,
    /// Short run for CI smoke tests: 1 s warm-up, 3 s measured, 1 s raw baseline.
    #[arg(long)]
    quick: bool,
    /// PostgreSQL server to use. The benchmark connects to this database only to create (and
    /// finally drop) a fresh `refuge_bench_<random>` database, and runs in that.
    #[arg(long, default_value = DEFAULT_PG)]
    postgres_url: String,
    /// Directory for the SQLite file `refuge.db` (must not already hold one) [default: a
    /// temporary directory, removed afterwards].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Synthetic intakes pre-generated per writer (cycled through).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pool: u32,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 20_220_921)]
    seed: u64,
}

/// Resolved options.
#[derive(Clone)]
struct Opts {
    backend: BackendChoice,
    writers: usize,
    warmup: Duration,
    run: Duration,
    raw: Duration,
    pool: usize,
    seed: u64,
    postgres_url: String,
    data: Option<PathBuf>,
    format: Format,
    quick: bool,
}

fn secs(v: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow!("--{what} must be a number of seconds >= 0"))
}

impl Opts {
    fn from(a: IntakeArgs) -> Result<Self> {
        let (run, warmup, raw) = if a.quick {
            (3.0, 1.0, 1.0)
        } else {
            (10.0, 2.0, 3.0)
        };
        let run = secs(a.seconds.unwrap_or(run), "seconds")?;
        if run.is_zero() {
            bail!("--seconds must be > 0");
        }
        Ok(Self {
            backend: a.backend,
            writers: a.writers as usize,
            warmup: secs(a.warmup.unwrap_or(warmup), "warmup")?,
            run,
            raw: secs(a.raw_seconds.unwrap_or(raw), "raw-seconds")?,
            pool: a.pool as usize,
            seed: a.seed,
            postgres_url: a.postgres_url,
            data: a.data,
            format: a.format,
            quick: a.quick,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

/// What a set of concurrent submitters saw: the intake writers (errors as text) and the HTTP
/// connections (errors as answers).
pub(crate) struct Tally<E> {
    /// Submissions acknowledged in the measured window.
    pub(crate) measured: u64,
    /// Latencies (µs) of the calls acknowledged in the measured window.
    pub(crate) latencies_us: Vec<u32>,
    /// Submissions acknowledged over the whole run (warm-up and tail included).
    pub(crate) acknowledged: u64,
    /// Failed calls over the whole run.
    pub(crate) errors: u64,
    /// Failed calls completing in the measured window.
    pub(crate) errors_measured: u64,
    /// The first error seen.
    pub(crate) first_error: Option<E>,
    /// Length of the measured window, seconds.
    pub(crate) window: f64,
}

impl<E> Default for Tally<E> {
    fn default() -> Self {
        Tally {
            measured: 0,
            latencies_us: Vec::new(),
            acknowledged: 0,
            errors: 0,
            errors_measured: 0,
            first_error: None,
            window: 0.0,
        }
    }
}

impl<E> Tally<E> {
    /// One submitter's tally, with room for its latencies.
    pub(crate) fn for_one() -> Self {
        Tally {
            latencies_us: Vec::with_capacity(16_384),
            ..Tally::default()
        }
    }

    /// Record one call sent at `t0` that completed at `t1`; only calls completing inside
    /// `window` (start, end) count towards the measured figures.
    pub(crate) fn record(
        &mut self,
        t0: Instant,
        t1: Instant,
        window: (Instant, Instant),
        outcome: std::result::Result<(), E>,
    ) {
        let in_window = t1 >= window.0 && t1 <= window.1;
        match outcome {
            Ok(()) => {
                self.acknowledged += 1;
                if in_window {
                    self.measured += 1;
                    let us = (t1 - t0).as_micros();
                    self.latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Err(e) => {
                self.errors += 1;
                if in_window {
                    self.errors_measured += 1;
                }
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }

    /// Add another submitter's tally to this one (latencies are sorted by [`Tally::close`]).
    pub(crate) fn merge(&mut self, other: Tally<E>) {
        self.measured += other.measured;
        self.acknowledged += other.acknowledged;
        self.errors += other.errors;
        self.errors_measured += other.errors_measured;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Sort the latencies and set the measured window's length.
    pub(crate) fn close(&mut self, window: Duration) {
        self.latencies_us.sort_unstable();
        self.window = window.as_secs_f64();
    }
}

/// What the intake writers saw.
type Measured = Tally<String>;

/// Run `pools.len()` writers against `store` for warm-up + run.
async fn measure(
    store: Arc<SqlStore>,
    pools: Vec<Vec<(NewCase, ProgrammeId)>>,
    warmup: Duration,
    run: Duration,
) -> Result<Measured> {
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + run;
    let mut set = JoinSet::new();
    for pool in pools {
        let store = store.clone();
        set.spawn(async move {
            let mut m = Measured::for_one();
            let mut i = 0usize;
            while Instant::now() < end {
                let (new, programme) = pool[i % pool.len()].clone();
                i += 1;
                let t0 = Instant::now();
                let r = store.submit(Actor::Operator, new, programme).await;
                let outcome = r.map(|_| ()).map_err(|e| e.to_string());
                m.record(t0, Instant::now(), (window_start, end), outcome);
            }
            m
        });
    }
    let mut total = Measured::default();
    while let Some(r) = set.join_next().await {
        total.merge(r.context("a writer task failed")?);
    }
    total.close(run);
    Ok(total)
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// Everything reported for one backend.
struct Report {
    backend: &'static str,
    /// Where it ran (without password).
    location: String,
    m: Measured,
    generate_s: f64,
    cases: i64,
    applications: i64,
    events: i64,
    chain_intact: bool,
    chain_events: u64,
    chain_problem: Option<String>,
    verify_s: f64,
    /// Persons whose blind indexes were still deferred when the run ended.
    index_backlog: u64,
    /// Seconds the indexer then took to index them.
    index_s: f64,
    raw: std::result::Result<raw::RawResult, String>,
}

impl Report {
    fn rate(&self) -> f64 {
        self.m.measured as f64 / self.m.window
    }
    fn cases_match(&self) -> bool {
        u64::try_from(self.cases).ok() == Some(self.m.acknowledged)
    }
    fn passed(&self) -> bool {
        self.cases_match() && self.chain_intact && self.raw.is_ok()
    }
    /// The performance target for this backend: (submissions/s, p99 ms).
    fn target(&self) -> (f64, Option<f64>) {
        if self.backend == "sqlite" {
            (10_000.0, Some(20.0))
        } else {
            (5_000.0, None)
        }
    }
    fn target_met(&self) -> bool {
        let (rate, p99) = self.target();
        self.rate() >= rate && p99.is_none_or(|p| percentile_ms(&self.m.latencies_us, 0.99) < p)
    }
}

fn progress(opts: &Opts, msg: impl AsRef<str>) {
    if opts.format == Format::Text {
        eprintln!("  .. {}", msg.as_ref());
    }
}

/// Initialise a store at `url`, run the writers, check, close, then the raw baseline.
async fn bench_backend(opts: &Opts, url: &str, location: String) -> Result<Report> {
    let keydir = tempfile::tempdir().context("cannot create a temporary key directory")?;
    let cfg = StoreConfig::new(
        url,
        KeySource::KeyFile(keydir.path().join("instance.key")),
        Arc::new(SystemClock),
        Arc::new(OsSeededEntropy::new()?),
    );
    let (store, org) = refuge_store::initialise(
        cfg,
        OrganisationKind::Ngo,
        "Bench NGO".parse().context("organisation name")?,
    )
    .await
    .with_context(|| format!("cannot initialise the store at {location}"))?;
    let store = Arc::new(store);
    let backend = store.backend_name();

    progress(
        opts,
        format!(
            "{backend}: generating {} x {} synthetic intakes",
            opts.writers, opts.pool
        ),
    );
    let t = Instant::now();
    let pools = generate(opts, org.id).await?;
    let generate_s = t.elapsed().as_secs_f64();

    progress(
        opts,
        format!(
            "{backend}: {} writers, {:.0} s warm-up + {:.0} s measured",
            opts.writers,
            opts.warmup.as_secs_f64(),
            opts.run.as_secs_f64()
        ),
    );
    let m = measure(store.clone(), pools, opts.warmup, opts.run).await?;

    progress(opts, format!("{backend}: checking counts and hash chain"));
    let counts = store.counts().await.context("counts")?;
    let count = |t: &str| {
        counts
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, c)| *c)
            .unwrap_or(-1)
    };
    let t = Instant::now();
    let chain = store.verify_chain().await.context("verify_chain")?;
    let verify_s = t.elapsed().as_secs_f64();
    let index_backlog = store.index_backlog().await.context("index_backlog")?;
    let t = Instant::now();
    store.flush_indexes().await.context("flush_indexes")?;
    let index_s = t.elapsed().as_secs_f64();
    store.close().await;
    drop(store);

    progress(
        opts,
        format!(
            "{backend}: raw-insert baseline, {:.0} s",
            opts.raw.as_secs_f64()
        ),
    );
    let raw_seed = opts.seed ^ 0xBA5E;
    let raw = if backend == "sqlite" {
        raw::sqlite(url, opts.raw, raw_seed).await
    } else {
        raw::postgres(url, opts.raw, raw_seed).await
    }
    .map_err(|e| format!("{e:#}"));

    Ok(Report {
        backend,
        location,
        generate_s,
        cases: count("cases"),
        applications: count("applications"),
        events: count("events"),
        chain_intact: chain.is_intact(),
        chain_events: chain.events(),
        chain_problem: chain.problems.first().map(ToString::to_string),
        verify_s,
        index_backlog,
        index_s,
        raw,
        m,
    })
}

/// One pool of synthetic intakes per writer, generated off the async threads.
async fn generate(opts: &Opts, org: OrgId) -> Result<Vec<Vec<(NewCase, ProgrammeId)>>> {
    let (writers, pool, seed) = (opts.writers, opts.pool, opts.seed);
    tokio::task::spawn_blocking(move || {
        (0..writers)
            .map(|w| data::pool(seed.wrapping_add(w as u64 * 0x1000_0001), pool, org))
            .collect()
    })
    .await
    .context("data generation failed")?
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

async fn run_sqlite(opts: &Opts) -> Result<Report> {
    let (_tmp, dir) = sqlite_dir(opts.data.as_deref())?;
    let file = dir.join("refuge.db");
    let url = format!("sqlite://{}", file.display());
    bench_backend(opts, &url, file.display().to_string()).await
}

/// The directory for a SQLite `refuge.db`: `data` (created if missing; must not already hold
/// one), or a temporary directory, removed when the returned guard drops.
fn sqlite_dir(data: Option<&std::path::Path>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    match data {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create --data {}", d.display()))?;
            let dir = d
                .canonicalize()
                .with_context(|| format!("cannot resolve --data {}", d.display()))?;
            if dir.join("refuge.db").exists() {
                bail!(
                    "{} already holds refuge.db: give an empty directory or remove it",
                    dir.display()
                );
            }
            Ok((None, dir))
        }
        None => {
            let t = tempfile::tempdir().context("cannot create a temporary data directory")?;
            let dir = t.path().to_path_buf();
            Ok((Some(t), dir))
        }
    }
}

/// `url` with its password hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}://{}:***@{}", &url[..s], &userinfo[..c], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> Result<String> {
    let s = url
        .find("://")
        .ok_or_else(|| anyhow!("--postgres-url is not a URL: {}", redact(url)))?
        + 3;
    let (main, query) = match url[s..].find('?') {
        Some(q) => url.split_at(s + q),
        None => (url, ""),
    };
    let host_end = main[s..].find('/').map_or(main.len(), |p| s + p);
    Ok(format!("{}/{db}{query}", &main[..host_end]))
}

async fn admin_connect(url: &str) -> Result<PgConnection> {
    match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url)).await {
        Ok(r) => r.map_err(|e| anyhow!("{e}")),
        Err(_) => bail!("no answer within 5 s"),
    }
}

/// What became of a run on PostgreSQL.
enum PgOutcome<T> {
    /// It ran (successfully or not).
    Ran(Box<Result<T>>),
    /// The server could not be reached: nothing ran.
    Unreachable(String),
}

async fn run_postgres(opts: &Opts) -> Result<PgOutcome<Report>> {
    in_fresh_database(
        &opts.postgres_url,
        "refuge_bench",
        |url, location| async move { bench_backend(opts, &url, location).await },
    )
    .await
}

/// Create a fresh database `<prefix>_<random>` on the server of `admin_url`, run `f(url of the
/// new database, that URL with the password hidden)` in it (stopping on Ctrl-C), and drop the
/// database afterwards whatever happened. `admin_url` is used only to create and drop it.
async fn in_fresh_database<T, F, Fut>(admin_url: &str, prefix: &str, f: F) -> Result<PgOutcome<T>>
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut admin = match admin_connect(admin_url).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(PgOutcome::Unreachable(format!(
                "cannot connect to {}: {e}",
                redact(admin_url)
            )));
        }
    };
    let mut suffix = [0u8; 6];
    OsEntropy
        .fill(&mut suffix)
        .map_err(|e| anyhow!("no randomness for the database name: {e}"))?;
    let db = format!("{prefix}_{}", refuge_crypto::hex_encode(&suffix));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("cannot create database {db} on {}", redact(admin_url)))?;
    let _ = admin.close().await;
    let url = with_database(admin_url, &db)?;
    let location = redact(&url);

    // Run, also stopping on Ctrl-C, and drop the database whatever happened.
    let result = tokio::select! {
        r = f(url, location) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let dropped = async {
        let mut admin = admin_connect(admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        let _ = admin.close().await;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = dropped {
        eprintln!("warning: could not drop database {db}: {e:#}; drop it by hand");
    }
    Ok(PgOutcome::Ran(Box::new(result)))
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn machine_json() -> Value {
    json!({
        "cores": cores(),
        "cpu": cpu_model(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

fn options_json(o: &Opts) -> Value {
    json!({
        "writers": o.writers,
        "seconds": o.run.as_secs_f64(),
        "warmup_seconds": o.warmup.as_secs_f64(),
        "raw_seconds": o.raw.as_secs_f64(),
        "pool_per_writer": o.pool,
        "seed": o.seed,
        "quick": o.quick,
    })
}

fn print_header(o: &Opts) {
    println!("refuge-bench intake");
    print_machine("");
    let backend = o.backend.name();
    println!(
        "options: backend={backend} writers={} seconds={} warmup={} raw={} pool={}/writer seed={}{}",
        o.writers,
        o.run.as_secs_f64(),
        o.warmup.as_secs_f64(),
        o.raw.as_secs_f64(),
        o.pool,
        o.seed,
        if o.quick { " (quick)" } else { "" }
    );
    print_locations(o.data.as_deref(), &o.postgres_url, "refuge_bench");
}

/// The header's lines saying where each backend's store will be.
fn print_locations(data: Option<&std::path::Path>, postgres_url: &str, db_prefix: &str) {
    println!(
        "sqlite:  {}",
        data.map_or("a temporary directory".into(), |d| d.display().to_string())
    );
    println!(
        "postgres: {} (runs in a fresh {db_prefix}_<random> database, dropped afterwards)",
        redact(postgres_url)
    );
}

/// p50, p99, max and mean of sorted microseconds, in milliseconds, as JSON.
fn latency_json(l: &[u32]) -> Value {
    let mean = if l.is_empty() {
        0.0
    } else {
        l.iter().map(|&x| f64::from(x)).sum::<f64>() / l.len() as f64 / 1000.0
    };
    json!({
        "p50": percentile_ms(l, 0.50),
        "p99": percentile_ms(l, 0.99),
        "max": percentile_ms(l, 1.0),
        "mean": mean,
    })
}

fn report_json(r: &Report, o: &Opts) -> Value {
    let (t_rate, t_p99) = r.target();
    json!({
        "backend": r.backend,
        "status": "ok",
        "location": r.location,
        "machine": machine_json(),
        "options": options_json(o),
        "submissions_per_s": r.rate(),
        "measured_submissions": r.m.measured,
        "measured_seconds": r.m.window,
        "latency_ms": latency_json(&r.m.latencies_us),
        "errors": r.m.errors,
        "errors_measured": r.m.errors_measured,
        "first_error": r.m.first_error,
        "acknowledged": r.m.acknowledged,
        "generate_seconds": r.generate_s,
        "raw": match &r.raw {
            Ok(x) => json!({
                "rows_per_s": x.rows_per_s(),
                "commits_per_s": x.commits_per_s(),
                "rows": x.rows,
                "seconds": x.seconds,
                "row_bytes": raw::ROW_BYTES,
                "rows_per_commit": raw::ROWS_PER_TX,
                "error": Value::Null,
            }),
            Err(e) => json!({ "error": e }),
        },
        "check": {
            "cases": r.cases,
            "applications": r.applications,
            "events": r.events,
            "acknowledged": r.m.acknowledged,
            "cases_match": r.cases_match(),
            "chain_intact": r.chain_intact,
            "chain_events": r.chain_events,
            "chain_problem": r.chain_problem,
            "verify_seconds": r.verify_s,
            "index_backlog": r.index_backlog,
            "index_seconds": r.index_s,
            "passed": r.passed(),
        },
        "target": {
            "submissions_per_s": t_rate,
            "p99_ms": t_p99,
            "met": r.target_met(),
        },
    })
}

fn status_json(backend: &str, status: &str, reason: &str, o: &Opts) -> Value {
    json!({
        "backend": backend,
        "status": status,
        "reason": reason,
        "machine": machine_json(),
        "options": options_json(o),
    })
}

fn print_table(reports: &[&Report]) {
    if reports.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<9} {:>13} {:>8} {:>8} {:>8} {:>7} {:>12} {:>13}",
        "backend",
        "submissions/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "raw rows/s",
        "raw commits/s"
    );
    for r in reports {
        let l = &r.m.latencies_us;
        let (rows, commits) = match &r.raw {
            Ok(x) => (
                format!("{:.0}", x.rows_per_s()),
                format!("{:.0}", x.commits_per_s()),
            ),
            Err(_) => ("failed".into(), "failed".into()),
        };
        println!(
            "{:<9} {:>13.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>12} {:>13}",
            r.backend,
            r.rate(),
            percentile_ms(l, 0.50),
            percentile_ms(l, 0.99),
            percentile_ms(l, 1.0),
            r.m.errors,
            rows,
            commits
        );
    }
    println!();
    for r in reports {
        println!(
            "{:<9} measured {} submissions in {:.1} s; acknowledged {} in all (warm-up and tail included)",
            r.backend, r.m.measured, r.m.window, r.m.acknowledged
        );
        println!(
            "{:<9} check: cases {} {} acknowledged {}: {}; applications {}, events {}",
            "",
            r.cases,
            if r.cases_match() { "=" } else { "!=" },
            r.m.acknowledged,
            if r.cases_match() { "ok" } else { "FAILED" },
            r.applications,
            r.events
        );
        println!(
            "{:<9} check: hash chain {} ({} events verified in {:.2} s){}",
            "",
            if r.chain_intact { "intact" } else { "BROKEN" },
            r.chain_events,
            r.verify_s,
            r.chain_problem
                .as_ref()
                .map(|p| format!(": {p}"))
                .unwrap_or_default()
        );
        println!(
            "{:<9} deferred blind indexes: {} persons at the end of the run, indexed afterwards in {:.2} s",
            "", r.index_backlog, r.index_s
        );
        if let Some(e) = &r.m.first_error {
            println!("{:<9} first error: {e}", "");
        }
        if let Err(e) = &r.raw {
            println!("{:<9} raw baseline FAILED: {e}", "");
        }
        let (t_rate, t_p99) = r.target();
        println!(
            "{:<9} target >= {t_rate:.0}/s{}: {}",
            "",
            t_p99
                .map(|p| format!(", p99 < {p:.0} ms"))
                .unwrap_or_default(),
            if r.target_met() { "met" } else { "missed" }
        );
    }
}

// ---------------------------------------------------------------------------------------------

async fn intake(opts: Opts) -> Result<ExitCode> {
    if opts.format == Format::Text {
        print_header(&opts);
    }
    let mut ok = true;
    let mut reports: Vec<Report> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut json_out: Vec<Value> = Vec::new();

    if matches!(opts.backend, BackendChoice::Sqlite | BackendChoice::Both) {
        progress(&opts, "sqlite: initialising");
        let r = tokio::select! {
            r = run_sqlite(&opts) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        match r {
            Ok(r) => {
                ok &= r.passed();
                json_out.push(report_json(&r, &opts));
                reports.push(r);
            }
            Err(e) => {
                ok = false;
                notes.push(format!("sqlite    FAILED: {e:#}"));
                json_out.push(status_json("sqlite", "failed", &format!("{e:#}"), &opts));
            }
        }
    }
    if matches!(opts.backend, BackendChoice::Postgres | BackendChoice::Both) {
        progress(&opts, "postgres: connecting");
        match run_postgres(&opts).await {
            Ok(PgOutcome::Ran(r)) => match *r {
                Ok(r) => {
                    ok &= r.passed();
                    json_out.push(report_json(&r, &opts));
                    reports.push(r);
                }
                Err(e) => {
                    ok = false;
                    notes.push(format!("postgres  FAILED: {e:#}"));
                    json_out.push(status_json("postgres", "failed", &format!("{e:#}"), &opts));
                }
            },
            Ok(PgOutcome::Unreachable(why)) => {
                if opts.backend == BackendChoice::Postgres {
                    ok = false;
                    notes.push(format!("postgres  FAILED: PostgreSQL unreachable: {why}"));
                    json_out.push(status_json("postgres", "failed", &why, &opts));
                } else {
                    notes.push(format!(
                        "postgres  SKIPPED: PostgreSQL unreachable ({why}); use --postgres-url"
                    ));
                    json_out.push(status_json("postgres", "skipped", &why, &opts));
                }
            }
            Err(e) => {
                ok = false;
                notes.push(format!("postgres  FAILED: {e:#}"));
                json_out.push(status_json("postgres", "failed", &format!("{e:#}"), &opts));
            }
        }
    }

    if opts.format == Format::Text {
        print_table(&reports.iter().collect::<Vec<_>>());
    }
    Ok(finish(opts.format, &notes, &json_out, ok))
}

/// The end of a benchmark run: notes and the verdict as text, or the JSON objects one per
/// line; the exit status says whether the run itself went wrong.
pub(crate) fn finish(format: Format, notes: &[String], json_out: &[Value], ok: bool) -> ExitCode {
    match format {
        Format::Text => {
            if !notes.is_empty() {
                println!();
                for n in notes {
                    println!("{n}");
                }
            }
            println!();
            println!("result: {}", if ok { "ok" } else { "FAILED" });
        }
        Format::Json => {
            for v in json_out {
                println!("{v}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Intake(a) => intake(Opts::from(a)?).await,
        Command::Rules(a) => rules::run(a).map(|()| ExitCode::SUCCESS),
        Command::Http(a) => http::run(a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/test?sslmode=disable", "x").unwrap(),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "x").unwrap(),
            "postgres://h/x"
        );
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert!((percentile_ms(&v, 0.5) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&v, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&v, 1.0) - 100.0).abs() < 1e-9);
    }
}

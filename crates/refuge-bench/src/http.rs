//! `refuge-bench http`: the web server under load, measured from the outside. The whole
//! application (`refuge_web::app`) serves on 127.0.0.1 in this process, over a fresh store;
//! a small HTTP/1.1 client on keep-alive TCP connections, in the same process, measures:
//!
//! 1. **submissions**: `--connections` connections each posting synthetic cases to
//!    `POST /api/v1/cases` with an API token as fast as they are answered; the rate of `201`s,
//!    their latency and every other answer as an error; then every acknowledged case must be
//!    in the store and the hash chain must verify;
//! 2. **pages**: with `--cases` cases stored in the organisation (seeded through
//!    `Store::submit`, not timed as pages), `--samples` sequential requests of each of the
//!    portal's and the staff workspace's main pages, and the API's queue.
//!
//! See README.md for what each figure means.

use crate::data::{self, Rng};
use crate::{
    BackendChoice, DEFAULT_PG, Format, PgOutcome, Tally, in_fresh_database, latency_json,
    machine_json, percentile_ms, print_locations, print_machine, secs, sqlite_dir,
};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use refuge_core::application::ProgrammeId;
use refuge_core::clock::{Clock, SystemClock};
use refuge_core::event::Actor;
use refuge_core::ids::{CaseId, OrgId};
use refuge_core::org::{OrganisationKind, Role};
use refuge_crypto::{Entropy, OsSeededEntropy, SecretString};
use refuge_rules::library::Library;
use refuge_store::{KeySource, NewCase, Scope, SqlStore, Store, StoreConfig};
use refuge_web::{AppState, WebConfig};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnectOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The targets (informational: they never change the exit status).
const TARGET_RATE: f64 = 3_000.0;
const TARGET_SUBMIT_P99_MS: f64 = 50.0;
const TARGET_PAGE_P99_MS: f64 = 20.0;
const TARGET_CASES: u64 = 100_000;

/// Concurrent tasks seeding the store for the page measurements.
const SEED_WRITERS: usize = 64;
/// Different cases whose page is requested in turn.
const CASE_PAGES: usize = 256;
/// Different questionnaires posted in turn.
const CHECK_FORMS: usize = 256;
/// A request not answered in this time is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Parts {
    /// Submissions through the API, then the pages.
    All,
    /// Only submissions through the API.
    Submissions,
    /// Only the pages (with `--cases` seeded).
    Pages,
}

#[derive(clap::Args, Clone)]
pub struct HttpArgs {
    /// Which backend(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Parts::All)]
    measure: Parts,
    /// Concurrent keep-alive connections submitting (the same with --quick).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,
    /// Measured duration of the submissions in seconds, after the warm-up [default: 10, or 3
    /// with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Warm-up of the submissions in seconds, excluded from the figures [default: 2, or 1 with
    /// --quick].
    #[arg(long)]
    warmup: Option<f64>,
    /// Cases stored in the organisation when the pages are measured (seeded up to this number)
    /// [default: 100000, or 20000 with --quick].
    #[arg(long)]
    cases: Option<u64>,
    /// Sequential requests measured per page [default: 2000, or 300 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    samples: Option<u32>,
    /// Requests per page before measuring [default: 100, or 30 with --quick].
    #[arg(long)]
    page_warmup: Option<u32>,
    /// After seeding, have the database collect statistics before the pages are measured
    /// (PostgreSQL: `VACUUM ANALYZE`, what autovacuum does some time after a bulk load when it
    /// is on; SQLite: `ANALYZE`). Off by default: the store never does it itself.
    #[arg(long)]
    analyze: bool,
    /// Short run for CI: 1 s warm-up, 3 s measured, 20,000 cases, 300 samples per page.
    #[arg(long)]
    quick: bool,
    /// PostgreSQL server to use. The benchmark connects to this database only to create (and
    /// finally drop) a fresh `refuge_bench_http_<random>` database, and runs in that.
    #[arg(long, default_value = DEFAULT_PG)]
    postgres_url: String,
    /// Directory for the SQLite file `refuge.db` (must not already hold one) [default: a
    /// temporary directory, removed afterwards].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Programmes directory (the server's library) [default: `programmes`, or the workspace's].
    #[arg(long)]
    programmes: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The same as `--format json`.
    #[arg(long)]
    json: bool,
    /// Request bodies pre-generated per connection (cycled through).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pool: u32,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 20_220_921)]
    seed: u64,
}

/// Resolved options.
#[derive(Clone)]
struct Opts {
    backend: BackendChoice,
    measure: Parts,
    connections: usize,
    warmup: Duration,
    run: Duration,
    cases: u64,
    samples: usize,
    page_warmup: usize,
    analyze: bool,
    pool: usize,
    seed: u64,
    postgres_url: String,
    data: Option<PathBuf>,
    programmes: PathBuf,
    format: Format,
    quick: bool,
}

impl Opts {
    fn from(a: HttpArgs) -> Result<Self> {
        let (run, warmup, cases, samples, page_warmup) = if a.quick {
            (3.0, 1.0, 20_000, 300, 30)
        } else {
            (10.0, 2.0, TARGET_CASES, 2_000, 100)
        };
        let run = secs(a.seconds.unwrap_or(run), "seconds")?;
        if run.is_zero() {
            bail!("--seconds must be > 0");
        }
        let programmes = match a.programmes {
            Some(p) => p,
            None => {
                let here = PathBuf::from("programmes");
                if here.is_dir() {
                    here
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programmes")
                }
            }
        };
        Ok(Self {
            backend: a.backend,
            measure: a.measure,
            connections: a.connections as usize,
            warmup: secs(a.warmup.unwrap_or(warmup), "warmup")?,
            run,
            cases: a.cases.unwrap_or(cases),
            samples: a.samples.unwrap_or(samples) as usize,
            page_warmup: a.page_warmup.unwrap_or(page_warmup) as usize,
            analyze: a.analyze,
            pool: a.pool as usize,
            seed: a.seed,
            postgres_url: a.postgres_url,
            data: a.data,
            programmes,
            format: if a.json { Format::Json } else { a.format },
            quick: a.quick,
        })
    }

    fn submissions(&self) -> bool {
        self.measure != Parts::Pages
    }

    fn pages(&self) -> bool {
        self.measure != Parts::Submissions
    }
}

fn progress(opts: &Opts, msg: impl AsRef<str>) {
    if opts.format == Format::Text {
        eprintln!("  .. {}", msg.as_ref());
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one request at a time on a keep-alive connection.
// ---------------------------------------------------------------------------------------------

/// An answer.
#[derive(Debug)]
struct Resp {
    status: u16,
    /// The status line and the headers.
    head: String,
    body: Vec<u8>,
    /// The server will close the connection after this answer.
    close: bool,
}

impl Resp {
    /// The values of a header.
    fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(move |(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// The session cookie this answer sets, if it does.
    fn session_cookie(&self) -> Option<String> {
        let prefix = format!("{}=", refuge_web::session::COOKIE);
        self.headers("set-cookie")
            .find_map(|v| v.strip_prefix(prefix.as_str()))
            .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    }

    /// The first form's CSRF token on the page.
    fn csrf(&self) -> Option<String> {
        let body = std::str::from_utf8(&self.body).ok()?;
        let marker = "name=\"csrf\" value=\"";
        let i = body.find(marker)? + marker.len();
        body[i..].split('"').next().map(str::to_owned)
    }

    /// What went wrong, for an unexpected answer: the status and the API's error code and
    /// message, if the body is the API's `{"error": {...}}`.
    fn error(&self) -> HttpError {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let e = &v["error"];
        let text = |k: &str| e[k].as_str().map(str::to_owned);
        HttpError {
            status: Some(self.status),
            code: text("code"),
            message: text("message").unwrap_or_else(|| {
                let b = String::from_utf8_lossy(&self.body);
                let b = b.trim();
                b.chars().take(160).collect()
            }),
            field: text("field"),
        }
    }
}

/// A failed request: an unexpected answer, or none (I/O error or timeout).
#[derive(Clone, Debug)]
struct HttpError {
    status: Option<u16>,
    code: Option<String>,
    message: String,
    field: Option<String>,
}

impl HttpError {
    fn io(e: &std::io::Error) -> Self {
        Self {
            status: None,
            code: None,
            message: format!("I/O: {e}"),
            field: None,
        }
    }

    fn timeout() -> Self {
        Self {
            status: None,
            code: None,
            message: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            field: None,
        }
    }

    fn json(&self) -> Value {
        json!({
            "status": self.status,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        })
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = self.status {
            write!(f, "HTTP {s}")?;
            if let Some(c) = &self.code {
                write!(f, " {c}")?;
            }
            if let Some(x) = &self.field {
                write!(f, " (field {x})")?;
            }
            if !self.message.is_empty() {
                write!(f, ": {}", self.message)?;
            }
            Ok(())
        } else {
            f.write_str(&self.message)
        }
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn read_more<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.reserve(64 * 1024);
    if s.read_buf(buf).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ));
    }
    Ok(())
}

/// Send one request and read its answer (`Content-Length`, chunked, or until close).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    req: &[u8],
) -> std::io::Result<Resp> {
    s.write_all(req).await?;
    buf.clear();
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("response headers over 64 KiB"));
        }
        read_more(s, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end - 4])
        .map_err(|_| bad("response headers are not UTF-8"))?
        .to_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("bad status line: {:?}", head.lines().next())))?;
    let mut length = None;
    let (mut chunked, mut close) = (false, head.starts_with("HTTP/1.0"));
    for (k, v) in head.split("\r\n").skip(1).filter_map(|l| l.split_once(':')) {
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| bad("bad Content-Length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        }
    }
    let body = if status / 100 == 1 || status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        let mut body = Vec::new();
        let mut pos = head_end;
        loop {
            let line_end = loop {
                if let Some(i) = find(&buf[pos..], b"\r\n") {
                    break pos + i;
                }
                read_more(s, buf).await?;
            };
            let line = std::str::from_utf8(&buf[pos..line_end]).map_err(|_| bad("chunk size"))?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            pos = line_end + 2;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let end = loop {
                        if let Some(i) = find(&buf[pos..], b"\r\n") {
                            break pos + i;
                        }
                        read_more(s, buf).await?;
                    };
                    let empty = end == pos;
                    pos = end + 2;
                    if empty {
                        break;
                    }
                }
                break;
            }
            while buf.len() < pos + size + 2 {
                read_more(s, buf).await?;
            }
            body.extend_from_slice(&buf[pos..pos + size]);
            pos += size + 2;
        }
        body
    } else if let Some(n) = length {
        while buf.len() < head_end + n {
            read_more(s, buf).await?;
        }
        buf[head_end..head_end + n].to_vec()
    } else {
        // Until the server closes.
        close = true;
        loop {
            buf.reserve(64 * 1024);
            if s.read_buf(buf).await? == 0 {
                break;
            }
        }
        buf[head_end..].to_vec()
    };
    Ok(Resp {
        status,
        head,
        body,
        close,
    })
}

/// A keep-alive connection, reopened after an error or a `Connection: close`.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    async fn open(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        Ok(())
    }

    /// One request: the answer, or why there was none.
    async fn send(&mut self, req: &[u8]) -> std::result::Result<Resp, HttpError> {
        let r = tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.open().await?;
            match self.stream.as_mut() {
                Some(s) => exchange(s, &mut self.buf, req).await,
                None => Err(bad("not connected")),
            }
        })
        .await;
        match r {
            Ok(Ok(resp)) => {
                if resp.close {
                    self.stream = None;
                }
                Ok(resp)
            }
            Ok(Err(e)) => {
                self.stream = None;
                Err(HttpError::io(&e))
            }
            Err(_) => {
                self.stream = None;
                Err(HttpError::timeout())
            }
        }
    }
}

/// Build a request. `headers` are `Name: value` lines without line ends.
fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[&str],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if let Some((content_type, b)) = body {
        r.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    if let Some((_, b)) = body {
        r.extend_from_slice(b);
    }
    r
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish()
        .into_bytes()
}

/// A browser: one connection, one session cookie, English.
struct Browser {
    conn: Conn,
    host: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(addr: SocketAddr) -> Self {
        Self {
            conn: Conn::new(addr),
            host: addr.to_string(),
            cookie: None,
        }
    }

    fn build(&self, method: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
        let cookie = self
            .cookie
            .as_ref()
            .map(|c| format!("Cookie: {}={c}", refuge_web::session::COOKIE));
        let mut headers = vec!["Accept: text/html", "Accept-Language: en"];
        if let Some(c) = &cookie {
            headers.push(c);
        }
        request(
            method,
            path,
            &self.host,
            &headers,
            body.map(|b| ("application/x-www-form-urlencoded", b)),
        )
    }

    /// Send a request built with [`Browser::build`]; keep the cookie it sets.
    async fn send(&mut self, req: &[u8]) -> std::result::Result<Resp, HttpError> {
        let r = self.conn.send(req).await?;
        if let Some(c) = r.session_cookie() {
            self.cookie = (!c.is_empty()).then_some(c);
        }
        Ok(r)
    }

    /// A request that must answer `status`.
    async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        status: u16,
    ) -> Result<Resp> {
        let req = self.build(method, path, body);
        let r = self
            .send(&req)
            .await
            .map_err(|e| anyhow!("{method} {path}: {e}"))?;
        if r.status != status {
            bail!("{method} {path}: expected {status}, got {}", r.error());
        }
        Ok(r)
    }

    /// Sign in as a staff user with password and TOTP, as a person would.
    async fn sign_in(&mut self, login: &str, password: &str, totp: &[u8]) -> Result<()> {
        let page = self.expect("GET", "/staff/login", None, 200).await?;
        let csrf = page.csrf().context("no CSRF token on /staff/login")?;
        let body = form(&[("csrf", &csrf), ("login", login), ("password", password)]);
        self.expect("POST", "/staff/login", Some(&body), 303)
            .await
            .context("password step")?;
        let page = self.expect("GET", "/staff/login/code", None, 200).await?;
        let csrf = page.csrf().context("no CSRF token on /staff/login/code")?;
        let now = SystemClock.now().as_micros() / 1_000_000;
        let code = refuge_web::totp::code_at(totp, now);
        let done = self
            .expect(
                "POST",
                "/staff/login/code",
                Some(&form(&[("csrf", &csrf), ("code", &code)])),
                303,
            )
            .await
            .context("code step")?;
        if done.headers("location").next() != Some("/staff") {
            bail!("sign-in did not lead to /staff");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

/// A store with one NGO, a counsellor with password, TOTP and an API token, served by the
/// whole web application on 127.0.0.1.
struct Server {
    /// The store's database.
    url: String,
    store: Arc<SqlStore>,
    org: OrgId,
    addr: SocketAddr,
    token: String,
    login: String,
    password: String,
    totp: Vec<u8>,
    /// The ids of the server's programmes (submissions and seeded cases go to them in turn).
    programmes: Vec<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _keydir: tempfile::TempDir,
}

async fn start(url: &str, location: &str, library: Arc<Library>) -> Result<Server> {
    let keydir = tempfile::tempdir().context("cannot create a temporary key directory")?;
    let entropy = Arc::new(OsSeededEntropy::new()?);
    let cfg = StoreConfig::new(
        url,
        KeySource::KeyFile(keydir.path().join("instance.key")),
        Arc::new(SystemClock),
        entropy.clone(),
    );
    let (store, org) = refuge_store::initialise(
        cfg,
        OrganisationKind::Ngo,
        "Bench NGO".parse().context("organisation name")?,
    )
    .await
    .with_context(|| format!("cannot initialise the store at {location}"))?;
    let store = Arc::new(store);

    // A counsellor of the NGO, with a password and a second factor, and an API token.
    let login = "bench.counsellor".to_owned();
    let user = store
        .create_user(
            Actor::Operator,
            org.id,
            login.parse().context("login")?,
            "Bench counsellor".parse().context("display name")?,
            vec![Role::Counsellor],
        )
        .await
        .context("create_user")?;
    let mut pw = [0u8; 18];
    entropy.fill(&mut pw)?;
    let password = format!(
        "bench-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pw)
    );
    let totp = refuge_web::totp::enrol(
        store.as_ref(),
        entropy.as_ref(),
        Actor::Operator,
        user.id,
        &SecretString::new(password.clone()),
    )
    .await
    .context("credentials of the bench user")?
    .expose()
    .to_vec();
    let (token, hash) = refuge_web::new_api_token(entropy.as_ref())?;
    let token = token.expose().to_owned();
    store
        .create_api_token(Actor::Operator, user.id, hash, "bench".into())
        .await
        .context("create_api_token")?;

    let programmes: Vec<String> = library.programmes.keys().cloned().collect();
    if programmes.is_empty() {
        bail!("the programme library is empty");
    }
    let config = WebConfig {
        default_intake: Some(org.id),
        ..WebConfig::default()
    };
    let state = AppState::new(
        store.clone(),
        library,
        Arc::new(SystemClock),
        entropy,
        config,
    )
    .map_err(|e| anyhow!("the web application does not start: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, refuge_web::app(state))
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(Server {
        url: url.to_owned(),
        store,
        org: org.id,
        addr,
        token,
        login,
        password,
        totp,
        programmes,
        shutdown: Some(tx),
        task,
        _keydir: keydir,
    })
}

impl Server {
    /// Stop serving, then close the store.
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        self.store.close().await;
    }

    async fn cases(&self) -> Result<i64> {
        let counts = self.store.counts().await.context("counts")?;
        Ok(counts
            .iter()
            .find(|(n, _)| *n == "cases")
            .map_or(-1, |(_, c)| *c))
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: submissions through the API
// ---------------------------------------------------------------------------------------------

/// What the submitting connections saw.
#[derive(Default)]
struct Sub {
    connections: usize,
    /// 201s (acknowledged; the probe included) and failed requests (any answer but 201, I/O
    /// errors, timeouts).
    tally: Tally<HttpError>,
    generate_s: f64,
    /// Bytes of the average request body.
    body_bytes: usize,
    /// The integrity check afterwards.
    cases: i64,
    chain_intact: bool,
    chain_events: u64,
    chain_problem: Option<String>,
    verify_s: f64,
    index_backlog: u64,
}

impl Sub {
    fn rate(&self) -> f64 {
        self.tally.measured as f64 / self.tally.window
    }
    fn p99(&self) -> f64 {
        percentile_ms(&self.tally.latencies_us, 0.99)
    }
    fn cases_match(&self) -> bool {
        u64::try_from(self.cases).ok() == Some(self.tally.acknowledged)
    }
    fn passed(&self) -> bool {
        self.tally.errors == 0 && self.cases_match() && self.chain_intact
    }
    fn target_met(&self) -> bool {
        self.rate() >= TARGET_RATE && self.p99() < TARGET_SUBMIT_P99_MS && self.tally.errors == 0
    }
}

/// The submissions part: measured, or not possible (the endpoint is absent or refuses the
/// benchmark's requests: the first answer says why).
enum SubOutcome {
    Ran(Box<Sub>),
    Refused(HttpError),
}

/// One API submission as a complete HTTP request, to one of `programmes` (the server's).
fn submission(rng: &mut Rng, host: &str, auth: &str, programmes: &[String]) -> Vec<u8> {
    let i = data::intake_json(rng);
    let programme = &programmes[rng.below(programmes.len())];
    let body = json!({"person": i.person, "facts": i.facts, "programme": programme}).to_string();
    request(
        "POST",
        "/api/v1/cases",
        host,
        &[auth, "Accept: application/json"],
        Some(("application/json", body.as_bytes())),
    )
}

async fn submissions(opts: &Opts, srv: &Server) -> Result<SubOutcome> {
    let host = srv.addr.to_string();
    let auth = format!("Authorization: Bearer {}", srv.token);

    // One request first: if the API is absent or refuses these requests, say so and stop.
    let mut probe = Conn::new(srv.addr);
    let programmes = srv.programmes.clone();
    let req = submission(&mut Rng::new(opts.seed ^ 0x9E0B), &host, &auth, &programmes);
    match probe.send(&req).await {
        Ok(r) if r.status == 201 => {}
        Ok(r) => return Ok(SubOutcome::Refused(r.error())),
        Err(e) => return Ok(SubOutcome::Refused(e)),
    }
    drop(probe);

    progress(
        opts,
        format!(
            "generating {} x {} request bodies",
            opts.connections, opts.pool
        ),
    );
    let t = Instant::now();
    let (connections, pool, seed) = (opts.connections, opts.pool, opts.seed);
    let (h, a) = (host.clone(), auth.clone());
    let pools: Vec<Vec<Vec<u8>>> = tokio::task::spawn_blocking(move || {
        (0..connections)
            .map(|c| {
                let mut rng = Rng::new(seed.wrapping_add(c as u64 * 0x1000_0001));
                (0..pool)
                    .map(|_| submission(&mut rng, &h, &a, &programmes))
                    .collect()
            })
            .collect()
    })
    .await
    .context("request generation failed")?;
    let generate_s = t.elapsed().as_secs_f64();
    let body_bytes = {
        let all: Vec<&Vec<u8>> = pools.iter().flatten().collect();
        let total: usize = all
            .iter()
            .map(|r| r.len() - find(r, b"\r\n\r\n").map_or(0, |i| i + 4))
            .sum();
        total / all.len().max(1)
    };

    progress(
        opts,
        format!(
            "{} connections, {:.0} s warm-up + {:.0} s measured",
            opts.connections,
            opts.warmup.as_secs_f64(),
            opts.run.as_secs_f64()
        ),
    );
    // Connect everyone before the clock starts.
    let mut conns = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let mut c = Conn::new(srv.addr);
        c.open().await.context("cannot connect to the server")?;
        conns.push(c);
    }
    let start = Instant::now();
    let window_start = start + opts.warmup;
    let end = window_start + opts.run;
    let mut set = JoinSet::new();
    for (mut conn, pool) in conns.into_iter().zip(pools) {
        set.spawn(async move {
            let mut m: Tally<HttpError> = Tally::for_one();
            let mut i = 0usize;
            while Instant::now() < end {
                let req = &pool[i % pool.len()];
                i += 1;
                let t0 = Instant::now();
                let outcome = match conn.send(req).await {
                    Ok(resp) if resp.status == 201 => Ok(()),
                    Ok(resp) => Err(resp.error()),
                    Err(e) => Err(e),
                };
                m.record(t0, Instant::now(), (window_start, end), outcome);
            }
            m
        });
    }
    let mut total = Sub {
        connections: opts.connections,
        tally: Tally {
            acknowledged: 1, // the probe
            ..Tally::default()
        },
        generate_s,
        body_bytes,
        ..Sub::default()
    };
    while let Some(r) = set.join_next().await {
        total.tally.merge(r.context("a connection task failed")?);
    }
    total.tally.close(opts.run);

    progress(opts, "checking counts and hash chain");
    total.cases = srv.cases().await?;
    let t = Instant::now();
    let chain = srv.store.verify_chain().await.context("verify_chain")?;
    total.verify_s = t.elapsed().as_secs_f64();
    total.chain_intact = chain.is_intact();
    total.chain_events = chain.events();
    total.chain_problem = chain.problems.first().map(ToString::to_string);
    total.index_backlog = srv.store.index_backlog().await.context("index_backlog")?;
    Ok(SubOutcome::Ran(Box::new(total)))
}

// ---------------------------------------------------------------------------------------------
// Part 2: pages with many cases stored
// ---------------------------------------------------------------------------------------------

/// One page's figures.
struct PageResult {
    name: &'static str,
    /// Method and path, e.g. `GET /staff?state=submitted`.
    request: String,
    /// `None` if measured; otherwise why not (the API is absent).
    unavailable: Option<String>,
    latencies_us: Vec<u32>,
    /// Requests answered otherwise than expected, warm-up included.
    errors: u64,
    first_error: Option<HttpError>,
    /// Average body size of the measured answers.
    bytes: usize,
}

impl PageResult {
    fn p99(&self) -> f64 {
        percentile_ms(&self.latencies_us, 0.99)
    }
}

struct Pages {
    /// Cases stored while the pages were measured.
    cases: i64,
    seeded: usize,
    seed_s: f64,
    /// Blind indexes of the seeded persons, then flushed.
    indexed: u64,
    index_s: f64,
    /// Seconds `--analyze` took, if asked for.
    analyze_s: Option<f64>,
    samples: usize,
    warmup: usize,
    results: Vec<PageResult>,
}

impl Pages {
    fn errors(&self) -> u64 {
        self.results.iter().map(|r| r.errors).sum()
    }
    fn measured(&self) -> impl Iterator<Item = &PageResult> {
        self.results.iter().filter(|r| r.unavailable.is_none())
    }
    fn target_met(&self) -> bool {
        self.errors() == 0 && self.measured().all(|r| r.p99() < TARGET_PAGE_P99_MS)
    }
    fn seed_rate(&self) -> f64 {
        if self.seed_s > 0.0 {
            self.seeded as f64 / self.seed_s
        } else {
            0.0
        }
    }
}

/// Seed the organisation up to `opts.cases` cases; return some of their ids.
async fn seed(opts: &Opts, srv: &Server) -> Result<(usize, f64, Vec<CaseId>)> {
    let existing = u64::try_from(srv.cases().await?).unwrap_or(0);
    let n = opts.cases.saturating_sub(existing) as usize;
    if n == 0 {
        return Ok((0, 0.0, Vec::new()));
    }
    progress(opts, format!("generating {n} cases"));
    let (org, seed) = (srv.org, opts.seed ^ 0x5EED_CA5E);
    let programmes = srv.programmes.clone();
    let writers = SEED_WRITERS.min(n);
    let chunks = tokio::task::spawn_blocking(move || {
        (0..writers)
            .map(|w| {
                let len = n / writers + usize::from(w < n % writers);
                let mut rng = Rng::new(seed.wrapping_add(w as u64 * 0x1000_0001));
                (0..len)
                    .map(|_| {
                        let (new, _) = data::intake(&mut rng, org)?;
                        let p = &programmes[rng.below(programmes.len())];
                        Ok((new, p.parse().context("programme id")?))
                    })
                    .collect::<Result<Vec<(NewCase, ProgrammeId)>>>()
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .context("case generation failed")??;
    progress(
        opts,
        format!("seeding {n} cases through Store::submit, {writers} tasks"),
    );
    let per_writer = CASE_PAGES.div_ceil(writers);
    let t = Instant::now();
    let mut set = JoinSet::new();
    for chunk in chunks {
        let store = srv.store.clone();
        set.spawn(async move {
            let mut ids = Vec::new();
            let step = (chunk.len() / per_writer).max(1);
            for (i, (new, programme)) in chunk.into_iter().enumerate() {
                let (case, _) = store.submit(Actor::Operator, new, programme).await?;
                if i % step == 0 && ids.len() < per_writer {
                    ids.push(case.id);
                }
            }
            Ok::<_, refuge_store::StoreError>(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.extend(r.context("a seeding task failed")?.context("seeding")?);
    }
    Ok((n, t.elapsed().as_secs_f64(), ids))
}

/// PostgreSQL: `VACUUM ANALYZE` (statistics and the visibility map); SQLite: `ANALYZE`.
async fn analyze(url: &str) -> Result<()> {
    if url.starts_with("sqlite:") {
        let path = SqliteConnectOptions::from_str(url)?
            .get_filename()
            .to_path_buf();
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(path)?;
            c.busy_timeout(Duration::from_secs(30))?;
            c.execute_batch("ANALYZE")?;
            Ok::<_, anyhow::Error>(())
        })
        .await?
    } else {
        let mut c = PgConnection::connect(url).await?;
        sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
        c.close().await?;
        Ok(())
    }
}

/// `warmup` then `samples` sequential requests, built by `make(i)` outside the timed part,
/// each expected to answer `200` with a body containing `marker` (checked after timing).
async fn measure_page(
    b: &mut Browser,
    name: &'static str,
    request: String,
    warmup: usize,
    samples: usize,
    marker: &str,
    mut make: impl FnMut(&Browser, usize) -> Vec<u8>,
) -> PageResult {
    let mut r = PageResult {
        name,
        request,
        unavailable: None,
        latencies_us: Vec::with_capacity(samples),
        errors: 0,
        first_error: None,
        bytes: 0,
    };
    let mut bytes = 0usize;
    for i in 0..warmup + samples {
        let req = make(b, i);
        let t0 = Instant::now();
        let res = b.send(&req).await;
        let us = t0.elapsed().as_micros();
        match res {
            Ok(resp) if resp.status == 200 && find(&resp.body, marker.as_bytes()).is_some() => {
                if i >= warmup {
                    r.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    bytes += resp.body.len();
                }
            }
            Ok(resp) if resp.status == 200 => {
                r.errors += 1;
                r.first_error.get_or_insert_with(|| HttpError {
                    status: Some(resp.status),
                    code: None,
                    message: format!("the answer lacks {marker:?}"),
                    field: None,
                });
            }
            Ok(resp) => {
                r.errors += 1;
                r.first_error.get_or_insert_with(|| resp.error());
            }
            Err(e) => {
                r.errors += 1;
                r.first_error.get_or_insert(e);
            }
        }
    }
    r.bytes = bytes / r.latencies_us.len().max(1);
    r.latencies_us.sort_unstable();
    r
}

async fn pages(opts: &Opts, srv: &Server) -> Result<Pages> {
    let (seeded, seed_s, mut case_ids) = seed(opts, srv).await?;
    progress(opts, "indexing the blind indexes of the seeded persons");
    let t = Instant::now();
    let indexed = srv.store.flush_indexes().await.context("flush_indexes")?;
    let index_s = t.elapsed().as_secs_f64();
    let analyze_s = if opts.analyze {
        progress(opts, "collecting the database's statistics");
        let t = Instant::now();
        analyze(&srv.url).await.context("--analyze")?;
        Some(t.elapsed().as_secs_f64())
    } else {
        None
    };
    let cases = srv.cases().await?;
    if case_ids.is_empty() {
        case_ids = srv
            .store
            .cases(Scope::Organisation(srv.org), None, CASE_PAGES as u32)
            .await
            .context("cases")?
            .into_iter()
            .map(|c| c.id)
            .collect();
    }
    if case_ids.is_empty() {
        bail!("no case to show: --cases is 0 and nothing was submitted");
    }

    // Answers to the questionnaire, as the portal's own form fields.
    let forms: Vec<Vec<(String, String)>> = {
        let mut rng = Rng::new(opts.seed ^ 0xC4EC);
        (0..CHECK_FORMS)
            .map(|_| {
                let facts = data::intake_json(&mut rng).facts;
                serde_json::from_value(facts)
                    .map(|f| refuge_web::questions::facts_to_form(&f))
                    .context("synthetic facts do not parse")
            })
            .collect::<Result<_>>()?
    };

    let (w, n) = (opts.page_warmup, opts.samples);
    progress(
        opts,
        format!("{cases} cases stored; 7 pages, {w} warm-up + {n} measured requests each"),
    );
    let mut results = Vec::new();

    // The portal, as a visitor: the first GET /check gives the session and its CSRF token.
    let mut visitor = Browser::new(srv.addr);
    let page = visitor.expect("GET", "/check", None, 200).await?;
    let csrf = page.csrf().context("no CSRF token on /check")?;
    if visitor.cookie.is_none() {
        bail!("GET /check set no session cookie");
    }
    results.push(
        measure_page(
            &mut visitor,
            "portal home",
            "GET /".into(),
            w,
            n,
            r#"href="/check""#,
            |b, _| b.build("GET", "/", None),
        )
        .await,
    );
    results.push(
        measure_page(
            &mut visitor,
            "questionnaire",
            "GET /check".into(),
            w,
            n,
            r#"name="nationality""#,
            |b, _| b.build("GET", "/check", None),
        )
        .await,
    );
    results.push(
        measure_page(
            &mut visitor,
            "explained results",
            "POST /check".into(),
            w,
            n,
            r#"<section class="result "#,
            |b, i| {
                let f = &forms[i % forms.len()];
                let mut pairs = vec![("csrf", csrf.as_str())];
                pairs.extend(f.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                b.build("POST", "/check", Some(&form(&pairs)))
            },
        )
        .await,
    );

    // The workspace, as the counsellor.
    let mut staff = Browser::new(srv.addr);
    staff
        .sign_in(&srv.login, &srv.password, &srv.totp)
        .await
        .context("staff sign-in")?;
    results.push(
        measure_page(
            &mut staff,
            "queue",
            "GET /staff".into(),
            w,
            n,
            r#"href="/staff/cases/"#,
            |b, _| b.build("GET", "/staff", None),
        )
        .await,
    );
    results.push(
        measure_page(
            &mut staff,
            "queue, submitted",
            "GET /staff?state=submitted".into(),
            w,
            n,
            r#"href="/staff/cases/"#,
            |b, _| b.build("GET", "/staff?state=submitted", None),
        )
        .await,
    );
    results.push(
        measure_page(
            &mut staff,
            "case page",
            "GET /staff/cases/{id}".into(),
            w,
            n,
            r#"id="app-"#,
            |b, i| {
                b.build(
                    "GET",
                    &format!("/staff/cases/{}", case_ids[i % case_ids.len()]),
                    None,
                )
            },
        )
        .await,
    );

    // The API's queue, with the token, if the API is there.
    let mut api = Conn::new(srv.addr);
    let host = srv.addr.to_string();
    let auth = format!("Authorization: Bearer {}", srv.token);
    let req = request(
        "GET",
        "/api/v1/queue",
        &host,
        &[&auth, "Accept: application/json"],
        None,
    );
    let name = "API queue";
    let path = "GET /api/v1/queue".to_owned();
    let absent = match api.send(&req).await {
        Ok(r) if r.status == 404 || r.status == 405 => Some(format!(
            "{path} answered {}: the endpoint is not in this build",
            r.status
        )),
        _ => None,
    };
    match absent {
        Some(why) => results.push(PageResult {
            name,
            request: path,
            unavailable: Some(why),
            latencies_us: Vec::new(),
            errors: 0,
            first_error: None,
            bytes: 0,
        }),
        None => {
            let mut b = Browser {
                conn: api,
                host: host.clone(),
                cookie: None,
            };
            results.push(
                measure_page(&mut b, name, path, w, n, r#""items":[{"#, |_, _| {
                    req.clone()
                })
                .await,
            );
        }
    }

    Ok(Pages {
        cases,
        seeded,
        seed_s,
        indexed,
        index_s,
        analyze_s,
        samples: n,
        warmup: w,
        results,
    })
}

// ---------------------------------------------------------------------------------------------
// One backend
// ---------------------------------------------------------------------------------------------

/// The two parts, each measured on a fresh store of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Submissions,
    Pages,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Submissions => "submissions",
            Part::Pages => "pages",
        }
    }
}

enum PartResult {
    Sub(SubOutcome),
    Pages(Box<Pages>),
}

/// One part's result and where its store was.
struct Ran<T> {
    location: String,
    result: std::result::Result<T, String>,
}

struct Report {
    backend: &'static str,
    /// Load averages when this backend's run began.
    load_at_start: Option<[f64; 3]>,
    sub: Option<Ran<SubOutcome>>,
    pages: Option<Ran<Pages>>,
}

impl Report {
    fn passed(&self) -> bool {
        let sub = self.sub.as_ref().is_none_or(|r| match &r.result {
            Ok(SubOutcome::Ran(s)) => s.passed(),
            Ok(SubOutcome::Refused(_)) | Err(_) => false,
        });
        let pages = self
            .pages
            .as_ref()
            .is_none_or(|r| r.result.as_ref().is_ok_and(|p| p.errors() == 0));
        sub && pages
    }
}

/// One part on a fresh store at `url`: start the server, measure, stop.
async fn bench_part(
    opts: &Opts,
    library: Arc<Library>,
    url: &str,
    location: &str,
    part: Part,
) -> Result<PartResult> {
    let srv = start(url, location, library).await?;
    progress(
        opts,
        format!("{}: {}, {location}", srv.store.backend_name(), part.name()),
    );
    let r = match part {
        Part::Submissions => submissions(opts, &srv).await.map(PartResult::Sub),
        Part::Pages => pages(opts, &srv)
            .await
            .map(|p| PartResult::Pages(Box::new(p))),
    };
    srv.stop().await;
    r
}

/// What became of one backend.
enum BackendOutcome {
    Ran(Box<Report>),
    Unreachable(String),
}

/// Every part asked for, each on a fresh store of `backend`: SQLite in a directory of its own
/// (`<--data>/<part>` or a temporary one), PostgreSQL in a database of its own.
async fn run_backend(
    opts: &Opts,
    library: &Arc<Library>,
    backend: &'static str,
) -> Result<BackendOutcome> {
    let mut report = Report {
        backend,
        load_at_start: load_average(),
        sub: None,
        pages: None,
    };
    let parts = [Part::Submissions, Part::Pages]
        .into_iter()
        .filter(|p| match p {
            Part::Submissions => opts.submissions(),
            Part::Pages => opts.pages(),
        });
    for part in parts {
        let lib = library.clone();
        let (location, result) = if backend == "sqlite" {
            let data = opts.data.as_ref().map(|d| d.join(part.name()));
            let (_tmp, dir) = sqlite_dir(data.as_deref())?;
            let file = dir.join("refuge.db");
            let url = format!("sqlite://{}", file.display());
            let location = file.display().to_string();
            let r = bench_part(opts, lib, &url, &location, part).await;
            (location, r)
        } else {
            let ran = in_fresh_database(
                &opts.postgres_url,
                "refuge_bench_http",
                |url, location| async move {
                    let r = bench_part(opts, lib, &url, &location, part).await;
                    Ok((location, r))
                },
            )
            .await?;
            match ran {
                PgOutcome::Ran(r) => (*r)?,
                PgOutcome::Unreachable(why) => return Ok(BackendOutcome::Unreachable(why)),
            }
        };
        let result = result.map_err(|e| format!("{e:#}"));
        match part {
            Part::Submissions => {
                report.sub = Some(Ran {
                    location,
                    result: result.and_then(|r| match r {
                        PartResult::Sub(s) => Ok(s),
                        PartResult::Pages(_) => Err("wrong part".into()),
                    }),
                });
            }
            Part::Pages => {
                report.pages = Some(Ran {
                    location,
                    result: result.and_then(|r| match r {
                        PartResult::Pages(p) => Ok(*p),
                        PartResult::Sub(_) => Err("wrong part".into()),
                    }),
                });
            }
        }
    }
    Ok(BackendOutcome::Ran(Box::new(report)))
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// The 1, 5 and 15-minute load averages (Linux), to see whether something else was running.
fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn options_json(o: &Opts) -> Value {
    json!({
        "measure": match o.measure { Parts::All => "all", Parts::Submissions => "submissions", Parts::Pages => "pages" },
        "connections": o.connections,
        "seconds": o.run.as_secs_f64(),
        "warmup_seconds": o.warmup.as_secs_f64(),
        "cases": o.cases,
        "samples": o.samples,
        "page_warmup": o.page_warmup,
        "analyze": o.analyze,
        "pool_per_connection": o.pool,
        "seed": o.seed,
        "quick": o.quick,
    })
}

fn sub_json(r: &Ran<SubOutcome>) -> Value {
    match &r.result {
        Err(e) => json!({"status": "failed", "location": r.location, "reason": e}),
        Ok(SubOutcome::Refused(e)) => json!({
            "status": "failed",
            "location": r.location,
            "reason": format!("the first request was refused: POST /api/v1/cases {e}"),
            "first_error": e.json(),
        }),
        Ok(SubOutcome::Ran(s)) => json!({
            "status": "ok",
            "location": r.location,
            "connections": s.connections,
            "submissions_per_s": s.rate(),
            "measured_submissions": s.tally.measured,
            "measured_seconds": s.tally.window,
            "latency_ms": latency_json(&s.tally.latencies_us),
            "errors": s.tally.errors,
            "errors_measured": s.tally.errors_measured,
            "first_error": s.tally.first_error.as_ref().map(HttpError::json),
            "acknowledged": s.tally.acknowledged,
            "generate_seconds": s.generate_s,
            "body_bytes": s.body_bytes,
            "check": {
                "cases": s.cases,
                "acknowledged": s.tally.acknowledged,
                "cases_match": s.cases_match(),
                "chain_intact": s.chain_intact,
                "chain_events": s.chain_events,
                "chain_problem": s.chain_problem,
                "verify_seconds": s.verify_s,
                "index_backlog": s.index_backlog,
                "passed": s.passed(),
            },
            "target": {
                "submissions_per_s": TARGET_RATE,
                "p99_ms": TARGET_SUBMIT_P99_MS,
                "errors": 0,
                "met": s.target_met(),
            },
        }),
    }
}

fn pages_json(r: &Ran<Pages>) -> Value {
    match &r.result {
        Err(e) => json!({"status": "failed", "location": r.location, "reason": e}),
        Ok(p) => json!({
            "status": "ok",
            "location": r.location,
            "cases": p.cases,
            "seeded": p.seeded,
            "seed_seconds": p.seed_s,
            "seed_per_s": p.seed_rate(),
            "indexed": p.indexed,
            "index_seconds": p.index_s,
            "analyze_seconds": p.analyze_s,
            "samples": p.samples,
            "warmup": p.warmup,
            "errors": p.errors(),
            "pages": p.results.iter().map(|r| json!({
                "name": r.name,
                "request": r.request,
                "status": if r.unavailable.is_some() { "unavailable" } else { "ok" },
                "reason": r.unavailable,
                "latency_ms": latency_json(&r.latencies_us),
                "errors": r.errors,
                "first_error": r.first_error.as_ref().map(HttpError::json),
                "bytes": r.bytes,
            })).collect::<Vec<_>>(),
            "target": {
                "p99_ms": TARGET_PAGE_P99_MS,
                "cases": TARGET_CASES,
                "met": p.target_met(),
            },
        }),
    }
}

fn report_json(r: &Report, o: &Opts) -> Value {
    json!({
        "backend": r.backend,
        "status": "ok",
        "machine": machine_json(),
        "load_average_at_start": r.load_at_start,
        "options": options_json(o),
        "submissions": r.sub.as_ref().map(sub_json),
        "pages": r.pages.as_ref().map(pages_json),
        "passed": r.passed(),
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

fn print_header(o: &Opts) {
    println!("refuge-bench http");
    print_machine("; server and client share them");
    let backend = o.backend.name();
    println!(
        "options: backend={backend} connections={} seconds={} warmup={} cases={} samples={} page-warmup={}{} pool={}/connection seed={}{}",
        o.connections,
        o.run.as_secs_f64(),
        o.warmup.as_secs_f64(),
        o.cases,
        o.samples,
        o.page_warmup,
        if o.analyze { " analyze" } else { "" },
        o.pool,
        o.seed,
        if o.quick { " (quick)" } else { "" }
    );
    print_locations(o.data.as_deref(), &o.postgres_url, "refuge_bench_http");
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

fn print_report(r: &Report, o: &Opts) {
    println!();
    println!(
        "{}{}",
        r.backend,
        r.load_at_start
            .map(|[a, b, c]| format!(" (load average at start {a:.2} {b:.2} {c:.2})"))
            .unwrap_or_default()
    );
    if let Some(ran) = &r.sub {
        println!("  submissions, store {}", ran.location);
    }
    match r.sub.as_ref().map(|x| &x.result) {
        None => {}
        Some(Err(e)) => println!("  submissions: FAILED: {e}"),
        Some(Ok(SubOutcome::Refused(e))) => {
            println!(
                "  submissions: FAILED, the first request was refused: POST /api/v1/cases {e}"
            );
        }
        Some(Ok(SubOutcome::Ran(s))) => {
            let l = &s.tally.latencies_us;
            println!(
                "  submissions, POST /api/v1/cases on {} keep-alive connections, {:.0} s warm-up + {:.0} s measured (bodies ~{} bytes):",
                s.connections,
                o.warmup.as_secs_f64(),
                s.tally.window,
                s.body_bytes
            );
            println!(
                "    {:>13} {:>8} {:>8} {:>8} {:>7}",
                "201s/s", "p50 ms", "p99 ms", "max ms", "errors"
            );
            println!(
                "    {:>13.0} {:>8.2} {:>8.2} {:>8.2} {:>7}",
                s.rate(),
                percentile_ms(l, 0.50),
                s.p99(),
                percentile_ms(l, 1.0),
                s.tally.errors
            );
            println!(
                "    measured {} in {:.1} s; acknowledged {} in all (probe, warm-up and tail included)",
                s.tally.measured, s.tally.window, s.tally.acknowledged
            );
            if let Some(e) = &s.tally.first_error {
                println!(
                    "    first error: {e} ({} errors in the window)",
                    s.tally.errors_measured
                );
            }
            println!(
                "    check: cases {} {} acknowledged {}: {}; hash chain {} ({} events verified in {:.2} s){}",
                s.cases,
                if s.cases_match() { "=" } else { "!=" },
                s.tally.acknowledged,
                if s.cases_match() { "ok" } else { "FAILED" },
                if s.chain_intact { "intact" } else { "BROKEN" },
                s.chain_events,
                s.verify_s,
                s.chain_problem
                    .as_ref()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default()
            );
            println!(
                "    target >= {TARGET_RATE:.0}/s, p99 < {TARGET_SUBMIT_P99_MS:.0} ms, no errors: {}",
                met(s.target_met())
            );
        }
    }
    if let Some(ran) = &r.pages {
        println!("  pages, store {}", ran.location);
    }
    match r.pages.as_ref().map(|x| &x.result) {
        None => {}
        Some(Err(e)) => println!("  pages: FAILED: {e}"),
        Some(Ok(p)) => {
            let seeding = if p.seeded > 0 {
                format!(
                    "{} seeded through Store::submit in {:.1} s, {:.0}/s",
                    p.seeded,
                    p.seed_s,
                    p.seed_rate()
                )
            } else {
                "none seeded".into()
            };
            println!(
                "  pages with {} cases stored ({seeding}; blind indexes of {} persons then flushed in {:.1} s{}), {} warm-up + {} measured sequential requests each:",
                p.cases,
                p.indexed,
                p.index_s,
                p.analyze_s
                    .map(|s| format!("; statistics collected in {s:.1} s"))
                    .unwrap_or_default(),
                p.warmup,
                p.samples
            );
            println!(
                "    {:<18} {:<28} {:>8} {:>8} {:>8} {:>7} {:>8}",
                "page", "request", "p50 ms", "p99 ms", "max ms", "errors", "bytes"
            );
            for x in &p.results {
                if let Some(why) = &x.unavailable {
                    println!("    {:<18} {:<28} not measured: {why}", x.name, x.request);
                    continue;
                }
                let l = &x.latencies_us;
                println!(
                    "    {:<18} {:<28} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>8}",
                    x.name,
                    x.request,
                    percentile_ms(l, 0.50),
                    x.p99(),
                    percentile_ms(l, 1.0),
                    x.errors,
                    x.bytes
                );
                if let Some(e) = &x.first_error {
                    println!("    {:<18} first error: {e}", "");
                }
            }
            let slow: Vec<String> = p
                .measured()
                .filter(|x| x.p99() >= TARGET_PAGE_P99_MS)
                .map(|x| format!("{} {:.1} ms", x.request, x.p99()))
                .collect();
            println!(
                "    target p99 < {TARGET_PAGE_P99_MS:.0} ms on every page, no errors{}: {}{}",
                if u64::try_from(p.cases).unwrap_or(0) < TARGET_CASES {
                    format!(" (set for {TARGET_CASES} cases; {} stored here)", p.cases)
                } else {
                    String::new()
                },
                met(p.target_met()),
                if slow.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", slow.join(", "))
                }
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------

pub async fn run(a: HttpArgs) -> Result<ExitCode> {
    let opts = Opts::from(a)?;
    let library = Arc::new(Library::load(&opts.programmes).map_err(|e| {
        anyhow!(
            "programmes in {} do not load: {}",
            opts.programmes.display(),
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?);
    if opts.format == Format::Text {
        print_header(&opts);
    }
    let mut ok = true;
    let mut notes: Vec<String> = Vec::new();
    let mut json_out: Vec<Value> = Vec::new();
    let emit = |r: Report, ok: &mut bool, json_out: &mut Vec<Value>| {
        *ok &= r.passed();
        json_out.push(report_json(&r, &opts));
        if opts.format == Format::Text {
            print_report(&r, &opts);
        }
    };

    let backends: &[&'static str] = match opts.backend {
        BackendChoice::Sqlite => &["sqlite"],
        BackendChoice::Postgres => &["postgres"],
        BackendChoice::Both => &["sqlite", "postgres"],
    };
    for &backend in backends {
        progress(&opts, format!("{backend}: starting"));
        // PostgreSQL stops on Ctrl-C inside `in_fresh_database`, which then drops the database.
        let r = if backend == "sqlite" {
            tokio::select! {
                r = run_backend(&opts, &library, backend) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
            }
        } else {
            run_backend(&opts, &library, backend).await
        };
        match r {
            Ok(BackendOutcome::Ran(r)) => emit(*r, &mut ok, &mut json_out),
            Ok(BackendOutcome::Unreachable(why)) => {
                if opts.backend == BackendChoice::Postgres {
                    ok = false;
                    notes.push(format!(
                        "{backend:<9} FAILED: PostgreSQL unreachable: {why}"
                    ));
                    json_out.push(status_json(backend, "failed", &why, &opts));
                } else {
                    notes.push(format!(
                        "{backend:<9} SKIPPED: PostgreSQL unreachable ({why}); use --postgres-url"
                    ));
                    json_out.push(status_json(backend, "skipped", &why, &opts));
                }
            }
            Err(e) => {
                ok = false;
                notes.push(format!("{backend:<9} FAILED: {e:#}"));
                json_out.push(status_json(backend, "failed", &format!("{e:#}"), &opts));
            }
        }
    }

    Ok(crate::finish(opts.format, &notes, &json_out, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(raw: &[u8]) -> std::io::Result<Resp> {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let raw = raw.to_vec();
        let srv = tokio::spawn(async move {
            let mut req = [0u8; 64];
            let _ = server.read(&mut req).await;
            // Dribble the answer in small pieces to exercise the incremental parsing, then
            // close.
            for piece in raw.chunks(7) {
                server.write_all(piece).await.ok();
                tokio::task::yield_now().await;
            }
        });
        let mut buf = Vec::new();
        let r = exchange(&mut client, &mut buf, b"GET / HTTP/1.1\r\n\r\n").await;
        srv.await.unwrap();
        r
    }

    #[tokio::test]
    async fn parses_fixed_length_and_chunked_answers() {
        let r = answer(
            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\
              set-cookie: __Host-refuge=abc; Path=/; HttpOnly\r\n\r\n{\"a\":\"xyz\"}",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"{\"a\":\"xyz\"}");
        assert_eq!(r.session_cookie().as_deref(), Some("abc"));
        assert!(!r.close);

        let r = answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nTrailer: t\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello, world");
        assert!(r.close);

        let r = answer(
            b"HTTP/1.1 422 Unprocessable Entity\r\ncontent-length: 61\r\n\r\n\
              {\"error\":{\"code\":\"invalid\",\"message\":\"bad date\",\"field\":\"x\"}}",
        )
        .await
        .unwrap();
        let e = r.error();
        assert_eq!(e.status, Some(422));
        assert_eq!(e.code.as_deref(), Some("invalid"));
        assert_eq!(e.to_string(), "HTTP 422 invalid (field x): bad date");

        let r = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort").await;
        assert!(r.is_err(), "a body cut short is an error");
    }

    #[test]
    fn csrf_tokens_are_read_from_forms() {
        let r = Resp {
            status: 200,
            head: String::new(),
            body: br#"<form><input type="hidden" name="csrf" value="c0ffee"></form>"#.to_vec(),
            close: false,
        };
        assert_eq!(r.csrf().as_deref(), Some("c0ffee"));
    }

    #[test]
    fn submissions_are_complete_requests_with_the_api_contract() {
        let req = submission(
            &mut Rng::new(1),
            "127.0.0.1:1",
            "Authorization: Bearer rf_x",
            &["eu-humanitarian-visa".to_owned()],
        );
        let text = String::from_utf8(req).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /api/v1/cases HTTP/1.1\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let v: Value = serde_json::from_str(body).unwrap();
        assert!(v["person"]["names"][0]["value"].is_string());
        assert!(v["person"]["birth_date"].is_string());
        assert!(v["facts"]["nationality"].is_string());
        assert_eq!(v["programme"], "eu-humanitarian-visa");
    }
}

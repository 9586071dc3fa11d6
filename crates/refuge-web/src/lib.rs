//! refuge on the web: the applicant portal (`/`), the staff workspace (`/staff`) and the JSON
//! API (`/api/v1`), over the store and the rules. Never touches SQL.
//!
//! Pages are server-rendered with askama and work without JavaScript; every string comes from
//! the Fluent files in `locales/`; every form carries its session's CSRF token; every response
//! carries a strict Content-Security-Policy and the other security headers.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod api;
pub mod codename;
mod exports;
pub mod i18n;
mod page;
pub mod policy;
mod portal;
pub mod questions;
pub mod session;
mod staff;
pub mod throttle;
pub mod totp;
mod workspace;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use refuge_core::application::ProgrammeId;
use refuge_core::clock::Clock;
use refuge_core::ids::OrgId;
use refuge_crypto::Entropy;
use refuge_rules::library::Library;
use refuge_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

#[doc(hidden)]
pub use api::decode_request_for_fuzzing;
pub use api::{ACCESS_WATCH, api_token_hash, new_api_token, watch_access};
pub use page::WebError;
/// What an evidence upload is, judged by its content (PDF, PNG, JPEG or plain text; `None`:
/// refused). Public for the fuzz targets in `fuzz/`.
pub use portal::sniff;

/// Settings of the web server.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Which organisation receives applications to each programme made in the portal.
    pub intake: BTreeMap<ProgrammeId, OrgId>,
    /// The organisation receiving portal applications to programmes not in `intake`.
    pub default_intake: Option<OrgId>,
    /// Largest evidence file accepted, in bytes.
    pub max_upload_bytes: usize,
    /// Largest request body other than uploads, in bytes.
    pub max_body_bytes: usize,
    /// Session limits.
    pub timeouts: session::Timeouts,
    /// Sessions kept in memory at most.
    pub max_sessions: usize,
    /// Limits on guessing passwords, codes and codenames.
    pub limits: throttle::Limits,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            intake: BTreeMap::new(),
            default_intake: None,
            max_upload_bytes: 10 * 1024 * 1024,
            max_body_bytes: 64 * 1024,
            timeouts: session::Timeouts::default(),
            max_sessions: 100_000,
            limits: throttle::Limits::default(),
        }
    }
}

/// Everything a request handler may use.
pub struct Inner {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Programmes.
    pub library: Arc<Library>,
    /// Translations.
    pub i18n: i18n::I18n,
    /// Live sessions.
    pub sessions: session::Sessions,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Randomness (tokens, codenames).
    pub entropy: Arc<dyn Entropy>,
    /// Settings.
    pub config: WebConfig,
    /// API tokens recently checked, and their users.
    pub api_tokens: api::TokenCache,
    /// TOTP steps already used, per user (a code works once).
    pub used_totp: std::sync::Mutex<std::collections::HashMap<refuge_core::ids::UserId, u64>>,
    /// Failed sign-ins and codename lookups.
    pub throttle: throttle::Throttle,
}

/// Why the web application cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A translation file is broken.
    #[error(transparent)]
    Translations(#[from] i18n::I18nError),
    /// No randomness for the server's own keys.
    #[error("no randomness for the server's keys: {0}")]
    Entropy(#[from] refuge_crypto::CryptoError),
}

/// Shared state of the web server.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// State over a store and a programme library.
    pub fn new(
        store: Arc<dyn Store>,
        library: Arc<Library>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        config: WebConfig,
    ) -> Result<AppState, StartError> {
        let mut throttle_key = [0u8; 32];
        entropy.fill(&mut throttle_key)?;
        Ok(AppState(Arc::new(Inner {
            throttle: throttle::Throttle::new(config.limits, throttle_key),
            store,
            library,
            i18n: i18n::I18n::embedded()?,
            sessions: session::Sessions::new(config.timeouts, config.max_sessions),
            clock,
            entropy,
            config,
            api_tokens: api::TokenCache::default(),
            used_totp: std::sync::Mutex::new(std::collections::HashMap::new()),
        })))
    }
}

const CSS: &str = include_str!("../static/refuge.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let upload_limit = state.config.max_upload_bytes + 64 * 1024;
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .merge(portal::routes(upload_limit))
        .merge(
            staff::routes()
                .merge(workspace::routes())
                .merge(exports::routes())
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    policy::authorize_staff,
                )),
        )
        .merge(api::routes(state.config.max_upload_bytes))
        .route("/static/refuge.css", get(stylesheet))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page::render_errors,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// A collected export as a download: opaque encrypted bytes, never cached.
pub(crate) fn export_file_response(file: refuge_store::CollectedExport) -> Response {
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.file_name))
            .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        file.bytes,
    )
        .into_response()
}

/// Rendered by `render_errors`: a page, or JSON under `/api/`.
async fn not_found() -> WebError {
    WebError::not_found()
}

/// Headers on every response: a Content-Security-Policy that allows only this site's own
/// stylesheet and forms (no scripts at all), and no framing, sniffing, referrers or caching
/// of pages.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    set(
        h,
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// What every page handler knows about its request: the language, the session (if any) and
/// the path (for the language switcher).
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The page's language.
    pub lang: &'static str,
    /// Whether the language was chosen explicitly with `?lang=` (then remembered in a cookie).
    pub lang_chosen: bool,
    /// The session token from the cookie, if it names a live session.
    pub token: Option<String>,
    /// That session.
    pub session: Option<session::Session>,
    /// The request path.
    pub path: String,
    /// The request method.
    pub method: Method,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let query_lang = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .map(|(_, v)| v.into_owned())
        });
        let cookie_lang = cookie_value(&parts.headers, "refuge-lang");
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let lang = i18n::negotiate(&[query_lang.as_deref(), cookie_lang], accept);
        let lang_chosen = query_lang.as_deref() == Some(lang);
        let now = st.clock.now();
        let token = cookie_value(&parts.headers, session::COOKIE).map(str::to_owned);
        let session = token.as_deref().and_then(|t| st.sessions.get(t, now));
        Ok(Ctx {
            lang,
            lang_chosen,
            token: session.as_ref().and(token),
            session,
            path: parts.uri.path().to_owned(),
            method: parts.method.clone(),
        })
    }
}

/// Parse an `application/x-www-form-urlencoded` body into pairs (repeated keys kept).
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of `key` in form pairs.
pub fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Form field `key` parsed as `T` (text, labels, ids): a bad or missing value is a 422
/// naming the field.
pub fn parsed_field<T>(pairs: &[(String, String)], key: &str) -> Result<T, WebError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    field(pairs, key)
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|e: T::Err| WebError::bad_field(key, e.to_string()))
}

/// A submitted form's pairs, refused unless it carries its session's CSRF token.
pub fn csrf_form(ctx: &Ctx, body: &[u8]) -> Result<Vec<(String, String)>, WebError> {
    let pairs = form_pairs(body);
    check_csrf(ctx, &pairs)?;
    Ok(pairs)
}

/// Refuse a form whose `csrf` field is not its session's token.
pub fn check_csrf(ctx: &Ctx, pairs: &[(String, String)]) -> Result<(), WebError> {
    let sent = field(pairs, "csrf").unwrap_or("");
    match &ctx.session {
        Some(s) if session::same_token(&s.csrf, sent) => Ok(()),
        _ => Err(WebError::new(StatusCode::FORBIDDEN, "csrf", "error-csrf")),
    }
}

//! The JSON API under `/api/v1`, for the organisations' own systems.
//!
//! - **Authentication**: `Authorization: Bearer rf_…`, a token issued with `refuge token new`.
//!   The store keeps only its SHA-256; a token names one staff user, whose organisation is the
//!   scope of every call and whose roles decide what they may do. Token lookups are cached in
//!   memory for at most [`TOKEN_TTL_US`]. A token revoked through this process stops working
//!   at once; one revoked elsewhere (the CLI, another server) within [`ACCESS_WATCH`], when
//!   [`watch_access`] runs beside the server (as `refuge serve` runs it), else within 30 s.
//! - **The document**: every route is registered with [`routes!`] from a handler annotated
//!   with `#[utoipa::path]`, so `GET /api/v1/openapi.json` is generated from the handlers
//!   themselves and cannot omit one.
//! - **Errors**: every error is a [`WebError`], rendered by `render_errors` as
//!   `{"error": {"code", "message", "field"}}`. Something that exists but is not the caller's
//!   is `404`, exactly like something that does not exist.
//! - **Privacy**: logs carry ids only; request bodies are never logged.

#[path = "api_types.rs"]
mod types;

use crate::{AppState, Ctx, WebError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, RawQuery, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use refuge_core::application::{ApplicationState, Decision, Move, ProgrammeId};
use refuge_core::event::Actor;
use refuge_core::facts::parse_date;
use refuge_core::ids::{
    ApplicationId, CaseId, DeadlineId, EvidenceId, ExportId, OrgId, ReferralId, UserId,
};
use refuge_core::org::Role;
use refuge_core::text::Label;
use refuge_crypto::{CryptoError, Entropy, SecretString};
use refuge_rules::programme::{LANGUAGES, Programme, decide};
use refuge_store::{CaseKey, MessageKind, NewCase, QueueFilter, Scope, StoreError};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use types::*;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The largest page of the queue.
const MAX_LIMIT: u32 = 500;
/// The queue page when none is asked for.
const DEFAULT_LIMIT: u32 = 50;

/// The API's routes, with their OpenAPI document at `/api/v1/openapi.json`. Evidence uploads
/// may be up to `max_upload_bytes`; every other body is held to the application's default
/// limit.
pub fn routes(max_upload_bytes: usize) -> Router<AppState> {
    let (router, mut doc) = OpenApiRouter::<AppState>::with_openapi(base_document())
        .routes(routes!(check))
        .routes(routes!(create_case))
        .routes(routes!(queue))
        .routes(routes!(get_case))
        .routes(routes!(case_events))
        .routes(routes!(list_messages, add_message))
        .routes(routes!(move_application))
        .routes(
            routes!(list_evidence, upload_evidence).layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .routes(routes!(download_evidence))
        .routes(routes!(list_deadlines))
        .routes(routes!(case_deadlines, add_deadline))
        .routes(routes!(complete_deadline))
        .routes(routes!(refer_case))
        .routes(routes!(list_referrals))
        .routes(routes!(answer_referral))
        .routes(routes!(list_exports, request_export))
        .routes(routes!(get_export))
        .routes(routes!(decide_export))
        .routes(routes!(collect_export))
        .routes(routes!(organisations))
        .routes(routes!(me))
        .routes(routes!(revoke_token))
        .routes(routes!(openapi_json))
        .split_for_parts();
    finish_document(&mut doc);
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    router
        .layer(Extension(Document(Bytes::from(json))))
        .layer(axum::middleware::from_fn(method_not_allowed))
}

fn base_document() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("refuge API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The JSON API of refuge: check eligibility, submit and work cases, \
                     messages, evidence, deadlines and referrals. Every call but `check` and \
                     this document needs `Authorization: Bearer <token>` (issued with \
                     `refuge token new`); the token's user's organisation is the scope of \
                     every call. See docs/api.md.",
                ))
                .license(Some(
                    LicenseBuilder::new()
                        .name("AGPL-3.0-or-later")
                        .identifier(Some("AGPL-3.0-or-later"))
                        .build(),
                )),
        )
        .build()
}

fn finish_document(doc: &mut OpenApi) {
    let components = doc
        .components
        .get_or_insert_with(utoipa::openapi::Components::new);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("rf_<43 base64url characters>")
                .description(Some(
                    "An API token issued with `refuge token new --login LOGIN`.",
                ))
                .build(),
        ),
    );
}

/// The OpenAPI document, serialised once.
#[derive(Clone)]
struct Document(Bytes);

/// Answer a method the path does not take in the API's JSON error shape.
async fn method_not_allowed(req: Request<axum::body::Body>, next: Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res.extensions().get::<WebError>().is_some()
    {
        return res;
    }
    WebError {
        detail: Some(format!(
            "This path does not take {method}; see /api/v1/openapi.json."
        )),
        ..WebError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "error-method-not-allowed",
        )
    }
    .into_response()
}

// ------------------------------------------------------------------------------ tokens

/// Issue a new API token: `rf_` and the base64url (no padding) of 32 random bytes. Returns the
/// token, to show its holder once, and its SHA-256, the only thing the store keeps.
pub fn new_api_token(entropy: &dyn Entropy) -> Result<(SecretString, [u8; 32]), CryptoError> {
    let mut raw = [0u8; 32];
    entropy.fill(&mut raw)?;
    let token = format!("rf_{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = sha256(&token);
    Ok((SecretString::new(token), hash))
}

/// The SHA-256 an API token is stored under, or `None` if the text cannot be a token.
pub fn api_token_hash(token: &str) -> Option<[u8; 32]> {
    let body = token.strip_prefix("rf_")?;
    let ok = body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| sha256(token))
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How long a token's user is remembered, in microseconds.
pub const TOKEN_TTL_US: i64 = 30_000_000;
/// Tokens remembered at most.
const TOKEN_CACHE_CAPACITY: usize = 10_000;

#[derive(Clone)]
struct CachedUser {
    user: UserId,
    org: OrgId,
    roles: Vec<Role>,
    at_us: i64,
}

/// Token hash → its user, as read from the store at `at_us`, for at most [`TOKEN_TTL_US`].
/// Held in the server's state; revoking a token or disabling a user forgets their entries.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<[u8; 32], CachedUser>>);

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], CachedUser>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget a token (when it is revoked).
    pub(crate) fn forget(&self, hash: &[u8; 32]) {
        self.lock().remove(hash);
    }

    /// Forget every token of a user (when they are disabled).
    pub(crate) fn forget_user(&self, user: UserId) {
        self.lock().retain(|_, c| c.user != user);
    }

    /// Forget every token (access changed outside this process).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// How often [`watch_access`] looks, by default.
pub const ACCESS_WATCH: std::time::Duration = std::time::Duration::from_secs(2);

/// Keep this server's view of staff access in step with changes made outside it
/// (`refuge token revoke`, or another server on the same database): every `every`, read
/// [`refuge_store::Store::access_state`]; when it has changed, forget every cached API token
/// and end the sessions of disabled users. Runs until the task is dropped; spawn it beside
/// the server.
pub async fn watch_access(state: AppState, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        ticker.tick().await;
        match state.store.access_state().await {
            Ok(now) => {
                if seen.is_some_and(|g| g != now.generation) {
                    state.api_tokens.clear();
                    for user in &now.disabled {
                        state.sessions.end_user(*user);
                    }
                    tracing::info!(
                        disabled = now.disabled.len(),
                        "staff access changed outside this server: cached API tokens forgotten"
                    );
                }
                seen = Some(now.generation);
            }
            Err(e) => tracing::warn!(error = %e, "could not read the staff access state"),
        }
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

/// The staff user calling, named by their token.
pub(crate) struct Caller {
    user: UserId,
    org: OrgId,
    roles: Vec<Role>,
    token_hash: [u8; 32],
}

impl Caller {
    fn scope(&self) -> Scope {
        Scope::Organisation(self.org)
    }

    fn actor(&self) -> Actor {
        Actor::User(self.user)
    }
}

async fn user_for(st: &AppState, hash: [u8; 32]) -> Result<Option<CachedUser>, WebError> {
    let now = st.clock.now().as_micros();
    if let Some(c) = st.api_tokens.lock().get(&hash)
        && (0..TOKEN_TTL_US).contains(&(now - c.at_us))
    {
        return Ok(Some(c.clone()));
    }
    let Some(user) = st.store.user_for_token(hash).await? else {
        st.api_tokens.forget(&hash);
        return Ok(None);
    };
    let cached = CachedUser {
        user: user.id,
        org: user.organisation_id,
        roles: user.roles,
        at_us: now,
    };
    let mut cache = st.api_tokens.lock();
    if cache.len() >= TOKEN_CACHE_CAPACITY {
        cache.retain(|_, c| (0..TOKEN_TTL_US).contains(&(now - c.at_us)));
        if cache.len() >= TOKEN_CACHE_CAPACITY {
            cache.clear();
        }
    }
    cache.insert(hash, cached.clone());
    Ok(Some(cached))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let hash = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| api_token_hash(token.trim()))
                    .flatten()
            });
        let found = match hash {
            Some(h) => user_for(st, h)
                .await
                .map_err(IntoResponse::into_response)?
                .map(|c| (c, h)),
            None => None,
        };
        let Some((c, token_hash)) = found else {
            // One answer for a missing, malformed, unknown or revoked token.
            let ctx = match Ctx::from_request_parts(parts, st).await {
                Ok(c) => c,
                Err(never) => match never {},
            };
            let mut res = WebError {
                detail: Some(
                    "Send a valid API token: Authorization: Bearer rf_… (see docs/api.md)."
                        .to_owned(),
                ),
                ..WebError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "error-unauthorized",
                )
            }
            .json(st, ctx.lang);
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"refuge\""),
            );
            return Err(res);
        };
        // Who may do what is decided in one place (crate::policy); whose records, below.
        if !crate::policy::permits(
            &c.roles,
            &parts.method,
            parts.extensions.get::<axum::extract::MatchedPath>(),
        ) {
            let ctx = match Ctx::from_request_parts(parts, st).await {
                Ok(c) => c,
                Err(never) => match never {},
            };
            tracing::info!(user = %c.user, path = %parts.uri.path(), "refused by role");
            return Err(WebError::forbidden().json(st, ctx.lang));
        }
        Ok(Caller {
            user: c.user,
            org: c.org,
            roles: c.roles,
            token_hash,
        })
    }
}

// ------------------------------------------------------------------------------ input

/// A JSON body, parsed into `T`: syntax errors are `400 bad_request`, values that do not fit
/// are `422 invalid` naming the field by its JSON path, and a body over the limit is `413`.
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = WebError;

    async fn from_request(req: Request<axum::body::Body>, st: &AppState) -> Result<Self, WebError> {
        let bytes = Bytes::from_request(req, st).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_error(r: BytesRejection) -> WebError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        bad_request("The request body could not be read.")
    }
}

fn too_large() -> WebError {
    WebError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "error-too-large",
    )
}

fn bad_request(detail: impl Into<String>) -> WebError {
    WebError {
        detail: Some(detail.into()),
        ..WebError::new(StatusCode::BAD_REQUEST, "bad_request", "error-bad-request")
    }
}

fn forbidden(detail: &str) -> WebError {
    WebError {
        detail: Some(detail.to_owned()),
        ..WebError::new(StatusCode::FORBIDDEN, "forbidden", "error-forbidden")
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WebError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request("The body is empty: send a JSON object."));
    }
    // serde would read a struct from an array of its fields in order; every body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad_request(
            "The body must be a JSON object ({...}), not an array or a single value.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

/// Decodes `bytes` as the handlers decode a request body (with [`ApiJson`]), as the body of
/// request `kind` modulo 10: check, new case, move, message, deadline, referral, answer,
/// export request, export decision, collection. For the
/// fuzz targets in `fuzz/` only: not part of the crate's interface.
#[doc(hidden)]
pub fn decode_request_for_fuzzing(kind: u8, bytes: &[u8]) -> Result<(), WebError> {
    match kind % 10 {
        0 => parse_json::<CheckRequest>(bytes).map(drop),
        1 => parse_json::<NewCaseRequest>(bytes).map(drop),
        2 => parse_json::<MoveRequest>(bytes).map(drop),
        3 => parse_json::<MessageRequest>(bytes).map(drop),
        4 => parse_json::<DeadlineRequest>(bytes).map(drop),
        5 => parse_json::<ReferralRequest>(bytes).map(drop),
        6 => parse_json::<AnswerRequest>(bytes).map(drop),
        7 => parse_json::<ExportRequest>(bytes).map(drop),
        8 => parse_json::<ExportDecisionRequest>(bytes).map(drop),
        _ => parse_json::<CollectRequest>(bytes).map(drop),
    }
}

fn json_error(path: &str, e: &serde_json::Error) -> WebError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let msg = e.to_string();
            // A missing field is reported at its parent: name the field itself. (An unknown
            // one is already in the path.)
            let missing = msg
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next());
            let field = match (path, missing) {
                (".", Some(f)) => f.to_owned(),
                (p, Some(f)) => format!("{p}.{f}"),
                (p, None) => p.to_owned(),
            };
            WebError::bad_field(field, msg)
        }
        _ => bad_request(format!("The body is not valid JSON: {e}.")),
    }
}

/// An id from the path; one that does not parse is simply not found.
fn path_id<T: FromStr>(s: &str) -> Result<T, WebError> {
    s.parse().map_err(|_| WebError::not_found())
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| crate::form_pairs(q.as_bytes()))
        .unwrap_or_default()
}

fn query<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    crate::field(pairs, key).filter(|v| !v.is_empty())
}

/// Store errors as API errors: [`WebError`]'s own mapping, plus the ones only the API meets.
fn store_error(e: StoreError) -> WebError {
    let with = |status, code, key, detail: String| WebError {
        detail: Some(detail),
        ..WebError::new(status, code, key)
    };
    match e {
        StoreError::Conflict { .. } => with(
            StatusCode::CONFLICT,
            "conflict",
            "error-conflict",
            e.to_string(),
        ),
        StoreError::Transition(t) => with(
            StatusCode::CONFLICT,
            "transition",
            "error-transition",
            t.to_string(),
        ),
        StoreError::Duplicate(_) => with(
            StatusCode::CONFLICT,
            "duplicate",
            "error-duplicate",
            e.to_string(),
        ),
        StoreError::AlreadyDone { .. } => with(
            StatusCode::CONFLICT,
            "already_done",
            "error-already-done",
            e.to_string(),
        ),
        StoreError::Invalid { field, message } => WebError::bad_field(field, message),
        StoreError::Erased(_) => WebError::new(StatusCode::GONE, "gone", "error-gone"),
        other => {
            if !matches!(other, StoreError::NotFound { .. }) {
                tracing::error!(code = other.code(), error = %other, "api: store error");
            }
            WebError::from(other)
        }
    }
}

/// `?` on store results inside handlers.
trait OrApi<T> {
    fn or_api(self) -> Result<T, WebError>;
}

impl<T> OrApi<T> for Result<T, StoreError> {
    fn or_api(self) -> Result<T, WebError> {
        self.map_err(store_error)
    }
}

fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

// ------------------------------------------------------------------------------ rules

/// Check which programmes some facts make a person eligible for, with reasons. No
/// authentication; nothing is stored.
#[utoipa::path(
    post,
    path = "/api/v1/check",
    tag = "rules",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "One explained result per programme", body = CheckResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "A fact, programme, date or language is not valid", body = ErrorBody),
    ),
)]
async fn check(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, WebError> {
    let lang = req.lang.unwrap_or_else(|| "en".to_owned());
    if !LANGUAGES.contains(&lang.as_str()) {
        return Err(WebError::bad_field(
            "lang",
            format!("expected one of {}", LANGUAGES.join(", ")),
        ));
    }
    let on = match &req.on {
        Some(s) => {
            parse_date(s).ok_or_else(|| WebError::bad_field("on", "expected a date YYYY-MM-DD"))?
        }
        None => st.clock.today(),
    };
    let programmes: Vec<Cow<'_, Programme>> = match &req.programmes {
        Some(ids) if !ids.is_empty() => ids
            .iter()
            .enumerate()
            .map(|(i, id)| match st.library.programmes.get(id) {
                Some(p) => Ok(Cow::Borrowed(p)),
                None => st.library.resolve(id).map(Cow::Owned).ok_or_else(|| {
                    let hint = refuge_core::suggest::nearest(id, st.library.ids())
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    WebError::bad_field(
                        format!("programmes[{i}]"),
                        format!("no programme or reform \"{id}\"{hint}"),
                    )
                }),
            })
            .collect::<Result<_, _>>()?,
        _ => st.library.programmes.values().map(Cow::Borrowed).collect(),
    };
    let results = programmes
        .iter()
        .map(|p| decide(p, &req.facts, on, &lang))
        .collect();
    Ok(Json(CheckResponse {
        on: on.to_string(),
        lang,
        results,
    }))
}

// ------------------------------------------------------------------------------ cases

/// Open a case for a person and submit an application to a programme, in one durable write.
#[utoipa::path(
    post,
    path = "/api/v1/cases",
    tag = "cases",
    security(("bearer" = [])),
    request_body = NewCaseRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Any 1 to 200 visible ASCII characters the client chooses per submission (e.g. a UUID). Sent again with the same key, the submission is not made twice: the answer is 200 with the case first created, and the header Idempotent-Replayed: true. Use it to retry safely after a timeout or a 500."),
    ),
    responses(
        (status = 201, description = "The case and its application", body = CreatedCase),
        (status = 200, description = "Replayed: the case and application first created with this Idempotency-Key", body = CreatedCase),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "A field is not valid (e.g. `programme`, `facts.birth_date`)", body = ErrorBody),
    ),
)]
async fn create_case(
    caller: Caller,
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<NewCaseRequest>,
) -> Result<Response, WebError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    WebError::bad_field(
                        "Idempotency-Key",
                        "expected 1 to 200 visible ASCII characters",
                    )
                })?,
        ),
    };
    if !st.library.programmes.contains_key(&req.programme) {
        let hint = refuge_core::suggest::nearest(
            &req.programme,
            st.library.programmes.keys().map(String::as_str),
        )
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
        return Err(WebError::bad_field(
            "programme",
            format!("not a programme of this instance{hint}"),
        ));
    }
    let programme: ProgrammeId =
        req.programme
            .parse()
            .map_err(|e: refuge_core::application::InvalidProgrammeId| {
                WebError::bad_field("programme", e.to_string())
            })?;
    let new = NewCase {
        organisation_id: caller.org,
        person: req.person,
        facts: req.facts,
    };
    let (case, app, replayed) = match key {
        Some(key) => st
            .store
            .submit_once(caller.actor(), new, programme, key)
            .await
            .or_api()?,
        None => {
            let (c, a) = st
                .store
                .submit(caller.actor(), new, programme)
                .await
                .or_api()?;
            (c, a, false)
        }
    };
    tracing::info!(case = %case.id, application = %app.id, user = %caller.user, replayed, "api: case submitted");
    let body = CreatedCase {
        case: CaseRef {
            id: case.id.to_string(),
            reference: case.reference.to_string(),
            version: case.version,
        },
        application: ApplicationRef {
            id: app.id.to_string(),
            state: app.state.as_str().to_owned(),
            version: app.version,
        },
    };
    if replayed {
        return Ok((
            [(
                axum::http::HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            )],
            Json(body),
        )
            .into_response());
    }
    Ok(created(body))
}

/// A page of the work queue: applications of the organisation's cases (and those referred to
/// it and accepted), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/queue",
    tag = "cases",
    security(("bearer" = [])),
    params(
        ("programme" = Option<String>, Query, description = "Only this programme"),
        ("state" = Option<String>, Query, description = "Only these states, comma-separated (default: every open state but draft)"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-500 (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of the queue", body = QueuePage),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "A parameter is not valid", body = ErrorBody),
    ),
)]
async fn queue(
    caller: Caller,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<QueuePage>, WebError> {
    let pairs = query_pairs(q.as_deref());
    let programme: Option<ProgrammeId> = query(&pairs, "programme")
        .map(str::parse)
        .transpose()
        .map_err(|e: refuge_core::application::InvalidProgrammeId| {
            WebError::bad_field("programme", e.to_string())
        })?;
    let states: Vec<ApplicationState> = match query(&pairs, "state") {
        Some(s) => s
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e: refuge_core::application::InvalidState| {
                WebError::bad_field("state", e.to_string())
            })?,
        None => ApplicationState::ALL
            .into_iter()
            .filter(|s| s.is_open() && *s != ApplicationState::Draft)
            .collect(),
    };
    let after: Option<ApplicationId> = query(&pairs, "after")
        .map(str::parse)
        .transpose()
        .map_err(|_| WebError::bad_field("after", "expected the `next` of the previous page"))?;
    let limit: u32 = match query(&pairs, "limit") {
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                WebError::bad_field("limit", format!("expected a number from 1 to {MAX_LIMIT}"))
            })?,
        None => DEFAULT_LIMIT,
    };
    let filter = QueueFilter { programme, states };
    let scope = caller.scope();
    let items = st
        .store
        .queue(scope, &filter, after, limit)
        .await
        .or_api()?;
    let total = st.store.count_queue(scope, &filter).await.or_api()?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|i| i.application.id.to_string()))
        .flatten();
    Ok(Json(QueuePage {
        items: items
            .into_iter()
            .map(|i| QueueItemDto {
                application: i.application.into(),
                case: i.case.into(),
            })
            .collect(),
        total,
        next,
    }))
}

/// One case: facts (never identity), applications, and every programme's explained result
/// for its facts today, in the request's language (`?lang=` or `Accept-Language`).
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}",
    tag = "cases",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id, or its reference (RF-XXXX-XXXX-XXXX)")),
    responses(
        (status = 200, description = "The case", body = CaseView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
    ),
)]
async fn get_case(
    caller: Caller,
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CaseView>, WebError> {
    let key: CaseKey = path_id(&id)?;
    let scope = caller.scope();
    let case = st.store.case(scope, &key).await.or_api()?;
    let summary = st.store.case_summary(scope, case.id).await.or_api()?;
    let apps = st.store.applications(scope, case.id).await.or_api()?;
    let on = st.clock.today();
    let rules = st
        .library
        .programmes
        .values()
        .map(|p| decide(p, &case.facts, on, ctx.lang))
        .collect();
    Ok(Json(CaseView {
        pseudonym: summary.pseudonym.map(|p| p.as_str().to_owned()),
        applications: apps.into_iter().map(Into::into).collect(),
        rules,
        case: case.into(),
    }))
}

/// The events about a case and everything recorded on it, in order.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}/events",
    tag = "cases",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case's events", body = EventsList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
    ),
)]
async fn case_events(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EventsList>, WebError> {
    let id: CaseId = path_id(&id)?;
    let events = st.store.case_events(caller.scope(), id).await.or_api()?;
    Ok(Json(EventsList {
        events: events.into_iter().map(Into::into).collect(),
    }))
}

/// Move an application through its state machine, if it is still at `expected_version`.
/// Moves to `granted` or `refused` are decisions: they need the `decision_maker` role and a
/// decision citing one of the programme's legal bases.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{id}/moves",
    tag = "cases",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Application id")),
    request_body = MoveRequest,
    responses(
        (status = 200, description = "The application after the move", body = ApplicationDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "A decision, and the caller is not a decision maker", body = ErrorBody),
        (status = 404, description = "No such application, or not the caller's", body = ErrorBody),
        (status = 409, description = "`conflict`: changed since `expected_version`; `transition`: no such move from its state", body = ErrorBody),
        (status = 422, description = "A field is not valid (e.g. `decision.legal_basis`)", body = ErrorBody),
    ),
)]
async fn move_application(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MoveRequest>,
) -> Result<Json<ApplicationDto>, WebError> {
    let id: ApplicationId = path_id(&id)?;
    let scope = caller.scope();
    let app = st.store.application(scope, id).await.or_api()?;
    let decision = if req.to.is_decided() {
        if !crate::policy::allows(&caller.roles, crate::policy::Action::Decide) {
            return Err(forbidden(
                "Only a user with the decision_maker role records decisions.",
            ));
        }
        let d = req.decision.ok_or_else(|| {
            WebError::bad_field(
                "decision",
                format!(
                    "moving to {} is a decision: give decision.legal_basis and decision.reasons",
                    req.to
                ),
            )
        })?;
        let mut bases: Vec<&str> = Vec::new();
        if let Some(p) = st.library.programmes.get(app.programme.as_str()) {
            for r in &p.rules {
                if !bases.contains(&r.basis.as_str()) {
                    bases.push(&r.basis);
                }
            }
        }
        if !bases.contains(&d.legal_basis.as_str()) {
            return Err(WebError::bad_field(
                "decision.legal_basis",
                format!(
                    "not a legal basis of programme {}; expected one of: {}",
                    app.programme,
                    bases
                        .iter()
                        .map(|b| format!("\"{b}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let legal_basis: Label = d
            .legal_basis
            .chars()
            .take(Label::MAX)
            .collect::<String>()
            .parse()
            .map_err(|e: refuge_core::text::TextError| {
                WebError::bad_field("decision.legal_basis", e.to_string())
            })?;
        Some(Decision {
            legal_basis,
            reasons: d.reasons,
            decided_by: caller.actor(),
            decided_at: st.clock.now(),
        })
    } else {
        if req.decision.is_some() {
            return Err(WebError::bad_field(
                "decision",
                "only a move to granted or refused records a decision",
            ));
        }
        None
    };
    let mv = Move {
        to: req.to,
        reason: if decision.is_some() { None } else { req.reason },
        decision,
    };
    let app = st
        .store
        .move_application(caller.actor(), scope, id, Some(req.expected_version), mv)
        .await
        .or_api()?;
    tracing::info!(application = %app.id, state = %app.state, user = %caller.user, "api: application moved");
    Ok(Json(app.into()))
}

// ------------------------------------------------------------------------------ messages

/// A case's messages (requests for information, answers, notes), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}/messages",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The messages", body = MessagesList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
    ),
)]
async fn list_messages(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MessagesList>, WebError> {
    let id: CaseId = path_id(&id)?;
    let messages = st.store.messages(caller.scope(), id).await.or_api()?;
    Ok(Json(MessagesList {
        messages: messages.into_iter().map(Into::into).collect(),
    }))
}

/// Add a request for information (shown to the applicant) or a note (staff only) to a case.
/// It moves no application: move them with `POST /api/v1/applications/{id}/moves`.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/messages",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    request_body = MessageRequest,
    responses(
        (status = 201, description = "The message", body = MessageDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
        (status = 422, description = "`kind` or `body` is not valid", body = ErrorBody),
    ),
)]
async fn add_message(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> Result<Response, WebError> {
    let id: CaseId = path_id(&id)?;
    if req.kind == MessageKind::InfoAnswer {
        return Err(WebError::bad_field(
            "kind",
            "staff send info_request or note; only the applicant answers",
        ));
    }
    let m = st
        .store
        .add_message(caller.actor(), caller.scope(), id, req.kind, req.body)
        .await
        .or_api()?;
    tracing::info!(case = %id, message = %m.id, user = %caller.user, "api: message added");
    Ok(created(MessageDto::from(m)))
}

// ------------------------------------------------------------------------------ evidence

/// A case's evidence, oldest first (without content).
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}/evidence",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The evidence", body = EvidenceList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
    ),
)]
async fn list_evidence(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EvidenceList>, WebError> {
    let id: CaseId = path_id(&id)?;
    let evidence = st.store.evidence_list(caller.scope(), id).await.or_api()?;
    Ok(Json(EvidenceList {
        evidence: evidence.into_iter().map(Into::into).collect(),
    }))
}

/// Attach a file to a case: the raw bytes as the body. Its type is judged from its content:
/// PDF, PNG, JPEG or plain UTF-8 text.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/evidence",
    tag = "casework",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Case id"),
        ("name" = Option<String>, Query, description = "The file name (default `upload`)"),
    ),
    request_body(content = FileBytes, content_type = "application/octet-stream", description = "The file's bytes, at most the server's upload limit (10 MiB by default)"),
    responses(
        (status = 201, description = "The evidence as listed", body = EvidenceDto),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
        (status = 413, description = "Over the upload limit", body = ErrorBody),
        (status = 415, description = "Not PDF, PNG, JPEG or plain text", body = ErrorBody),
        (status = 422, description = "The body is empty", body = ErrorBody),
    ),
)]
async fn upload_evidence(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    let id: CaseId = path_id(&id)?;
    let bytes = body.map_err(body_error)?;
    if bytes.len() > st.config.max_upload_bytes {
        return Err(too_large());
    }
    if bytes.is_empty() {
        return Err(WebError::bad_field("body", "the file is empty"));
    }
    let Some(media_type) = crate::portal::sniff(&bytes) else {
        return Err(WebError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "error-file-type",
        ));
    };
    let pairs = query_pairs(q.as_deref());
    let name = clean_file_name(query(&pairs, "name").unwrap_or("upload"));
    let meta = st
        .store
        .add_evidence(
            caller.actor(),
            caller.scope(),
            id,
            name,
            media_type.to_owned(),
            bytes.to_vec(),
        )
        .await
        .or_api()?;
    tracing::info!(case = %id, evidence = %meta.id, user = %caller.user, "api: evidence added");
    Ok(created(EvidenceDto::from(meta)))
}

/// Keep only a harmless file name: its last path segment, in letters, digits, `.`, `-`, `_`.
fn clean_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if clean.trim_matches(['.', '_']).is_empty() {
        "upload".to_owned()
    } else {
        clean
    }
}

/// One piece of evidence: its bytes, always as a download, with the type sniffed at upload.
#[utoipa::path(
    get,
    path = "/api/v1/evidence/{id}",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Evidence id")),
    responses(
        (status = 200, description = "The file (`Content-Disposition: attachment`)", content_type = "application/octet-stream", body = FileBytes),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such evidence, or not the caller's", body = ErrorBody),
    ),
)]
async fn download_evidence(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id: EvidenceId = path_id(&id)?;
    let (meta, bytes) = st.store.evidence(caller.scope(), id).await.or_api()?;
    let content_type = HeaderValue::from_str(&meta.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let ascii: String = meta
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

// ------------------------------------------------------------------------------ deadlines

/// Deadlines of the organisation's cases, by due date.
#[utoipa::path(
    get,
    path = "/api/v1/deadlines",
    tag = "casework",
    security(("bearer" = [])),
    params(
        ("due_before" = Option<String>, Query, description = "Only those due before this date (exclusive), YYYY-MM-DD"),
        ("include_done" = Option<bool>, Query, description = "Also those marked done (default false)"),
    ),
    responses(
        (status = 200, description = "The deadlines", body = DeadlinesList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "A parameter is not valid", body = ErrorBody),
    ),
)]
async fn list_deadlines(
    caller: Caller,
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<DeadlinesList>, WebError> {
    let pairs = query_pairs(q.as_deref());
    let due_before = query(&pairs, "due_before")
        .map(|d| {
            parse_date(d).ok_or_else(|| WebError::bad_field("due_before", "expected YYYY-MM-DD"))
        })
        .transpose()?;
    let include_done = match query(&pairs, "include_done") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(WebError::bad_field(
                "include_done",
                "expected true or false",
            ));
        }
    };
    let deadlines = st
        .store
        .deadlines(caller.scope(), due_before, include_done)
        .await
        .or_api()?;
    Ok(Json(DeadlinesList {
        deadlines: deadlines.into_iter().map(Into::into).collect(),
    }))
}

/// A case's deadlines (done ones included), by due date.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}/deadlines",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case's deadlines", body = DeadlinesList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
    ),
)]
async fn case_deadlines(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadlinesList>, WebError> {
    let id: CaseId = path_id(&id)?;
    let deadlines = st.store.case_deadlines(caller.scope(), id).await.or_api()?;
    Ok(Json(DeadlinesList {
        deadlines: deadlines.into_iter().map(Into::into).collect(),
    }))
}

/// Set a deadline on a case.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/deadlines",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    request_body = DeadlineRequest,
    responses(
        (status = 201, description = "The deadline", body = DeadlineDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case, or not the caller's", body = ErrorBody),
        (status = 422, description = "A field is not valid", body = ErrorBody),
    ),
)]
async fn add_deadline(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeadlineRequest>,
) -> Result<Response, WebError> {
    let id: CaseId = path_id(&id)?;
    let due_on = parse_date(&req.due_on)
        .ok_or_else(|| WebError::bad_field("due_on", "expected a date YYYY-MM-DD"))?;
    let d = st
        .store
        .set_deadline(
            caller.actor(),
            caller.scope(),
            id,
            req.kind,
            due_on,
            req.note,
        )
        .await
        .or_api()?;
    tracing::info!(case = %id, deadline = %d.id, user = %caller.user, "api: deadline set");
    Ok(created(DeadlineDto::from(d)))
}

/// Mark a deadline done (once; again is `409 already_done`).
#[utoipa::path(
    post,
    path = "/api/v1/deadlines/{id}/complete",
    tag = "casework",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Deadline id")),
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such deadline, or not the caller's", body = ErrorBody),
        (status = 409, description = "Already done", body = ErrorBody),
    ),
)]
async fn complete_deadline(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, WebError> {
    let id: DeadlineId = path_id(&id)?;
    st.store
        .complete_deadline(caller.actor(), caller.scope(), id)
        .await
        .or_api()?;
    tracing::info!(deadline = %id, user = %caller.user, "api: deadline completed");
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------------------ referrals

/// Refer a case the organisation holds to another organisation, recording the person's
/// consent. The receiver sees the reference and pseudonym until it accepts.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/referrals",
    tag = "referrals",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Case id")),
    request_body = ReferralRequest,
    responses(
        (status = 201, description = "The referral", body = ReferralDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such case or organisation, or not the caller's", body = ErrorBody),
        (status = 409, description = "An open referral of the case to that organisation exists", body = ErrorBody),
        (status = 422, description = "A field is not valid", body = ErrorBody),
    ),
)]
async fn refer_case(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReferralRequest>,
) -> Result<Response, WebError> {
    let id: CaseId = path_id(&id)?;
    let to: OrgId = req
        .to
        .parse()
        .map_err(|e: refuge_core::ids::InvalidId| WebError::bad_field("to", e.to_string()))?;
    let r = st
        .store
        .refer(caller.actor(), caller.scope(), id, to, req.consent)
        .await
        .or_api()?;
    tracing::info!(case = %id, referral = %r.id, to = %to, user = %caller.user, "api: case referred");
    Ok(created(ReferralDto::from(r)))
}

/// Referrals sent or received by the organisation, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/referrals",
    tag = "referrals",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The referrals", body = ReferralsList),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
)]
async fn list_referrals(
    caller: Caller,
    State(st): State<AppState>,
) -> Result<Json<ReferralsList>, WebError> {
    let referrals = st.store.referrals(caller.scope()).await.or_api()?;
    Ok(Json(ReferralsList {
        referrals: referrals.into_iter().map(Into::into).collect(),
    }))
}

/// Accept or decline a referral made to the organisation.
#[utoipa::path(
    post,
    path = "/api/v1/referrals/{id}/answer",
    tag = "referrals",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Referral id")),
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "The referral, answered", body = ReferralDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such referral to the caller's organisation", body = ErrorBody),
        (status = 409, description = "Already answered", body = ErrorBody),
        (status = 422, description = "A field is not valid", body = ErrorBody),
    ),
)]
async fn answer_referral(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AnswerRequest>,
) -> Result<Json<ReferralDto>, WebError> {
    let id: ReferralId = path_id(&id)?;
    let r = st
        .store
        .answer_referral(caller.actor(), caller.scope(), id, req.accept)
        .await
        .or_api()?;
    tracing::info!(referral = %r.id, state = %r.state, user = %caller.user, "api: referral answered");
    Ok(Json(r.into()))
}

// ------------------------------------------------------------------------------ exports

/// The organisation's exports, newest first (at most 200).
#[utoipa::path(
    get,
    path = "/api/v1/exports",
    tag = "exports",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The exports", body = ExportsList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The caller's roles do not allow it", body = ErrorBody),
    ),
)]
async fn list_exports(
    caller: Caller,
    State(st): State<AppState>,
) -> Result<Json<ExportsList>, WebError> {
    let exports = st.store.exports(caller.scope()).await.or_api()?;
    Ok(Json(ExportsList {
        exports: exports.into_iter().map(Into::into).collect(),
    }))
}

/// Ask for cases to be exported. Nothing leaves until another person of the organisation
/// approves; then the caller collects it once, encrypted.
#[utoipa::path(
    post,
    path = "/api/v1/exports",
    tag = "exports",
    security(("bearer" = [])),
    request_body = ExportRequest,
    responses(
        (status = 201, description = "Asked for; waiting for a second person", body = ExportDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The caller's roles do not allow it", body = ErrorBody),
        (status = 404, description = "A case is not the organisation's", body = ErrorBody),
        (status = 422, description = "A field is not valid", body = ErrorBody),
    ),
)]
async fn request_export(
    caller: Caller,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<Response, WebError> {
    let mut cases = Vec::with_capacity(req.cases.len());
    for (i, c) in req.cases.iter().enumerate() {
        cases.push(c.trim().parse::<CaseKey>().map_err(|_| {
            WebError::bad_field(
                format!("cases[{i}]"),
                "expected a case id or reference (RF-…)",
            )
        })?);
    }
    let e = st
        .store
        .request_export(caller.actor(), caller.scope(), &cases, req.purpose)
        .await
        .or_api()?;
    tracing::info!(export = %e.id, user = %caller.user, "api: export requested");
    Ok(created(ExportDto::from(e)))
}

/// One export of the organisation.
#[utoipa::path(
    get,
    path = "/api/v1/exports/{id}",
    tag = "exports",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Export id")),
    responses(
        (status = 200, description = "The export", body = ExportDto),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The caller's roles do not allow it", body = ErrorBody),
        (status = 404, description = "No such export in the organisation", body = ErrorBody),
    ),
)]
async fn get_export(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExportDto>, WebError> {
    let id: ExportId = path_id(&id)?;
    let e = st.store.export(caller.scope(), id).await.or_api()?;
    Ok(Json(e.into()))
}

/// Approve or refuse an export asked for by someone else.
#[utoipa::path(
    post,
    path = "/api/v1/exports/{id}/decision",
    tag = "exports",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Export id")),
    request_body = ExportDecisionRequest,
    responses(
        (status = 200, description = "The export, approved or refused", body = ExportDto),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The caller asked for it (code `not_allowed`), or their roles do not allow it", body = ErrorBody),
        (status = 404, description = "No such export in the organisation", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
    ),
)]
async fn decide_export(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExportDecisionRequest>,
) -> Result<Json<ExportDto>, WebError> {
    let id: ExportId = path_id(&id)?;
    let e = st
        .store
        .decide_export(caller.actor(), caller.scope(), id, req.approve)
        .await
        .or_api()?;
    tracing::info!(export = %e.id, state = %e.state, user = %caller.user, "api: export decided");
    Ok(Json(e.into()))
}

/// Collect an approved export, once: the cases as JSON, encrypted to the passphrase given
/// (Argon2id, XChaCha20-Poly1305). Decrypt with `refuge export decrypt FILE`.
#[utoipa::path(
    post,
    path = "/api/v1/exports/{id}/collect",
    tag = "exports",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Export id")),
    request_body = CollectRequest,
    responses(
        (status = 200, description = "The encrypted export file", content_type = "application/octet-stream", body = FileBytes),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not approved yet, expired, or asked for by someone else (code `not_allowed`); or the caller's roles do not allow it", body = ErrorBody),
        (status = 404, description = "No such export in the organisation", body = ErrorBody),
        (status = 409, description = "Already collected or refused", body = ErrorBody),
        (status = 422, description = "The passphrase is too weak", body = ErrorBody),
    ),
)]
async fn collect_export(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CollectRequest>,
) -> Result<Response, WebError> {
    let id: ExportId = path_id(&id)?;
    let pass = SecretString::new(req.passphrase);
    let file = st
        .store
        .collect_export(caller.actor(), caller.scope(), id, &pass)
        .await
        .or_api()?;
    tracing::info!(export = %id, user = %caller.user, cases = file.cases, "api: export collected");
    Ok(crate::export_file_response(file))
}

// ------------------------------------------------------------------------------ instance

/// Every organisation of the instance (to refer cases to).
#[utoipa::path(
    get,
    path = "/api/v1/organisations",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The organisations", body = OrganisationsList),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
)]
async fn organisations(
    _caller: Caller,
    State(st): State<AppState>,
) -> Result<Json<OrganisationsList>, WebError> {
    let orgs = st.store.organisations().await.or_api()?;
    Ok(Json(OrganisationsList {
        organisations: orgs.into_iter().map(Into::into).collect(),
    }))
}

/// Who the token names: user, organisation and roles.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
)]
async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        user_id: caller.user.to_string(),
        organisation_id: caller.org.to_string(),
        roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(),
    })
}

/// Revoke the token this request carries, at once. (Other tokens: `refuge token revoke`.)
#[utoipa::path(
    delete,
    path = "/api/v1/token",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked: the token no longer works"),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
)]
async fn revoke_token(caller: Caller, State(st): State<AppState>) -> Result<StatusCode, WebError> {
    let result = st
        .store
        .revoke_api_token(caller.actor(), caller.scope(), caller.token_hash)
        .await;
    st.api_tokens.forget(&caller.token_hash);
    result.or_api()?;
    tracing::info!(user = %caller.user, "api: token revoked by its holder");
    Ok(StatusCode::NO_CONTENT)
}

/// This API's OpenAPI 3.1 document, generated from its handlers.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
)]
async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        doc.0,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::sync::atomic::AtomicU8);

    impl Entropy for Counter {
        fn fill(&self, buf: &mut [u8]) -> Result<(), CryptoError> {
            for b in buf {
                *b = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        }
    }

    #[test]
    fn tokens_have_one_shape_and_hash_to_what_the_store_keeps() {
        let (token, hash) = new_api_token(&Counter(0.into())).unwrap();
        let t = token.expose();
        assert!(t.starts_with("rf_") && t.len() == 46, "{t}");
        assert_eq!(api_token_hash(t), Some(hash));
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
        for bad in [
            "",
            "rf_",
            "rf_short",
            &t[1..],
            &format!("{t}x"),
            &t.replace("rf_", "RF_"),
        ] {
            assert_eq!(api_token_hash(bad), None, "{bad}");
        }
        let (other, _) = new_api_token(&Counter(7.into())).unwrap();
        assert_ne!(other.expose(), t);
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            n: u8,
        }
        let e = parse_json::<Outer>(b"{\"inner\": {\"n\": 300}}").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.field.as_deref()),
            (422, Some("inner.n"))
        );
        let e = parse_json::<Outer>(b"{\"inner\": {}}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.n"));
        let e = parse_json::<Outer>(b"{}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner"));
        let e = parse_json::<Outer>(b"{\"inner\": {\"n\": 1}, \"x\": 1}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("x"));
        let e = parse_json::<Outer>(b"{\"inner\": ").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "bad_request"));
        let e = parse_json::<Outer>(b"{\"inner\": {\"n\": 1}} trailing").unwrap_err();
        assert_eq!(e.code, "bad_request");
        let e = parse_json::<Outer>(b"  ").unwrap_err();
        assert_eq!(e.code, "bad_request");
    }

    #[test]
    fn file_names_are_reduced_to_harmless_ones() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\x\\a b.pdf"), "a_b.pdf");
        assert_eq!(clean_file_name(".."), "upload");
        assert_eq!(clean_file_name(""), "upload");
    }
}

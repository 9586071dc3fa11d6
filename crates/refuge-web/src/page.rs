//! What every page shares: the header (language switcher, sign-out), rendering, errors.

use crate::i18n::{LANGS, Tr, native_name};
use crate::session::{self, Who};
use crate::{AppState, Ctx};
use askama::Template;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

/// A link of the language switcher.
pub struct LangLink {
    /// Code.
    pub code: &'static str,
    /// Its own name.
    pub name: &'static str,
    /// The current page in that language.
    pub href: String,
    /// Whether it is the page's language.
    pub current: bool,
}

/// The frame of a page.
pub struct Page {
    pub lang: &'static str,
    pub title: String,
    pub face: &'static str,
    pub home: &'static str,
    pub langs: Vec<LangLink>,
    pub language_label: String,
    pub signed_in: Option<String>,
    pub signout_action: &'static str,
    pub signout_label: String,
    pub csrf: String,
    pub footer: String,
    /// Staff navigation: (href, label, current).
    pub nav: Vec<(String, String, bool)>,
}

impl Page {
    /// The frame for `ctx`, titled with message `title_key`.
    pub fn new(ctx: &Ctx, t: &Tr<'_>, title: String) -> Page {
        let staff = ctx.path.starts_with("/staff");
        let switch_path = if ctx.method == axum::http::Method::GET {
            ctx.path.clone()
        } else if staff {
            "/staff".to_owned()
        } else {
            "/".to_owned()
        };
        let langs = LANGS
            .iter()
            .map(|code| LangLink {
                code,
                name: native_name(code),
                href: format!("{switch_path}?lang={code}"),
                current: *code == ctx.lang,
            })
            .collect();
        let nav = match ctx.session.as_ref().map(|s| &s.who) {
            Some(Who::Staff { roles, .. }) => {
                use crate::policy::{Action, allows};
                let cases = allows(roles, Action::ReadCases);
                let admin = allows(roles, Action::AdministerUsers);
                let exports = allows(roles, Action::ReviewExports);
                [
                    ("/staff", "nav-queue", cases),
                    ("/staff/deadlines", "nav-deadlines", cases),
                    ("/staff/referrals", "nav-referrals", cases),
                    ("/staff/exports", "nav-exports", exports),
                    ("/staff/admin", "nav-admin", admin),
                ]
                .into_iter()
                .filter(|(_, _, show)| *show)
                .map(|(href, key, _)| (href.to_owned(), t.get(key), ctx.path == href))
                .collect()
            }
            _ => Vec::new(),
        };
        let (signed_in, signout_action) = match ctx.session.as_ref().map(|s| &s.who) {
            Some(Who::Staff { .. }) => (Some(t.get("signed-in-staff")), "/staff/logout"),
            Some(Who::Applicant { .. }) => (Some(t.get("signed-in-applicant")), "/my-case/leave"),
            _ => (None, ""),
        };
        Page {
            lang: ctx.lang,
            title,
            face: if staff { "staff" } else { "portal" },
            home: if staff { "/staff" } else { "/" },
            langs,
            language_label: t.get("language"),
            signed_in,
            signout_action,
            signout_label: t.get("sign-out"),
            csrf: ctx
                .session
                .as_ref()
                .map(|s| s.csrf.clone())
                .unwrap_or_default(),
            footer: t.get("footer"),
            nav,
        }
    }
}

/// Render a template as an HTML response, remembering an explicitly chosen language.
pub fn html(ctx: &Ctx, status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(b) => {
            let mut res = (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                b,
            )
                .into_response();
            if ctx.lang_chosen {
                let c = format!(
                    "refuge-lang={}; Path=/; Secure; SameSite=Strict; Max-Age=31536000",
                    ctx.lang
                );
                if let Ok(v) = HeaderValue::from_str(&c) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Add a session cookie to a response, if there is one to set.
pub fn with_cookie<'a>(mut res: Response, cookie: impl Into<Option<&'a str>>) -> Response {
    if let Some(v) = cookie.into().and_then(|c| HeaderValue::from_str(c).ok()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// A 303 redirect (after a form).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Make sure the request has a session (to carry a CSRF token for the page's forms): the
/// context gains it, and the cookie to set is returned.
pub fn ensure_session(st: &AppState, ctx: &mut Ctx) -> Result<Option<String>, WebError> {
    if ctx.session.is_some() {
        return Ok(None);
    }
    let (token, s) = st
        .sessions
        .create(Who::Anonymous, st.clock.now(), st.entropy.as_ref())
        .map_err(|_| WebError::internal())?;
    ctx.token = Some(token.clone());
    ctx.session = Some(s);
    Ok(Some(session::cookie(&token)))
}

/// An error shown to the user: a status, a stable code, a translated message and, for bad
/// input, the field at fault.
#[derive(Debug, Clone)]
pub struct WebError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// Message key in `locales/`.
    pub key: &'static str,
    /// The form field at fault.
    pub field: Option<String>,
    /// Detail (never personal data).
    pub detail: Option<String>,
}

impl WebError {
    /// An error.
    pub fn new(status: StatusCode, code: &'static str, key: &'static str) -> Self {
        WebError {
            status,
            code,
            key,
            field: None,
            detail: None,
        }
    }

    /// Not found (also for what exists but is not the caller's: the two look the same).
    pub fn not_found() -> Self {
        WebError::new(StatusCode::NOT_FOUND, "not_found", "error-not-found")
    }

    /// The caller may not do this (a role is missing).
    pub fn forbidden() -> Self {
        WebError::new(StatusCode::FORBIDDEN, "forbidden", "error-forbidden")
    }

    /// Something failed inside; details go to the log by id only.
    pub fn internal() -> Self {
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "error-internal",
        )
    }

    /// Bad input in a field.
    pub fn bad_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            key: "error-invalid",
            field: Some(field.into()),
            detail: Some(detail.into()),
        }
    }

    /// The error as a page.
    pub fn render(&self, st: &AppState, ctx: &Ctx) -> Response {
        let t = Tr::new(&st.i18n, ctx.lang);
        let page = Page::new(ctx, &t, t.get("error-title"));
        // Pages show only translated text: the question at fault when the field is one, never
        // the English detail (which the API returns).
        let field = self
            .field
            .as_ref()
            .map(|f| format!("q-{}", f.replace('_', "-")))
            .filter(|k| st.i18n.has(ctx.lang, k))
            .map(|k| t.get(&k));
        let tpl = ErrorPage {
            page,
            message: t.get(self.key),
            field,
            back: t.get("go-back"),
        };
        html(ctx, self.status, tpl.render())
    }
}

/// A handler's error becomes an empty response carrying the error; [`render_errors`] then
/// renders it as a page in the request's language, or as JSON under `/api/`.
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(self);
        res
    }
}

/// Middleware: render errors carried by responses (see [`WebError`]'s `IntoResponse`).
pub async fn render_errors(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = req.into_parts();
    let ctx = match Ctx::from_request_parts(&mut parts, &st).await {
        Ok(c) => c,
        Err(never) => match never {},
    };
    let res = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    let Some(err) = res.extensions().get::<WebError>().cloned() else {
        return res;
    };
    if ctx.path.starts_with("/api/") {
        err.json(&st, ctx.lang)
    } else {
        err.render(&st, &ctx)
    }
}

impl WebError {
    /// The error as the API's JSON: `{"error": {"code", "message", "field"}}`.
    pub fn json(&self, st: &AppState, lang: &'static str) -> Response {
        let t = Tr::new(&st.i18n, lang);
        let mut message = t.get(self.key);
        if let Some(d) = &self.detail {
            message = format!("{message} {d}");
        }
        let body = serde_json::json!({
            "error": { "code": self.code, "message": message, "field": self.field }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<refuge_store::StoreError> for WebError {
    fn from(e: refuge_store::StoreError) -> Self {
        use refuge_store::StoreError as E;
        match e {
            E::NotFound { .. } => WebError::not_found(),
            E::Conflict { .. } => WebError::new(StatusCode::CONFLICT, "conflict", "error-conflict"),
            E::Transition(_) => {
                WebError::new(StatusCode::CONFLICT, "transition", "error-transition")
            }
            E::Duplicate(_) => WebError::new(StatusCode::CONFLICT, "duplicate", "error-duplicate"),
            E::AlreadyDone { .. } => {
                WebError::new(StatusCode::CONFLICT, "already_done", "error-already-done")
            }
            E::Invalid { field, message } => WebError::bad_field(field, message),
            E::NotAllowed(why) => WebError {
                detail: Some(why.to_owned()),
                ..WebError::new(StatusCode::FORBIDDEN, "not_allowed", "error-not-allowed")
            },
            other => {
                tracing::error!(error = %other, "store error");
                WebError::internal()
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Page,
    message: String,
    field: Option<String>,
    back: String,
}

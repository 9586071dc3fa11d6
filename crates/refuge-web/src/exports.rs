//! The staff page for exports: ask for cases to be exported, approve or refuse what a
//! colleague asked for, and collect an approved export as a file encrypted to a passphrase.
//! Who may reach each route is in `crate::policy`; the store enforces the rest (a second
//! person decides, only the requester collects, once).

use crate::i18n::Tr;
use crate::page::{Page, html, see_other};
use crate::portal::when;
use crate::workspace::{StaffPost, staff};
use crate::{AppState, Ctx, WebError, field};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use refuge_core::casework::{EXPORT_COLLECT_WITHIN_HOURS, ExportState};
use refuge_core::event::Actor;
use refuge_core::ids::{ExportId, OrgId, UserId};
use refuge_core::org::Role;
use refuge_core::text::Text;
use refuge_crypto::{MIN_EXPORT_PASSPHRASE_CHARS, SecretString};
use refuge_store::{CaseKey, Scope};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff/exports", get(exports).post(request))
        .route("/staff/exports/{id}/decision", post(decide))
        .route("/staff/exports/{id}/collect", post(collect))
}

struct ExportRow {
    id: String,
    at: String,
    requested_by: String,
    purpose: String,
    cases: usize,
    state: String,
    decided_by: String,
    /// The viewer may approve or refuse it.
    decide: bool,
    /// The viewer asked for it and may collect it now.
    collect: bool,
    /// The viewer asked for it and it waits for someone else.
    own_pending: bool,
}

#[derive(Template)]
#[template(path = "staff_exports.html")]
struct ExportsPage {
    page: Page,
    notice: Option<String>,
    rows: Vec<ExportRow>,
    may_request: bool,
    min_passphrase: usize,
    t_intro: String,
    t_new: String,
    t_cases: String,
    t_purpose: String,
    t_submit: String,
    t_none: String,
    t_approve: String,
    t_refuse: String,
    t_passphrase: String,
    t_collect: String,
    t_decrypt: String,
    t_own: String,
    col_date: String,
    col_by: String,
    col_purpose: String,
    col_cases: String,
    col_state: String,
    col_decided: String,
}

async fn exports(ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let Some((user, org, roles)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    render(&st, &ctx, user, org, &roles, None).await
}

async fn render(
    st: &AppState,
    ctx: &Ctx,
    me: UserId,
    org: OrgId,
    roles: &[Role],
    notice: Option<String>,
) -> Result<Response, WebError> {
    use crate::policy::{Action, allows};
    let t = Tr::new(&st.i18n, ctx.lang);
    let scope = Scope::Organisation(org);
    let names: HashMap<UserId, String> = st
        .store
        .users(scope)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name.as_str().to_owned()))
        .collect();
    let name = |a: Option<Actor>| match a {
        Some(Actor::User(u)) => names.get(&u).cloned().unwrap_or_else(|| u.to_string()),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let may_review = allows(roles, Action::ReviewExports);
    let may_request = allows(roles, Action::RequestExports);
    let rows = st
        .store
        .exports(scope)
        .await?
        .into_iter()
        .map(|e| {
            let mine = e.requested_by == me;
            ExportRow {
                id: e.id.to_string(),
                at: when(e.created_at),
                requested_by: name(Some(Actor::User(e.requested_by))),
                purpose: e.purpose.as_str().to_owned(),
                cases: e.cases.len(),
                state: t.key2("export", e.state.as_str()),
                decided_by: name(e.decided_by),
                decide: may_review && !mine && e.state == ExportState::Requested,
                collect: may_request && mine && e.state == ExportState::Approved,
                own_pending: mine && e.state == ExportState::Requested,
            }
        })
        .collect();
    let tpl = ExportsPage {
        page: Page::new(ctx, &t, t.get("exports-title")),
        notice,
        rows,
        may_request,
        min_passphrase: MIN_EXPORT_PASSPHRASE_CHARS,
        t_intro: t.arg("exports-intro", "hours", EXPORT_COLLECT_WITHIN_HOURS),
        t_new: t.get("exports-new"),
        t_cases: t.get("exports-cases"),
        t_purpose: t.get("exports-purpose"),
        t_submit: t.get("exports-submit"),
        t_none: t.get("exports-none"),
        t_approve: t.get("export-approve"),
        t_refuse: t.get("export-refuse"),
        t_passphrase: t.arg("export-passphrase", "min", MIN_EXPORT_PASSPHRASE_CHARS),
        t_collect: t.get("export-collect"),
        t_decrypt: t.get("export-decrypt-help"),
        t_own: t.get("export-own"),
        col_date: t.get("col-requested"),
        col_by: t.get("col-requested-by"),
        col_purpose: t.get("col-purpose"),
        col_cases: t.get("col-cases"),
        col_state: t.get("queue-state"),
        col_decided: t.get("col-decided-by"),
    };
    Ok(html(ctx, StatusCode::OK, tpl.render()))
}

/// Case references or ids, separated by spaces, commas or new lines.
fn case_keys(text: &str) -> Result<Vec<CaseKey>, WebError> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<CaseKey>().map_err(|_| {
                WebError::bad_field(
                    "cases",
                    "expected case references (RF-…) or ids, one per line",
                )
            })
        })
        .collect()
}

async fn request(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let Some((user, org, roles)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let cases = case_keys(field(&pairs, "cases").unwrap_or_default())?;
    let purpose: Text = field(&pairs, "purpose")
        .unwrap_or_default()
        .parse()
        .map_err(|_| {
            WebError::bad_field("purpose", "say why the cases are exported and for whom")
        })?;
    let e = st
        .store
        .request_export(Actor::User(user), Scope::Organisation(org), &cases, purpose)
        .await?;
    tracing::info!(export = %e.id, user = %user, "export requested");
    let t = Tr::new(&st.i18n, ctx.lang);
    render(
        &st,
        &ctx,
        user,
        org,
        &roles,
        Some(t.get("done-export-requested")),
    )
    .await
}

async fn decide(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let post = match StaffPost::<ExportId>::read(&ctx, &body, &id) {
        Ok(p) => p,
        Err(answer) => return Ok(*answer),
    };
    let approve = post.choice("decision", "approve", "refuse")?;
    let (user, org, roles) = (post.user, post.org, post.roles);
    st.store
        .decide_export(
            Actor::User(user),
            Scope::Organisation(org),
            post.id,
            approve,
        )
        .await?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let key = if approve {
        "done-export-approved"
    } else {
        "done-export-refused"
    };
    render(&st, &ctx, user, org, &roles, Some(t.get(key))).await
}

async fn collect(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let post = match StaffPost::<ExportId>::read(&ctx, &body, &id) {
        Ok(p) => p,
        Err(answer) => return Ok(*answer),
    };
    let (user, org, id) = (post.user, post.org, post.id);
    let pass = SecretString::new(
        field(&post.pairs, "passphrase")
            .unwrap_or_default()
            .to_owned(),
    );
    drop(post);
    let file = st
        .store
        .collect_export(Actor::User(user), Scope::Organisation(org), id, &pass)
        .await?;
    tracing::info!(export = %id, user = %user, cases = file.cases, "export collected");
    Ok(crate::export_file_response(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lists_split_on_spaces_commas_and_lines() {
        let keys = case_keys("RF-0K3M-Q9TD-2XAB,\n RF-0K3M-Q9TD-2XAC ; ").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(case_keys("RF-0K3M-Q9TD-2XAB nonsense").is_err());
        assert!(case_keys("").unwrap().is_empty());
    }
}

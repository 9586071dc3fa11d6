//! More of the staff workspace: deadlines (a page and an iCalendar file), referrals between
//! organisations with the person's consent, and user administration for organisation admins.

use crate::i18n::Tr;
use crate::page::{Page, html, see_other};
use crate::portal::when;
use crate::session::Who;
use crate::{AppState, Ctx, WebError, field};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use refuge_core::case::{Deadline, DeadlineKind, Urgency};
use refuge_core::event::Actor;
use refuge_core::ids::{DeadlineId, OrgId, ReferralId, UserId};
use refuge_core::org::{Login, Role};
use refuge_core::text::Label;
use refuge_crypto::SecretString;
use refuge_store::{ReferralState, Scope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff/deadlines", get(deadlines))
        .route("/staff/deadlines.ics", get(deadlines_ics))
        .route("/staff/deadlines/{id}/done", post(deadline_done))
        .route("/staff/referrals", get(referrals))
        .route("/staff/referrals/{id}/answer", post(referral_answer))
        .route("/staff/admin", get(admin))
        .route("/staff/admin/users", post(admin_create_user))
        .route("/staff/admin/users/{id}/disabled", post(admin_set_disabled))
        .route("/staff/admin/organisations", post(admin_create_org))
}

/// The signed-in staff user.
pub fn staff(ctx: &Ctx) -> Option<(UserId, OrgId, Vec<Role>)> {
    match ctx.session.as_ref().map(|s| &s.who) {
        Some(Who::Staff { user, org, roles }) => Some((*user, *org, roles.clone())),
        _ => None,
    }
}

/// A staff form posted about one record: its CSRF-checked fields, who posted it, and the
/// record's id from the path.
pub(crate) struct StaffPost<I> {
    pub pairs: Vec<(String, String)>,
    pub user: UserId,
    pub org: OrgId,
    pub roles: Vec<Role>,
    pub id: I,
}

impl<I: std::str::FromStr> StaffPost<I> {
    /// Check the form's CSRF token, then the staff session, then the id (one that does not
    /// parse is not found). `Err` is the answer to send instead: the error, or a redirect to
    /// sign in.
    pub(crate) fn read(ctx: &Ctx, body: &[u8], id: &str) -> Result<Self, Box<Response>> {
        let pairs = crate::csrf_form(ctx, body).map_err(|e| Box::new(e.into_response()))?;
        let Some((user, org, roles)) = staff(ctx) else {
            return Err(Box::new(see_other("/staff/login")));
        };
        let id = id
            .parse()
            .map_err(|_| Box::new(WebError::not_found().into_response()))?;
        Ok(Self {
            pairs,
            user,
            org,
            roles,
            id,
        })
    }

    /// A field that must be one of two answers: `Ok(true)` for `yes`, `Ok(false)` for `no`.
    pub(crate) fn choice(&self, name: &'static str, yes: &str, no: &str) -> Result<bool, WebError> {
        match field(&self.pairs, name) {
            Some(v) if v == yes => Ok(true),
            Some(v) if v == no => Ok(false),
            _ => Err(WebError::bad_field(name, format!("{yes} or {no}"))),
        }
    }
}

struct DeadlineRow {
    id: String,
    case_id: String,
    kind: String,
    due: String,
    days: i64,
}

struct DeadlineGroup {
    title: String,
    rows: Vec<DeadlineRow>,
}

#[derive(Template)]
#[template(path = "staff_deadlines.html")]
struct DeadlinesPage {
    page: Page,
    notice: Option<String>,
    groups: Vec<DeadlineGroup>,
    ics_label: String,
    col_case: String,
    col_kind: String,
    col_due: String,
    col_days: String,
    done_label: String,
    empty: String,
}

/// Open deadlines of the scope due within 30 days (or overdue), soonest first.
async fn due_soon(st: &AppState, scope: Scope) -> Result<Vec<Deadline>, WebError> {
    let today = st.clock.today();
    let limit = today.checked_add(time::Duration::days(31)).unwrap_or(today);
    Ok(st.store.deadlines(scope, Some(limit), false).await?)
}

async fn deadlines(ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let Some((_, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    render_deadlines(&st, &ctx, org, None).await
}

async fn render_deadlines(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
    notice: Option<String>,
) -> Result<Response, WebError> {
    let t = Tr::new(&st.i18n, ctx.lang);
    let today = st.clock.today();
    let all = due_soon(st, Scope::Organisation(org)).await?;
    let mut groups: Vec<DeadlineGroup> = [
        (Urgency::Overdue, "deadlines-overdue"),
        (Urgency::Within7Days, "deadlines-7"),
        (Urgency::Within30Days, "deadlines-30"),
    ]
    .into_iter()
    .map(|(u, key)| DeadlineGroup {
        title: t.get(key),
        rows: all
            .iter()
            .filter(|d| d.urgency(today) == u)
            .map(|d| DeadlineRow {
                id: d.id.to_string(),
                case_id: d.case_id.to_string(),
                kind: t.key2("deadline", d.kind.as_str()),
                due: d.due_on.to_string(),
                days: d.days_until(today),
            })
            .collect(),
    })
    .collect();
    groups.retain(|g| !g.rows.is_empty());
    let tpl = DeadlinesPage {
        page: Page::new(ctx, &t, t.get("deadlines-title")),
        notice,
        groups,
        ics_label: t.get("deadlines-ics"),
        col_case: t.get("col-case"),
        col_kind: t.get("col-kind"),
        col_due: t.get("col-due"),
        col_days: t.get("col-days"),
        done_label: t.get("deadline-done"),
        empty: t.get("deadlines-empty"),
    };
    Ok(html(ctx, StatusCode::OK, tpl.render()))
}

/// Escape text for an iCalendar value (RFC 5545 §3.3.11).
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// The organisation's open deadlines as an iCalendar file: one all-day event per deadline,
/// named by its kind and the case id only (never a name or a note).
async fn deadlines_ics(ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let Some((_, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let t = Tr::new(&st.i18n, ctx.lang);
    let all = st
        .store
        .deadlines(Scope::Organisation(org), None, false)
        .await?;
    let stamp = st
        .clock
        .now()
        .to_datetime()
        .map(|d| {
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            )
        })
        .unwrap_or_default();
    let day = |d: time::Date| format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//refuge//deadlines//EN\r\nCALSCALE:GREGORIAN\r\n",
    );
    for d in &all {
        let next = d.due_on.next_day().unwrap_or(d.due_on);
        out.push_str("BEGIN:VEVENT\r\n");
        out.push_str(&format!("UID:{}@refuge\r\n", d.id));
        out.push_str(&format!("DTSTAMP:{stamp}\r\n"));
        out.push_str(&format!("DTSTART;VALUE=DATE:{}\r\n", day(d.due_on)));
        out.push_str(&format!("DTEND;VALUE=DATE:{}\r\n", day(next)));
        out.push_str(&format!(
            "SUMMARY:{}\r\n",
            ics_text(&format!(
                "{} ({})",
                t.key2("deadline", d.kind.as_str()),
                d.case_id
            ))
        ));
        out.push_str("END:VEVENT\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"refuge-deadlines.ics\"",
            ),
        ],
        out,
    )
        .into_response())
}

async fn deadline_done(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let post = match StaffPost::<DeadlineId>::read(&ctx, &body, &id) {
        Ok(p) => p,
        Err(answer) => return Ok(*answer),
    };
    let org = post.org;
    st.store
        .complete_deadline(Actor::User(post.user), Scope::Organisation(org), post.id)
        .await?;
    let t = Tr::new(&st.i18n, ctx.lang);
    render_deadlines(&st, &ctx, org, Some(t.get("done-deadline"))).await
}

/// A deadline kind from a form.
pub fn deadline_kind(s: &str) -> Result<DeadlineKind, WebError> {
    s.parse()
        .map_err(|_| WebError::bad_field("kind", "not a deadline kind"))
}

struct ReferralRow {
    id: String,
    case_id: String,
    reference: String,
    pseudonym: String,
    org: String,
    state: String,
    pending: bool,
    consent: String,
    at: String,
}

#[derive(Template)]
#[template(path = "staff_referrals.html")]
struct ReferralsPage {
    page: Page,
    notice: Option<String>,
    incoming: Vec<ReferralRow>,
    sent: Vec<ReferralRow>,
    t_incoming: String,
    t_sent: String,
    t_none: String,
    t_accept: String,
    t_decline: String,
    t_consent: String,
    col_case: String,
    col_org: String,
    col_state: String,
    col_date: String,
}

async fn referrals(ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let Some((_, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    render_referrals(&st, &ctx, org, None).await
}

async fn render_referrals(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
    notice: Option<String>,
) -> Result<Response, WebError> {
    let t = Tr::new(&st.i18n, ctx.lang);
    let orgs = st.store.organisations().await?;
    let name = |id: OrgId| {
        orgs.iter()
            .find(|o| o.id == id)
            .map_or_else(|| id.to_string(), |o| o.name.as_str().to_owned())
    };
    let all = st.store.referrals(Scope::Organisation(org)).await?;
    let row = |r: &refuge_store::Referral, other: OrgId| ReferralRow {
        id: r.id.to_string(),
        case_id: r.case_id.to_string(),
        reference: r.case_reference.to_string(),
        pseudonym: r
            .pseudonym
            .as_ref()
            .map_or_else(String::new, |p| p.as_str().to_owned()),
        org: name(other),
        state: t.key2("referral", r.state.as_str()),
        pending: r.state == ReferralState::Pending,
        consent: r
            .consent
            .as_ref()
            .map_or_else(String::new, |c| c.as_str().to_owned()),
        at: when(r.created_at),
    };
    let incoming = all
        .iter()
        .filter(|r| r.to_org == org)
        .map(|r| row(r, r.from_org))
        .collect();
    let sent = all
        .iter()
        .filter(|r| r.from_org == org)
        .map(|r| row(r, r.to_org))
        .collect();
    let tpl = ReferralsPage {
        page: Page::new(ctx, &t, t.get("referrals-title")),
        notice,
        incoming,
        sent,
        t_incoming: t.get("referrals-incoming"),
        t_sent: t.get("referrals-sent"),
        t_none: t.get("none"),
        t_accept: t.get("referral-accept"),
        t_decline: t.get("referral-decline"),
        t_consent: t.get("referral-consent"),
        col_case: t.get("col-case"),
        col_org: t.get("col-organisation"),
        col_state: t.get("queue-state"),
        col_date: t.get("col-created"),
    };
    Ok(html(ctx, StatusCode::OK, tpl.render()))
}

async fn referral_answer(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let post = match StaffPost::<ReferralId>::read(&ctx, &body, &id) {
        Ok(p) => p,
        Err(answer) => return Ok(*answer),
    };
    let accept = post.choice("answer", "accept", "decline")?;
    let org = post.org;
    st.store
        .answer_referral(
            Actor::User(post.user),
            Scope::Organisation(org),
            post.id,
            accept,
        )
        .await?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let key = if accept {
        "done-referral-accepted"
    } else {
        "done-referral-declined"
    };
    render_referrals(&st, &ctx, org, Some(t.get(key))).await
}

struct UserRow {
    id: String,
    login: String,
    name: String,
    roles: String,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "staff_admin.html")]
struct AdminPage {
    page: Page,
    notice: Option<String>,
    created: Option<(String, String, String, String)>,
    users: Vec<UserRow>,
    roles: Vec<(String, String)>,
    instance_admin: bool,
    orgs: Vec<(String, String, String)>,
    kinds: Vec<(String, String)>,
    t_orgs: String,
    t_new_org: String,
    t_org_name: String,
    t_org_kind: String,
    t_users: String,
    t_new: String,
    t_login: String,
    t_name: String,
    t_roles: String,
    t_create: String,
    t_disable: String,
    t_enable: String,
    t_disabled: String,
    t_created: String,
    t_password: String,
    t_totp: String,
}

async fn admin(ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    // Only administrators reach this (crate::policy).
    let Some((_, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    render_admin(&st, &ctx, org, None, None).await
}

const ASSIGNABLE: [Role; 4] = [
    Role::Counsellor,
    Role::Caseworker,
    Role::DecisionMaker,
    Role::OrgAdmin,
];

async fn render_admin(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
    notice: Option<String>,
    created: Option<(String, String, String, String)>,
) -> Result<Response, WebError> {
    let t = Tr::new(&st.i18n, ctx.lang);
    let users = st
        .store
        .users(Scope::Organisation(org))
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id.to_string(),
            login: u.login.as_str().to_owned(),
            name: u.display_name.as_str().to_owned(),
            roles: u
                .roles
                .iter()
                .map(|r| t.key2("role", r.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            disabled: u.disabled,
        })
        .collect();
    let instance_admin = staff(ctx).is_some_and(|(_, _, r)| r.contains(&Role::InstanceAdmin));
    let orgs = if instance_admin {
        st.store
            .organisations()
            .await?
            .into_iter()
            .map(|o| {
                (
                    o.id.to_string(),
                    o.name.as_str().to_owned(),
                    t.key2("org-kind", o.kind.as_str()),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let tpl = AdminPage {
        page: Page::new(ctx, &t, t.get("admin-title")),
        notice,
        created,
        users,
        instance_admin,
        orgs,
        kinds: ["ngo", "embassy", "authority"]
            .iter()
            .map(|k| ((*k).to_owned(), t.key2("org-kind", k)))
            .collect(),
        t_orgs: t.get("admin-organisations"),
        t_new_org: t.get("admin-new-organisation"),
        t_org_name: t.get("admin-organisation-name"),
        t_org_kind: t.get("col-kind"),
        roles: ASSIGNABLE
            .iter()
            .map(|r| (r.as_str().to_owned(), t.key2("role", r.as_str())))
            .collect(),
        t_users: t.get("admin-users"),
        t_new: t.get("admin-new-user"),
        t_login: t.get("staff-login-name"),
        t_name: t.get("admin-display-name"),
        t_roles: t.get("admin-roles"),
        t_create: t.get("admin-create"),
        t_disable: t.get("admin-disable"),
        t_enable: t.get("admin-enable"),
        t_disabled: t.get("admin-disabled"),
        t_created: t.get("admin-created"),
        t_password: t.get("staff-login-password"),
        t_totp: t.get("admin-totp"),
    };
    Ok(html(ctx, StatusCode::OK, tpl.render()))
}

async fn admin_create_user(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let Some((user, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let login: Login = field(&pairs, "login")
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| {
            WebError::bad_field("login", "2-64 lower-case letters, digits, '.', '_' or '-'")
        })?;
    let name: Label = crate::parsed_field(&pairs, "name")?;
    let chosen: Vec<Role> = ASSIGNABLE
        .into_iter()
        .filter(|r| pairs.iter().any(|(k, v)| k == "role" && v == r.as_str()))
        .collect();
    if chosen.is_empty() {
        return Err(WebError::bad_field("role", "choose at least one role"));
    }
    let actor = Actor::User(user);
    let new = st
        .store
        .create_user(actor, org, login.clone(), name, chosen)
        .await?;
    // A first password and TOTP secret, shown to the administrator once.
    let mut raw = [0u8; 15];
    st.entropy
        .fill(&mut raw)
        .map_err(|_| WebError::internal())?;
    let password = crate::totp::base32(&raw).to_lowercase();
    let secret = crate::totp::enrol(
        st.store.as_ref(),
        st.entropy.as_ref(),
        actor,
        new.id,
        &SecretString::new(password.clone()),
    )
    .await?;
    let uri = crate::totp::uri(secret.expose(), "refuge", login.as_str());
    let b32 = crate::totp::base32(secret.expose());
    tracing::info!(user = %new.id, "staff user created");
    render_admin(
        &st,
        &ctx,
        org,
        None,
        Some((login.as_str().to_owned(), password, b32, uri)),
    )
    .await
}

async fn admin_set_disabled(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let post = match StaffPost::<UserId>::read(&ctx, &body, &id) {
        Ok(p) => p,
        Err(answer) => return Ok(*answer),
    };
    let (user, org, target) = (post.user, post.org, post.id);
    let disabled = field(&post.pairs, "disabled") == Some("yes");
    if target == user && disabled {
        return Err(WebError::bad_field(
            "disabled",
            "you cannot disable yourself",
        ));
    }
    st.store
        .set_user_disabled(
            Actor::User(user),
            Scope::Organisation(org),
            target,
            disabled,
        )
        .await?;
    if disabled {
        st.sessions.end_user(target);
        st.api_tokens.forget_user(target);
    }
    let t = Tr::new(&st.i18n, ctx.lang);
    let key = if disabled {
        "done-user-disabled"
    } else {
        "done-user-enabled"
    };
    render_admin(&st, &ctx, org, Some(t.get(key)), None).await
}

async fn admin_create_org(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let Some((user, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let kind: refuge_core::org::OrganisationKind = field(&pairs, "kind")
        .unwrap_or("")
        .parse()
        .map_err(|_| WebError::bad_field("kind", "ngo, embassy or authority"))?;
    let name: Label = crate::parsed_field(&pairs, "name")?;
    st.store
        .create_organisation(Actor::User(user), kind, name)
        .await?;
    let t = Tr::new(&st.i18n, ctx.lang);
    render_admin(
        &st,
        &ctx,
        org,
        Some(t.get("done-organisation-created")),
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ics_text_is_escaped() {
        assert_eq!(ics_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}

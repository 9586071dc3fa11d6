//! The staff workspace: sign-in with password and TOTP, the queue, the case page with the
//! explained rule result for every programme, and the actions on a case. An organisation sees
//! only its own cases and those referred to it (the store enforces it).

use crate::i18n::Tr;
use crate::page::{Page, ensure_session, html, see_other, with_cookie};
use crate::portal::{fact_rows, when};
use crate::session::{self, Who};
use crate::throttle::Verdict;
use crate::{AppState, Ctx, WebError, field};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use refuge_core::application::{Application, ApplicationState, Decision, Move, ProgrammeId};
use refuge_core::event::Actor;
use refuge_core::ids::{ApplicationId, CaseId, EvidenceId, OrgId};
use refuge_core::org::{Login, Role};
use refuge_core::text::{Label, Text};
use refuge_crypto::SecretString;
use refuge_rules::programme::decide;
use refuge_store::{CaseKey, MessageKind, QueueFilter, Scope};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff/login", get(login_form).post(login_submit))
        .route("/staff/login/code", get(code_form).post(code_submit))
        .route("/staff/logout", post(logout))
        .route("/staff", get(queue))
        .route("/staff/cases/{id}", get(case_page))
        .route("/staff/cases/{id}/evidence/{eid}", get(evidence_download))
        .route("/staff/cases/{id}/act", post(act))
}

use crate::workspace::staff;

#[derive(Template)]
#[template(path = "staff_login.html")]
struct LoginPage {
    page: Page,
    error: Option<String>,
    code_step: bool,
    login_label: String,
    password_label: String,
    code_label: String,
    code_hint: String,
    submit: String,
}

fn login_page(t: &Tr<'_>, ctx: &Ctx, code_step: bool, error: Option<String>) -> LoginPage {
    LoginPage {
        page: Page::new(ctx, t, t.get("staff-login-title")),
        error,
        code_step,
        login_label: t.get("staff-login-name"),
        password_label: t.get("staff-login-password"),
        code_label: t.get("staff-login-code"),
        code_hint: t.get("staff-login-code-hint"),
        submit: t.get("staff-login-submit"),
    }
}

async fn login_form(mut ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    if staff(&ctx).is_some() {
        return Ok(see_other("/staff"));
    }
    let cookie = ensure_session(&st, &mut ctx)?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let res = html(
        &ctx,
        StatusCode::OK,
        login_page(&t, &ctx, false, None).render(),
    );
    Ok(with_cookie(res, cookie.as_deref()))
}

async fn login_submit(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let password = SecretString::new(field(&pairs, "password").unwrap_or("").to_owned());
    let typed = field(&pairs, "login").unwrap_or("");
    let t = Tr::new(&st.i18n, ctx.lang);
    let now = st.clock.now();
    if st.throttle.sign_in(typed, now) == Verdict::Wait {
        // The same work and the same answer for every name, known or not.
        refuge_crypto::verify_nothing(&password);
        tracing::info!("staff sign-in throttled");
        let page = login_page(&t, &ctx, false, Some(t.get("staff-login-throttled")));
        return Ok(html(&ctx, StatusCode::TOO_MANY_REQUESTS, page.render()));
    }
    let login: Option<Login> = typed.trim().parse().ok();
    let creds = match &login {
        Some(l) => st.store.user_credentials(l).await?,
        None => None,
    };
    // One answer for an unknown login, a disabled user and a wrong password, after the same
    // work.
    let user = match creds {
        Some(c) => {
            let ok = c
                .password_phc
                .as_ref()
                .is_some_and(|phc| refuge_crypto::verify_password(&password, phc));
            if c.password_phc.is_none() {
                refuge_crypto::verify_nothing(&password);
            }
            (ok && !c.user.disabled && c.totp_secret.is_some()).then_some(c.user)
        }
        None => {
            refuge_crypto::verify_nothing(&password);
            None
        }
    };
    let Some(user) = user else {
        st.throttle.sign_in_failed(typed, now);
        tracing::info!("staff sign-in refused");
        let page = login_page(&t, &ctx, false, Some(t.get("staff-login-failed")));
        return Ok(html(&ctx, StatusCode::OK, page.render()));
    };
    let (token, _) = st
        .sessions
        .rotate(
            ctx.token.as_deref(),
            Who::StaffPending { user: user.id },
            st.clock.now(),
            st.entropy.as_ref(),
        )
        .map_err(|_| WebError::internal())?;
    Ok(with_cookie(
        see_other("/staff/login/code"),
        session::cookie(&token).as_str(),
    ))
}

async fn code_form(ctx: Ctx, State(st): State<AppState>) -> Response {
    if !matches!(
        ctx.session.as_ref().map(|s| &s.who),
        Some(Who::StaffPending { .. })
    ) {
        return see_other("/staff/login");
    }
    let t = Tr::new(&st.i18n, ctx.lang);
    html(
        &ctx,
        StatusCode::OK,
        login_page(&t, &ctx, true, None).render(),
    )
}

async fn code_submit(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let Some(Who::StaffPending { user }) = ctx.session.as_ref().map(|s| s.who.clone()) else {
        return Ok(see_other("/staff/login"));
    };
    let t = Tr::new(&st.i18n, ctx.lang);
    let u = st.store.user(Scope::Instance, user).await?;
    let now = st.clock.now();
    if st.throttle.sign_in(u.login.as_str(), now) == Verdict::Wait {
        // Too many wrong codes: start again from the password, later.
        if let Some(token) = &ctx.token {
            st.sessions.end(token);
        }
        tracing::info!(user = %user, "staff code throttled");
        let page = login_page(&t, &ctx, false, Some(t.get("staff-login-throttled")));
        return Ok(html(&ctx, StatusCode::TOO_MANY_REQUESTS, page.render()));
    }
    let creds = st.store.user_credentials(&u.login).await?;
    let secret = creds.and_then(|c| c.totp_secret);
    let now_s = st.clock.now().as_micros() / 1_000_000;
    let step = secret
        .as_ref()
        .and_then(|s| crate::totp::verify(s.expose(), field(&pairs, "code").unwrap_or(""), now_s));
    // A code works once: refuse a step at or before the last one used.
    let fresh = step.filter(|s| {
        let mut used = st.used_totp.lock().unwrap_or_else(|e| e.into_inner());
        let ok = used.get(&user).is_none_or(|last| s > last);
        if ok {
            used.insert(user, *s);
        }
        ok
    });
    if fresh.is_none() || u.disabled {
        st.throttle.sign_in_failed(u.login.as_str(), now);
        tracing::info!(user = %user, "staff code refused");
        let page = login_page(&t, &ctx, true, Some(t.get("staff-code-failed")));
        return Ok(html(&ctx, StatusCode::OK, page.render()));
    }
    let (token, _) = st
        .sessions
        .rotate(
            ctx.token.as_deref(),
            Who::Staff {
                user,
                org: u.organisation_id,
                roles: u.roles.clone(),
            },
            st.clock.now(),
            st.entropy.as_ref(),
        )
        .map_err(|_| WebError::internal())?;
    st.throttle.sign_in_succeeded(u.login.as_str());
    tracing::info!(user = %user, "staff signed in");
    // Administrators without a casework role start where they may work.
    let start = if crate::policy::allows(&u.roles, crate::policy::Action::ReadCases) {
        "/staff"
    } else {
        "/staff/admin"
    };
    Ok(with_cookie(
        see_other(start),
        session::cookie(&token).as_str(),
    ))
}

async fn logout(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, WebError> {
    crate::csrf_form(&ctx, &body)?;
    if let Some(t) = &ctx.token {
        st.sessions.end(t);
    }
    Ok(with_cookie(
        see_other("/staff/login"),
        session::clear_cookie().as_str(),
    ))
}

struct Row {
    case_id: String,
    reference: String,
    pseudonym: String,
    programme: String,
    state: String,
    created: String,
}

#[derive(Template)]
#[template(path = "staff_queue.html")]
struct QueuePage {
    page: Page,
    rows: Vec<Row>,
    total_label: String,
    programme_label: String,
    state_label: String,
    all_label: String,
    all_programmes_label: String,
    filter_label: String,
    programmes: Vec<(String, String, bool)>,
    states: Vec<(String, String, bool)>,
    due_only: bool,
    signals_only: bool,
    due_label: String,
    signals_label: String,
    next: Option<String>,
    next_label: String,
    col_reference: String,
    col_pseudonym: String,
    col_programme: String,
    col_state: String,
    col_created: String,
    empty: String,
}

/// An optional query parameter: absent or empty is `None`; anything else must parse.
fn optional<T: std::str::FromStr>(
    q: &BTreeMap<String, String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, WebError> {
    q.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| WebError::bad_field(name, expected))
}

async fn queue(
    ctx: Ctx,
    State(st): State<AppState>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, WebError> {
    let Some((_, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let t = Tr::new(&st.i18n, ctx.lang);
    let programme: Option<ProgrammeId> = optional(&q, "programme", "not a programme id")?;
    let state: Option<ApplicationState> = optional(&q, "state", "not an application state")?;
    let after: Option<ApplicationId> = optional(&q, "after", "not an application id")?;
    let filter = QueueFilter {
        programme: programme.clone(),
        states: match state {
            Some(s) => vec![s],
            None => ApplicationState::ALL
                .into_iter()
                .filter(|s| s.is_open() && *s != ApplicationState::Draft)
                .collect(),
        },
    };
    let scope = Scope::Organisation(org);
    let due_only = q.get("due").is_some_and(|v| v == "7");
    let signals_only = q.get("signals").is_some_and(|v| v == "1");
    const PAGE: u32 = 50;
    // With the deadline or signal filters, the queue is read in batches and filtered here;
    // at most SCAN applications are examined per page (the next link goes on from there).
    const SCAN: usize = 2_000;
    let due_cases: Option<std::collections::HashSet<CaseId>> = if due_only {
        let today = st.clock.today();
        let until = today.checked_add(time::Duration::days(7)).unwrap_or(today);
        Some(
            st.store
                .deadlines(scope, Some(until), false)
                .await?
                .into_iter()
                .map(|d| d.case_id)
                .collect(),
        )
    } else {
        None
    };
    let on = st.clock.today();
    let mut items = Vec::new();
    let mut cursor = after;
    let mut scanned = 0usize;
    let mut exhausted = false;
    while items.len() < PAGE as usize {
        if !(due_only || signals_only) {
            items = st.store.queue(scope, &filter, cursor, PAGE).await?;
            exhausted = items.len() < PAGE as usize;
            cursor = items.last().map(|i| i.application.id);
            break;
        }
        if scanned >= SCAN {
            break;
        }
        let batch = st.store.queue(scope, &filter, cursor, 200).await?;
        if batch.is_empty() {
            exhausted = true;
            break;
        }
        for item in batch {
            cursor = Some(item.application.id);
            scanned += 1;
            if due_cases
                .as_ref()
                .is_some_and(|set| !set.contains(&item.case.id))
            {
                continue;
            }
            if signals_only {
                let case = st.store.case(scope, &CaseKey::Id(item.case.id)).await?;
                let raised = st
                    .library
                    .programmes
                    .values()
                    .any(|p| !decide(p, &case.facts, on, ctx.lang).signals.is_empty());
                if !raised {
                    continue;
                }
            }
            items.push(item);
            if items.len() == PAGE as usize {
                break;
            }
        }
    }
    let total = st.store.count_queue(scope, &filter).await?;
    let next = (!exhausted).then_some(cursor).flatten().map(|id| {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        if let Some(p) = &programme {
            qs.append_pair("programme", p.as_str());
        }
        if let Some(s) = state {
            qs.append_pair("state", s.as_str());
        }
        if due_only {
            qs.append_pair("due", "7");
        }
        if signals_only {
            qs.append_pair("signals", "1");
        }
        qs.append_pair("after", &id.to_string());
        format!("/staff?{}", qs.finish())
    });
    let rows = items
        .iter()
        .map(|i| Row {
            case_id: i.case.id.to_string(),
            reference: i.case.reference.to_string(),
            pseudonym: i
                .case
                .pseudonym
                .as_ref()
                .map_or_else(String::new, |p| p.as_str().to_owned()),
            programme: title(&st, &i.application.programme, ctx.lang),
            state: t.key2("state", i.application.state.as_str()),
            created: when(i.application.created_at),
        })
        .collect();
    let programmes = st
        .library
        .programmes
        .values()
        .map(|p| {
            (
                p.id.clone(),
                p.title.get(ctx.lang).to_owned(),
                programme.as_ref().is_some_and(|x| x.as_str() == p.id),
            )
        })
        .collect();
    let states = ApplicationState::ALL
        .into_iter()
        .map(|s| {
            (
                s.as_str().to_owned(),
                t.key2("state", s.as_str()),
                state == Some(s),
            )
        })
        .collect();
    let tpl = QueuePage {
        page: Page::new(&ctx, &t, t.get("queue-title")),
        rows,
        total_label: t.arg("queue-total", "count", total),
        programme_label: t.get("queue-programme"),
        state_label: t.get("queue-state"),
        all_label: t.get("queue-all"),
        all_programmes_label: t.get("queue-all-programmes"),
        filter_label: t.get("queue-filter"),
        programmes,
        states,
        due_only,
        signals_only,
        due_label: t.get("queue-due"),
        signals_label: t.get("queue-signals"),
        next,
        next_label: t.get("queue-next"),
        col_reference: t.get("col-reference"),
        col_pseudonym: t.get("col-pseudonym"),
        col_programme: t.get("queue-programme"),
        col_state: t.get("queue-state"),
        col_created: t.get("col-created"),
        empty: t.get("queue-empty"),
    };
    Ok(html(&ctx, StatusCode::OK, tpl.render()))
}

fn title(st: &AppState, p: &ProgrammeId, lang: &str) -> String {
    st.library
        .programmes
        .get(p.as_str())
        .map_or_else(|| p.to_string(), |x| x.title.get(lang).to_owned())
}

struct RuleView {
    id: String,
    title: String,
    outcome: &'static str,
    outcome_label: String,
    lines: Vec<(String, String, String)>,
    missing: Vec<String>,
    signals: Vec<String>,
}

struct AppAction {
    id: String,
    title: String,
    state: String,
    version: u64,
    decision: Option<String>,
    can_review: bool,
    can_request: bool,
    can_interview: bool,
    can_decide: bool,
    bases: Vec<String>,
}

#[derive(Template)]
#[template(path = "staff_case.html")]
struct CasePage {
    page: Page,
    notice: Option<String>,
    case_id: String,
    pseudonym: String,
    facts: Vec<(String, String)>,
    rules: Vec<RuleView>,
    apps: Vec<AppAction>,
    evidence: Vec<(String, String, String, String)>,
    messages: Vec<(String, String, String)>,
    events: Vec<(String, String, String)>,
    t_facts: String,
    t_rules: String,
    t_apps: String,
    t_evidence: String,
    t_messages: String,
    t_timeline: String,
    t_missing: String,
    t_signals: String,
    t_review: String,
    t_request: String,
    t_request_submit: String,
    t_interview: String,
    t_interview_submit: String,
    t_decide: String,
    t_outcome: String,
    t_granted: String,
    t_refused: String,
    t_basis: String,
    t_reasons: String,
    t_decide_submit: String,
    t_decide_note: String,
    t_none: String,
    deadlines: Vec<(String, String, String, bool)>,
    kinds: Vec<(String, String)>,
    other_orgs: Vec<(String, String)>,
    can_refer: bool,
    t_deadlines: String,
    t_deadline_kind: String,
    t_deadline_due: String,
    t_deadline_note: String,
    t_deadline_set: String,
    t_done: String,
    t_refer: String,
    t_refer_to: String,
    t_refer_consent: String,
    t_refer_submit: String,
}

async fn case_page(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let Some((_, org, roles)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let case_id: CaseId = id.parse().map_err(|_| WebError::not_found())?;
    render_case(&st, &ctx, org, &roles, case_id, None).await
}

async fn render_case(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
    roles: &[Role],
    case_id: CaseId,
    notice: Option<String>,
) -> Result<Response, WebError> {
    let scope = Scope::Organisation(org);
    let t = Tr::new(&st.i18n, ctx.lang);
    let case = st.store.case(scope, &CaseKey::Id(case_id)).await?;
    let summary = st.store.case_summary(scope, case_id).await?;
    let apps = st.store.applications(scope, case_id).await?;
    let evidence = st.store.evidence_list(scope, case_id).await?;
    let messages = st.store.messages(scope, case_id).await?;
    let events = st.store.case_events(scope, case_id).await?;
    let deadlines = st.store.case_deadlines(scope, case_id).await?;
    let orgs = st.store.organisations().await?;
    let on = st.clock.today();
    let rules = st
        .library
        .programmes
        .values()
        .map(|p| {
            let d = decide(p, &case.facts, on, ctx.lang);
            RuleView {
                id: p.id.clone(),
                title: d.title.clone(),
                outcome: d.outcome.as_str(),
                outcome_label: t.key2("outcome", d.outcome.as_str()),
                lines: d
                    .trace
                    .iter()
                    .map(|r| {
                        (
                            t.key2("rule-result", r.result),
                            r.explanation.clone(),
                            r.basis.clone(),
                        )
                    })
                    .collect(),
                missing: d.missing.iter().map(|f| t.key2("q", f)).collect(),
                signals: d.signals.clone(),
            }
        })
        .collect::<Vec<_>>();
    let decider = crate::policy::allows(roles, crate::policy::Action::Decide);
    let apps = apps
        .iter()
        .map(|a| app_action(st, &t, ctx.lang, a, decider))
        .collect();
    let evidence = evidence
        .iter()
        .map(|e| {
            (
                format!("/staff/cases/{case_id}/evidence/{}", e.id),
                e.name.clone(),
                e.media_type.clone(),
                when(e.added_at),
            )
        })
        .collect();
    let messages = messages
        .iter()
        .map(|m| {
            (
                when(m.created_at),
                t.key2("message", m.kind.as_str()),
                m.body.as_str().to_owned(),
            )
        })
        .collect();
    let events = events
        .iter()
        .map(|e| {
            (
                when(e.at),
                t.key2("event", e.kind.as_str()),
                match e.actor {
                    Actor::User(_) => t.get("actor-staff"),
                    Actor::Applicant => t.get("actor-applicant"),
                    Actor::Operator => t.get("actor-operator"),
                    Actor::System => t.get("actor-system"),
                },
            )
        })
        .collect();
    let deadlines = deadlines
        .iter()
        .map(|d| {
            (
                t.key2("deadline", d.kind.as_str()),
                d.due_on.to_string(),
                d.note
                    .as_ref()
                    .map_or_else(String::new, |n| n.as_str().to_owned()),
                d.is_done(),
            )
        })
        .collect();
    let kinds = refuge_core::case::DeadlineKind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), t.key2("deadline", k.as_str())))
        .collect();
    let other_orgs = orgs
        .iter()
        .filter(|o| o.id != case.organisation_id && o.id != org)
        .map(|o| (o.id.to_string(), o.name.as_str().to_owned()))
        .collect();
    let tpl = CasePage {
        page: Page::new(
            ctx,
            &t,
            t.arg("case-page-title", "reference", case.reference.to_string()),
        ),
        deadlines,
        kinds,
        other_orgs,
        can_refer: case.organisation_id == org,
        t_deadlines: t.get("case-deadlines"),
        t_deadline_kind: t.get("col-kind"),
        t_deadline_due: t.get("col-due"),
        t_deadline_note: t.get("deadline-note"),
        t_deadline_set: t.get("deadline-set"),
        t_done: t.get("deadline-is-done"),
        t_refer: t.get("refer-title"),
        t_refer_to: t.get("refer-to"),
        t_refer_consent: t.get("refer-consent"),
        t_refer_submit: t.get("refer-submit"),
        notice,
        case_id: case_id.to_string(),
        pseudonym: summary
            .pseudonym
            .map_or_else(String::new, |p| p.as_str().to_owned()),
        facts: fact_rows(&t, &case.facts),
        rules,
        apps,
        evidence,
        messages,
        events,
        t_facts: t.get("case-facts"),
        t_rules: t.get("case-rules"),
        t_apps: t.get("case-applications"),
        t_evidence: t.get("case-evidence"),
        t_messages: t.get("case-messages"),
        t_timeline: t.get("case-timeline"),
        t_missing: t.get("results-missing"),
        t_signals: t.get("case-signals"),
        t_review: t.get("action-review"),
        t_request: t.get("action-request"),
        t_request_submit: t.get("action-request-submit"),
        t_interview: t.get("action-interview"),
        t_interview_submit: t.get("action-interview-submit"),
        t_decide: t.get("action-decide"),
        t_outcome: t.get("action-outcome"),
        t_granted: t.get("state-granted"),
        t_refused: t.get("state-refused"),
        t_basis: t.get("action-basis"),
        t_reasons: t.get("action-reasons"),
        t_decide_submit: t.get("action-decide-submit"),
        t_decide_note: t.get("action-decide-note"),
        t_none: t.get("none"),
    };
    Ok(html(ctx, StatusCode::OK, tpl.render()))
}

fn app_action(st: &AppState, t: &Tr<'_>, lang: &str, a: &Application, decider: bool) -> AppAction {
    use ApplicationState as S;
    // The programme's legal bases, in the order of its rules (requirements first).
    let mut bases: Vec<String> = Vec::new();
    if let Some(p) = st.library.programmes.get(a.programme.as_str()) {
        for r in &p.rules {
            if !bases.contains(&r.basis) {
                bases.push(r.basis.clone());
            }
        }
    }
    AppAction {
        id: a.id.to_string(),
        title: title(st, &a.programme, lang),
        state: t.key2("state", a.state.as_str()),
        version: a.version,
        decision: a
            .decision
            .as_ref()
            .map(|d| format!("{} — {}", d.legal_basis.as_str(), d.reasons.as_str())),
        can_review: a.state == S::Submitted,
        can_request: matches!(a.state, S::Submitted | S::InReview),
        can_interview: a.state == S::InReview,
        can_decide: decider && matches!(a.state, S::Interview | S::Appealed),
        bases,
    }
}

async fn evidence_download(
    ctx: Ctx,
    State(st): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let Some((_, org, _)) = staff(&ctx) else {
        return Ok(see_other("/staff/login"));
    };
    let case_id: CaseId = id.parse().map_err(|_| WebError::not_found())?;
    let eid: EvidenceId = eid.parse().map_err(|_| WebError::not_found())?;
    let (meta, bytes) = st.store.evidence(Scope::Organisation(org), eid).await?;
    if meta.case_id != case_id {
        return Err(WebError::not_found());
    }
    // Always a download, never shown inline; the type was sniffed at upload.
    Ok((
        [
            (header::CONTENT_TYPE, meta.media_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", meta.name.replace('"', "_")),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn act(
    ctx: Ctx,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let post = match crate::workspace::StaffPost::<CaseId>::read(&ctx, &body, &id) {
        Ok(p) => p,
        Err(answer) => return Ok(*answer),
    };
    let crate::workspace::StaffPost {
        pairs,
        user,
        org,
        roles,
        id: case_id,
    } = post;
    let scope = Scope::Organisation(org);
    let actor = Actor::User(user);
    let t = Tr::new(&st.i18n, ctx.lang);
    let text = |name: &str| crate::parsed_field::<Text>(&pairs, name);
    match field(&pairs, "action").unwrap_or("") {
        "deadline" => {
            let kind = crate::workspace::deadline_kind(field(&pairs, "kind").unwrap_or(""))?;
            let due = refuge_core::facts::parse_date(field(&pairs, "due_on").unwrap_or(""))
                .ok_or_else(|| WebError::bad_field("due_on", "a date YYYY-MM-DD"))?;
            let note = match field(&pairs, "note").map(str::trim) {
                Some(n) if !n.is_empty() => Some(text("note")?),
                _ => None,
            };
            st.store
                .set_deadline(actor, scope, case_id, kind, due, note)
                .await?;
            return render_case(
                &st,
                &ctx,
                org,
                &roles,
                case_id,
                Some(t.get("done-deadline-set")),
            )
            .await;
        }
        "refer" => {
            let to: OrgId = field(&pairs, "to")
                .unwrap_or("")
                .parse()
                .map_err(|_| WebError::bad_field("to", "choose an organisation"))?;
            let consent = text("consent")?;
            st.store.refer(actor, scope, case_id, to, consent).await?;
            return render_case(
                &st,
                &ctx,
                org,
                &roles,
                case_id,
                Some(t.get("done-referred")),
            )
            .await;
        }
        _ => {}
    }
    let app_id: ApplicationId = field(&pairs, "application")
        .unwrap_or("")
        .parse()
        .map_err(|_| WebError::bad_field("application", "not an application id"))?;
    let version: u64 = field(&pairs, "version")
        .unwrap_or("")
        .parse()
        .map_err(|_| WebError::bad_field("version", "not a version"))?;
    let app = st.store.application(scope, app_id).await?;
    if app.case_id != case_id {
        return Err(WebError::not_found());
    }
    let mv = |to: ApplicationState, reason: Option<Text>, decision: Option<Decision>| Move {
        to,
        reason,
        decision,
    };
    let notice = match field(&pairs, "action").unwrap_or("") {
        "review" => {
            st.store
                .move_application(
                    actor,
                    scope,
                    app_id,
                    Some(version),
                    mv(ApplicationState::InReview, None, None),
                )
                .await?;
            "done-review"
        }
        "request" => {
            let body = text("text")?;
            let mut version = version;
            if app.state == ApplicationState::Submitted {
                version = st
                    .store
                    .move_application(
                        actor,
                        scope,
                        app_id,
                        Some(version),
                        mv(ApplicationState::InReview, None, None),
                    )
                    .await?
                    .version;
            }
            st.store
                .move_application(
                    actor,
                    scope,
                    app_id,
                    Some(version),
                    mv(ApplicationState::InfoRequested, None, None),
                )
                .await?;
            st.store
                .add_message(actor, scope, case_id, MessageKind::InfoRequest, body)
                .await?;
            "done-request"
        }
        "interview" => {
            let when_text = text("text")?;
            st.store
                .move_application(
                    actor,
                    scope,
                    app_id,
                    Some(version),
                    mv(ApplicationState::Interview, Some(when_text), None),
                )
                .await?;
            "done-interview"
        }
        "decide" => {
            if !crate::policy::allows(&roles, crate::policy::Action::Decide) {
                return Err(WebError::forbidden());
            }
            let to = match field(&pairs, "outcome") {
                Some("granted") => ApplicationState::Granted,
                Some("refused") => ApplicationState::Refused,
                _ => return Err(WebError::bad_field("outcome", "granted or refused")),
            };
            let basis_text = field(&pairs, "basis").unwrap_or("");
            let allowed = st
                .library
                .programmes
                .get(app.programme.as_str())
                .is_some_and(|p| p.rules.iter().any(|r| r.basis == basis_text));
            if !allowed {
                return Err(WebError::bad_field(
                    "basis",
                    "choose a legal basis of the programme",
                ));
            }
            let legal_basis: Label = basis_text
                .chars()
                .take(Label::MAX)
                .collect::<String>()
                .parse()
                .map_err(|e: refuge_core::text::TextError| {
                    WebError::bad_field("basis", e.to_string())
                })?;
            let reasons = text("reasons")?;
            let decision = Decision {
                legal_basis,
                reasons,
                decided_by: actor,
                decided_at: st.clock.now(),
            };
            st.store
                .move_application(
                    actor,
                    scope,
                    app_id,
                    Some(version),
                    mv(to, None, Some(decision)),
                )
                .await?;
            "done-decide"
        }
        _ => return Err(WebError::bad_field("action", "unknown action")),
    };
    tracing::info!(case = %case_id, application = %app_id, "staff action");
    render_case(&st, &ctx, org, &roles, case_id, Some(t.get(notice))).await
}

//! The applicant portal: check your options, apply, and follow your case with a codename.
//! No account, no JavaScript, no third-party assets.

use crate::i18n::Tr;
use crate::page::{Page, ensure_session, html, see_other, with_cookie};
use crate::questions::{self, Input, NONE_OF_THESE, SECTIONS};
use crate::session::{self, Who};
use crate::{AppState, Ctx, WebError, check_csrf, field};
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use refuge_core::application::{ApplicationState, Move, ProgrammeId};
use refuge_core::event::Actor;
use refuge_core::facts::{Fact, Facts};
use refuge_core::ids::{CaseId, OrgId};
use refuge_core::person::{Person, PersonName};
use refuge_core::text::{Label, Text};
use refuge_rules::expr::Tri;
use refuge_rules::programme::{Outcome, RuleKind, decide};
use refuge_store::{CaseKey, MessageKind, NewCase, Scope};

pub fn routes(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/check", get(check_form).post(check_submit))
        .route("/apply/start", post(apply_start))
        .route("/apply", post(apply))
        .route("/status", get(status_form).post(status_submit))
        .route("/my-case", get(my_case))
        .route("/my-case/answer", post(answer))
        .route(
            "/my-case/evidence",
            post(upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/my-case/withdraw", post(withdraw))
        .route("/my-case/leave", post(leave))
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    page: Page,
    intro: String,
    safety: String,
    check: String,
    have_codename: String,
    status: String,
    programmes_heading: String,
    programmes: Vec<(String, String)>,
}

async fn home(ctx: Ctx, State(st): State<AppState>) -> Response {
    let t = Tr::new(&st.i18n, ctx.lang);
    let programmes = st
        .library
        .programmes
        .values()
        .map(|p| {
            (
                p.title.get(ctx.lang).to_owned(),
                p.summary.get(ctx.lang).to_owned(),
            )
        })
        .collect();
    let tpl = Home {
        page: Page::new(&ctx, &t, t.get("portal-title")),
        intro: t.get("portal-intro"),
        safety: t.get("portal-safety"),
        check: t.get("portal-check"),
        have_codename: t.get("portal-have-codename"),
        status: t.get("portal-status-link"),
        programmes_heading: t.get("portal-programmes"),
        programmes,
    };
    html(&ctx, StatusCode::OK, tpl.render())
}

struct Opt {
    value: String,
    label: String,
    selected: bool,
}

struct QuestionView {
    name: &'static str,
    kind: &'static str,
    label: String,
    value: String,
    options: Vec<Opt>,
}

struct SectionView {
    title: String,
    questions: Vec<QuestionView>,
}

#[derive(Template)]
#[template(path = "check.html")]
struct CheckPage {
    page: Page,
    intro: String,
    error: Option<String>,
    sections: Vec<SectionView>,
    dont_know: String,
    date_hint: String,
    many_hint: String,
    submit: String,
}

fn check_page(
    t: &Tr<'_>,
    ctx: &Ctx,
    pairs: &[(String, String)],
    error: Option<String>,
) -> CheckPage {
    let given = |name: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let sections = SECTIONS
        .iter()
        .map(|s| SectionView {
            title: t.get(s.key),
            questions: s
                .questions
                .iter()
                .map(|q| {
                    let name = q.fact.name();
                    let chosen = given(name);
                    let opt = |value: &str, label: String| Opt {
                        value: value.to_owned(),
                        label,
                        selected: chosen.contains(&value),
                    };
                    let (kind, options) = match q.input {
                        Input::Country => (
                            "select",
                            questions::COUNTRIES
                                .iter()
                                .map(|c| opt(c, t.get(&format!("country-{c}"))))
                                .collect(),
                        ),
                        Input::Date => ("date", Vec::new()),
                        Input::YesNo => (
                            "radio",
                            vec![opt("yes", t.get("yes")), opt("no", t.get("no"))],
                        ),
                        Input::OneOf => (
                            "radio",
                            questions::values(q.fact)
                                .iter()
                                .map(|v| opt(v, t.key3("v", name, v)))
                                .collect(),
                        ),
                        Input::AnyOf => (
                            "checkboxes",
                            questions::values(q.fact)
                                .iter()
                                .map(|v| opt(v, t.key3("v", name, v)))
                                .chain(std::iter::once(opt(NONE_OF_THESE, t.get("none-of-these"))))
                                .collect(),
                        ),
                        Input::Languages => (
                            "checkboxes",
                            questions::LANGUAGE_CHOICES
                                .iter()
                                .map(|l| opt(l, t.get(&format!("language-{l}"))))
                                .collect(),
                        ),
                    };
                    QuestionView {
                        name,
                        kind,
                        label: t.key2("q", name),
                        value: chosen.first().map(|s| (*s).to_owned()).unwrap_or_default(),
                        options,
                    }
                })
                .collect(),
        })
        .collect();
    CheckPage {
        page: Page::new(ctx, t, t.get("check-title")),
        intro: t.get("check-intro"),
        error,
        sections,
        dont_know: t.get("dont-know"),
        date_hint: t.get("date-hint"),
        many_hint: t.get("many-hint"),
        submit: t.get("check-submit"),
    }
}

async fn check_form(mut ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let cookie = ensure_session(&st, &mut ctx)?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let res = html(
        &ctx,
        StatusCode::OK,
        check_page(&t, &ctx, &[], None).render(),
    );
    Ok(with_cookie(res, cookie.as_deref()))
}

struct ReasonsView {
    id: String,
    title: String,
    summary: String,
    outcome: &'static str,
    outcome_label: String,
    reasons: Vec<(String, String)>,
    missing: Vec<String>,
    checks: Vec<String>,
    evidence: Vec<String>,
    apply_at: String,
    can_apply: bool,
}

#[derive(Template)]
#[template(path = "results.html")]
struct ResultsPage {
    page: Page,
    intro: String,
    model_notice: String,
    results: Vec<ReasonsView>,
    hidden: Vec<(String, String)>,
    why: String,
    missing_heading: String,
    checks_heading: String,
    evidence_heading: String,
    where_heading: String,
    apply: String,
    again: String,
}

async fn check_submit(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let facts = match questions::facts_from_form(&pairs) {
        Ok(f) => f,
        Err(e) => {
            let msg = t.args(
                "error-answer",
                &[
                    ("question", t.key2("q", &e.field)),
                    ("problem", t.get("error-answer-format")),
                ],
            );
            let page = check_page(&t, &ctx, &pairs, Some(msg));
            return Ok(html(&ctx, StatusCode::UNPROCESSABLE_ENTITY, page.render()));
        }
    };
    let on = st.clock.today();
    let mut results = Vec::new();
    for p in st.library.programmes.values() {
        let d = decide(p, &facts, on, ctx.lang);
        let reasons = d
            .trace
            .iter()
            .filter(|r| match (d.outcome, r.kind) {
                (Outcome::Ineligible, RuleKind::Require) => r.result == "fail",
                (Outcome::Ineligible, RuleKind::Exclude) => r.result == "fail",
                (Outcome::Eligible, RuleKind::Require) => r.result == "pass",
                (Outcome::Undetermined, RuleKind::Require | RuleKind::Exclude) => {
                    r.result == "unknown"
                }
                _ => false,
            })
            .map(|r| (r.explanation.clone(), r.basis.clone()))
            .collect();
        // Undetermined only by what the authority establishes itself (exclusion grounds,
        // sanctions lists): as far as the applicant can tell, they qualify.
        let pending_checks = d.outcome == Outcome::Undetermined
            && !d.missing.is_empty()
            && d.missing.iter().all(|f| {
                f.parse::<Fact>()
                    .is_ok_and(|f| !questions::all().any(|q| q.fact == f))
            });
        let (outcome, outcome_label) = if pending_checks {
            ("eligible", t.get("outcome-eligible-pending-checks"))
        } else {
            (d.outcome.as_str(), t.key2("outcome", d.outcome.as_str()))
        };
        let (missing, checks) = if pending_checks {
            (
                Vec::new(),
                d.missing.iter().map(|f| t.key2("q", f)).collect(),
            )
        } else {
            (
                d.missing.iter().map(|f| t.key2("q", f)).collect(),
                Vec::new(),
            )
        };
        results.push(ReasonsView {
            id: p.id.clone(),
            title: d.title.clone(),
            summary: p.summary.get(ctx.lang).to_owned(),
            outcome,
            outcome_label,
            reasons,
            missing,
            checks,
            evidence: d.evidence.clone(),
            apply_at: d
                .apply_at
                .clone()
                .unwrap_or_else(|| match d.can_apply_here {
                    Tri::False => t.get("cannot-apply-here"),
                    _ => t.get("apply-where-unknown"),
                }),
            can_apply: d.outcome != Outcome::Ineligible,
        });
    }
    // Eligible first, then undetermined, then the rest.
    results.sort_by_key(|r| match r.outcome {
        "eligible" => 0,
        "undetermined" => 1,
        _ => 2,
    });
    let tpl = ResultsPage {
        page: Page::new(&ctx, &t, t.get("results-title")),
        intro: t.get("results-intro"),
        model_notice: t.get("results-model-notice"),
        results,
        hidden: questions::facts_to_form(&facts),
        why: t.get("results-why"),
        missing_heading: t.get("results-missing"),
        checks_heading: t.get("results-checks"),
        evidence_heading: t.get("results-evidence"),
        where_heading: t.get("results-where"),
        apply: t.get("results-apply"),
        again: t.get("results-again"),
    };
    Ok(html(&ctx, StatusCode::OK, tpl.render()))
}

#[derive(Template)]
#[template(path = "apply.html")]
struct ApplyPage {
    page: Page,
    intro: String,
    safety: String,
    programme: String,
    hidden: Vec<(String, String)>,
    name_label: String,
    name_hint: String,
    consent: String,
    submit: String,
}

fn programme_of(st: &AppState, pairs: &[(String, String)]) -> Result<ProgrammeId, WebError> {
    let id = field(pairs, "programme").unwrap_or("");
    if !st.library.programmes.contains_key(id) {
        return Err(WebError::bad_field(
            "programme",
            "not a programme of this instance",
        ));
    }
    id.parse()
        .map_err(|_| WebError::bad_field("programme", "not a programme id"))
}

async fn apply_start(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let programme = programme_of(&st, &pairs)?;
    let facts =
        questions::facts_from_form(&pairs).map_err(|e| WebError::bad_field(e.field, e.message))?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let title = st
        .library
        .programmes
        .get(programme.as_str())
        .map(|p| p.title.get(ctx.lang).to_owned())
        .unwrap_or_default();
    let tpl = ApplyPage {
        page: Page::new(&ctx, &t, t.arg("apply-title", "programme", title)),
        intro: t.get("apply-intro"),
        safety: t.get("apply-safety"),
        programme: programme.to_string(),
        hidden: questions::facts_to_form(&facts),
        name_label: t.get("apply-name"),
        name_hint: t.get("apply-name-hint"),
        consent: t.get("apply-consent"),
        submit: t.get("apply-submit"),
    };
    Ok(html(&ctx, StatusCode::OK, tpl.render()))
}

/// The case an earlier attempt of this session's application stored, if any.
async fn stored_for(
    st: &AppState,
    codename: &refuge_crypto::SecretString,
) -> Result<Option<refuge_core::case::Case>, WebError> {
    let Some((id, org)) = st.store.case_for_codename(codename).await? else {
        return Ok(None);
    };
    tracing::info!(case = %id, "portal application sent again; showing its case");
    Ok(Some(
        st.store
            .case(Scope::Organisation(org), &CaseKey::Id(id))
            .await?,
    ))
}

#[derive(Template)]
#[template(path = "applied.html")]
struct AppliedPage {
    page: Page,
    reference_label: String,
    reference: String,
    codename_heading: String,
    codename: String,
    codename_warning: String,
    continue_label: String,
}

async fn apply(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let programme = programme_of(&st, &pairs)?;
    if field(&pairs, "consent") != Some("yes") {
        return Err(WebError::bad_field("consent", "must be given to apply"));
    }
    let facts =
        questions::facts_from_form(&pairs).map_err(|e| WebError::bad_field(e.field, e.message))?;
    let org = st
        .config
        .intake
        .get(&programme)
        .copied()
        .or(st.config.default_intake)
        .ok_or_else(|| {
            WebError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_intake",
                "error-no-intake",
            )
        })?;
    let name = field(&pairs, "name")
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let mut digits = [0u8; 4];
    st.entropy
        .fill(&mut digits)
        .map_err(|_| WebError::internal())?;
    let pseudonym: Label = format!("Applicant {:05}", u32::from_le_bytes(digits) % 100_000)
        .parse()
        .map_err(|_| WebError::internal())?;
    let names = match name {
        Some(n) => vec![PersonName {
            script: None,
            value: n.parse().map_err(|e: refuge_core::text::TextError| {
                WebError::bad_field("name", e.to_string())
            })?,
        }],
        None => Vec::new(),
    };
    let person = Person {
        pseudonym: Some(pseudonym),
        names,
        birth_date: None,
        documents: Vec::new(),
        contacts: Vec::new(),
    };
    // One codename per session's application: sent again (double click, retry after an
    // error or a lost answer), the application finds the case its first attempt stored.
    let codename = ctx
        .token
        .as_deref()
        .map(|token| {
            st.sessions
                .application_codename(token, || crate::codename::generate(st.entropy.as_ref()))
        })
        .transpose()
        .map_err(|_| WebError::internal())?
        .flatten()
        .ok_or_else(|| WebError::new(StatusCode::FORBIDDEN, "csrf", "error-csrf"))?;
    let case = match st
        .store
        .apply(
            NewCase {
                organisation_id: org,
                person,
                facts,
            },
            programme,
            &codename,
        )
        .await
    {
        Ok((case, _application)) => case,
        // The codename has its case already: this application, sent again (at the same time,
        // or after an attempt that stored it but whose answer was lost).
        Err(refuge_store::StoreError::Duplicate(what)) => stored_for(&st, &codename)
            .await?
            .ok_or(refuge_store::StoreError::Duplicate(what))?,
        Err(e) => return Err(e.into()),
    };
    tracing::info!(case = %case.id, "portal application");
    let (token, session) = st
        .sessions
        .rotate(
            ctx.token.as_deref(),
            Who::Applicant {
                case: case.id,
                org: case.organisation_id,
            },
            st.clock.now(),
            st.entropy.as_ref(),
        )
        .map_err(|_| WebError::internal())?;
    let ctx = Ctx {
        session: Some(session),
        token: Some(token.clone()),
        ..ctx
    };
    let t = Tr::new(&st.i18n, ctx.lang);
    let tpl = AppliedPage {
        page: Page::new(&ctx, &t, t.get("applied-title")),
        reference_label: t.get("reference"),
        reference: case.reference.to_string(),
        codename_heading: t.get("applied-codename"),
        codename: codename.expose().to_owned(),
        codename_warning: t.get("applied-codename-warning"),
        continue_label: t.get("applied-continue"),
    };
    Ok(with_cookie(
        html(&ctx, StatusCode::OK, tpl.render()),
        session::cookie(&token).as_str(),
    ))
}

#[derive(Template)]
#[template(path = "status_login.html")]
struct StatusLogin {
    page: Page,
    intro: String,
    error: Option<String>,
    codename_label: String,
    submit: String,
}

fn status_page(t: &Tr<'_>, ctx: &Ctx, error: Option<String>) -> StatusLogin {
    StatusLogin {
        page: Page::new(ctx, t, t.get("status-title")),
        intro: t.get("status-intro"),
        error,
        codename_label: t.get("status-codename"),
        submit: t.get("status-submit"),
    }
}

async fn status_form(mut ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let cookie = ensure_session(&st, &mut ctx)?;
    let t = Tr::new(&st.i18n, ctx.lang);
    let res = html(&ctx, StatusCode::OK, status_page(&t, &ctx, None).render());
    Ok(with_cookie(res, cookie.as_deref()))
}

async fn status_submit(
    ctx: Ctx,
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let typed = crate::codename::normalise(field(&pairs, "codename").unwrap_or(""));
    // csrf_form has checked that there is a session.
    let session = ctx.token.clone().unwrap_or_default();
    let now = st.clock.now();
    let t = Tr::new(&st.i18n, ctx.lang);
    if st.throttle.codename(&session, now) == crate::throttle::Verdict::Wait {
        st.sessions.end(&session);
        tracing::info!("codename lookup throttled");
        let page = status_page(&t, &ctx, Some(t.get("status-throttled")));
        return Ok(html(&ctx, StatusCode::TOO_MANY_REQUESTS, page.render()));
    }
    let found = if typed.expose().is_empty() {
        None
    } else {
        st.store.case_for_codename(&typed).await?
    };
    let Some((case, org)) = found else {
        st.throttle.codename_failed(&session, now);
        let page = status_page(&t, &ctx, Some(t.get("status-unknown")));
        return Ok(html(&ctx, StatusCode::OK, page.render()));
    };
    let (token, _) = st
        .sessions
        .rotate(
            ctx.token.as_deref(),
            Who::Applicant { case, org },
            st.clock.now(),
            st.entropy.as_ref(),
        )
        .map_err(|_| WebError::internal())?;
    Ok(with_cookie(
        see_other("/my-case"),
        session::cookie(&token).as_str(),
    ))
}

/// The applicant's case, or a redirect to the codename page.
fn applicant(ctx: &Ctx) -> Option<(CaseId, OrgId)> {
    match ctx.session.as_ref().map(|s| &s.who) {
        Some(Who::Applicant { case, org }) => Some((*case, *org)),
        _ => None,
    }
}

struct AppView {
    id: String,
    title: String,
    state: String,
    decision: Option<String>,
}

struct MessageView {
    at: String,
    kind: String,
    body: String,
}

#[derive(Template)]
#[template(path = "my_case.html")]
struct MyCase {
    page: Page,
    notice: Option<String>,
    reference_label: String,
    reference: String,
    applications_heading: String,
    applications: Vec<AppView>,
    messages_heading: String,
    no_messages: String,
    messages: Vec<MessageView>,
    open_request: bool,
    answer_label: String,
    answer_submit: String,
    evidence_heading: String,
    evidence: Vec<(String, String)>,
    upload_label: String,
    upload_hint: String,
    upload_submit: String,
    can_withdraw: bool,
    withdraw_heading: String,
    withdraw_hint: String,
    withdraw_confirm: String,
    withdraw_submit: String,
}

/// A date-time as `YYYY-MM-DD HH:MM` UTC.
pub fn when(ts: refuge_core::clock::Timestamp) -> String {
    ts.to_datetime()
        .map(|d| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute()
            )
        })
        .unwrap_or_default()
}

async fn my_case(ctx: Ctx, State(st): State<AppState>) -> Result<Response, WebError> {
    let Some((case_id, org)) = applicant(&ctx) else {
        return Ok(see_other("/status"));
    };
    render_case(&st, &ctx, case_id, org, None).await
}

async fn render_case(
    st: &AppState,
    ctx: &Ctx,
    case_id: CaseId,
    org: OrgId,
    notice: Option<String>,
) -> Result<Response, WebError> {
    let scope = Scope::Organisation(org);
    let t = Tr::new(&st.i18n, ctx.lang);
    let case = st.store.case(scope, &CaseKey::Id(case_id)).await?;
    let apps = st.store.applications(scope, case_id).await?;
    let messages = st.store.messages(scope, case_id).await?;
    let evidence = st.store.evidence_list(scope, case_id).await?;
    let open_request = apps
        .iter()
        .any(|a| a.state == ApplicationState::InfoRequested);
    let can_withdraw = apps.iter().any(|a| a.state.is_open());
    let applications = apps
        .iter()
        .map(|a| AppView {
            id: a.id.to_string(),
            title: st.library.programmes.get(a.programme.as_str()).map_or_else(
                || a.programme.to_string(),
                |p| p.title.get(ctx.lang).to_owned(),
            ),
            state: t.key2("state", a.state.as_str()),
            decision: a
                .decision
                .as_ref()
                .map(|d| format!("{} ({})", d.reasons.as_str(), d.legal_basis.as_str())),
        })
        .collect();
    let messages = messages
        .iter()
        .filter(|m| m.kind != MessageKind::Note)
        .map(|m| MessageView {
            at: when(m.created_at),
            kind: t.key2("message", m.kind.as_str()),
            body: m.body.as_str().to_owned(),
        })
        .collect();
    let evidence = evidence
        .iter()
        .map(|e| (e.name.clone(), when(e.added_at)))
        .collect();
    let tpl = MyCase {
        page: Page::new(ctx, &t, t.get("case-title")),
        notice,
        reference_label: t.get("reference"),
        reference: case.reference.to_string(),
        applications_heading: t.get("case-applications"),
        applications,
        messages_heading: t.get("case-messages"),
        no_messages: t.get("case-no-messages"),
        messages,
        open_request,
        answer_label: t.get("case-answer"),
        answer_submit: t.get("case-answer-submit"),
        evidence_heading: t.get("case-evidence"),
        evidence,
        upload_label: t.get("case-upload"),
        upload_hint: t.arg(
            "case-upload-hint",
            "megabytes",
            st.config.max_upload_bytes / (1024 * 1024),
        ),
        upload_submit: t.get("case-upload-submit"),
        can_withdraw,
        withdraw_heading: t.get("case-withdraw"),
        withdraw_hint: t.get("case-withdraw-hint"),
        withdraw_confirm: t.get("case-withdraw-confirm"),
        withdraw_submit: t.get("case-withdraw-submit"),
    };
    Ok(html(ctx, StatusCode::OK, tpl.render()))
}

async fn answer(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let Some((case_id, org)) = applicant(&ctx) else {
        return Ok(see_other("/status"));
    };
    let text: Text = crate::parsed_field(&pairs, "answer")?;
    let scope = Scope::Organisation(org);
    st.store
        .add_message(
            Actor::Applicant,
            scope,
            case_id,
            MessageKind::InfoAnswer,
            text,
        )
        .await?;
    // The request is answered: its applications go back to review. The system makes that
    // move (an applicant may only withdraw); if staff moved the application meanwhile, the
    // answer stands all the same.
    for a in st.store.applications(scope, case_id).await? {
        if a.state == ApplicationState::InfoRequested {
            let moved = st
                .store
                .move_application(
                    Actor::System,
                    scope,
                    a.id,
                    Some(a.version),
                    Move {
                        to: ApplicationState::InReview,
                        reason: None,
                        decision: None,
                    },
                )
                .await;
            if let Err(e) = moved {
                tracing::warn!(application = %a.id, error = %e, "answered request: application not moved back to review");
            }
        }
    }
    let t = Tr::new(&st.i18n, ctx.lang);
    render_case(&st, &ctx, case_id, org, Some(t.get("case-answer-sent"))).await
}

/// What an upload's bytes are, judged by their content, not by the name or the browser's
/// claim: PDF, PNG, JPEG or plain UTF-8 text. Anything else is refused.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if !bytes.is_empty()
        && std::str::from_utf8(bytes).is_ok()
        && !bytes.contains(&0)
        && !bytes.iter().take(1024).any(|b| *b == b'<')
    {
        Some("text/plain")
    } else {
        None
    }
}

async fn upload(
    ctx: Ctx,
    State(st): State<AppState>,
    mut multipart: Multipart,
) -> Result<Response, WebError> {
    let Some((case_id, org)) = applicant(&ctx) else {
        return Ok(see_other("/status"));
    };
    let mut csrf = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(part) = multipart
        .next_field()
        .await
        .map_err(|_| WebError::bad_field("file", "the upload was cut off or too large"))?
    {
        match part.name() {
            Some("csrf") => {
                csrf = part
                    .text()
                    .await
                    .map_err(|_| WebError::bad_field("csrf", "unreadable"))?;
            }
            Some("file") => {
                let name = part.file_name().unwrap_or("upload").to_owned();
                let bytes = part.bytes().await.map_err(|_| {
                    WebError::bad_field("file", "the upload was cut off or too large")
                })?;
                file = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    check_csrf(&ctx, &[("csrf".to_owned(), csrf)])?;
    let Some((name, bytes)) = file else {
        return Err(WebError::bad_field("file", "no file was sent"));
    };
    if bytes.len() > st.config.max_upload_bytes {
        return Err(WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "error-too-large",
        ));
    }
    let Some(media_type) = sniff(&bytes) else {
        return Err(WebError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "error-file-type",
        ));
    };
    // Keep only a harmless file name: letters, digits, dot, dash, underscore.
    let clean: String = name
        .chars()
        .rev()
        .take_while(|c| *c != '/' && *c != '\\')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| {
            if c.is_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let scope = Scope::Organisation(org);
    st.store
        .add_evidence(
            Actor::Applicant,
            scope,
            case_id,
            if clean.is_empty() {
                "upload".into()
            } else {
                clean
            },
            media_type.to_owned(),
            bytes,
        )
        .await?;
    let t = Tr::new(&st.i18n, ctx.lang);
    render_case(&st, &ctx, case_id, org, Some(t.get("case-upload-done"))).await
}

async fn withdraw(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, WebError> {
    let pairs = crate::csrf_form(&ctx, &body)?;
    let Some((case_id, org)) = applicant(&ctx) else {
        return Ok(see_other("/status"));
    };
    if field(&pairs, "confirm") != Some("yes") {
        return Err(WebError::bad_field("confirm", "tick the box to withdraw"));
    }
    let scope = Scope::Organisation(org);
    for a in st.store.applications(scope, case_id).await? {
        if a.state.is_open() {
            st.store
                .move_application(
                    Actor::Applicant,
                    scope,
                    a.id,
                    Some(a.version),
                    Move {
                        to: ApplicationState::Withdrawn,
                        reason: None,
                        decision: None,
                    },
                )
                .await?;
        }
    }
    let t = Tr::new(&st.i18n, ctx.lang);
    render_case(&st, &ctx, case_id, org, Some(t.get("case-withdrawn"))).await
}

async fn leave(ctx: Ctx, State(st): State<AppState>, body: Bytes) -> Result<Response, WebError> {
    crate::csrf_form(&ctx, &body)?;
    if let Some(t) = &ctx.token {
        st.sessions.end(t);
    }
    Ok(with_cookie(
        see_other("/"),
        session::clear_cookie().as_str(),
    ))
}

/// Facts of a case in a person's language, for display.
pub fn fact_rows(t: &Tr<'_>, facts: &Facts) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(facts) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for f in Fact::ALL {
        let Some(v) = m.get(f.name()) else { continue };
        let shown = match v {
            serde_json::Value::Bool(b) => t.get(if *b { "yes" } else { "no" }),
            serde_json::Value::String(s) => match f.fact_type() {
                refuge_core::facts::FactType::Enum { .. } => t.key3("v", f.name(), s),
                refuge_core::facts::FactType::Country => {
                    let k = format!("country-{s}");
                    if st_has(t, &k) { t.get(&k) } else { s.clone() }
                }
                _ => s.clone(),
            },
            serde_json::Value::Array(items) if items.is_empty() => t.get("none-of-these"),
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(|s| match f.fact_type() {
                    refuge_core::facts::FactType::EnumSet { .. } => t.key3("v", f.name(), s),
                    _ => {
                        let k = format!("language-{s}");
                        if st_has(t, &k) {
                            t.get(&k)
                        } else {
                            s.to_owned()
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => continue,
        };
        rows.push((t.key2("q", f.name()), shown));
    }
    rows
}

fn st_has(t: &Tr<'_>, key: &str) -> bool {
    t.get(key) != key
}

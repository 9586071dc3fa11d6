//! Every staff page and API route × every role × the caller's own organisation and another:
//! a request the role may make on its own organisation's record is not refused (no 401, 403
//! or 404), and any other is refused (403 or 404) — for the page routes with a signed-in
//! session, for the API routes with the same user's token. Which roles may do what is written
//! out here, independently of `refuge_web::policy`, and every route the server has must be in
//! this table, so that a new route cannot go untested and a removed check cannot go unnoticed.

mod support;

use refuge_core::case::DeadlineKind;
use refuge_core::event::Actor;
use refuge_core::org::Role;
use refuge_crypto::SecretString;
use refuge_store::{NewCase, Scope};
use std::collections::BTreeSet;
use std::time::Duration;
use support::http::Client;
use support::server;

/// Who may do what, per route: (method, path, roles allowed, scoped to one record).
const C: Role = Role::Counsellor;
const W: Role = Role::Caseworker;
const D: Role = Role::DecisionMaker;
const OA: Role = Role::OrgAdmin;
const IA: Role = Role::InstanceAdmin;
const CASEWORK: &[Role] = &[C, W, D];
const ALL: &[Role] = &[C, W, D, OA, IA];
/// Who sees and decides exports: casework roles and the organisation's administrator.
const REVIEW: &[Role] = &[C, W, D, OA];

struct Route {
    method: &'static str,
    path: &'static str,
    allowed: &'static [Role],
    /// A permission checked inside the route, beyond the route's own (see [`within`]).
    within: Option<&'static str>,
}

const ROUTES: &[Route] = &[
    r("GET", "/staff", CASEWORK),
    r("GET", "/staff/cases/{id}", CASEWORK),
    r("GET", "/staff/cases/{id}/evidence/{eid}", CASEWORK),
    r("POST", "/staff/cases/{id}/act", CASEWORK),
    r("GET", "/staff/deadlines", CASEWORK),
    r("GET", "/staff/deadlines.ics", CASEWORK),
    r("POST", "/staff/deadlines/{id}/done", CASEWORK),
    r("GET", "/staff/referrals", CASEWORK),
    r("POST", "/staff/referrals/{id}/answer", CASEWORK),
    r("GET", "/staff/exports", REVIEW),
    r("POST", "/staff/exports", CASEWORK),
    r("POST", "/staff/exports/{id}/decision", REVIEW),
    r("POST", "/staff/exports/{id}/collect", CASEWORK),
    r("GET", "/staff/admin", &[OA, IA]),
    r("POST", "/staff/admin/users", &[OA, IA]),
    r("POST", "/staff/admin/users/{id}/disabled", &[OA, IA]),
    r("POST", "/staff/admin/organisations", &[IA]),
    r("GET", "/api/v1/me", ALL),
    r("GET", "/api/v1/organisations", ALL),
    r("POST", "/api/v1/check", ALL),
    r("POST", "/api/v1/cases", CASEWORK),
    r("GET", "/api/v1/queue", CASEWORK),
    r("GET", "/api/v1/cases/{id}", CASEWORK),
    r("GET", "/api/v1/cases/{id}/events", CASEWORK),
    r("POST", "/api/v1/applications/{id}/moves", CASEWORK),
    r("GET", "/api/v1/cases/{id}/messages", CASEWORK),
    r("POST", "/api/v1/cases/{id}/messages", CASEWORK),
    r("GET", "/api/v1/cases/{id}/evidence", CASEWORK),
    r("POST", "/api/v1/cases/{id}/evidence", CASEWORK),
    r("GET", "/api/v1/evidence/{id}", CASEWORK),
    r("GET", "/api/v1/deadlines", CASEWORK),
    r("GET", "/api/v1/cases/{id}/deadlines", CASEWORK),
    r("POST", "/api/v1/cases/{id}/deadlines", CASEWORK),
    r("POST", "/api/v1/deadlines/{id}/complete", CASEWORK),
    r("POST", "/api/v1/cases/{id}/referrals", CASEWORK),
    r("GET", "/api/v1/referrals", CASEWORK),
    r("POST", "/api/v1/referrals/{id}/answer", CASEWORK),
    r("GET", "/api/v1/exports", REVIEW),
    r("POST", "/api/v1/exports", CASEWORK),
    r("GET", "/api/v1/exports/{id}", REVIEW),
    r("POST", "/api/v1/exports/{id}/decision", REVIEW),
    r("POST", "/api/v1/exports/{id}/collect", CASEWORK),
    // Recording a decision is a move, open to every casework role, that only decision
    // makers may make.
    within("POST", "/api/v1/applications/{id}/moves", "decide", &[D]),
    within("POST", "/staff/cases/{id}/act", "decide", &[D]),
];

/// Routes open to anyone (sign-in, the API description, revoking one's own token last) and
/// the applicant portal (reached by codename, not by role): checked elsewhere, listed so that
/// the completeness check knows them.
const NOT_BY_ROLE: &[&str] = &[
    "/",
    "/check",
    "/apply/start",
    "/apply",
    "/status",
    "/my-case",
    "/my-case/answer",
    "/my-case/evidence",
    "/my-case/withdraw",
    "/my-case/leave",
    "/staff/login",
    "/staff/login/code",
    "/staff/logout",
    "/api/v1/openapi.json",
    "/api/v1/token",
    "/static/refuge.css",
];

/// How the pages word the store's own refusal (`error-not-allowed` in English), as opposed to
/// the policy's "You may not do this."
const STORE_REFUSAL: &str = "This is not allowed.";

const fn r(method: &'static str, path: &'static str, allowed: &'static [Role]) -> Route {
    Route {
        method,
        path,
        allowed,
        within: None,
    }
}

/// A permission the handler of a route checks for one kind of request (`what`): the request
/// is built so that passing that check ends in a `422` (a field left out on purpose), which
/// counts as access, and nothing is written.
const fn within(
    method: &'static str,
    path: &'static str,
    what: &'static str,
    allowed: &'static [Role],
) -> Route {
    Route {
        method,
        path,
        allowed,
        within: Some(what),
    }
}

/// The records a request may name: one set in the caller's organisation, one in another.
struct Records {
    case: String,
    evidence: String,
    deadline: String,
    application: String,
    application_version: u64,
    referral: String,
    user: String,
    /// An export asked for by the organisation's "target" user (so that every caller is a
    /// second person to it).
    export: String,
}

struct Caller {
    role: Role,
    page: Client,
    csrf: String,
    token: String,
}

fn fill(path: &str, rec: &Records) -> String {
    let id = if path.starts_with("/staff/deadlines/") || path.starts_with("/api/v1/deadlines/") {
        &rec.deadline
    } else if path.contains("/referrals/") {
        &rec.referral
    } else if path.contains("/exports/") {
        &rec.export
    } else if path.starts_with("/api/v1/evidence/") {
        &rec.evidence
    } else if path.starts_with("/api/v1/applications/") {
        &rec.application
    } else if path.starts_with("/staff/admin/users/") {
        &rec.user
    } else {
        &rec.case
    };
    path.replace("{id}", id).replace("{eid}", &rec.evidence)
}

#[test]
fn every_route_admits_exactly_the_roles_it_should_in_their_own_organisation_only() {
    let srv = server::start();
    let rt = server::store_runtime();
    let store = srv.store.clone();
    let entropy = refuge_crypto::OsSeededEntropy::new().unwrap();
    let (mine, theirs, third) = (srv.embassy, srv.authority, srv.ngo);

    // One user per role in "mine", each with a session and an API token.
    let mut callers = Vec::new();
    for role in ALL {
        let login = format!("matrix.{}", role.as_str().replace('_', "-"));
        let (totp, token) = rt.block_on(async {
            let user = store
                .create_user(
                    Actor::Operator,
                    mine,
                    login.parse().unwrap(),
                    "Matrix user".parse().unwrap(),
                    vec![*role],
                )
                .await
                .unwrap();
            let totp = refuge_web::totp::enrol(
                store.as_ref(),
                &entropy,
                Actor::Operator,
                user.id,
                &SecretString::new("matrix-password-1".into()),
            )
            .await
            .unwrap();
            let (token, hash) = refuge_web::new_api_token(&entropy).unwrap();
            store
                .create_api_token(Actor::Operator, user.id, hash, "matrix".into())
                .await
                .unwrap();
            (totp, token)
        });
        let now = refuge_core::clock::Clock::now(&refuge_core::clock::SystemClock);
        let code = refuge_web::totp::code_at(totp.expose(), now.as_micros() / 1_000_000);
        let mut page = Client::new(&srv.base, "en");
        page.sign_in(&login, "matrix-password-1", &code);
        // The session's CSRF token, from the sign-out form on the page the role starts at.
        let start = if CASEWORK.contains(role) {
            "/staff"
        } else {
            "/staff/admin"
        };
        let csrf = page.get(start).csrf();
        callers.push(Caller {
            role: *role,
            page,
            csrf,
            token: token.expose().to_owned(),
        });
    }

    // The records: a case with an application, evidence and a deadline in each organisation,
    // a pending referral to each, and a user in each.
    let records = |org, to, label: &str| {
        rt.block_on(async {
            let person = serde_json::from_value(serde_json::json!({"pseudonym": label})).unwrap();
            let (case, app) = store
                .submit(
                    Actor::Operator,
                    NewCase {
                        organisation_id: org,
                        person,
                        facts: Default::default(),
                    },
                    "eu-humanitarian-visa".parse().unwrap(),
                )
                .await
                .unwrap();
            let scope = Scope::Organisation(org);
            let ev = store
                .add_evidence(
                    Actor::Operator,
                    scope,
                    case.id,
                    "a.txt".into(),
                    "text/plain".into(),
                    b"evidence".to_vec(),
                )
                .await
                .unwrap();
            let dl = store
                .set_deadline(
                    Actor::Operator,
                    scope,
                    case.id,
                    DeadlineKind::AppealLimit,
                    time::macros::date!(2030 - 01 - 01),
                    None,
                )
                .await
                .unwrap();
            // A case of `to`'s, referred to `org` and still pending.
            let person =
                serde_json::from_value(serde_json::json!({"pseudonym": "Referred"})).unwrap();
            let (theirs_case, _) = store
                .submit(
                    Actor::Operator,
                    NewCase {
                        organisation_id: to,
                        person,
                        facts: Default::default(),
                    },
                    "eu-humanitarian-visa".parse().unwrap(),
                )
                .await
                .unwrap();
            let referral = store
                .refer(
                    Actor::Operator,
                    Scope::Organisation(to),
                    theirs_case.id,
                    org,
                    "Consent given in person".parse().unwrap(),
                )
                .await
                .unwrap();
            let user = store
                .create_user(
                    Actor::Operator,
                    org,
                    format!("target.{label}").parse().unwrap(),
                    "Target".parse().unwrap(),
                    vec![Role::Counsellor],
                )
                .await
                .unwrap();
            let export = store
                .request_export(
                    Actor::User(user.id),
                    scope,
                    &[refuge_store::CaseKey::Id(case.id)],
                    "Transfer to the person's lawyer".parse().unwrap(),
                )
                .await
                .unwrap();
            Records {
                export: export.id.to_string(),
                case: case.id.to_string(),
                evidence: ev.id.to_string(),
                deadline: dl.id.to_string(),
                application: app.id.to_string(),
                application_version: app.version,
                referral: referral.id.to_string(),
                user: user.id.to_string(),
            }
        })
    };
    let own = records(mine, third, "own");
    let other = records(theirs, third, "other");

    // Every routed path is in a table above.
    let listed: BTreeSet<&str> = ROUTES
        .iter()
        .map(|r| r.path)
        .chain(NOT_BY_ROLE.iter().copied())
        .collect();
    let state = server::state_over(store.clone());
    let debug = format!("{:?}", refuge_web::app(state));
    let routed: BTreeSet<String> = debug
        .split('"')
        .filter(|s| s.starts_with('/') && !s.contains(' ') && !s.contains("__private__"))
        .map(str::to_owned)
        .collect();
    for path in &routed {
        assert!(
            listed.contains(path.as_str()),
            "{path} is routed but not in the access table"
        );
    }
    for r in ROUTES {
        assert!(
            routed.contains(r.path),
            "{} is in the table but not routed",
            r.path
        );
    }

    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .build()
        .new_agent();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for caller in &mut callers {
        for route in ROUTES {
            let may = route.allowed.contains(&caller.role);
            let scoped = route.path.contains("{id}");
            for (whose, rec) in [("own", &own), ("other", &other)] {
                if whose == "other" && !scoped {
                    continue;
                }
                let path = fill(route.path, rec);
                let status = if route.path.starts_with("/api/") {
                    let body = api_body(route, rec, theirs);
                    let mut req = ureq::http::Request::builder()
                        .method(route.method)
                        .uri(format!("{}{path}", srv.base))
                        .header("authorization", format!("Bearer {}", caller.token));
                    let res = match body {
                        Some((ct, b)) => {
                            req = req.header("content-type", ct);
                            agent.run(req.body(b).unwrap())
                        }
                        None => agent.run(req.body(()).unwrap()),
                    };
                    let mut res = res.unwrap();
                    let status = res.status().as_u16();
                    let body = res.body_mut().read_to_string().unwrap_or_default();
                    (status, body.contains("\"not_allowed\""))
                } else if route.method == "GET" {
                    let page = caller.page.get(&path);
                    (page.status, page.body.contains(STORE_REFUSAL))
                } else {
                    let mut form = page_form(route, caller.role, rec);
                    form.insert(0, ("csrf".into(), caller.csrf.clone()));
                    let pairs: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let page = caller.page.post(&path, &pairs);
                    (page.status, page.body.contains(STORE_REFUSAL))
                };
                checked += 1;
                // A 403 from the store's own rule (an export decided by its requester or
                // collected by someone else: `not_allowed`) means the route let the role in.
                let (status, by_the_store) = status;
                let refused = matches!(status, 401 | 404) || (status == 403 && !by_the_store);
                let should_refuse = !may || whose == "other";
                if refused != should_refuse {
                    wrong.push(format!(
                        "{:?} {} {path}{} ({whose}): {status}, expected {}",
                        caller.role,
                        route.method,
                        route.within.map(|w| format!(" [{w}]")).unwrap_or_default(),
                        if should_refuse { "a refusal" } else { "access" }
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong of {checked}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let inside = ROUTES.iter().filter(|r| r.within.is_some()).count();
    eprintln!(
        "{checked} requests: ({} routes + {inside} permissions within them) × {} roles × own/other organisation, all as expected",
        ROUTES.len() - inside,
        ALL.len()
    );
}

fn page_form(route: &Route, role: Role, rec: &Records) -> Vec<(String, String)> {
    let kv = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    if route.within == Some("decide") {
        // No outcome: a decision maker gets `422` for it, anyone else `403` before that.
        return vec![
            ("action".into(), "decide".into()),
            ("application".into(), rec.application.clone()),
            ("version".into(), rec.application_version.to_string()),
        ];
    }
    match route.path {
        "/staff/cases/{id}/act" => kv(&[
            ("action", "deadline"),
            ("kind", "appeal_limit"),
            ("due_on", "2031-02-03"),
        ]),
        "/staff/referrals/{id}/answer" => kv(&[("answer", "decline")]),
        "/staff/admin/users" => {
            let login = format!("made.by.{}", role.as_str().replace('_', "-"));
            vec![
                ("login".into(), login),
                ("name".into(), "Made".into()),
                ("roles".into(), "counsellor".into()),
            ]
        }
        "/staff/admin/users/{id}/disabled" => kv(&[("disabled", "yes")]),
        "/staff/exports" => vec![
            ("cases".into(), rec.case.clone()),
            ("purpose".into(), "For the person's lawyer".into()),
        ],
        "/staff/exports/{id}/decision" => kv(&[("decision", "refuse")]),
        "/staff/exports/{id}/collect" => kv(&[("passphrase", "river lantern copper meadow")]),
        "/staff/admin/organisations" => vec![
            ("kind".into(), "ngo".into()),
            ("name".into(), format!("Made by {}", role.as_str())),
        ],
        _ => Vec::new(),
    }
}

fn api_body(
    route: &Route,
    rec: &Records,
    theirs: refuge_core::ids::OrgId,
) -> Option<(&'static str, Vec<u8>)> {
    let json = |v: serde_json::Value| Some(("application/json", v.to_string().into_bytes()));
    if route.within == Some("decide") {
        // No `decision`: a decision maker gets `422` for it, anyone else `403` before that.
        return json(serde_json::json!({
            "to": "granted", "expected_version": rec.application_version
        }));
    }
    match (route.method, route.path) {
        ("POST", "/api/v1/check") => json(serde_json::json!({"facts": {}})),
        ("POST", "/api/v1/cases") => json(serde_json::json!({
            "person": {"pseudonym": "Made"}, "facts": {}, "programme": "eu-humanitarian-visa"
        })),
        ("POST", "/api/v1/applications/{id}/moves") => json(serde_json::json!({
            "to": "in_review", "expected_version": rec.application_version
        })),
        ("POST", "/api/v1/cases/{id}/messages") => {
            json(serde_json::json!({"kind": "note", "body": "A note"}))
        }
        ("POST", "/api/v1/cases/{id}/evidence") => {
            Some(("application/octet-stream", b"plain text evidence".to_vec()))
        }
        ("POST", "/api/v1/cases/{id}/deadlines") => {
            json(serde_json::json!({"kind": "appeal_limit", "due_on": "2031-02-03"}))
        }
        ("POST", "/api/v1/cases/{id}/referrals") => json(serde_json::json!({
            "to": theirs.to_string(), "consent": "Consent given in person"
        })),
        ("POST", "/api/v1/referrals/{id}/answer") => json(serde_json::json!({"accept": false})),
        ("POST", "/api/v1/exports") => json(serde_json::json!({
            "cases": [rec.case], "purpose": "For the person's lawyer"
        })),
        ("POST", "/api/v1/exports/{id}/decision") => json(serde_json::json!({"approve": false})),
        ("POST", "/api/v1/exports/{id}/collect") => {
            json(serde_json::json!({"passphrase": "river lantern copper meadow"}))
        }
        _ => None,
    }
}

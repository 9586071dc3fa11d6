//! Who may do what: every staff page and API route, with the action it performs, and the roles
//! that may perform each action. Checked in one place for every request: by the staff routes'
//! middleware ([`authorize_staff`]) and by the API's caller extractor, before any handler runs.
//! Which organisation's records an allowed user reaches is decided below, by the store's
//! scopes (`refuge_store::Scope`). A route missing from [`RULES`] is refused to everyone who is
//! signed in.
//!
//! Least privilege: administrators administer, they do not read cases unless they also hold a
//! casework role; only a decision maker records a decision (checked by the two handlers that
//! can record one, with [`allows`] and [`Action::Decide`]).

use crate::AppState;
use crate::page::WebError;
use crate::session::Who;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refuge_core::org::Role;

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Anyone, signed in or not (sign-in forms, the API's own description, `/me`).
    Open,
    /// Read the organisation's cases, queue, deadlines and referrals.
    ReadCases,
    /// Change cases: messages, evidence, deadlines, moves, referrals, new cases.
    WorkCases,
    /// Record a decision (granted or refused).
    Decide,
    /// Ask for an export of cases, and collect it once approved (the store lets only the
    /// requester collect).
    RequestExports,
    /// See the organisation's exports and approve or refuse them (the store never lets the
    /// requester decide their own).
    ReviewExports,
    /// Create and disable the organisation's users.
    AdministerUsers,
    /// Create organisations.
    AdministerOrganisations,
}

/// Whether someone with `roles` may perform `action`.
pub fn allows(roles: &[Role], action: Action) -> bool {
    let any = |wanted: &[Role]| roles.iter().any(|r| wanted.contains(r));
    match action {
        Action::Open => true,
        Action::ReadCases | Action::WorkCases => {
            any(&[Role::Counsellor, Role::Caseworker, Role::DecisionMaker])
        }
        Action::Decide => any(&[Role::DecisionMaker]),
        Action::RequestExports => any(&[Role::Counsellor, Role::Caseworker, Role::DecisionMaker]),
        Action::ReviewExports => any(&[
            Role::Counsellor,
            Role::Caseworker,
            Role::DecisionMaker,
            Role::OrgAdmin,
        ]),
        Action::AdministerUsers => any(&[Role::OrgAdmin, Role::InstanceAdmin]),
        Action::AdministerOrganisations => any(&[Role::InstanceAdmin]),
    }
}

/// Every staff page and API route (method, path as routed) and its action.
pub const RULES: &[(&str, &str, Action)] = &[
    // Staff pages.
    ("GET", "/staff/login", Action::Open),
    ("POST", "/staff/login", Action::Open),
    ("GET", "/staff/login/code", Action::Open),
    ("POST", "/staff/login/code", Action::Open),
    ("POST", "/staff/logout", Action::Open),
    ("GET", "/staff", Action::ReadCases),
    ("GET", "/staff/cases/{id}", Action::ReadCases),
    ("GET", "/staff/cases/{id}/evidence/{eid}", Action::ReadCases),
    ("POST", "/staff/cases/{id}/act", Action::WorkCases),
    ("GET", "/staff/deadlines", Action::ReadCases),
    ("GET", "/staff/deadlines.ics", Action::ReadCases),
    ("POST", "/staff/deadlines/{id}/done", Action::WorkCases),
    ("GET", "/staff/referrals", Action::ReadCases),
    ("POST", "/staff/referrals/{id}/answer", Action::WorkCases),
    ("GET", "/staff/admin", Action::AdministerUsers),
    ("GET", "/staff/exports", Action::ReviewExports),
    ("POST", "/staff/exports", Action::RequestExports),
    (
        "POST",
        "/staff/exports/{id}/decision",
        Action::ReviewExports,
    ),
    (
        "POST",
        "/staff/exports/{id}/collect",
        Action::RequestExports,
    ),
    ("POST", "/staff/admin/users", Action::AdministerUsers),
    (
        "POST",
        "/staff/admin/users/{id}/disabled",
        Action::AdministerUsers,
    ),
    (
        "POST",
        "/staff/admin/organisations",
        Action::AdministerOrganisations,
    ),
    // The API.
    ("GET", "/api/v1/openapi.json", Action::Open),
    ("GET", "/api/v1/me", Action::Open),
    ("DELETE", "/api/v1/token", Action::Open),
    ("POST", "/api/v1/check", Action::Open),
    ("GET", "/api/v1/organisations", Action::Open),
    ("POST", "/api/v1/cases", Action::WorkCases),
    ("GET", "/api/v1/queue", Action::ReadCases),
    ("GET", "/api/v1/cases/{id}", Action::ReadCases),
    ("GET", "/api/v1/cases/{id}/events", Action::ReadCases),
    ("POST", "/api/v1/applications/{id}/moves", Action::WorkCases),
    ("GET", "/api/v1/cases/{id}/messages", Action::ReadCases),
    ("POST", "/api/v1/cases/{id}/messages", Action::WorkCases),
    ("GET", "/api/v1/cases/{id}/evidence", Action::ReadCases),
    ("POST", "/api/v1/cases/{id}/evidence", Action::WorkCases),
    ("GET", "/api/v1/evidence/{id}", Action::ReadCases),
    ("GET", "/api/v1/deadlines", Action::ReadCases),
    ("GET", "/api/v1/cases/{id}/deadlines", Action::ReadCases),
    ("POST", "/api/v1/cases/{id}/deadlines", Action::WorkCases),
    ("POST", "/api/v1/deadlines/{id}/complete", Action::WorkCases),
    ("POST", "/api/v1/cases/{id}/referrals", Action::WorkCases),
    ("GET", "/api/v1/referrals", Action::ReadCases),
    ("POST", "/api/v1/referrals/{id}/answer", Action::WorkCases),
    ("GET", "/api/v1/exports", Action::ReviewExports),
    ("POST", "/api/v1/exports", Action::RequestExports),
    ("GET", "/api/v1/exports/{id}", Action::ReviewExports),
    (
        "POST",
        "/api/v1/exports/{id}/decision",
        Action::ReviewExports,
    ),
    (
        "POST",
        "/api/v1/exports/{id}/collect",
        Action::RequestExports,
    ),
];

/// The action of a routed request, if the route is listed.
pub fn action(method: &Method, route: &str) -> Option<Action> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == route)
        .map(|(_, _, a)| *a)
}

/// Whether a signed-in user with `roles` may make this routed request (unlisted: no).
pub fn permits(roles: &[Role], method: &Method, route: Option<&MatchedPath>) -> bool {
    route
        .and_then(|r| action(method, r.as_str()))
        .is_some_and(|a| allows(roles, a))
}

/// Middleware of the staff pages: a signed-in staff user may reach a route only if their
/// roles allow its action. Requests without a staff session go on, and the pages send them
/// to sign in.
pub async fn authorize_staff(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let token = crate::cookie_value(req.headers(), crate::session::COOKIE).map(str::to_owned);
    let who = token
        .as_deref()
        .and_then(|t| st.sessions.get(t, st.clock.now()))
        .map(|s| s.who);
    if let Some(Who::Staff { roles, user, .. }) = who
        && !permits(&roles, req.method(), req.extensions().get::<MatchedPath>())
    {
        tracing::info!(user = %user, path = %req.uri().path(), "refused by role");
        return WebError::forbidden().into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege() {
        assert!(allows(&[Role::Counsellor], Action::WorkCases));
        assert!(!allows(&[Role::Counsellor], Action::Decide));
        assert!(allows(&[Role::DecisionMaker], Action::Decide));
        assert!(!allows(&[Role::OrgAdmin], Action::ReadCases));
        assert!(!allows(&[Role::InstanceAdmin], Action::ReadCases));
        assert!(allows(&[Role::OrgAdmin], Action::AdministerUsers));
        assert!(!allows(&[Role::OrgAdmin], Action::AdministerOrganisations));
        assert!(allows(&[], Action::Open));
        assert!(!allows(&[], Action::ReadCases));
    }

    #[test]
    fn routes_are_listed_once() {
        for (i, (m, p, _)) in RULES.iter().enumerate() {
            assert!(
                !RULES[i + 1..].iter().any(|(m2, p2, _)| m == m2 && p == p2),
                "{m} {p} twice"
            );
        }
    }
}

//! The portal and the workspace over plain HTTP: security headers, CSRF, sign-in answers that
//! reveal nothing, one-time TOTP codes, uploads judged by content, deadlines and their
//! calendar file, referrals deciding who sees a case, and user administration.

mod support;

use refuge_web::i18n::I18n;
use support::http::{Client, Page};
use support::server;

fn tr(lang: &str, key: &str) -> String {
    I18n::embedded().unwrap().format(lang, key, &[])
}

/// Apply to `programme` through the portal; returns (reference, codename, client).
fn apply(base: &str, programme: &str, facts: &[(&str, &str)]) -> (String, String, Client) {
    let mut c = Client::new(base, "en");
    let page = c.get("/check");
    let csrf = page.csrf();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(facts);
    let results = c.post("/check", &form);
    assert_eq!(results.status, 200, "{}", results.body);
    let mut form = vec![("csrf", csrf.as_str()), ("programme", programme)];
    form.extend_from_slice(facts);
    let start = c.post("/apply/start", &form);
    assert_eq!(start.status, 200, "{}", start.body);
    form.push(("consent", "yes"));
    let done = c.post("/apply", &form);
    assert_eq!(done.status, 200, "{}", done.body);
    let grab = |id: &str| {
        let m = format!("id=\"{id}\">");
        let i = done.body.find(&m).unwrap() + m.len();
        done.body[i..].split('<').next().unwrap().to_owned()
    };
    (grab("reference"), grab("codename"), c)
}

const FACTS: &[(&str, &str)] = &[
    ("nationality", "RU"),
    ("birth_date", "1990-05-14"),
    ("sex", "male"),
    ("current_country", "GE"),
    ("refusal", "evaded_callup"),
    ("summons_received", "yes"),
];

fn strip_tokens(p: &Page) -> String {
    let mut s = p.body.clone();
    while let Some(i) = s.find("name=\"csrf\" value=\"") {
        let start = i + "name=\"csrf\" value=\"".len();
        let end = start + s[start..].find('"').unwrap();
        s.replace_range(i..end, "CSRF");
    }
    s
}

#[test]
fn every_response_carries_the_security_headers_and_no_scripts() {
    let srv = server::start();
    let mut c = Client::new(&srv.base, "ru");
    for path in [
        "/",
        "/check",
        "/status",
        "/staff/login",
        "/nowhere",
        "/static/refuge.css",
    ] {
        let p = c.get(path);
        let csp = p.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{path}: {csp}"
        );
        assert_eq!(
            p.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(p.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(p.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert!(!p.body.contains("<script"), "{path}");
    }
    let home = c.get("/");
    assert!(home.body.contains(&tr("ru", "portal-title")));
    assert!(
        home.header("cache-control")
            .unwrap_or("")
            .contains("no-store")
    );
    assert_eq!(c.get("/nowhere").status, 404);
    // ?lang= switches and is remembered.
    let de = c.get("/?lang=de");
    assert!(de.body.contains(&tr("de", "portal-title")));
    assert!(
        de.header("set-cookie")
            .unwrap_or("")
            .contains("refuge-lang=de")
    );
}

#[test]
fn forms_without_the_session_token_are_refused() {
    let srv = server::start();
    let mut c = Client::new(&srv.base, "en");
    let _ = c.get("/check");
    let r = c.post("/check", &[("nationality", "RU")]);
    assert_eq!(r.status, 403);
    assert!(r.body.contains(&tr("en", "error-csrf")));
    let r = c.post("/check", &[("csrf", "0000"), ("nationality", "RU")]);
    assert_eq!(r.status, 403);
    let mut stranger = Client::new(&srv.base, "en");
    let r = stranger.post("/staff/login", &[("csrf", ""), ("login", "jonas.test")]);
    assert_eq!(r.status, 403);
}

#[test]
fn a_bad_answer_names_the_question() {
    let srv = server::start();
    let mut c = Client::new(&srv.base, "en");
    let csrf = c.get("/check").csrf();
    let r = c.post("/check", &[("csrf", &csrf), ("birth_date", "14.05.1990")]);
    assert_eq!(r.status, 422);
    assert!(r.body.contains(&tr("en", "q-birth-date")), "{}", r.body);
}

#[test]
fn sign_in_failures_look_alike_and_codes_work_once() {
    let srv = server::start();
    let jonas = &srv.staff["jonas"];
    let attempt = |login: &str, password: &str| {
        let mut c = Client::new(&srv.base, "en");
        let csrf = c.get("/staff/login").csrf();
        let p = c.post(
            "/staff/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        );
        (p.status, strip_tokens(&p))
    };
    let unknown = attempt("nobody.here", "whatever");
    let wrong = attempt(&jonas.login, "wrong password");
    assert_eq!(unknown.0, 200);
    assert_eq!(
        unknown, wrong,
        "an unknown login and a wrong password get the same page"
    );
    assert!(unknown.1.contains(&tr("en", "staff-login-failed")));

    let code = srv.code("jonas");
    let mut a = Client::new(&srv.base, "en");
    a.sign_in(&jonas.login, &jonas.password, &code);
    assert_eq!(a.get("/staff").status, 200);
    // The same code again, in another session: refused.
    let mut b = Client::new(&srv.base, "en");
    let csrf = b.get("/staff/login").csrf();
    let r = b.post(
        "/staff/login",
        &[
            ("csrf", &csrf),
            ("login", &jonas.login),
            ("password", &jonas.password),
        ],
    );
    assert_eq!(r.status, 303);
    let csrf = b.get("/staff/login/code").csrf();
    let r = b.post("/staff/login/code", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&tr("en", "staff-code-failed")));
    // Without signing in, the workspace sends you to sign in.
    let mut anon = Client::new(&srv.base, "en");
    assert_eq!(anon.get("/staff").status, 303);
    assert_eq!(anon.get("/staff/deadlines").status, 303);
}

#[test]
fn guessing_is_throttled_alike_for_known_and_unknown_names() {
    let srv = server::start();
    let jonas = &srv.staff["jonas"];
    let attempt = |login: &str, password: &str| {
        let mut c = Client::new(&srv.base, "en");
        let csrf = c.get("/staff/login").csrf();
        let p = c.post(
            "/staff/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        );
        (p.status, strip_tokens(&p))
    };
    for _ in 0..5 {
        assert_eq!(attempt(&jonas.login, "wrong password").0, 200);
        assert_eq!(attempt("nobody.here", "wrong password").0, 200);
    }
    // Now even the right password is refused, and a real name looks like an unknown one.
    let known = attempt(&jonas.login, &jonas.password);
    let unknown = attempt("nobody.here", "whatever");
    assert_eq!(known.0, 429);
    assert_eq!(known, unknown);
    assert!(known.1.contains(&tr("en", "staff-login-throttled")));
    // Someone else signs in as usual.
    let eva = &srv.staff["eva"];
    let mut e = Client::new(&srv.base, "en");
    e.sign_in(&eva.login, &eva.password, &srv.code("eva"));
    assert_eq!(e.get("/staff").status, 200);

    // Wrong second-factor codes count too: after the password, five wrong codes lock the
    // name and end the half-signed-in session.
    let admin = &srv.staff["admin"];
    let mut a = Client::new(&srv.base, "en");
    let csrf = a.get("/staff/login").csrf();
    let r = a.post(
        "/staff/login",
        &[
            ("csrf", &csrf),
            ("login", &admin.login),
            ("password", &admin.password),
        ],
    );
    assert_eq!(r.status, 303);
    for _ in 0..5 {
        let csrf = a.get("/staff/login/code").csrf();
        let r = a.post("/staff/login/code", &[("csrf", &csrf), ("code", "000000")]);
        assert_eq!(r.status, 200);
    }
    let csrf = a.get("/staff/login/code").csrf();
    let r = a.post(
        "/staff/login/code",
        &[("csrf", &csrf), ("code", &srv.code("admin"))],
    );
    assert_eq!(r.status, 429);
    assert_eq!(
        a.get("/staff/login/code").status,
        303,
        "back to the password"
    );

    // Codenames: a session that guesses five times must start again.
    let mut g = Client::new(&srv.base, "ru");
    let mut csrf = g.get("/status").csrf();
    for i in 0..5 {
        let r = g.post(
            "/status",
            &[("csrf", &csrf), ("codename", &format!("wrong words {i}"))],
        );
        assert_eq!(r.status, 200);
        assert!(r.body.contains(&tr("ru", "status-unknown")));
        csrf = r.csrf();
    }
    let r = g.post(
        "/status",
        &[("csrf", &csrf), ("codename", "wrong words again")],
    );
    assert_eq!(r.status, 429);
    assert!(r.body.contains(&tr("ru", "status-throttled")));
}

fn multipart(csrf: &str, name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----refugetestboundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn uploads_are_judged_by_their_content_and_served_only_as_downloads() {
    let srv = server::start();
    let (reference, _, mut applicant) = apply(&srv.base, "eu-humanitarian-visa", FACTS);
    let csrf = applicant.get("/my-case").csrf();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let cookie = applicant.cookie_header();
    let send = |name: &str, bytes: &[u8]| {
        let (ct, body) = multipart(&csrf, name, bytes);
        agent
            .post(&format!("{}/my-case/evidence", srv.base))
            .header("content-type", &ct)
            .header("cookie", &cookie)
            .send(&body[..])
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        send("evil.pdf", b"<html><script>alert(1)</script></html>"),
        415
    );
    assert_eq!(send("exe.pdf", b"MZ\x90\x00\x03\x00\x00\x00"), 415);
    assert_eq!(send("summons.pdf", b"%PDF-1.4\n%%EOF\n"), 200);
    // Staff download it as an attachment.
    let jonas = &srv.staff["jonas"];
    let mut staff = Client::new(&srv.base, "en");
    staff.sign_in(&jonas.login, &jonas.password, &srv.code("jonas"));
    let queue = staff.get("/staff");
    assert!(queue.body.contains(&reference));
    let case_path = link_to_case(&queue.body);
    let case = staff.get(&case_path);
    let i = case.body.find("/evidence/").unwrap();
    let start = case.body[..i].rfind('"').unwrap() + 1;
    let href = case.body[start..].split('"').next().unwrap().to_owned();
    let file = staff.get(&href);
    assert_eq!(file.status, 200);
    assert_eq!(file.body, "%PDF-1.4\n%%EOF\n");
    assert!(
        file.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(file.header("content-type"), Some("application/pdf"));
}

fn link_to_case(html: &str) -> String {
    let i = html.find("href=\"/staff/cases/").unwrap() + "href=\"".len();
    html[i..].split('"').next().unwrap().to_owned()
}

#[test]
fn deadlines_referrals_and_administration() {
    let srv = server::start();
    let (reference, _, _) = apply(&srv.base, "eu-humanitarian-visa", FACTS);
    let jonas = &srv.staff["jonas"];
    let mut j = Client::new(&srv.base, "en");
    j.sign_in(&jonas.login, &jonas.password, &srv.code("jonas"));
    let case_path = link_to_case(&j.get("/staff").body);
    let page = j.get(&case_path);
    let csrf = page.csrf();
    let soon = (time::OffsetDateTime::now_utc().date() + time::Duration::days(5)).to_string();
    let r = j.post(
        &format!("{case_path}/act"),
        &[
            ("csrf", &csrf),
            ("action", "deadline"),
            ("kind", "transfer_order"),
            ("due_on", &soon),
            ("note", "Transfer to Croatia — Zagreb"),
        ],
    );
    assert!(
        r.body.contains(&tr("en", "done-deadline-set")),
        "{}",
        r.body
    );
    let d = j.get("/staff/deadlines");
    assert!(d.body.contains(&tr("en", "deadlines-7")));
    assert!(d.body.contains(&soon));
    // Queue filters: deadline due, and signals.
    let (quiet_ref, _, _) = apply(
        &srv.base,
        "eu-humanitarian-visa",
        &[("current_country", "GE")],
    );
    let (risk_ref, _, _) = apply(
        &srv.base,
        "eu-humanitarian-visa",
        &[
            ("current_country", "GE"),
            ("deportation_order", "to_origin"),
        ],
    );
    let all = j.get("/staff").body;
    assert!(all.contains(&reference) && all.contains(&quiet_ref) && all.contains(&risk_ref));
    let due = j.get("/staff?due=7").body;
    assert!(due.contains(&reference) && !due.contains(&quiet_ref) && !due.contains(&risk_ref));
    let flagged = j.get("/staff?signals=1").body;
    assert!(
        flagged.contains(&risk_ref),
        "deportation to origin is a signal"
    );
    assert!(!flagged.contains(&quiet_ref), "no facts, no signal");
    let ics = j.get("/staff/deadlines.ics");
    assert_eq!(
        ics.header("content-type"),
        Some("text/calendar; charset=utf-8")
    );
    assert!(ics.body.starts_with("BEGIN:VCALENDAR\r\n"));
    assert!(
        ics.body
            .contains(&format!("DTSTART;VALUE=DATE:{}", soon.replace('-', "")))
    );
    assert!(
        !ics.body.contains("Zagreb"),
        "notes stay out of calendar files"
    );

    // Eva (another organisation) cannot see the case, before or while the referral is pending.
    let eva = &srv.staff["eva"];
    let mut e = Client::new(&srv.base, "en");
    e.sign_in(&eva.login, &eva.password, &srv.code("eva"));
    assert_eq!(e.get(&case_path).status, 404);
    let r = j.post(
        &format!("{case_path}/act"),
        &[
            ("csrf", &csrf),
            ("action", "refer"),
            ("to", &srv.authority.to_string()),
            (
                "consent",
                "Agreed in person on 22 November, signed form in the file",
            ),
        ],
    );
    assert!(r.body.contains(&tr("en", "done-referred")), "{}", r.body);
    let incoming = e.get("/staff/referrals");
    assert!(incoming.body.contains(&reference));
    assert!(incoming.body.contains("signed form in the file"));
    assert_eq!(e.get(&case_path).status, 404, "pending: summary only");
    let i = incoming.body.find("/staff/referrals/").unwrap();
    let action = incoming.body[i..].split('"').next().unwrap().to_owned();
    let r = e.post(&action, &[("csrf", &incoming.csrf()), ("answer", "accept")]);
    assert!(
        r.body.contains(&tr("en", "done-referral-accepted")),
        "{}",
        r.body
    );
    assert_eq!(
        e.get(&case_path).status,
        200,
        "accepted: the case is theirs to see"
    );

    // Administration: only organisation admins.
    assert_eq!(j.get("/staff/admin").status, 403);
    let admin = &srv.staff["admin"];
    let mut a = Client::new(&srv.base, "en");
    a.sign_in(&admin.login, &admin.password, &srv.code("admin"));
    let page = a.get("/staff/admin");
    assert_eq!(page.status, 200);
    let created = a.post(
        "/staff/admin/users",
        &[
            ("csrf", &page.csrf()),
            ("login", "new.caseworker"),
            ("name", "New caseworker"),
            ("role", "caseworker"),
        ],
    );
    assert!(
        created.body.contains(&tr("en", "admin-created")),
        "{}",
        created.body
    );
    let grab = |id: &str| {
        let m = format!("id=\"{id}\">");
        let i = created.body.find(&m).unwrap() + m.len();
        created.body[i..].split('<').next().unwrap().to_owned()
    };
    let (password, secret_b32) = (grab("new-password"), grab("new-totp"));
    let secret = base32_decode(&secret_b32);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut n = Client::new(&srv.base, "en");
    n.sign_in(
        "new.caseworker",
        &password,
        &refuge_web::totp::code_at(&secret, now),
    );
    assert_eq!(n.get("/staff").status, 200);
    // Disabling them ends their session at once.
    let page = a.get("/staff/admin");
    let m = "/staff/admin/users/";
    let forms: Vec<&str> = page
        .body
        .match_indices(m)
        .map(|(i, _)| &page.body[i..])
        .collect();
    let target = forms
        .iter()
        .find(|f| {
            let row_start = page.body.len() - f.len();
            page.body[..row_start]
                .rfind("<tr>")
                .is_some_and(|r| page.body[r..row_start].contains("new.caseworker"))
        })
        .map(|f| f.split('"').next().unwrap().to_owned())
        .unwrap();
    let r = a.post(&target, &[("csrf", &page.csrf()), ("disabled", "yes")]);
    assert!(
        r.body.contains(&tr("en", "done-user-disabled")),
        "{}",
        r.body
    );
    assert_eq!(
        n.get("/staff").status,
        303,
        "a disabled user's session is gone"
    );
}

#[test]
fn an_application_sent_twice_opens_one_case_and_shows_its_codename() {
    // A double click, or a form sent again after an error or a lost answer: both requests
    // carry one session, so one codename, so one case, and every answer shows that case.
    let srv = server::start();
    let rt = server::store_runtime();
    let cases = || {
        let counts = rt.block_on(srv.store.counts()).unwrap();
        counts.iter().find(|(t, _)| *t == "cases").unwrap().1
    };
    let before = cases();
    let rounds: i64 = 12;
    let (mut both_shown, mut second_refused) = (0, 0);
    for _ in 0..rounds {
        let mut c = Client::new(&srv.base, "en");
        let csrf = c.get("/check").csrf();
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("programme", "eu-humanitarian-visa"),
        ];
        form.extend_from_slice(FACTS);
        assert_eq!(c.post("/apply/start", &form).status, 200);
        form.push(("consent", "yes"));
        let gate = std::sync::Barrier::new(2);
        let answers: Vec<Page> = std::thread::scope(|s| {
            let sends: Vec<_> = (0..2)
                .map(|_| {
                    let mut twin = c.twin();
                    let (form, gate) = (&form, &gate);
                    s.spawn(move || {
                        gate.wait();
                        twin.post("/apply", form)
                    })
                })
                .collect();
            sends.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let shown: Vec<(String, String)> = answers
            .iter()
            .filter(|a| a.status == 200)
            .map(|a| {
                let grab = |id: &str| {
                    let m = format!("id=\"{id}\">");
                    let i = a.body.find(&m).unwrap() + m.len();
                    a.body[i..].split('<').next().unwrap().to_owned()
                };
                (grab("reference"), grab("codename"))
            })
            .collect();
        assert!(!shown.is_empty(), "neither attempt was shown its case");
        for a in answers.iter().filter(|a| a.status != 200) {
            // Sent after the first had rotated the session: refused, nothing stored.
            assert_eq!(a.status, 403, "{}", a.body);
            second_refused += 1;
        }
        if shown.len() == 2 {
            both_shown += 1;
            assert_eq!(shown[0], shown[1], "two answers, two different cases");
        }
        let (reference, codename) = &shown[0];
        let opened = rt
            .block_on(
                srv.store
                    .case_for_codename(&refuge_crypto::SecretString::new(codename.clone())),
            )
            .unwrap()
            .expect("the codename shown opens a case");
        let case = rt
            .block_on(srv.store.case(
                refuge_store::Scope::Instance,
                &refuge_store::CaseKey::Id(opened.0),
            ))
            .unwrap();
        assert_eq!(&case.reference.to_string(), reference);
    }
    assert_eq!(
        cases() - before,
        rounds,
        "one case per application, however often it was sent \
         ({both_shown} rounds answered both, {second_refused} refused the second)"
    );
    eprintln!(
        "{rounds} double submissions: {both_shown} answered twice with one case, {second_refused} second sends refused"
    );
}

#[test]
fn the_applicant_answers_a_request_and_withdraws() {
    let srv = server::start();
    let (reference, codename, _) = apply(&srv.base, "eu-humanitarian-visa", FACTS);
    let jonas = &srv.staff["jonas"];
    let mut j = Client::new(&srv.base, "en");
    j.sign_in(&jonas.login, &jonas.password, &srv.code("jonas"));
    let case_path = link_to_case(&j.get("/staff").body);
    let page = j.get(&case_path);
    let field_after = |html: &str, marker: &str| {
        let i = html.find(marker).unwrap() + marker.len();
        html[i..].split('"').next().unwrap().to_owned()
    };
    let app = field_after(&page.body, "name=\"application\" value=\"");
    let version = field_after(&page.body, "name=\"version\" value=\"");
    let r = j.post(
        &format!("{case_path}/act"),
        &[
            ("csrf", &page.csrf()),
            ("action", "request"),
            ("application", &app),
            ("version", &version),
            ("text", "Please upload a photo of the summons."),
        ],
    );
    assert!(r.body.contains(&tr("en", "done-request")), "{}", r.body);

    // The applicant comes back with the codename, in Ukrainian.
    let mut a = Client::new(&srv.base, "uk");
    let csrf = a.get("/status").csrf();
    let r = a.post("/status", &[("csrf", &csrf), ("codename", &codename)]);
    assert_eq!(r.status, 303);
    let case = a.get("/my-case");
    assert!(case.body.contains(&reference));
    assert!(case.body.contains(&tr("uk", "state-info-requested")));
    assert!(case.body.contains("Please upload a photo of the summons."));
    let r = a.post(
        "/my-case/answer",
        &[
            ("csrf", &case.csrf()),
            ("answer", "Uploaded it; the original is with my lawyer."),
        ],
    );
    assert!(r.body.contains(&tr("uk", "case-answer-sent")), "{}", r.body);
    assert!(r.body.contains(&tr("uk", "state-in-review")));
    let staff_view = j.get(&case_path).body;
    assert!(staff_view.contains("the original is with my lawyer"));
    // Withdrawing needs the confirmation box, then ends every open application.
    let r = a.post("/my-case/withdraw", &[("csrf", &case.csrf())]);
    assert_eq!(r.status, 422);
    let r = a.post(
        "/my-case/withdraw",
        &[("csrf", &case.csrf()), ("confirm", "yes")],
    );
    assert!(r.body.contains(&tr("uk", "case-withdrawn")), "{}", r.body);
    assert!(r.body.contains(&tr("uk", "state-withdrawn")));
    assert!(
        j.get(&case_path)
            .body
            .contains(&tr("en", "state-withdrawn"))
    );
}

#[test]
fn only_instance_admins_create_organisations() {
    let srv = server::start();
    let admin = &srv.staff["admin"];
    let mut a = Client::new(&srv.base, "en");
    a.sign_in(&admin.login, &admin.password, &srv.code("admin"));
    let page = a.get("/staff/admin");
    assert!(
        !page.body.contains("/staff/admin/organisations"),
        "org admins see no organisation form"
    );
    let r = a.post(
        "/staff/admin/organisations",
        &[
            ("csrf", &page.csrf()),
            ("name", "Sneaky org"),
            ("kind", "ngo"),
        ],
    );
    assert_eq!(r.status, 403);
    let root = &srv.staff["root"];
    let mut r = Client::new(&srv.base, "en");
    r.sign_in(&root.login, &root.password, &srv.code("root"));
    let page = r.get("/staff/admin");
    let done = r.post(
        "/staff/admin/organisations",
        &[
            ("csrf", &page.csrf()),
            ("name", "Armenian NGO (test)"),
            ("kind", "ngo"),
        ],
    );
    assert!(
        done.body.contains(&tr("en", "done-organisation-created")),
        "{}",
        done.body
    );
    assert!(done.body.contains("Armenian NGO (test)"));
    assert!(!done.body.contains("Sneaky org"));
}

#[test]
fn disabling_a_user_stops_their_api_token_at_once() {
    let srv = server::start();
    let jonas = &srv.staff["jonas"];
    let rt = server::store_runtime();
    let user = rt
        .block_on(srv.store.user_credentials(&jonas.login.parse().unwrap()))
        .unwrap()
        .unwrap()
        .user;
    let entropy = refuge_crypto::OsSeededEntropy::new().unwrap();
    let (token, hash) = refuge_web::new_api_token(&entropy).unwrap();
    rt.block_on(srv.store.create_api_token(
        refuge_core::event::Actor::Operator,
        user.id,
        hash,
        "laptop".into(),
    ))
    .unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let me = || {
        agent
            .get(&format!("{}/api/v1/me", srv.base))
            .header("authorization", &format!("Bearer {}", token.expose()))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(me(), 200);
    assert_eq!(me(), 200, "served from the cache");
    disable_as_admin(&srv, user.id);
    assert_eq!(me(), 401, "no grace period from the cache");
}

#[test]
fn a_user_disabled_through_another_server_loses_their_session_here_within_seconds() {
    // Two servers on one database: "b" is the test server, "a" a second one over the same
    // store, with the access watch that `refuge serve` runs. The administrator disables jonas
    // on b; jonas's session on a must end without anyone touching a.
    let srv = server::start();
    let rt = server::store_runtime();
    let state = server::state_over(srv.store.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base_a = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(refuge_web::watch_access(
        state.clone(),
        std::time::Duration::from_millis(200),
    ));
    rt.spawn(async move { axum::serve(listener, refuge_web::app(state)).await });

    let j = &srv.staff["jonas"];
    let mut jonas = Client::new(&base_a, "en");
    jonas.sign_in(&j.login, &j.password, &srv.code("jonas"));
    assert_eq!(jonas.get("/staff").status, 200);
    let user = rt
        .block_on(srv.store.user_credentials(&j.login.parse().unwrap()))
        .unwrap()
        .unwrap()
        .user;

    disable_as_admin(&srv, user.id);
    let disabled = std::time::Instant::now();
    loop {
        let page = jonas.get("/staff");
        if page.status == 303 {
            assert_eq!(page.header("location"), Some("/staff/login"));
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            disabled.elapsed() < std::time::Duration::from_secs(5),
            "the disabled user's session on the other server still works 5 s later"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!(
        "session on the other server ended {:.1?} after the user was disabled",
        disabled.elapsed()
    );
}

/// The test server's organisation administrator disables `user` through the admin page.
fn disable_as_admin(srv: &server::TestServer, user: refuge_core::ids::UserId) {
    let a = &srv.staff["admin"];
    let mut admin = Client::new(&srv.base, "en");
    admin.sign_in(&a.login, &a.password, &srv.code("admin"));
    let page = admin.get("/staff/admin");
    let r = admin.post(
        &format!("/staff/admin/users/{user}/disabled"),
        &[("csrf", &page.csrf()), ("disabled", "yes")],
    );
    assert!(
        r.body.contains(&tr("en", "done-user-disabled")),
        "{}",
        r.body
    );
}

fn base32_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = A.iter().position(|x| *x == c).unwrap() as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

#[test]
fn an_export_is_asked_for_approved_by_someone_else_and_downloaded_once() {
    let srv = server::start();
    let (j, a) = (&srv.staff["jonas"], &srv.staff["admin"]);
    let mut jonas = Client::new(&srv.base, "de");
    jonas.sign_in(&j.login, &j.password, &srv.code("jonas"));
    let mut admin = Client::new(&srv.base, "en");
    admin.sign_in(&a.login, &a.password, &srv.code("admin"));
    let (reference, _, _) = apply(&srv.base, "eu-humanitarian-visa", FACTS);

    let page = jonas.get("/staff/exports");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&tr("de", "exports-new")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&tr("de", "nav-exports")));
    let done = jonas.post(
        "/staff/exports",
        &[
            ("csrf", &page.csrf()),
            ("cases", &format!("{reference}\n")),
            ("purpose", "Für die Anwältin der Person"),
        ],
    );
    assert!(
        done.body.contains(&tr("de", "done-export-requested")),
        "{}",
        done.body
    );
    assert!(done.body.contains(&tr("de", "export-own")));
    assert!(
        !done.body.contains("/decision\""),
        "no approve button for the requester"
    );

    // The administrator sees it with its purpose, but no form to ask for exports.
    let page = admin.get("/staff/exports");
    assert!(page.body.contains("Für die Anwältin der Person"));
    assert!(!page.body.contains("name=\"cases\""));
    let action = page
        .body
        .split("action=\"")
        .find(|s| s.starts_with("/staff/exports/") && s.contains("/decision"))
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let done = admin.post(&action, &[("csrf", &page.csrf()), ("decision", "approve")]);
    assert!(
        done.body.contains(&tr("en", "done-export-approved")),
        "{}",
        done.body
    );

    // The requester downloads it once, encrypted to a passphrase of their choosing.
    let page = jonas.get("/staff/exports");
    let collect = action.replace("/decision", "/collect");
    assert!(
        page.body.contains(&format!("action=\"{collect}\"")),
        "{}",
        page.body
    );
    let weak = jonas.post(&collect, &[("csrf", &page.csrf()), ("passphrase", "kurz")]);
    assert_eq!(weak.status, 422);
    let file = jonas.post(
        &collect,
        &[
            ("csrf", &page.csrf()),
            ("passphrase", "Fluss Laterne Kupfer Wiese"),
        ],
    );
    assert_eq!(file.status, 200);
    assert_eq!(
        file.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        file.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    let again = jonas.post(
        &collect,
        &[
            ("csrf", &page.csrf()),
            ("passphrase", "Fluss Laterne Kupfer Wiese"),
        ],
    );
    assert_eq!(again.status, 409);
    let page = admin.get("/staff/exports");
    assert!(page.body.contains(&tr("en", "export-collected")));
}

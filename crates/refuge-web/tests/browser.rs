//! Browser tests in real headless Chromium (Debian's `chromium` and `chromium-driver`): the
//! applicant journey in Russian with JavaScript off, the staff journey in German with TOTP,
//! and one organisation failing to open another's case by URL. Screenshots of the main pages
//! are saved in `target/browser-artefacts/` (or `$REFUGE_ARTEFACTS`).
//!
//! Skipped when chromedriver is not installed, unless `REFUGE_REQUIRE_BROWSER=1`.

mod support;

use refuge_web::i18n::I18n;
use std::path::PathBuf;
use support::server;
use support::webdriver::{Driver, require_browser};

fn artefacts() -> PathBuf {
    std::env::var_os("REFUGE_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artefacts")
        })
}

fn tr(lang: &str, key: &str) -> String {
    I18n::embedded().unwrap().format(lang, key, &[])
}

fn tr_arg(lang: &str, key: &str, name: &str, value: &str) -> String {
    I18n::embedded()
        .unwrap()
        .format(lang, key, &[(name, value.to_owned())])
}

#[test]
fn applicant_in_russian_without_javascript_then_staff_in_german_decide() {
    let Some(chromedriver) = require_browser() else {
        return;
    };
    let srv = server::start();
    let driver = Driver::start(&chromedriver);
    let shots = artefacts();

    // --- The applicant: Russian from Accept-Language, JavaScript off, a 320 px phone. ---
    let b = driver.session(false, "ru", 320, 720);
    b.goto(&srv.base);
    assert_eq!(b.find("h1").text(), tr("ru", "portal-title"));
    assert!(!b.source().contains("<script"), "the portal has no scripts");
    b.screenshot(&shots.join("portal-home-ru.png"));
    b.find("a.button[href='/check']").click();
    b.wait_h1(&tr("ru", "check-title"));
    b.find("#f-nationality option[value='RU']").click();
    b.find("#f-birth_date").send_keys("1990-05-14");
    b.find("input[name='sex'][value='male']").click();
    b.find("#f-current_country option[value='GE']").click();
    b.find("input[name='stay_status'][value='visa_free']")
        .click();
    b.find("input[name='service_status'][value='reservist']")
        .click();
    b.find("input[name='refusal'][value='evaded_callup']")
        .click();
    b.find("input[name='summons_received'][value='yes']")
        .click();
    b.find("input[name='prosecution'][value='investigated']")
        .click();
    b.find("input[name='documents'][value='international_passport']")
        .click();
    b.find("input[name='documents'][value='summons']").click();
    b.find("input[name='deportation_order'][value='none']")
        .click();
    b.screenshot(&shots.join("portal-check-ru.png"));
    b.find("form[action='/check'] button[type='submit']")
        .click();
    b.wait_h1(&tr("ru", "results-title"));
    let text = b.find("#p-eu-humanitarian-visa").text();
    assert!(
        text.contains(&tr("ru", "outcome-eligible-pending-checks")),
        "the humanitarian visa is open to him, subject to the authority's checks: {text}"
    );
    let moratorium = b.find("#p-nl-moratorium").text();
    assert!(
        moratorium.contains(&tr("ru", "outcome-ineligible")),
        "{moratorium}"
    );
    b.screenshot(&shots.join("portal-results-ru.png"));
    b.find("#p-eu-humanitarian-visa form button").click();
    b.wait_text(&tr("ru", "apply-consent"));
    b.find("input[name='consent']").click();
    b.find("#f-name").send_keys("Дмитрий Тестовый");
    b.find("form[action='/apply'] button").click();
    b.wait_h1(&tr("ru", "applied-title"));
    let codename = b.find("#codename").text();
    let reference = b.find("#reference").text();
    assert_eq!(codename.split_whitespace().count(), 8, "{codename}");
    assert!(reference.starts_with("RF-"), "{reference}");
    b.screenshot(&shots.join("portal-codename-ru.png"));

    // Leave, come back with the codename.
    b.find("a.button[href='/my-case']").click();
    b.wait_h1(&tr("ru", "case-title"));
    b.find("form.signout button").click();
    b.wait_h1(&tr("ru", "portal-title"));
    b.goto(&format!("{}/status", srv.base));
    b.find("#f-codename").send_keys("wrong words entirely");
    b.find("form[action='/status'] button").click();
    b.wait_h1(&tr("ru", "status-title"));
    assert!(b.text().contains(&tr("ru", "status-unknown")));
    b.find("#f-codename").send_keys(&codename.to_uppercase());
    b.find("form[action='/status'] button").click();
    b.wait_h1(&tr("ru", "case-title"));
    assert_eq!(b.find("#reference").text(), reference);
    assert!(b.text().contains(&tr("ru", "state-submitted")));

    // Upload evidence: a PDF from disk.
    let pdf = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
    std::fs::write(
        pdf.path(),
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    )
    .unwrap();
    b.find("#f-file")
        .send_keys(&pdf.path().display().to_string());
    b.find("form[action='/my-case/evidence'] button").click();
    b.wait_text(&tr("ru", "case-upload-done"));
    let name = pdf
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(b.text().contains(&name));
    b.screenshot(&shots.join("portal-case-ru.png"));
    drop(b);

    // --- Staff at the embassy, in German, with password and TOTP. ---
    let s = driver.session(true, "de", 1280, 900);
    s.goto(&format!("{}/staff", srv.base));
    s.wait_h1(&tr("de", "staff-login-title"));
    let jonas = &srv.staff["jonas"];
    s.find("#f-login").send_keys(&jonas.login);
    s.find("#f-password").send_keys("not the password");
    s.find("form button").click();
    s.wait_text(&tr("de", "staff-login-failed"));
    s.find("#f-login").send_keys(&jonas.login);
    s.find("#f-password").send_keys(&jonas.password);
    s.find("form button").click();
    s.wait_h1(&tr("de", "staff-login-title"));
    s.find("#f-code").send_keys(&srv.code("jonas"));
    s.find("form button").click();
    s.wait_h1(&tr("de", "queue-title"));
    assert!(
        s.text().contains(&reference),
        "the new case is in the queue"
    );
    s.screenshot(&shots.join("staff-queue-de.png"));
    s.find("a[href^='/staff/cases/']").click();
    s.wait_h1(&tr_arg("de", "case-page-title", "reference", &reference));
    let case_url = s.url();
    assert!(s.text().contains(&tr("de", "case-rules")));
    s.find("input[name='action'][value='review'] ~ button")
        .click();
    s.wait_text(&tr("de", "done-review"));
    s.find("input[name='action'][value='interview'] ~ div input[name='text']")
        .send_keys("2026-12-03 10:00, Botschaft Tiflis");
    s.find("input[name='action'][value='interview'] ~ button")
        .click();
    s.wait_text(&tr("de", "done-interview"));
    s.find("input[name='outcome'][value='granted']").click();
    s.find("textarea[name='reasons']")
        .send_keys("Die Voraussetzungen des Art. 25 Visakodex liegen vor.");
    s.screenshot(&shots.join("staff-case-de.png"));
    s.find("input[name='action'][value='decide'] ~ fieldset button")
        .click();
    s.wait_text(&tr("de", "done-decide"));
    assert!(s.text().contains(&tr("de", "state-granted")));
    s.screenshot(&shots.join("staff-decided-de.png"));
    // The case leaves only as an export someone else approves.
    s.goto(&format!("{}/staff/exports", srv.base));
    s.wait_h1(&tr("de", "exports-title"));
    s.find("#f-cases").send_keys(&reference);
    s.find("#f-purpose")
        .send_keys("Für die Anwältin der Person, auf ihren Wunsch");
    s.find("form[action='/staff/exports'] button").click();
    s.wait_text(&tr("de", "done-export-requested"));
    assert!(s.text().contains(&tr("de", "export-own")));
    s.screenshot(&shots.join("staff-exports-de.png"));
    drop(s);

    // --- Another organisation cannot open the case by its URL. ---
    let o = driver.session(true, "de", 1280, 900);
    o.goto(&format!("{}/staff/login", srv.base));
    let eva = &srv.staff["eva"];
    o.find("#f-login").send_keys(&eva.login);
    o.find("#f-password").send_keys(&eva.password);
    o.find("form button").click();
    o.wait_h1(&tr("de", "staff-login-title"));
    o.find("#f-code").send_keys(&srv.code("eva"));
    o.find("form button").click();
    o.wait_h1(&tr("de", "queue-title"));
    assert!(!o.text().contains(&reference));
    o.goto(&case_url);
    o.wait_h1(&tr("de", "error-title"));
    assert!(
        o.text().contains(&tr("de", "error-not-found")),
        "{}",
        o.text()
    );
    assert!(!o.text().contains(&reference));
    o.screenshot(&shots.join("staff-other-org-de.png"));
    eprintln!("screenshots in {}", shots.display());
}

//! The JSON API over real HTTP: a server on a free port over a fresh SQLite store, three
//! organisations (an embassy, an authority, an NGO), API tokens issued as `refuge token new`
//! issues them, and `ureq` as the client. Bodies are also checked against the schemas of the
//! server's own OpenAPI document.

mod support;

use refuge_core::event::Actor;
use refuge_core::ids::UserId;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::server::{self, TestServer};

/// A minimal PDF: `%PDF-` is what the server sniffs.
const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

struct Res {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Res {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error's code, after checking the error shape: exactly `code`, `message`, `field`.
    fn error(&self) -> (u16, String, Option<String>) {
        let v = self.json();
        let e = v["error"].as_object().unwrap_or_else(|| panic!("{v}"));
        let keys: BTreeSet<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["code", "field", "message"]), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{v}");
        (
            self.status,
            e["code"].as_str().unwrap().to_owned(),
            e["field"].as_str().map(str::to_owned),
        )
    }
}

struct Api {
    srv: TestServer,
    agent: ureq::Agent,
    doc: Value,
}

impl Api {
    fn start() -> Api {
        let srv = server::start();
        // No pooled connections: a server may close a connection after refusing a request
        // whose body it did not read (405, 413), and a reused one would then fail.
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .new_agent();
        let mut api = Api {
            srv,
            agent,
            doc: Value::Null,
        };
        let r = api.call("GET", "/api/v1/openapi.json", None, None);
        assert_eq!(r.status, 200);
        api.doc = r.json();
        api
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Res {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.srv.base, path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => self.agent.run(
                req.header("content-type", "application/json")
                    .body(b)
                    .unwrap(),
            ),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut res = res.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let status = res.status().as_u16();
        let body = res
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap();
        Res {
            status,
            body,
            headers,
        }
    }

    fn get(&self, path: &str, token: &str) -> Res {
        self.call("GET", path, Some(token), None)
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> Res {
        self.call("POST", path, Some(token), Some(body.to_string().as_bytes()))
    }

    /// A 2xx JSON answer, checked against the document's schema for it.
    fn ok(&self, r: Res, schema: &str) -> Value {
        assert!(
            (200..300).contains(&r.status),
            "{}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        conforms(
            &self.doc,
            &json!({"$ref": format!("#/components/schemas/{schema}")}),
            &v,
            schema,
        );
        v
    }

    fn user(&self, who: &str) -> UserId {
        let login = self.srv.staff[who].login.parse().unwrap();
        block(self.srv.store.user_credentials(&login))
            .unwrap()
            .unwrap()
            .user
            .id
    }

    /// Issue a token to a staff user, as `refuge token new` does.
    fn token(&self, who: &str) -> String {
        let entropy = refuge_crypto::OsSeededEntropy::new().unwrap();
        let (token, hash) = refuge_web::new_api_token(&entropy).unwrap();
        block(self.srv.store.create_api_token(
            Actor::Operator,
            self.user(who),
            hash,
            format!("test token of {who}"),
        ))
        .unwrap();
        token.expose().to_owned()
    }

    /// Submit a case through the API; returns (case id, reference, application id).
    fn submit(&self, token: &str, programme: &str, pseudonym: &str) -> (String, String, String) {
        let r = self.post(
            "/api/v1/cases",
            token,
            &json!({
                "person": {"pseudonym": pseudonym, "names": [{"value": "Aleksandr Test"}], "birth_date": "1994-05-02"},
                "facts": {"nationality": "RU", "birth_date": "1994-05-02", "sex": "male", "refusal": "deserted", "current_country": "GE"},
                "programme": programme,
            }),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let v = self.ok(r, "CreatedCase");
        (
            v["case"]["id"].as_str().unwrap().to_owned(),
            v["case"]["reference"].as_str().unwrap().to_owned(),
            v["application"]["id"].as_str().unwrap().to_owned(),
        )
    }

    fn version_of(&self, token: &str, case: &str, app: &str) -> u64 {
        let v = self.ok(
            self.get(&format!("/api/v1/cases/{case}"), token),
            "CaseView",
        );
        v["applications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == app)
            .unwrap()["version"]
            .as_u64()
            .unwrap()
    }

    fn bases(&self, programme: &str) -> Vec<String> {
        let lib = refuge_rules::library::Library::load(&server::programmes_dir()).unwrap();
        lib.programmes[programme]
            .rules
            .iter()
            .map(|r| r.basis.clone())
            .collect()
    }
}

/// Check a JSON value against a schema of the document: objects have exactly the declared
/// properties (recursively, through `$ref`, `oneOf`, arrays and maps), strings with an `enum`
/// hold one of its values.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let s = &doc["components"]["schemas"][name];
        assert!(!s.is_null(), "{at}: no schema {name}");
        return conforms(doc, s, v, at);
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        let ok = alts.iter().any(|s| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conforms(doc, s, v, at)))
                .is_ok()
        });
        assert!(ok, "{at}: {v} matches none of {schema}");
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if v.is_null() {
        assert!(
            types.contains(&"null") || types.is_empty(),
            "{at}: null where {schema} is expected"
        );
        return;
    }
    match v {
        Value::Object(m) => {
            assert!(
                types.is_empty() || types.contains(&"object"),
                "{at}: object, schema {schema}"
            );
            if let Some(props) = schema["properties"].as_object() {
                let want: BTreeSet<&str> = props.keys().map(String::as_str).collect();
                let got: BTreeSet<&str> = m.keys().map(String::as_str).collect();
                assert_eq!(got, want, "{at}: keys differ from the schema");
                for (k, val) in m {
                    conforms(doc, &props[k], val, &format!("{at}.{k}"));
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|e| e.is_object())
            {
                for (k, val) in m {
                    conforms(doc, extra, val, &format!("{at}.{k}"));
                }
            }
        }
        Value::Array(items) => {
            assert!(types.contains(&"array"), "{at}: array, schema {schema}");
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        Value::String(s) => {
            assert!(types.contains(&"string"), "{at}: string, schema {schema}");
            if let Some(values) = schema["enum"].as_array() {
                assert!(values.iter().any(|x| x == s), "{at}: {s} not in {values:?}");
            }
        }
        Value::Number(_) => assert!(
            types.contains(&"integer") || types.contains(&"number"),
            "{at}: number, schema {schema}"
        ),
        Value::Bool(_) => assert!(types.contains(&"boolean"), "{at}: bool, schema {schema}"),
        Value::Null => {}
    }
}

// ---------------------------------------------------------------------------------- tests

#[test]
fn missing_invalid_unknown_and_revoked_tokens_get_one_answer() {
    let api = Api::start();
    let token = api.token("jonas");
    let me = api.ok(api.get("/api/v1/me", &token), "Me");
    assert_eq!(me["organisation_id"], api.srv.embassy.to_string());
    assert_eq!(me["roles"], json!(["caseworker", "decision_maker"]));

    let unknown = {
        let entropy = refuge_crypto::OsSeededEntropy::new().unwrap();
        refuge_web::new_api_token(&entropy)
            .unwrap()
            .0
            .expose()
            .to_owned()
    };
    // Revoked before it was ever used (nothing cached) ...
    let early = api.token("jonas");
    block(api.srv.store.revoke_api_token(
        Actor::Operator,
        refuge_store::Scope::Instance,
        refuge_web::api_token_hash(&early).unwrap(),
    ))
    .unwrap();
    // ... and revoked by its holder after use (cached): it stops at once.
    let used = api.token("jonas");
    assert_eq!(api.get("/api/v1/me", &used).status, 200);
    assert_eq!(
        api.call("DELETE", "/api/v1/token", Some(&used), None)
            .status,
        204
    );
    // A disabled user's token.
    let mila = api.token("mila");
    block(api.srv.store.set_user_disabled(
        Actor::Operator,
        refuge_store::Scope::Instance,
        api.user("mila"),
        true,
    ))
    .unwrap();

    let mut answers = Vec::new();
    for (what, header) in [
        ("missing", None),
        ("not bearer", Some(format!("Basic {token}"))),
        ("malformed", Some("Bearer rf_nope".to_owned())),
        ("unknown", Some(format!("Bearer {unknown}"))),
        ("revoked before use", Some(format!("Bearer {early}"))),
        ("revoked after use", Some(format!("Bearer {used}"))),
        ("disabled user", Some(format!("Bearer {mila}"))),
    ] {
        let mut req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}/api/v1/queue", api.srv.base));
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let mut res = api.agent.run(req.body(()).unwrap()).unwrap();
        assert_eq!(res.status().as_u16(), 401, "{what}");
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"refuge\""),
            "{what}"
        );
        answers.push(res.body_mut().read_to_string().unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    let v: Value = serde_json::from_str(&answers[0]).unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    // The good token still works, and `check` and the document need none.
    assert_eq!(api.get("/api/v1/queue", &token).status, 200);
    let r = api.call("POST", "/api/v1/check", None, Some(br#"{"facts": {}}"#));
    assert_eq!(r.status, 200);
}

#[test]
fn a_case_submitted_reads_back_with_rules_and_events() {
    let api = Api::start();
    let token = api.token("jonas");
    let (case, reference, app) = api.submit(&token, "eu-humanitarian-visa", "Sasha");
    for key in [case.as_str(), reference.as_str()] {
        let r = api.call(
            "GET",
            &format!("/api/v1/cases/{key}?lang=de"),
            Some(&token),
            None,
        );
        let v = api.ok(r, "CaseView");
        assert_eq!(v["case"]["id"], case.as_str());
        assert_eq!(v["case"]["reference"], reference.as_str());
        assert_eq!(v["case"]["organisation_id"], api.srv.embassy.to_string());
        assert_eq!(v["case"]["facts"]["nationality"], "RU");
        assert_eq!(v["case"]["facts"]["refusal"], "deserted");
        assert_eq!(v["pseudonym"], "Sasha");
        let apps = v["applications"].as_array().unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0]["id"], app.as_str());
        assert_eq!(apps[0]["state"], "submitted");
        assert_eq!(apps[0]["programme"], "eu-humanitarian-visa");
        assert_eq!(apps[0]["decision"], Value::Null);
        let lib = refuge_rules::library::Library::load(&server::programmes_dir()).unwrap();
        let rules = v["rules"].as_array().unwrap();
        assert_eq!(rules.len(), lib.programmes.len());
        let visa = rules
            .iter()
            .find(|r| r["programme"] == "eu-humanitarian-visa")
            .unwrap();
        assert_eq!(
            visa["title"],
            lib.programmes["eu-humanitarian-visa"].title.get("de"),
            "explanations in the language asked for"
        );
        // Identity never comes back.
        let text = v.to_string();
        assert!(
            !text.contains("Aleksandr") && !text.contains("1994-05-02T"),
            "{text}"
        );
    }
    let ev = api.ok(
        api.get(&format!("/api/v1/cases/{case}/events"), &token),
        "EventsList",
    );
    let kinds: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"case_submitted"), "{kinds:?}");
    assert!(
        ev.to_string()
            .contains(&format!("user:{}", api.user("jonas")))
    );
}

#[test]
fn the_queue_pages_with_a_cursor() {
    let api = Api::start();
    let token = api.token("eva");
    let mut apps = Vec::new();
    for i in 0..7 {
        let programme = if i % 2 == 0 {
            "nl-moratorium"
        } else {
            "nl-stay-extension"
        };
        apps.push(api.submit(&token, programme, &format!("Person {i}")).2);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/queue?limit=3&after={a}"),
            None => "/api/v1/queue?limit=3".to_owned(),
        };
        let v = api.ok(api.get(&path, &token), "QueuePage");
        pages += 1;
        assert_eq!(v["total"], 7);
        for item in v["items"].as_array().unwrap() {
            seen.push(item["application"]["id"].as_str().unwrap().to_owned());
            assert_eq!(
                item["case"]["organisation_id"],
                api.srv.authority.to_string()
            );
            assert!(
                item["case"]["pseudonym"]
                    .as_str()
                    .unwrap()
                    .starts_with("Person ")
            );
            assert!(item["case"].get("facts").is_none());
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
        assert!(pages < 5);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, apps, "every application once, oldest first");

    let v = api.ok(api.get("/api/v1/queue", &token), "QueuePage");
    assert_eq!(v["items"].as_array().unwrap().len(), 7);
    assert_eq!(v["next"], Value::Null);
    let v = api.ok(
        api.get("/api/v1/queue?programme=nl-moratorium", &token),
        "QueuePage",
    );
    assert_eq!(v["total"], 4);
    let v = api.ok(
        api.get("/api/v1/queue?state=in_review,granted", &token),
        "QueuePage",
    );
    assert_eq!(v["total"], 0);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("state=pending", "state"),
        ("after=nope", "after"),
        ("programme=NOPE", "programme"),
    ] {
        let r = api.get(&format!("/api/v1/queue?{q}"), &token);
        assert_eq!(
            r.error(),
            (422, "invalid".into(), Some(field.into())),
            "{q}"
        );
    }
    // The largest page is allowed.
    assert_eq!(api.get("/api/v1/queue?limit=500", &token).status, 200);
    // Another organisation's queue is its own.
    let other = api.token("jonas");
    let v = api.ok(api.get("/api/v1/queue", &other), "QueuePage");
    assert_eq!(v["total"], 0);
}

#[test]
fn an_application_moves_to_a_decision_by_a_decision_maker_only() {
    let api = Api::start();
    let jonas = api.token("jonas");
    let (case, _, app) = api.submit(&jonas, "eu-humanitarian-visa", "Sasha");
    let moves = format!("/api/v1/applications/{app}/moves");

    let v = api.ok(
        api.post(
            &moves,
            &jonas,
            &json!({"to": "in_review", "expected_version": 1}),
        ),
        "ApplicationDto",
    );
    assert_eq!(
        (v["state"].as_str(), v["version"].as_u64()),
        (Some("in_review"), Some(2))
    );
    // A stale version is a conflict, and changes nothing.
    let r = api.post(
        &moves,
        &jonas,
        &json!({"to": "interview", "expected_version": 1}),
    );
    assert_eq!(r.error().0, 409);
    assert_eq!(r.error().1, "conflict");
    // A move the state machine has no edge for.
    let r = api.post(
        &moves,
        &jonas,
        &json!({"to": "closed", "expected_version": 2}),
    );
    assert_eq!(r.error(), (409, "transition".into(), None));
    let v = api.ok(
        api.post(
            &moves,
            &jonas,
            &json!({"to": "interview", "expected_version": 2, "reason": "Interview on 3 December"}),
        ),
        "ApplicationDto",
    );
    assert_eq!(v["version"], 3);

    let bases = api.bases("eu-humanitarian-visa");
    // A decision needs one of the programme's legal bases ...
    let r = api.post(
        &moves,
        &jonas,
        &json!({"to": "granted", "expected_version": 3,
                "decision": {"legal_basis": "Because I say so", "reasons": "Fine."}}),
    );
    let (status, code, field) = r.error();
    assert_eq!((status, code.as_str()), (422, "invalid"));
    assert_eq!(field.as_deref(), Some("decision.legal_basis"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&bases[0]),
        "the message lists the bases"
    );
    // ... and a decision at all.
    let r = api.post(
        &moves,
        &jonas,
        &json!({"to": "refused", "expected_version": 3}),
    );
    assert_eq!(r.error(), (422, "invalid".into(), Some("decision".into())));
    let r = api.post(
        &moves,
        &jonas,
        &json!({"to": "granted", "expected_version": 3,
                "decision": {"legal_basis": bases[0], "reasons": "  "}}),
    );
    assert_eq!(
        r.error(),
        (422, "invalid".into(), Some("decision.reasons".into()))
    );
    let v = api.ok(
        api.post(
            &moves,
            &jonas,
            &json!({"to": "granted", "expected_version": 3,
                    "decision": {"legal_basis": bases[0], "reasons": "Credible risk of prosecution for desertion."}}),
        ),
        "ApplicationDto",
    );
    assert_eq!(v["state"], "granted");
    assert_eq!(v["version"], 4);
    assert_eq!(v["decision"]["legal_basis"], bases[0].as_str());
    assert_eq!(
        v["decision"]["decided_by"],
        format!("user:{}", api.user("jonas"))
    );
    assert_eq!(api.version_of(&jonas, &case, &app), 4);

    // A counsellor works their own case but may not decide it.
    let mila = api.token("mila");
    let (mcase, _, mapp) = api.submit(&mila, "eu-humanitarian-visa", "Dima");
    let mmoves = format!("/api/v1/applications/{mapp}/moves");
    for (to, version) in [("in_review", 1), ("interview", 2)] {
        let r = api.post(
            &mmoves,
            &mila,
            &json!({"to": to, "expected_version": version}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = api.post(
        &mmoves,
        &mila,
        &json!({"to": "granted", "expected_version": 3,
                "decision": {"legal_basis": bases[0], "reasons": "Fine."}}),
    );
    assert_eq!(r.error(), (403, "forbidden".into(), None));
    assert_eq!(
        api.version_of(&mila, &mcase, &mapp),
        3,
        "nothing was written"
    );
    // Another organisation's application is not found.
    let r = api.post(
        &mmoves,
        &jonas,
        &json!({"to": "withdrawn", "expected_version": 3}),
    );
    assert_eq!(r.error(), (404, "not_found".into(), None));
}

#[test]
fn messages_are_added_and_listed() {
    let api = Api::start();
    let token = api.token("jonas");
    let (case, _, _) = api.submit(&token, "eu-humanitarian-visa", "Sasha");
    let path = format!("/api/v1/cases/{case}/messages");
    let v = api.ok(
        api.post(
            &path,
            &token,
            &json!({"kind": "info_request", "body": "Please send your military ID."}),
        ),
        "MessageDto",
    );
    assert_eq!(v["kind"], "info_request");
    assert_eq!(v["author"], format!("user:{}", api.user("jonas")));
    let r = api.post(
        &path,
        &token,
        &json!({"kind": "note", "body": "Called the NGO."}),
    );
    assert_eq!(r.status, 201);
    let v = api.ok(api.get(&path, &token), "MessagesList");
    let bodies: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Please send your military ID.", "Called the NGO."]);
    for (body, field) in [
        (json!({"kind": "info_answer", "body": "x"}), "kind"),
        (json!({"kind": "memo", "body": "x"}), "kind"),
        (json!({"kind": "note", "body": ""}), "body"),
        (json!({"kind": "note"}), "body"),
        (json!({"kind": "note", "body": "x", "extra": 1}), "extra"),
    ] {
        let r = api.post(&path, &token, &body);
        assert_eq!(
            r.error(),
            (422, "invalid".into(), Some(field.into())),
            "{body}"
        );
    }
}

#[test]
fn evidence_is_sniffed_stored_and_downloaded() {
    let api = Api::start();
    let token = api.token("jonas");
    let (case, _, _) = api.submit(&token, "eu-humanitarian-visa", "Sasha");
    let up = |name: &str, bytes: &[u8]| {
        api.call(
            "POST",
            &format!("/api/v1/cases/{case}/evidence?name={name}"),
            Some(&token),
            Some(bytes),
        )
    };
    let v = api.ok(up("../summons%20scan.pdf", PDF), "EvidenceDto");
    assert_eq!(
        v["media_type"], "application/pdf",
        "judged by content, not the header"
    );
    assert_eq!(v["name"], "summons_scan.pdf");
    assert_eq!(v["size"], PDF.len());
    let id = v["id"].as_str().unwrap().to_owned();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    assert_eq!(
        api.ok(up("photo", png), "EvidenceDto")["media_type"],
        "image/png"
    );
    assert_eq!(
        api.ok(up("letter.txt", "Повестка".as_bytes()), "EvidenceDto")["media_type"],
        "text/plain"
    );

    let list = api.ok(
        api.get(&format!("/api/v1/cases/{case}/evidence"), &token),
        "EvidenceList",
    );
    assert_eq!(list["evidence"].as_array().unwrap().len(), 3);
    let r = api.get(&format!("/api/v1/evidence/{id}"), &token);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PDF);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"summons_scan.pdf\"")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // HTML, executables and nothing at all are refused.
    assert_eq!(
        up("page.html", b"<html><script>alert(1)</script></html>").error(),
        (415, "unsupported_type".into(), None)
    );
    assert_eq!(
        up("a.exe", b"MZ\x90\0\x03\0\0\0").error().1,
        "unsupported_type"
    );
    assert_eq!(
        up("empty", b"").error(),
        (422, "invalid".into(), Some("body".into()))
    );
    // Over the upload limit (10 MiB by default).
    let mut big = PDF.to_vec();
    big.resize(10 * 1024 * 1024 + 1, b' ');
    assert_eq!(up("big.pdf", &big).error(), (413, "too_large".into(), None));
    // Exactly at the limit is fine.
    big.truncate(10 * 1024 * 1024);
    assert_eq!(up("big.pdf", &big).status, 201);

    // Another organisation sees none of it.
    let eva = api.token("eva");
    let r = api.get(&format!("/api/v1/evidence/{id}"), &eva);
    assert_eq!(r.error(), (404, "not_found".into(), None));
}

#[test]
fn deadlines_are_set_listed_and_completed_once() {
    let api = Api::start();
    let token = api.token("mila");
    let (case, _, _) = api.submit(&token, "eu-humanitarian-visa", "Sasha");
    let path = format!("/api/v1/cases/{case}/deadlines");
    let a = api.ok(
        api.post(
            &path,
            &token,
            &json!({"kind": "stay_expiry", "due_on": "2030-01-15", "note": "Visa-free stay ends"}),
        ),
        "DeadlineDto",
    );
    assert_eq!(
        (a["kind"].as_str(), a["due_on"].as_str()),
        (Some("stay_expiry"), Some("2030-01-15"))
    );
    assert_eq!(a["done_at"], Value::Null);
    let b = api.ok(
        api.post(
            &path,
            &token,
            &json!({"kind": "appeal_limit", "due_on": "2030-03-01"}),
        ),
        "DeadlineDto",
    );
    let v = api.ok(
        api.get("/api/v1/deadlines?due_before=2030-02-01", &token),
        "DeadlinesList",
    );
    let ids: Vec<&Value> = v["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids, [&a["id"]]);
    let v = api.ok(api.get("/api/v1/deadlines", &token), "DeadlinesList");
    assert_eq!(v["deadlines"].as_array().unwrap().len(), 2);

    let complete = format!("/api/v1/deadlines/{}/complete", a["id"].as_str().unwrap());
    let r = api.call("POST", &complete, Some(&token), None);
    assert_eq!(r.status, 204);
    assert_eq!(
        api.call("POST", &complete, Some(&token), None).error(),
        (409, "already_done".into(), None)
    );
    let v = api.ok(api.get("/api/v1/deadlines", &token), "DeadlinesList");
    assert_eq!(v["deadlines"][0]["id"], b["id"]);
    assert_eq!(v["deadlines"].as_array().unwrap().len(), 1);
    let v = api.ok(
        api.get("/api/v1/deadlines?include_done=true", &token),
        "DeadlinesList",
    );
    assert_eq!(v["deadlines"].as_array().unwrap().len(), 2);
    let v = api.ok(api.get(&path, &token), "DeadlinesList");
    assert!(v["deadlines"][0]["done_at"].is_string());

    for (body, field) in [
        (json!({"kind": "soon", "due_on": "2030-01-01"}), "kind"),
        (json!({"kind": "other", "due_on": "2030-02-30"}), "due_on"),
        (json!({"kind": "other"}), "due_on"),
    ] {
        let r = api.post(&path, &token, &body);
        assert_eq!(
            r.error(),
            (422, "invalid".into(), Some(field.into())),
            "{body}"
        );
    }
    for (q, field) in [
        ("due_before=tomorrow", "due_before"),
        ("include_done=yes", "include_done"),
    ] {
        let r = api.get(&format!("/api/v1/deadlines?{q}"), &token);
        assert_eq!(r.error(), (422, "invalid".into(), Some(field.into())));
    }
    // Someone else's deadline is not found.
    let other = api.token("eva");
    let r = api.call(
        "POST",
        &format!("/api/v1/deadlines/{}/complete", b["id"].as_str().unwrap()),
        Some(&other),
        None,
    );
    assert_eq!(r.error(), (404, "not_found".into(), None));
}

#[test]
fn a_referral_accepted_makes_the_case_visible_to_the_receiver() {
    let api = Api::start();
    let mila = api.token("mila");
    let eva = api.token("eva");
    let (case, reference, _) = api.submit(&mila, "nl-moratorium", "Sasha");

    let orgs = api.ok(api.get("/api/v1/organisations", &mila), "OrganisationsList");
    let authority = orgs["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "authority")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(authority, api.srv.authority.to_string());

    let path = format!("/api/v1/cases/{case}/referrals");
    let r = api.post(&path, &mila, &json!({"to": "nope", "consent": "x"}));
    assert_eq!(r.error(), (422, "invalid".into(), Some("to".into())));
    let r = api.post(&path, &mila, &json!({"to": authority}));
    assert_eq!(r.error(), (422, "invalid".into(), Some("consent".into())));
    let sent = api.ok(
        api.post(
            &path,
            &mila,
            &json!({"to": authority, "consent": "Consented in person on 2026-11-20; signed form on file"}),
        ),
        "ReferralDto",
    );
    assert_eq!(sent["state"], "pending");
    let again = api.post(&path, &mila, &json!({"to": authority, "consent": "again"}));
    assert_eq!(
        again.status,
        409,
        "{}",
        String::from_utf8_lossy(&again.body)
    );

    // Pending: the receiver sees the referral, not the case.
    let case_path = format!("/api/v1/cases/{case}");
    assert_eq!(
        api.get(&case_path, &eva).error(),
        (404, "not_found".into(), None)
    );
    let list = api.ok(api.get("/api/v1/referrals", &eva), "ReferralsList");
    let r = &list["referrals"][0];
    assert_eq!(r["case_reference"], reference.as_str());
    assert_eq!(r["pseudonym"], "Sasha");
    assert_eq!(r["from_org"], api.srv.ngo.to_string());
    let id = r["id"].as_str().unwrap().to_owned();
    let answer = format!("/api/v1/referrals/{id}/answer");
    // Only the receiver answers.
    assert_eq!(
        api.post(&answer, &mila, &json!({"accept": true})).error(),
        (404, "not_found".into(), None)
    );
    let r = api.post(&answer, &eva, &json!({"accept": "yes"}));
    assert_eq!(r.error(), (422, "invalid".into(), Some("accept".into())));
    let v = api.ok(
        api.post(&answer, &eva, &json!({"accept": true})),
        "ReferralDto",
    );
    assert_eq!(v["state"], "accepted");
    assert!(v["answered_at"].is_string());
    assert_eq!(
        api.post(&answer, &eva, &json!({"accept": false})).status,
        409
    );

    // Accepted: the receiver works the case as if it held it.
    let v = api.ok(api.get(&case_path, &eva), "CaseView");
    assert_eq!(v["case"]["facts"]["refusal"], "deserted");
    let q = api.ok(api.get("/api/v1/queue", &eva), "QueuePage");
    assert_eq!(q["total"], 1);
    assert_eq!(q["items"][0]["case"]["id"], case.as_str());
    let m = api.post(
        &format!("/api/v1/cases/{case}/messages"),
        &eva,
        &json!({"kind": "note", "body": "Received from the NGO."}),
    );
    assert_eq!(m.status, 201);
    // The sender sees the answer.
    let list = api.ok(api.get("/api/v1/referrals", &mila), "ReferralsList");
    assert_eq!(list["referrals"][0]["state"], "accepted");
}

#[test]
fn another_organisations_case_is_not_found_exactly_like_no_case() {
    let api = Api::start();
    let jonas = api.token("jonas");
    let eva = api.token("eva");
    let (case, reference, app) = api.submit(&jonas, "eu-humanitarian-visa", "Sasha");
    let random = "0192f0c1-7d2a-7cc3-8a1e-2b1f3c4d5e6f";
    let attempts = |id: &str, app: &str| -> Vec<Res> {
        vec![
            api.get(&format!("/api/v1/cases/{id}"), &eva),
            api.get(&format!("/api/v1/cases/{id}/events"), &eva),
            api.get(&format!("/api/v1/cases/{id}/messages"), &eva),
            api.post(
                &format!("/api/v1/cases/{id}/messages"),
                &eva,
                &json!({"kind": "note", "body": "x"}),
            ),
            api.get(&format!("/api/v1/cases/{id}/evidence"), &eva),
            api.call(
                "POST",
                &format!("/api/v1/cases/{id}/evidence?name=a.pdf"),
                Some(&eva),
                Some(PDF),
            ),
            api.get(&format!("/api/v1/cases/{id}/deadlines"), &eva),
            api.post(
                &format!("/api/v1/cases/{id}/deadlines"),
                &eva,
                &json!({"kind": "other", "due_on": "2030-01-01"}),
            ),
            api.post(
                &format!("/api/v1/cases/{id}/referrals"),
                &eva,
                &json!({"to": api.srv.ngo.to_string(), "consent": "x"}),
            ),
            api.post(
                &format!("/api/v1/applications/{app}/moves"),
                &eva,
                &json!({"to": "in_review", "expected_version": 1}),
            ),
        ]
    };
    let theirs = attempts(&case, &app);
    let none = attempts(random, random);
    let junk = attempts("not-an-id", "not-an-id");
    for ((a, b), c) in theirs.iter().zip(&none).zip(&junk) {
        assert_eq!(a.error(), (404, "not_found".into(), None));
        assert_eq!(a.body, b.body);
        assert_eq!(a.body, c.body);
    }
    assert_eq!(
        api.get(&format!("/api/v1/cases/{reference}"), &eva).body,
        none[0].body
    );
    // Nothing was written to the case.
    let v = api.ok(
        api.get(&format!("/api/v1/cases/{case}/messages"), &jonas),
        "MessagesList",
    );
    assert_eq!(v["messages"], json!([]));
    assert_eq!(api.version_of(&jonas, &case, &app), 1);
}

#[test]
fn errors_are_json_with_code_message_and_field() {
    let api = Api::start();
    let token = api.token("jonas");
    let raw = |path: &str, body: &[u8]| api.call("POST", path, Some(&token), Some(body));

    let r = raw("/api/v1/cases", b"{\"person\": ");
    assert_eq!(r.error(), (400, "bad_request".into(), None));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    assert_eq!(raw("/api/v1/cases", b"").error().1, "bad_request");
    // A struct could be read from an array of its fields: every body must be an object.
    for (path, body) in [
        ("/api/v1/cases", &b"[1, 2]"[..]),
        ("/api/v1/check", b" [{}]"),
        ("/api/v1/check", b"\"facts\""),
        ("/api/v1/check", b"null"),
    ] {
        let r = raw(path, body);
        assert_eq!(r.error(), (400, "bad_request".into(), None), "{path}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("object")
        );
    }
    assert_eq!(
        raw("/api/v1/check", b" {}").error().0,
        422,
        "an object is read"
    );

    let person = json!({"pseudonym": "Sasha"});
    for (body, field) in [
        (json!({"person": person, "facts": {}}), "programme"),
        (
            json!({"person": person, "facts": {}, "programme": "atlantis-visa"}),
            "programme",
        ),
        (
            json!({"person": person, "facts": {}, "programme": "Bad Id"}),
            "programme",
        ),
        (
            json!({"facts": {}, "programme": "eu-humanitarian-visa"}),
            "person",
        ),
        (
            json!({"person": {}, "programme": "eu-humanitarian-visa"}),
            "person",
        ),
        (
            json!({"person": {"pseudonym": ""}, "programme": "eu-humanitarian-visa"}),
            "person.pseudonym",
        ),
        (
            json!({"person": {"pseudonym": "x", "names": [{"value": "a", "nick": 1}]}, "programme": "eu-humanitarian-visa"}),
            "person.names[0].nick",
        ),
        (
            json!({"person": person, "facts": {"birth_date": "1990-13-01"}, "programme": "eu-humanitarian-visa"}),
            "facts.birth_date",
        ),
        (
            json!({"person": person, "facts": {"nationality": "Narnia"}, "programme": "eu-humanitarian-visa"}),
            "facts.nationality",
        ),
        (
            json!({"person": person, "facts": {"favourite_colour": "red"}, "programme": "eu-humanitarian-visa"}),
            "facts",
        ),
        (
            json!({"person": person, "programme": "eu-humanitarian-visa", "extra": true}),
            "extra",
        ),
    ] {
        let r = api.post("/api/v1/cases", &token, &body);
        assert_eq!(
            r.error(),
            (422, "invalid".into(), Some(field.into())),
            "{body}"
        );
    }
    // The fact is named in the message too.
    let r = api.post(
        "/api/v1/cases",
        &token,
        &json!({"person": person, "facts": {"favourite_colour": "red"}, "programme": "eu-humanitarian-visa"}),
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("favourite_colour")
    );

    // Bodies are held to 64 KiB.
    let big = json!({"person": person, "facts": {}, "programme": "eu-humanitarian-visa",
                     "padding": "x".repeat(64 * 1024)});
    let r = api.post("/api/v1/cases", &token, &big);
    assert_eq!(r.error(), (413, "too_large".into(), None));
    let r = api.call(
        "POST",
        "/api/v1/check",
        None,
        Some(
            json!({"facts": {}, "lang": "x".repeat(70_000)})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.error(), (413, "too_large".into(), None));

    // Unknown paths and methods.
    let r = api.get("/api/v1/nothing-here", &token);
    assert_eq!(r.error(), (404, "not_found".into(), None));
    let r = api.call("DELETE", "/api/v1/queue", Some(&token), None);
    assert_eq!(r.error(), (405, "method_not_allowed".into(), None));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DELETE")
    );

    // Messages follow Accept-Language.
    let mut req = ureq::http::Request::builder()
        .method("GET")
        .uri(format!(
            "{}/api/v1/cases/{}",
            api.srv.base, "0192f0c1-7d2a-7cc3-8a1e-2b1f3c4d5e6f"
        ))
        .header("authorization", format!("Bearer {token}"));
    req = req.header("accept-language", "de");
    let mut res = api.agent.run(req.body(()).unwrap()).unwrap();
    let de: Value = serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap();
    let en = api
        .get("/api/v1/cases/0192f0c1-7d2a-7cc3-8a1e-2b1f3c4d5e6f", &token)
        .json();
    assert_eq!(de["error"]["code"], "not_found");
    assert_ne!(de["error"]["message"], en["error"]["message"]);
}

#[test]
fn check_explains_every_programme_without_a_token() {
    let api = Api::start();
    let check = |body: Value| {
        api.call(
            "POST",
            "/api/v1/check",
            None,
            Some(body.to_string().as_bytes()),
        )
    };
    let facts = json!({"nationality": "RU", "birth_date": "1990-05-14", "sex": "male",
                       "current_country": "GE", "refusal": "evaded_callup", "summons_received": true});
    let v = api.ok(
        check(json!({"facts": facts, "on": "2026-11-22", "lang": "ru"})),
        "CheckResponse",
    );
    assert_eq!(v["on"], "2026-11-22");
    assert_eq!(v["lang"], "ru");
    let lib = refuge_rules::library::Library::load(&server::programmes_dir()).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), lib.programmes.len());
    // The same shape as `refuge check --format json`.
    let p = &lib.programmes["eu-humanitarian-visa"];
    let facts_parsed: refuge_core::facts::Facts = serde_json::from_value(facts.clone()).unwrap();
    let want = refuge_rules::programme::decide(
        p,
        &facts_parsed,
        refuge_core::facts::parse_date("2026-11-22").unwrap(),
        "ru",
    );
    let got = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["programme"] == "eu-humanitarian-visa")
        .unwrap();
    assert_eq!(got, &serde_json::to_value(&want).unwrap());

    let v = api.ok(
        check(json!({"facts": facts, "programmes": ["eu-humanitarian-visa", "nl-moratorium"]})),
        "CheckResponse",
    );
    let ids: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["programme"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["eu-humanitarian-visa", "nl-moratorium"]);
    assert_eq!(v["lang"], "en");
    if let Some(reform) = lib.reforms.keys().next() {
        let v = api.ok(
            check(json!({"facts": {}, "programmes": [reform]})),
            "CheckResponse",
        );
        assert_eq!(v["results"][0]["reforms"], json!([reform]));
    }

    for (body, field) in [
        (
            json!({"facts": facts, "programmes": ["eu-humanitarian-visa", "atlantis"]}),
            "programmes[1]",
        ),
        (json!({"facts": facts, "on": "22.11.2026"}), "on"),
        (json!({"facts": facts, "lang": "fr"}), "lang"),
        (json!({"facts": {"age": 30}}), "facts"),
        (
            json!({"facts": {"summons_received": "maybe"}}),
            "facts.summons_received",
        ),
        (json!({}), "facts"),
    ] {
        let r = check(body.clone());
        assert_eq!(
            r.error(),
            (422, "invalid".into(), Some(field.into())),
            "{body}"
        );
    }
}

/// Every route registered under `/api/v1` (read from the router itself), with every method
/// it answers, is in the OpenAPI document, and the document has nothing the router lacks.
#[test]
fn the_openapi_document_lists_every_route_of_the_router() {
    let api = Api::start();
    let doc = &api.doc;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    // The router's own paths: axum lists them in its Debug output.
    let entropy = std::sync::Arc::new(refuge_crypto::OsSeededEntropy::new().unwrap());
    let state = refuge_web::AppState::new(
        api.srv.store.clone(),
        std::sync::Arc::new(
            refuge_rules::library::Library::load(&server::programmes_dir()).unwrap(),
        ),
        std::sync::Arc::new(refuge_core::clock::SystemClock),
        entropy,
        refuge_web::WebConfig::default(),
    )
    .unwrap();
    let debug = format!("{:?}", refuge_web::app(state));
    let router_paths: BTreeSet<String> = debug
        .split('"')
        .filter(|s| s.starts_with("/api/"))
        .map(str::to_owned)
        .collect();
    assert!(router_paths.len() >= 15, "{router_paths:?}");
    assert!(
        router_paths.iter().all(|p| p.starts_with("/api/v1/")),
        "{router_paths:?}"
    );
    let doc_paths: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(router_paths, doc_paths);

    // The methods each path answers (anything but 405), against the document's operations.
    let token = api.token("jonas");
    let sample = "0192f0c1-7d2a-7cc3-8a1e-2b1f3c4d5e6f";
    let mut operations = 0;
    for path in &router_paths {
        let concrete = path.replace("{id}", sample);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if path == "/api/v1/token" && method == "DELETE" {
                // Answered, but it would revoke the token: the document must have it.
                assert!(doc["paths"][path]["delete"].is_object());
                operations += 1;
                continue;
            }
            let body = (method != "GET" && method != "DELETE").then_some(&b"{}"[..]);
            let r = api.call(method, &concrete, Some(&token), body);
            let documented = doc["paths"][path][method.to_lowercase()].is_object();
            assert_eq!(
                r.status != 405,
                documented,
                "{method} {path}: status {} but documented={documented}",
                r.status
            );
            operations += usize::from(documented);
        }
    }
    assert!(operations >= 20, "{operations}");

    // Every operation but `check` and the document itself asks for the bearer token, and
    // documents its errors with the error schema.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let open = path == "/api/v1/check" || path == "/api/v1/openapi.json";
            assert_eq!(op["security"].is_array(), !open, "{method} {path}");
            for (status, res) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') {
                    assert_eq!(
                        res["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

/// The error schema describes the errors actually sent.
#[test]
fn errors_match_the_error_schema() {
    let api = Api::start();
    let r = api.call("GET", "/api/v1/queue", None, None);
    assert_eq!(r.status, 401);
    conforms(
        &api.doc,
        &json!({"$ref": "#/components/schemas/ErrorBody"}),
        &r.json(),
        "401",
    );
    let token = api.token("eva");
    let r = api.post("/api/v1/cases", &token, &json!({"person": {}}));
    conforms(
        &api.doc,
        &json!({"$ref": "#/components/schemas/ErrorBody"}),
        &r.json(),
        "422",
    );
}

#[test]
fn an_export_needs_a_second_person_and_leaves_encrypted_once() {
    let api = Api::start();
    let jonas = api.token("jonas");
    let admin = api.token("admin");
    let mila = api.token("mila");
    let (case, reference, _) = api.submit(&jonas, "eu-humanitarian-visa", "Sasha");

    let r = api.post(
        "/api/v1/exports",
        &jonas,
        &json!({"cases": ["nonsense"], "purpose": "x"}),
    );
    assert_eq!(r.error(), (422, "invalid".into(), Some("cases[0]".into())));
    let r = api.post(
        "/api/v1/exports",
        &jonas,
        &json!({"cases": [case], "purpose": ""}),
    );
    assert_eq!(r.error().0, 422);
    // Another organisation's case is not found, exactly like none.
    let r = api.post(
        "/api/v1/exports",
        &mila,
        &json!({"cases": [case], "purpose": "For a lawyer"}),
    );
    assert_eq!(r.error(), (404, "not_found".into(), None));
    let e = api.ok(
        api.post(
            "/api/v1/exports",
            &jonas,
            &json!({"cases": [reference], "purpose": "For the applicant's lawyer"}),
        ),
        "ExportDto",
    );
    assert_eq!(e["state"], "requested");
    assert_eq!(e["cases"], json!([case]));
    let id = e["id"].as_str().unwrap().to_owned();
    let decision = format!("/api/v1/exports/{id}/decision");
    let collect = format!("/api/v1/exports/{id}/collect");
    let pass = json!({"passphrase": "river lantern copper meadow"});

    // The requester can neither approve nor collect before someone else approves.
    let r = api.post(&decision, &jonas, &json!({"approve": true}));
    assert_eq!(r.error().0, 403);
    assert_eq!(r.error().1, "not_allowed");
    assert_eq!(api.post(&collect, &jonas, &pass).error().1, "not_allowed");
    // Another organisation does not see it.
    assert_eq!(
        api.get(&format!("/api/v1/exports/{id}"), &mila).error(),
        (404, "not_found".into(), None)
    );
    assert_eq!(
        api.ok(api.get("/api/v1/exports", &mila), "ExportsList")["exports"],
        json!([])
    );

    // The organisation's administrator sees and approves it, but may not collect it.
    let list = api.ok(api.get("/api/v1/exports", &admin), "ExportsList");
    assert_eq!(list["exports"][0]["id"], id.as_str());
    let v = api.ok(
        api.post(&decision, &admin, &json!({"approve": true})),
        "ExportDto",
    );
    assert_eq!(v["state"], "approved");
    assert!(v["collect_by"].is_string());
    assert_eq!(
        api.post(&decision, &admin, &json!({"approve": false}))
            .status,
        409
    );
    assert_eq!(api.post(&collect, &admin, &pass).error().1, "forbidden");

    let weak = api.post(&collect, &jonas, &json!({"passphrase": "short"}));
    assert_eq!(
        weak.error(),
        (422, "invalid".into(), Some("passphrase".into()))
    );
    let file = api.post(&collect, &jonas, &pass);
    assert_eq!(file.status, 200, "{}", String::from_utf8_lossy(&file.body));
    assert_eq!(
        file.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        file.header("content-disposition")
            .unwrap()
            .contains(&format!("refuge-export-{id}.bin"))
    );
    assert_eq!(file.header("cache-control"), Some("no-store"));
    assert!(!file.body.windows(14).any(|w| w == b"Aleksandr Test"));
    let plain = refuge_crypto::open_export(
        &refuge_crypto::SecretString::new("river lantern copper meadow".into()),
        &file.body,
    )
    .unwrap();
    let doc: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(
        doc["cases"][0]["identity"]["names"][0]["value"],
        "Aleksandr Test"
    );
    assert_eq!(doc["cases"][0]["case"]["reference"], reference.as_str());
    assert_eq!(doc["purpose"], "For the applicant's lawyer");
    // Once only.
    assert_eq!(api.post(&collect, &jonas, &pass).status, 409);
    let v = api.ok(
        api.get(&format!("/api/v1/exports/{id}"), &admin),
        "ExportDto",
    );
    assert_eq!(v["state"], "collected");
}

#[test]
fn a_submission_sent_again_with_its_idempotency_key_is_not_made_twice() {
    let api = Api::start();
    let token = api.token("jonas");
    let body = json!({
        "person": {"pseudonym": "Sasha", "names": [{"value": "Aleksandr Test"}]},
        "facts": {"nationality": "RU", "refusal": "deserted"},
        "programme": "eu-humanitarian-visa",
    });
    let send = |key: &str| {
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}/api/v1/cases", api.srv.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if !key.is_empty() {
            req = req.header("idempotency-key", key);
        }
        let mut res = api.agent.run(req.body(body.to_string()).unwrap()).unwrap();
        let replayed = res
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = res.status().as_u16();
        let v: Value = serde_json::from_slice(&res.body_mut().read_to_vec().unwrap()).unwrap();
        (status, replayed, v)
    };
    let (status, replayed, first) = send("0192f0c1-retry-1");
    assert_eq!((status, replayed), (201, None), "{first}");
    let (status, replayed, again) = send("0192f0c1-retry-1");
    assert_eq!(
        (status, replayed.as_deref()),
        (200, Some("true")),
        "{again}"
    );
    assert_eq!(again["case"]["id"], first["case"]["id"]);
    assert_eq!(again["application"]["id"], first["application"]["id"]);
    let (status, _, other) = send("0192f0c1-retry-2");
    assert_eq!(status, 201);
    assert_ne!(other["case"]["id"], first["case"]["id"]);
    let (status, _, err) = send("has space");
    assert_eq!(status, 422);
    assert_eq!(err["error"]["field"], "Idempotency-Key");
    let q = api.ok(api.get("/api/v1/queue", &token), "QueuePage");
    assert_eq!(q["total"], 2);
}

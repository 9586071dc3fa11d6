//! A plain HTTP client for page tests: keeps the session cookie, reads CSRF tokens from forms,
//! signs staff in with password and TOTP.

#![allow(dead_code)]

use std::time::Duration;

/// A response.
pub struct Page {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Page {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first form's CSRF token on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let i = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[i..].split('"').next().unwrap_or("").to_owned()
    }
}

/// A browser-like client: one cookie jar, no redirects followed automatically.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    cookie: Option<String>,
    pub lang: String,
}

impl Client {
    pub fn new(base: &str, lang: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .new_agent();
        Client {
            base: base.to_owned(),
            agent,
            cookie: None,
            lang: lang.to_owned(),
        }
    }

    fn keep(&mut self, res: &ureq::http::Response<ureq::Body>) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap_or("");
            if let Some(rest) = v.strip_prefix("__Host-refuge=") {
                let value = rest.split(';').next().unwrap_or("");
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
    }

    fn finish(&mut self, mut res: ureq::http::Response<ureq::Body>) -> Page {
        self.keep(&res);
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let status = res.status().as_u16();
        let body = res.body_mut().read_to_string().unwrap_or_default();
        Page {
            status,
            body,
            headers,
        }
    }

    /// A second client holding the same session (another tab, or the same form sent twice).
    pub fn twin(&self) -> Client {
        let mut c = Client::new(&self.base, &self.lang);
        c.cookie = self.cookie.clone();
        c
    }

    /// The `Cookie` header this client sends.
    pub fn cookie_header(&self) -> String {
        self.cookie
            .as_ref()
            .map(|c| format!("__Host-refuge={c}"))
            .unwrap_or_default()
    }

    pub fn get(&mut self, path: &str) -> Page {
        let mut req = self
            .agent
            .get(&format!("{}{}", self.base, path))
            .header("accept-language", &self.lang);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", &format!("__Host-refuge={c}"));
        }
        let res = req.call().expect("GET answers");
        self.finish(res)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let mut req = self
            .agent
            .post(&format!("{}{}", self.base, path))
            .header("accept-language", &self.lang)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header("cookie", &format!("__Host-refuge={c}"));
        }
        let res = req.send(body.as_bytes()).expect("POST answers");
        self.finish(res)
    }

    /// Sign in as a staff user; panics unless it works.
    pub fn sign_in(&mut self, login: &str, password: &str, code: &str) {
        let page = self.get("/staff/login");
        let csrf = page.csrf();
        let r = self.post(
            "/staff/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        );
        assert_eq!(r.status, 303, "password step: {}", r.body);
        let page = self.get("/staff/login/code");
        let csrf = page.csrf();
        let r = self.post("/staff/login/code", &[("csrf", &csrf), ("code", code)]);
        assert_eq!(r.status, 303, "code step: {}", r.body);
        // Administrators without a casework role start at the administration page.
        assert!(
            matches!(r.header("location"), Some("/staff" | "/staff/admin")),
            "{:?}",
            r.header("location")
        );
    }
}

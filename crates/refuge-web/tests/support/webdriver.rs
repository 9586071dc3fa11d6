//! A small W3C WebDriver client for the browser tests: chromedriver, driven over HTTP.
//! Debian's `chromium` and `chromium-driver`; headless, no sandbox, no background traffic.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where chromedriver is, if it is installed.
pub fn chromedriver() -> Option<PathBuf> {
    for p in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// Skip (return `None`) when there is no browser, unless `REFUGE_REQUIRE_BROWSER=1`, when
/// that is a failure.
pub fn require_browser() -> Option<PathBuf> {
    match chromedriver() {
        Some(p) => Some(p),
        None if std::env::var("REFUGE_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!(
                "REFUGE_REQUIRE_BROWSER=1 but chromedriver is not installed (apt-get install chromium chromium-driver)"
            )
        }
        None => {
            eprintln!("SKIPPED: browser tests need Debian's chromium and chromium-driver");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running chromedriver.
pub struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Start chromedriver and wait until it answers.
    pub fn start(path: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
        };
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut r) = d.agent.get(&format!("{}/status", d.base)).call()
                && r.body_mut()
                    .read_json::<Value>()
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(Instant::now() < until, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("webdriver {method} {path}: {e}"),
        }
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}{}", self.base, path);
        let mut res = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, Some(b)) => self.agent.post(&url).send_json(b),
            (_, None) => self.agent.post(&url).send_json(json!({})),
        }
        .expect("webdriver answers");
        let v: Value = res.body_mut().read_json().expect("webdriver JSON");
        if v["value"].get("error").is_some() {
            return Err(v["value"].clone());
        }
        Ok(v["value"].clone())
    }

    /// A new headless browser session: JavaScript off when `javascript` is false, the
    /// browser's language `lang`, a window `width` × `height`.
    pub fn session(&self, javascript: bool, lang: &str, width: u32, height: u32) -> Browser<'_> {
        let mut prefs = json!({ "intl.accept_languages": lang });
        if !javascript {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--disable-dev-shm-usage", "--no-first-run",
                        format!("--lang={lang}"), format!("--window-size={width},{height}")
                    ],
                    "prefs": prefs
                }
            }}
        });
        let v = self.call("POST", "/session", Some(caps));
        let id = v["sessionId"].as_str().expect("session id").to_owned();
        Browser { driver: self, id }
    }
}

/// One browser session.
pub struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver.base, self.id);
        let _ = self.driver.agent.delete(&url).call();
    }
}

/// An element of the page.
pub struct Element<'b, 'a> {
    browser: &'b Browser<'a>,
    id: String,
}

impl<'a> Browser<'a> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{}", self.id, path), body)
    }

    /// Open a URL.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> Element<'_, 'a> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        Element {
            browser: self,
            id: v[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css}: {v}"))
                .to_owned(),
        }
    }

    /// Wait (up to 10 s) until the page's first heading reads `text`: after a click that
    /// submits a form, the next page has loaded.
    pub fn wait_h1(&self, text: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < until {
            let found = self
                .driver
                .try_call(
                    "POST",
                    &format!("/session/{}/element", self.id),
                    Some(json!({ "using": "css selector", "value": "h1" })),
                )
                .ok()
                .and_then(|v| v[ELEMENT].as_str().map(str::to_owned))
                .and_then(|id| {
                    self.driver
                        .try_call(
                            "GET",
                            &format!("/session/{}/element/{id}/text", self.id),
                            None,
                        )
                        .ok()
                })
                .and_then(|v| v.as_str().map(str::to_owned));
            if let Some(h) = found {
                if h == text {
                    return;
                }
                last = h;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("expected a page headed {text:?}; the heading is {last:?}");
    }

    /// Wait (up to 10 s) until the page's text contains `text`.
    pub fn wait_text(&self, text: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            let found = self
                .driver
                .try_call(
                    "POST",
                    &format!("/session/{}/element", self.id),
                    Some(json!({ "using": "css selector", "value": "body" })),
                )
                .ok()
                .and_then(|v| v[ELEMENT].as_str().map(str::to_owned))
                .and_then(|id| {
                    self.driver
                        .try_call(
                            "GET",
                            &format!("/session/{}/element/{id}/text", self.id),
                            None,
                        )
                        .ok()
                })
                .and_then(|v| v.as_str().map(str::to_owned));
            if found.is_some_and(|t| t.contains(text)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the page never showed {text:?}; it shows:\n{}", self.text());
    }

    /// How many elements match.
    pub fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.find("body").text()
    }

    /// The page source.
    pub fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Save a PNG screenshot of the whole window.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let b64 = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artefact directory");
        }
        std::fs::write(path, bytes).expect("screenshot written");
    }
}

impl Element<'_, '_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.browser
            .call(method, &format!("/element/{}{}", self.id, path), body)
    }

    /// Click it.
    pub fn click(&self) {
        self.call("POST", "/click", None);
    }

    /// Type into it.
    pub fn send_keys(&self, text: &str) {
        self.call("POST", "/value", Some(json!({ "text": text })));
    }

    /// Its visible text.
    pub fn text(&self) -> String {
        self.call("GET", "/text", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// One of its properties (e.g. `value`).
    pub fn property(&self, name: &str) -> String {
        self.call("GET", &format!("/property/{name}"), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

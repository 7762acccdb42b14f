//! A small W3C WebDriver client over reqwest, driving Debian's headless Chromium
//! through chromedriver. The test spawns chromedriver on a free port in its own
//! process group and kills that group when the [`Browser`] is dropped, so no
//! browser outlives a test, even a failing one.
//!
//! Screenshots go to `tests/artifacts/<test>/NN-step.png`.
//!
//! [`CutProxy`] is a TCP proxy the browser reaches the engine through, so a test
//! can cut the network under the page (every connection dropped, new ones refused)
//! and bring it back, or point it at a restarted engine.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: PathBuf,
    artifacts: PathBuf,
    shots: u32,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// Where a test's screenshots go.
pub fn artifacts_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/artifacts")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver and a Chromium session; fails with a clear message when
    /// either is missing.
    pub async fn start(test: &str) -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the console's browser tests need Debian's {package} \
                 (apt-get install chromium chromium-driver, or run ./scripts/test)"
            );
        }
        let port = crate::common::engine::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let profile = std::env::temp_dir().join(format!(
            "dispatchline-chromium-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
            profile,
            artifacts: artifacts_dir(test),
            shots: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=1440,1000",
            "--lang=ru-RU",
        ];
        let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        all.push(format!("--user-data-dir={}", browser.profile.display()));
        let answer = browser
            .raw(
                reqwest::Method::POST,
                "/session",
                Some(json!({
                    "capabilities": {"alwaysMatch": {
                        "browserName": "chrome",
                        "goog:chromeOptions": {"binary": CHROMIUM, "args": all},
                        "timeouts": {"implicit": 0, "pageLoad": 30000, "script": 30000},
                    }}
                })),
            )
            .await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("webdriver {url}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "webdriver {path}: {status} {value}");
        value["value"].clone()
    }

    /// A command that may fail without failing the test (an element re-rendered
    /// between finding and reading it is "stale"): `None` then.
    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let ok = response.status().is_success();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        ok.then(|| value["value"].clone())
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Elements matching a CSS selector now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `css` matches a visible element (and, when given, one whose text
    /// contains `text`); panics with a screenshot after `within`.
    pub async fn wait_for(&mut self, css: &str, text: Option<&str>, within: Duration) -> Element {
        self.wait_found(css, text, within).await.0
    }

    /// [`wait_for`](Self::wait_for), returning the element's text as it was when it
    /// matched (reading it again later may find a re-rendered, stale element).
    pub async fn wait_text(&mut self, css: &str, text: Option<&str>, within: Duration) -> String {
        self.wait_found(css, text, within).await.1
    }

    /// Waits for a match as [`wait_for`](Self::wait_for) does and clicks it, trying
    /// again if the page re-renders it in between.
    pub async fn wait_click(&mut self, css: &str, text: Option<&str>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (element, _) = self.wait_found(css, text, within).await;
            let clicked = self
                .try_cmd(
                    reqwest::Method::POST,
                    &format!("/element/{}/click", element.0),
                    Some(json!({})),
                )
                .await;
            if clicked.is_some() {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await;
                panic!("`{css}` could not be clicked within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_found(
        &mut self,
        css: &str,
        text: Option<&str>,
        within: Duration,
    ) -> (Element, String) {
        let deadline = Instant::now() + within;
        loop {
            for element in self.find_all(css).await {
                if !self.displayed(&element).await {
                    continue;
                }
                let Some(seen) = self.text_now(&element).await else {
                    continue; // re-rendered meanwhile: look again
                };
                if text.is_none_or(|t| seen.contains(t)) {
                    return (element, seen);
                }
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await;
                let body = self.js("return document.body.innerText", vec![]).await;
                panic!(
                    "`{css}` with text {text:?} did not appear within {within:?}; page text:\n{body}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` returns a truthy value.
    pub async fn wait_until(&mut self, what: &str, script: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.js(script, vec![]).await;
            if !(value.is_null()
                || value == json!(false)
                || value == json!(0)
                || value == json!(""))
            {
                return value;
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await;
                panic!("{what}: not true within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn displayed(&self, element: &Element) -> bool {
        self.try_cmd(
            reqwest::Method::GET,
            &format!("/element/{}/displayed", element.0),
            None,
        )
        .await
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    }

    async fn text_now(&self, element: &Element) -> Option<String> {
        self.try_cmd(
            reqwest::Method::GET,
            &format!("/element/{}/text", element.0),
            None,
        )
        .await
        .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks an element.
    pub async fn click(&self, element: &Element) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .await;
    }

    /// Types into an element.
    pub async fn type_into(&self, element: &Element, text: &str) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The first element matching `css`, now.
    pub async fn find(&self, css: &str) -> Element {
        self.find_all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element `{css}`"))
    }

    /// Saves a screenshot as the next numbered artifact; returns its path.
    pub async fn screenshot(&mut self, step: &str) -> PathBuf {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        self.shots += 1;
        let path = self.artifacts.join(format!("{:02}-{step}.png", self.shots));
        let bytes = base64_decode(png.as_str().unwrap_or_default());
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Ends the session (Chromium exits); the driver is killed on drop.
    pub async fn quit(mut self) {
        let session = std::mem::take(&mut self.session);
        if !session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{session}", self.base))
                .send()
                .await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, Chromium included: end them all.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A loopback TCP proxy in front of the engine that the test can cut.
pub struct CutProxy {
    /// Where the browser connects.
    pub addr: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (target, up, links) = (target.clone(), up.clone(), links.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // The network is down: the connection goes nowhere.
                        drop(inbound);
                        continue;
                    }
                    let to = *target.lock().unwrap();
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                            let _ = outbound.set_nodelay(true);
                            let _ = inbound.set_nodelay(true);
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut links = links.lock().unwrap();
                    links.retain(|l| !l.is_finished());
                    links.push(link);
                }
            })
        };
        Self {
            addr,
            target,
            up,
            links,
            accept,
        }
    }

    /// The network drops: every open connection is cut (no websocket close frame
    /// reaches either side) and new ones are dropped until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// The network is back.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// New connections go to `target` from now on (a restarted engine).
    pub fn retarget(&self, target: std::net::SocketAddr) {
        *self.target.lock().unwrap() = target;
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// Standard base64 (what WebDriver screenshots are in).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

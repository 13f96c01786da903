//! Headless Chromium for this workspace's browser tests (the predictor's web page, ArgoCD's web UI): Debian's
//! `chromium` driven by its `chromedriver` on loopback, through fantoccini's WebDriver client. The calls block
//! (each runs on the browser's own single-thread runtime), as the tests that use it are synchronous.
//!
//! Chromium runs with a fresh profile and without its background traffic (component updates, sync, field
//! trials…), so the only requests it makes are the pages a test opens.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How the browser starts.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Window size in CSS pixels (what a screenshot shows).
    pub window: (u32, u32),
    /// Accept a server's self-signed certificate (argocd-server makes one at start).
    pub accept_insecure_certs: bool,
    /// Run chromedriver and Chromium in this network namespace (`ip netns exec`), as a user's browser runs
    /// on a machine of its own; chromedriver is then reached at the netns's address, from this machine's
    /// address on that route only. On the machine of a Kubernetes node it must: Chromium takes every
    /// address the kernel adds (the IPv6 link-local address of each pod's veth, as a pod starts) for a
    /// network change and closes all its connections (`ERR_NETWORK_CHANGED`), cutting the script a page
    /// is loading, a login POST, a UI's event streams. Seen 2026-12-07: a 30 MB script cut at 13 MB when
    /// one veth pair came up; ArgoCD's login page left blank in CI.
    pub netns: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: (1280, 900),
            accept_insecure_certs: false,
            netns: None,
        }
    }
}

/// One Chromium session; dropping it ends the session and stops chromedriver.
pub struct Browser {
    client: Client,
    runtime: tokio::runtime::Runtime,
    driver: Child,
    _profile: tempfile::TempDir,
    /// chromedriver's log (its commands and the browser's console), named in failure messages.
    log: std::path::PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session; panics with what is missing.
    pub fn start(settings: &Settings) -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = model_store::testing::free_port();
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        // chromedriver on loopback, or on the netns's address answering this machine's address on that route.
        let (mut command, host, allowed) = match &settings.netns {
            None => (
                Command::new(CHROMEDRIVER),
                "127.0.0.1".to_string(),
                "127.0.0.1".to_string(),
            ),
            Some(netns) => {
                let (address, source) = netns_route(netns);
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, CHROMEDRIVER]);
                (command, address, source)
            }
        };
        let driver = command
            .args([
                format!("--port={port}"),
                format!("--allowed-ips={allowed}"),
                format!("--log-path={}", log.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let profile = tempfile::tempdir().expect("a browser profile dir");
        let (width, height) = settings.window;
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--disable-field-trial-config".into(),
            // A headless window counts as hidden: without these, timers and rendering of a busy single-page
            // app are throttled until WebDriver's calls time out ("Timed out receiving message from renderer").
            "--disable-background-timer-throttling".into(),
            "--disable-backgrounding-occluded-windows".into(),
            "--disable-renderer-backgrounding".into(),
            "--no-first-run".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "acceptInsecureCerts".into(),
            json!(settings.accept_insecure_certs),
        );
        // Single-page apps keep requests open (ArgoCD's event streams): a navigation returns once the
        // document is parsed, and every wait is the test's own; no command may hang past a minute.
        capabilities.insert("pageLoadStrategy".into(), json!("eager"));
        capabilities.insert(
            "timeouts".into(),
            json!({"pageLoad": 60_000, "script": 30_000, "implicit": 0}),
        );
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let url = format!("http://{host}:{port}");
        // chromedriver listens a moment after it starts: retry the session until then.
        let mut last_error = String::new();
        let client = model_store::testing::poll(
            Duration::from_secs(30),
            &format!("a WebDriver session from chromedriver on {url}"),
            || {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                runtime
                    .block_on(
                        ClientBuilder::new(connector)
                            .capabilities(capabilities.clone())
                            .connect(&url),
                    )
                    .map_err(|e| last_error = e.to_string())
                    .ok()
            },
        )
        .unwrap_or_else(|e| panic!("{e}: {last_error}"));
        Browser {
            client,
            runtime,
            driver,
            _profile: profile,
            log,
        }
    }

    fn block<T, E: std::fmt::Display>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> T {
        self.runtime
            .block_on(call)
            .unwrap_or_else(|e| panic!("browser: {what}: {e}"))
    }

    /// Opens `url` and waits for the page to load.
    pub fn open(&self, url: &str) {
        self.block(&format!("open {url}"), self.client.goto(url));
    }

    pub fn title(&self) -> String {
        self.block("title", self.client.title())
    }

    pub fn current_url(&self) -> String {
        self.block("current url", self.client.current_url())
            .to_string()
    }

    /// The first element matching `css`, if there is one now.
    pub fn find(&self, css: &str) -> Option<Element> {
        self.runtime
            .block_on(self.client.find(Locator::Css(css)))
            .ok()
    }

    /// The first element matching the XPath `xpath` (to find by text: `//button[contains(., 'Save')]`).
    pub fn find_xpath(&self, xpath: &str) -> Option<Element> {
        self.runtime
            .block_on(self.client.find(Locator::XPath(xpath)))
            .ok()
    }

    /// Every element matching `css` now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.block(
            &format!("find all {css}"),
            self.client.find_all(Locator::Css(css)),
        )
    }

    /// Waits up to `timeout` for an element matching `css`; panics naming it (and the page) if none comes.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        self.wait_until(timeout, &format!("an element {css}"), || self.find(css))
    }

    /// Polls `check` (the workspace's one bounded poll, `model_store::testing::poll`) until it gives a
    /// value; panics with `what` and the page as it is after `timeout`.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: impl FnMut() -> Option<T>,
    ) -> T {
        model_store::testing::poll(timeout, what, check)
            .unwrap_or_else(|e| panic!("browser: {e}; {}", self.describe()))
    }

    /// What the page is now, for a failure message: its URL, the start of its text, and a screenshot
    /// saved to the temp dir.
    pub fn describe(&self) -> String {
        let shot = std::env::temp_dir().join(format!(
            "browser-failure-{}-{}.png",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let saved = match self.runtime.block_on(self.client.screenshot()) {
            Ok(png) => std::fs::write(&shot, png)
                .map(|()| format!("screenshot {}", shot.display()))
                .unwrap_or_else(|e| format!("no screenshot: {e}")),
            Err(e) => format!("no screenshot: {e}"),
        };
        let text: String = self.page_text().chars().take(1500).collect();
        format!(
            "page {}, {saved}, chromedriver log {}, text:\n{text}",
            self.current_url(),
            self.log.display()
        )
    }

    /// Clicks `element`, waiting up to 10 s while it is not interactable yet (a panel still sliding in,
    /// an overlay fading out).
    pub fn click(&self, element: &Element) {
        self.when_interactable("click", || element.click());
    }

    /// Clears a text field and types `text` into it (waiting as [`Browser::click`] does).
    pub fn type_into(&self, element: &Element, text: &str) {
        self.when_interactable("clear", || element.clear());
        self.block("type", element.send_keys(text));
    }

    fn when_interactable<
        F: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    >(
        &self,
        what: &str,
        call: impl Fn() -> F,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.runtime.block_on(call()) {
                Ok(()) => return,
                Err(e)
                    if Instant::now() < deadline && {
                        let m = e.to_string();
                        m.contains("not interactable") || m.contains("click intercepted")
                    } =>
                {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!("browser: {what}: {e}; {}", self.describe()),
            }
        }
    }

    /// Sends `keys` to an element as typed, without clearing it first (WebDriver's special keys too:
    /// `"\u{e00c}"` is Escape).
    pub fn send_keys(&self, element: &Element, keys: &str) {
        self.block("send keys", element.send_keys(keys));
    }

    /// An element's rendered text.
    pub fn text(&self, element: &Element) -> String {
        self.block("text", element.text())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its value.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.block("execute", self.client.execute(script, args))
    }

    /// The whole page's visible text.
    pub fn page_text(&self) -> String {
        self.execute("return document.body.innerText;", vec![])
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.block("screenshot", self.client.screenshot());
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("write the screenshot {}: {e}", path.display()));
    }

    /// Forgets the session's cookies (a logout as far as a cookie-based login is concerned).
    pub fn delete_cookies(&self) {
        self.block("delete cookies", self.client.delete_all_cookies());
    }
}

/// Where `netns` is reached from here: its first global IPv4 address, and this machine's source address on
/// the route to it (`ip -n <netns> addr`, `ip route get`); panics saying what is missing.
fn netns_route(netns: &str) -> (String, String) {
    assert!(
        !netns.is_empty()
            && netns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "a netns name, not {netns:?}"
    );
    let ip = |args: &[&str]| {
        let out = Command::new("ip")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run ip {args:?}: {e}"));
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // `ip -o` prints one line per address: "2: eth0    inet 10.88.255.2/16 brd … scope global eth0".
    let addresses = ip(&["-n", netns, "-o", "-4", "addr", "show", "scope", "global"]);
    let address = word_after(&addresses, "inet")
        .and_then(|a| a.split('/').next().map(str::to_string))
        .unwrap_or_else(|| panic!("netns {netns} has no IPv4 address: {addresses}"));
    let route = ip(&["-o", "route", "get", &address]);
    let source = word_after(&route, "src")
        .unwrap_or_else(|| panic!("no source address on the route to {address}: {route}"));
    (address, source)
}

/// The word after the first `key` in `text`.
fn word_after(text: &str, key: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    words.next().map(str::to_string)
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.client.clone().close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! The web page in a real browser: Debian's headless Chromium driven through chromedriver (WebDriver over
//! loopback HTTP). Types a tweet, submits, and reads the answer, version and model date from the DOM.
//! Needs `chromium` and `chromium-driver` (installed by .ci/run); a screenshot goes to the target dir.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::FileServer;
use common::server::TestServer;
use model_store::testing::poll;
use predictor::server::ServeConfig;
use serde_json::{Value, json};

/// The W3C WebDriver key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    http: reqwest::blocking::Client,
}

impl Driver {
    fn start() -> Self {
        model_store::tls::install_crypto_provider();
        for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = common::closed_port();
        let child = Command::new("/usr/bin/chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        poll(Duration::from_secs(20), "chromedriver to start", || {
            driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .ok()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        driver
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json_body(body);
        }
        let text = request.send().unwrap().text().unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(
            value["value"].get("error").is_none(),
            "WebDriver {path}: {value}"
        );
        value["value"].clone()
    }
}

trait JsonBody {
    fn json_body(self, body: Value) -> Self;
}

impl JsonBody for reqwest::blocking::RequestBuilder {
    fn json_body(self, body: Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs chromium and chromium-driver: ./dev/test runs it"]
fn a_person_types_a_tweet_and_sees_the_answer_version_and_date() {
    let date = "2026-11-24T09:30:00Z";
    let (model, sha) =
        predictor::testing::trained_model(predictor::sample::SAMPLE_CSV.as_bytes(), date);
    let store = FileServer::start();
    store.put("/m.bin", model.clone());
    let server = TestServer::start(ServeConfig::new(store.url("/m.bin"), sha, "0.3"));
    server.wait_ready(Duration::from_secs(10));

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=900,700",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let session = driver.call(
        reqwest::Method::POST,
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}})),
    );
    let id = session["sessionId"].as_str().unwrap().to_string();
    let s = |path: &str| format!("/session/{id}{path}");
    let find = |css: &str| -> Option<String> {
        let response = driver
            .http
            .post(format!("{}{}", driver.base, s("/element")))
            .json_body(json!({"using": "css selector", "value": css}))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let value: Value = serde_json::from_str(&response).unwrap();
        value["value"][ELEMENT].as_str().map(str::to_string)
    };

    driver.call(
        reqwest::Method::POST,
        &s("/url"),
        Some(json!({"url": server.url("/")})),
    );
    let title = driver.call(reqwest::Method::GET, &s("/title"), None);
    assert_eq!(title, "Is this tweet from the US?");
    let text = find("#text").expect("the tweet box");
    driver.call(
        reqwest::Method::POST,
        &s(&format!("/element/{text}/clear")),
        Some(json!({})),
    );
    driver.call(
        reqwest::Method::POST,
        &s(&format!("/element/{text}/value")),
        Some(json!({"text": "Go Yankees! Bronx is loud tonight"})),
    );
    let submit = find("#submit").expect("the button");
    driver.call(
        reqwest::Method::POST,
        &s(&format!("/element/{submit}/click")),
        Some(json!({})),
    );

    let element = poll(Duration::from_secs(15), "an answer on the page", || {
        find("#verdict")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let verdict = driver.call(
        reqwest::Method::GET,
        &s(&format!("/element/{element}/text")),
        None,
    );
    assert_eq!(verdict, "American (is_american = 1)");
    let meta = find("#meta").unwrap();
    let meta = driver.call(
        reqwest::Method::GET,
        &s(&format!("/element/{meta}/text")),
        None,
    );
    let meta = meta.as_str().unwrap();
    assert!(
        meta.contains("version 0.3") && meta.contains(&format!("model date {date}")),
        "{meta}"
    );

    let png = driver.call(reqwest::Method::GET, &s("/screenshot"), None);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_page.png");
    std::fs::write(&shot, base64_decode(png.as_str().unwrap())).unwrap();
    driver.call(reqwest::Method::DELETE, &s(""), None);
}

/// Standard base64 (the screenshot), without a dependency for one call.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    clean
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u32, |acc, &c| (acc << 6) | u32::from(value(c)))
                << (6 * (4 - chunk.len()));
            let bytes = n.to_be_bytes();
            bytes[1..chunk.len()].to_vec()
        })
        .collect()
}

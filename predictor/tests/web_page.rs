//! The web page in a real browser: Debian's headless Chromium (the `browser` crate: chromedriver on loopback).
//! Types a tweet, submits, and reads the answer, version and model date from the DOM. Needs `chromium` and
//! `chromium-driver` (installed by .ci/run); a screenshot goes to the target dir.

mod common;

use std::time::Duration;

use browser::{Browser, Settings};
use common::FileServer;
use common::server::TestServer;
use predictor::server::ServeConfig;

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

    let browser = Browser::start(&Settings {
        window: (900, 700),
        ..Settings::default()
    });
    browser.open(&server.url("/"));
    assert_eq!(browser.title(), "Is this tweet from the US?");
    let text = browser.find("#text").expect("the tweet box");
    browser.type_into(&text, "Go Yankees! Bronx is loud tonight");
    browser.click(&browser.find("#submit").expect("the button"));

    let verdict = browser.wait_for("#verdict", Duration::from_secs(15));
    assert_eq!(browser.text(&verdict), "American (is_american = 1)");
    let meta = browser.text(
        &browser
            .find("#meta")
            .expect("the answer's version and date"),
    );
    assert!(
        meta.contains("version 0.3") && meta.contains(&format!("model date {date}")),
        "{meta}"
    );
    browser.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_page.png"));
}

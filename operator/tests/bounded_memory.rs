//! The operator's memory is bounded whatever a URL serves: models are streamed to the spool a chunk
//! at a time, refused past their limit, and this process's peak resident memory (VmHWM) barely
//! moves while gigabytes are on offer. One test function, so no other test of this binary runs
//! beside it and moves the process's peak.

use std::sync::Arc;
use std::time::Duration;

use model_store::testing::JunkServer;
use model_store::{Fetcher, StoreAccess};
use operator::budget::Budget;
use operator::crd::ModelSpec;
use operator::metrics::Metrics;
use operator::model_check::ModelChecker;
use operator::spool::Spool;
use operator::status::ModelCheck;

/// This process's peak resident memory so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib << 10
}

fn rejected(check: ModelCheck) -> (String, String) {
    match check {
        ModelCheck::Rejected { reason, message } => (reason, message),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_memory_is_bounded_whatever_a_url_serves() {
    let spool_dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::default();
    let access = StoreAccess::default();
    let junk_model = |url: String| ModelSpec {
        url,
        sha256: "0".repeat(64),
        ..ModelSpec::default()
    };
    let checker = |max_bytes: u64| {
        ModelChecker::new(
            true,
            max_bytes,
            Arc::new(
                Spool::new(
                    spool_dir.path(),
                    Fetcher::new(Duration::from_secs(120)).unwrap(),
                )
                .unwrap(),
            ),
            Arc::new(Budget::new(160 << 20)),
        )
    };
    // Warm up (threads, TLS provider, the first client) before measuring.
    let warm = JunkServer::start(Some(1 << 20));
    let _ = checker(8 << 20)
        .check(
            &junk_model(format!("{}/warm", warm.url)),
            false,
            &access,
            &metrics,
        )
        .await;
    let before = peak_rss();

    // 1 GiB of junk, no length stated, against the default 8 MiB limit: refused having read at
    // most the limit (plus what the sockets buffer).
    let gibibyte = JunkServer::start(Some(1 << 30));
    let (reason, message) = rejected(
        checker(8 << 20)
            .check(
                &junk_model(format!("{}/big.model", gibibyte.url)),
                false,
                &access,
                &metrics,
            )
            .await,
    );
    assert_eq!(reason, "FetchFailed");
    assert!(
        message.ends_with("more than the 8388608-byte limit; the Deployment was left unchanged"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        gibibyte.sent() < (8 << 20) + (16 << 20),
        "the server got {} bytes out",
        gibibyte.sent()
    );

    // Endless bodies, eight at once, each read through to a 32 MiB limit: 256 MiB pass through
    // the spool (on disk), refused with the same words; the memory does not follow.
    let endless = JunkServer::start(None);
    let big = checker(32 << 20);
    let checks = (0..8).map(|i| {
        let model = junk_model(format!("{}/endless-{i}.model", endless.url));
        let (big, access, metrics) = (&big, &access, &metrics);
        async move { rejected(big.check(&model, false, access, metrics).await) }
    });
    for (reason, message) in futures::future::join_all(checks).await {
        assert_eq!(reason, "FetchFailed");
        assert!(
            message
                .ends_with("more than the 33554432-byte limit; the Deployment was left unchanged"),
            "{message}"
        );
    }
    assert!(endless.sent() >= 8 * (32 << 20), "{} bytes", endless.sent());
    let growth = peak_rss().saturating_sub(before);
    println!(
        "peak RSS before {} MiB, growth {} KiB while refusing 1 GiB and 8 endless bodies ({} MiB read)",
        before >> 20,
        growth >> 10,
        endless.sent() >> 20
    );
    assert!(growth < 24 << 20, "peak RSS grew by {growth} bytes");
    // Nothing is left in the spool.
    assert_eq!(std::fs::read_dir(spool_dir.path()).unwrap().count(), 0);
}

//! Pipeline tier (issue 14): a one-line code change, committed and pushed to the code repository on a
//! real Git host, ends with every replica answering the new version, 0 failed requests under the probe.
//!
//! It runs what a team runs and what the report measures, `dev/delivery-report --from-code --runs 1`:
//! the node tier (kubelet, containerd, registry, CoreDNS, the operator from `kubectl apply -k`), ArgoCD
//! with argocd-server (the team logs in and creates its Application with the `argocd` CLI), the Git host
//! (`dev/gitserver/git-http.py`, `git http-backend`) whose code repository's post-receive hook runs
//! `dev/release` (cargo, buildah, registry push, `kustomize edit set image`, GitOps commit) and whose
//! GitOps repository's hook calls argocd-server's webhook. The first push releases the imported tree (it
//! warms the build cache); the measured push changes the web page's heading. This test reads the run's
//! `summary.json` and asserts the delivery; the script fails on its own when a stage never happens.
//!
//! Root only, one node at a time on a machine (`flock /tmp/mlops-node.lock`). Ignored by a plain
//! `cargo test`; `./dev/test` runs it with what it needs (PREDICTOR_BIN, OPERATOR_BIN, MLOPS_K8S_BIN,
//! MLOPS_ARGOCD_BIN).

mod support;

use std::process::Command;

use serde_json::Value;

#[test]
#[ignore = "needs root, the node tier (kubelet, containerd, registry, CoreDNS), ArgoCD + kustomize, buildah, cargo, static PREDICTOR_BIN/OPERATOR_BIN: ./dev/test runs it"]
fn a_code_commit_reaches_every_client_with_no_failed_request() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the pipeline tier runs the node tier: root"
    );
    for var in ["PREDICTOR_BIN", "OPERATOR_BIN"] {
        assert!(
            std::env::var_os(var).is_some(),
            "{var} is not set: ./dev/test sets it to a static release build"
        );
    }
    support::bin_dir();
    let argocd = support::argocd::bin_dir(&["argocd-server", "kustomize"]);
    let out = tempfile::tempdir().expect("a temporary directory");
    let status = Command::new(support::repo_root().join("dev/delivery-report"))
        .args(["--from-code", "--runs", "1"])
        .arg(out.path())
        .env("MLOPS_ARGOCD_BIN", &argocd)
        .env("MLOPS_K8S_BIN", support::bin_dir())
        .status()
        .expect("dev/delivery-report runs");
    assert!(
        status.success(),
        "dev/delivery-report --from-code failed: {status}"
    );

    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json is JSON");
    assert_eq!(summary["mode"], "code");
    let run = &summary["runs"][0];
    eprintln!(
        "[pipeline test] {}",
        serde_json::to_string_pretty(run).unwrap_or_default()
    );
    let secs = |v: &Value| {
        v.as_f64()
            .unwrap_or_else(|| panic!("not a time: {v} in {run}"))
    };

    // The new version is the pushed commit's short hash, and it reached the clients.
    let new = run["new"].as_str().expect("new version");
    assert_eq!(new.len(), 12, "{run}");
    assert!(new.chars().all(|c| c.is_ascii_hexdigit()), "{run}");
    assert_ne!(run["old"], run["new"]);
    let versions = run["versions"].as_array().expect("versions");
    let last = versions
        .iter()
        .max_by(|a, b| secs(&a["last_ms"]).total_cmp(&secs(&b["last_ms"])));
    assert_eq!(
        last.map(|v| v["version"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("")),
        Some(new),
        "the last answers come from the new version: {run}"
    );
    // The new code serves: its one-line change is on the page the Service returns.
    assert_eq!(
        run["page"], "<h1>Is this tweet from the US? (release 1)</h1>",
        "{run}"
    );

    // Every stage happened, in pipeline order, and the last old answer came after the new version
    // was out.
    let stages = &run["stages"];
    let order = [
        secs(&stages["build"]),
        secs(&stages["image"]),
        secs(&stages["push"]),
        secs(&stages["gitops"]),
        secs(&run["synced"]),
        secs(&run["ready"]),
    ];
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "stages out of order: {run}"
    );
    assert!(
        secs(&run["first_new_answer"]) >= secs(&stages["push"]),
        "{run}"
    );
    // Clients switch with the rollout: old pods drain (every answer `Connection: close`) as soon as
    // they are removed, so the last old answer comes within moments of the Predictor turning Ready,
    // not after the 5 s preStop wait that kept kept-alive clients on old pods before.
    assert!(
        secs(&run["last_old_answer"]) <= secs(&run["ready"]) + 3.0,
        "the last old answer came long after the rollout: {run}"
    );

    // No failed request, at >= 50 requests/s throughout.
    assert_eq!(run["failed"], 0, "failed requests: {run}");
    let rate = secs(&run["requests"]) / secs(&run["duration_s"]);
    assert!(rate >= 50.0, "probe rate {rate:.1}/s < 50/s: {run}");
    eprintln!(
        "[pipeline test] code commit -> every client on {new}: {:.1} s (build {:.1} s), {} requests at {rate:.0}/s, 0 failed",
        secs(&run["last_old_answer"]),
        secs(&stages["build"]),
        run["requests"]
    );
}

//! Rollouts on the node under the probe: an image change (scenario 3a) and a model-only change
//! (3b), a pod deleted and one SIGKILLed (issue 8), the leader operator pod deleted during a change
//! (4), and a wrong digest with the pre-flight check off (5).

use std::time::{Duration, Instant};

use crate::Setup;
use crate::cluster::*;
use crate::probe::*;

/// Section 3a: Image tag 0.1 -> 0.2 under load, the pull from the registry in the path.
pub(crate) fn image_rollout(setup: &Setup) {
    let (node, base) = (&setup.node, &setup.base);
    let (url_t, sha_t) = setup.model("MODEL_T");
    settle_on(node, "0.1", &url_t, sha_t);
    let r = measure_rollout(
        node,
        base,
        &predictor_yaml("0.2", &url_t, sha_t),
        &["--until-version", "0.2"],
        &|p| {
            p["status"]["version"] == "0.2"
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2
        },
    );
    assert_clean_rollout("image 0.1 -> 0.2 (pulled from the registry)", &r);
    assert_pulled(node, NS, &format!("{IMAGE}:0.2"));
    for pod in pods(node) {
        if pod["metadata"]["deletionTimestamp"].is_null() {
            let image = &pod["spec"]["containers"][0]["image"];
            assert!(
                image_is(image, &format!("{IMAGE}:0.2")),
                "pod image {image}"
            );
        }
    }
}

/// Section 3b: A model-only change under load.
pub(crate) fn model_rollout(setup: &Setup) {
    let (node, base) = (&setup.node, &setup.base);
    let (url_t, sha_t) = setup.model("MODEL_T");
    let (url_b, sha_b) = setup.model("MODEL_B");
    settle_on(node, "0.2", &url_t, sha_t);
    let r = measure_model_change(node, base, &predictor_yaml("0.2", &url_b, sha_b), sha_b);
    assert_clean_rollout("model-only change", &r);
}

/// Section 4: The leader operator pod deleted while a Predictor change is applied: the change rolls
/// out, another pod takes the Lease.
pub(crate) fn leader_handover(setup: &Setup) {
    let node = &setup.node;
    let (url_t, sha_t) = setup.model("MODEL_T");
    let old_leader = lease_holder(node).expect("a Lease holder");
    let t_hand = Instant::now();
    node.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        OPERATOR_NS,
        &old_leader,
        "--wait=false",
    ]);
    node.apply(&predictor_yaml("0.2", &url_t, sha_t));
    let ready_s = wait_for(
        Duration::from_secs(120),
        "the change made during the hand-over rolled out",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["modelSha256"] == sha_t
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2)
                .then(|| t_hand.elapsed().as_secs_f64())
        },
    );
    let new_leader = wait_for(Duration::from_secs(60), "a new Lease holder", || {
        lease_holder(node).filter(|h| *h != old_leader)
    });
    eprintln!(
        "[node test] leader {old_leader} deleted + Predictor changed: Ready on the change after {ready_s:.1} s, \
         Lease now held by {new_leader}"
    );
    let holder = operator_settled(node, "2 operator pods again, one leading", &|_| true);
    assert_ne!(holder, old_leader);
}

/// `kubectl set env` on the operator Deployment (`NAME=value`, or `NAME-` to remove it), as a user
/// changes its settings.
fn set_operator_env(node: &Node, change: &str) {
    let deployment = "deployment/predictor-operator";
    node.kubectl_ok(&["set", "env", "-n", OPERATOR_NS, deployment, change]);
}

/// Section 5: A wrong digest with the pre-flight check off: old pods keep serving. The check is
/// turned off the way a user would: the operator Deployment's env, then restored.
pub(crate) fn wrong_digest(setup: &Setup) {
    let (node, base) = (&setup.node, &setup.base);
    let (url_a, _) = setup.model("MODEL_A");
    let (_, sha_b) = setup.model("MODEL_B");
    let (url_t, sha_t) = setup.model("MODEL_T");
    settle_on(node, "0.2", &url_t, sha_t);
    set_operator_env(node, "SKIP_MODEL_CHECK=true");
    operator_settled(
        node,
        "the operator with SKIP_MODEL_CHECK=true leading",
        &|p| pod_env(p, "SKIP_MODEL_CHECK") == Some("true"),
    );
    let watch = Watch::start(node, "wrong-digest", base, &["--max-duration", "40s"]);
    let t_bad = Instant::now();
    // model-a's file, pinned to model-b's digest: every new pod refuses it.
    node.apply(&predictor_yaml("0.2", &url_a, sha_b));
    let degraded = wait_for(Duration::from_secs(60), "Predictor Degraded", || {
        let p = node.predictor();
        condition_is(&p, "Degraded", "True").then_some(p)
    });
    eprintln!(
        "[node test] Degraded after {:.1} s: {}",
        t_bad.elapsed().as_secs_f64(),
        condition(&degraded, "Degraded").unwrap()
    );
    let message = condition(&degraded, "Degraded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("old pods keep serving"), "{message}");
    assert_eq!(
        degraded["status"]["modelSha256"], sha_t,
        "status keeps what the ready pods serve"
    );
    // The new pod says why, in its log.
    let new_pod = pods(node)
        .into_iter()
        .find(|p| p["status"]["containerStatuses"][0]["ready"] == false)
        .expect("a new, not-ready pod");
    let logs = node.kubectl_ok(&[
        "logs",
        "-n",
        NS,
        new_pod["metadata"]["name"].as_str().unwrap(),
    ]);
    assert!(logs.contains("sha256 mismatch"), "{logs}");
    // Only the old release and model answered.
    assert_watch_clean("during the bad rollout", watch, &["0.2"]);
    set_operator_env(node, "SKIP_MODEL_CHECK-");
    operator_settled(node, "the operator with the model check back on", &|p| {
        pod_env(p, "SKIP_MODEL_CHECK").is_none()
    });
}

/// A pod deleted the normal way (SIGTERM after the preStop pause) must cost no request; a pod whose
/// process is SIGKILLed costs only requests that reached it before its endpoint is withdrawn (in flight,
/// or refused by the dead port), which are counted and must all be connection-level failures.
pub(crate) fn pod_faults_under_load(node: &Node, base: &str) {
    let ready_again = |what: &str| {
        wait_for(Duration::from_secs(60), what, || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True") && p["status"]["ready"] == "2/2").then_some(())
        })
    };
    let watch = Watch::start(node, "pod-deleted", base, &["--max-duration", "12s"]);
    let victim = pods(node)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    node.kubectl_ok(&["delete", "pod", "-n", NS, &victim, "--wait=false"]);
    let (_, deleted) = watch.finish();
    ready_again("2/2 again after the pod deletion");
    eprintln!(
        "[node test] pod {victim} deleted under load: {} requests, {} failed",
        deleted["report"]["requests"], deleted["report"]["failed"]
    );
    assert_eq!(deleted["report"]["failed"], 0, "{}", deleted["report"]);

    let watch = Watch::start(node, "pod-killed", base, &["--max-duration", "12s"]);
    let pid = predictor_pids()[0];
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (_, killed) = watch.finish();
    ready_again("2/2 again after the SIGKILL");
    let restarts: i64 = pods(node)
        .iter()
        .map(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        restarts >= 1,
        "the SIGKILLed container was restarted by kubelet"
    );
    let report = &killed["report"];
    eprintln!(
        "[node test] predictor pid {pid} SIGKILLed under load: {} requests, {} failed ({}), longest gap {:.0} ms",
        report["requests"], report["failed"], report["failures"], report["longest_gap_ms"]
    );
    let failures = report["failures"].as_object().unwrap();
    assert!(
        failures.keys().all(|k| !k.starts_with("HTTP")),
        "only connection-level failures, never an HTTP error: {report}"
    );
    // Half the traffic goes to the killed pod until kubelet restarts it or readiness withdraws it
    // (readiness probe every 1 s, 3 failures): bounded well below the watch's 12 s.
    assert!(
        report["failed"].as_f64().unwrap() < 0.25 * report["requests"].as_f64().unwrap(),
        "{report}"
    );
}

//! Section 8: image faults under load (issue 13).

use std::time::{Duration, Instant};

use crate::cluster::*;
use crate::probe::*;

/// Issue 13's image faults, each under the rollout probe with 0 failed requests from the old pods:
/// a tag that does not exist (refused at pre-flight in < 5 s), a tag re-pushed to other bytes (no pod
/// changes), a wrong pull Secret (RegistryUnauthorized, then the rollout goes on once fixed), and the
/// registry down: a tag cannot be resolved (RegistryUnreachable), an image pinned by digest in the spec
/// cannot be pulled (Degraded ImagePullBackOff within the progress deadline), and once the registry is
/// back the rollout completes.
pub(crate) fn image_faults_under_load(node: &Node, base: &str, url_t: &str, sha_t: &str) {
    // Back on the good model, image 0.2 by tag.
    let settled = settle_on(node, "0.2", url_t, sha_t);
    let pinned_02 = deployment_image(node);
    let digest_02 = pinned_02
        .strip_prefix(&format!("{IMAGE}:0.2@"))
        .unwrap_or_else(|| panic!("the Deployment pins 0.2 by digest: {pinned_02}"))
        .to_string();
    assert_eq!(settled["status"]["imageDigest"], digest_02.as_str());
    let resolved = condition(&settled, "ImageResolved").expect("ImageResolved");
    assert_eq!(resolved["reason"], "Resolved", "{resolved}");

    // 8a. A tag that does not exist.
    let generation = deployment(node)["metadata"]["generation"].clone();
    let watch = Watch::start(node, "missing-tag", base, &["--max-duration", "12s"]);
    node.apply(&predictor_yaml("0.9-missing", url_t, sha_t));
    let (refused, took) = wait_degraded(node, "ImageNotFound", Duration::from_secs(30));
    eprintln!(
        "[node test] missing tag refused at pre-flight after {:.2} s: {}",
        took.as_secs_f64(),
        condition(&refused, "Degraded").unwrap()["message"]
    );
    assert!(took < Duration::from_secs(5), "refused after {took:?}");
    assert_eq!(
        condition(&refused, "ImageResolved").unwrap()["status"],
        "False"
    );
    assert_eq!(deployment(node)["metadata"]["generation"], generation);
    assert_eq!(deployment_image(node), pinned_02);
    assert_watch_clean("missing tag", watch, &["0.2"]);

    // 8b. Tag 0.2 re-pushed to other bytes: the pods keep the digest they were pinned to, also when
    //     the Predictor names 0.2 again.
    let pods_before = live_pod_names(node);
    let repushed = node.script(
        "publish.sh",
        &["0.2", "0.2", "repushed"],
        Duration::from_secs(180),
    );
    let repushed = repushed.trim();
    assert!(
        repushed.starts_with("sha256:") && repushed != digest_02,
        "{repushed}"
    );
    node.apply(&predictor_yaml("0.2", url_t, sha_t));
    wait_current(
        node,
        "the Predictor back to 0.2 and settled",
        "Degraded",
        "False",
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        deployment_image(node),
        pinned_02,
        "a re-pushed tag changed the pods"
    );
    assert_eq!(deployment(node)["metadata"]["generation"], generation);
    assert_eq!(live_pod_names(node), pods_before, "pods restarted");
    eprintln!("[node test] tag 0.2 re-pushed ({repushed}): pods unchanged on {digest_02}");

    // 8c. A wrong password in the pull Secret, then fixed: the rollout to 0.1 goes on by itself.
    // The pull Secret's .dockerconfigjson (base64) replaced in place, as an operator of the cluster would.
    let set_pull_secret = |data: &str| {
        let patch = format!(r#"{{"data": {{".dockerconfigjson": "{data}"}}}}"#);
        node.kubectl_ok(&[
            "patch",
            "secret",
            PULL_SECRET,
            "-n",
            NS,
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
    };
    let good = node.kubectl_ok(&[
        "get",
        "secret",
        PULL_SECRET,
        "-n",
        NS,
        "-o",
        r"jsonpath={.data.\.dockerconfigjson}",
    ]);
    let wrong_auth = b64(b"mlops:not-the-password");
    let wrong =
        b64(format!(r#"{{"auths": {{"10.77.0.1:5443": {{"auth": "{wrong_auth}"}}}}}}"#).as_bytes());
    set_pull_secret(&wrong);
    let watch = Watch::start(
        node,
        "wrong-secret",
        base,
        &["--until-version", "0.1", "--max-duration", "120s"],
    );
    node.apply(&predictor_yaml("0.1", url_t, sha_t));
    let (refused, took) = wait_degraded(node, "RegistryUnauthorized", Duration::from_secs(30));
    eprintln!(
        "[node test] wrong pull Secret refused after {:.2} s: {}",
        took.as_secs_f64(),
        condition(&refused, "Degraded").unwrap()["message"]
    );
    assert!(
        !refused.to_string().contains("not-the-password"),
        "{refused}"
    );
    assert_eq!(deployment_image(node), pinned_02);
    let fixed = Instant::now();
    set_pull_secret(&good);
    wait_for(
        Duration::from_secs(90),
        "0.1 Ready once the Secret is fixed",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True") && p["status"]["version"] == "0.1").then_some(())
        },
    );
    eprintln!(
        "[node test] pull Secret fixed: 0.1 Ready {:.1} s later, without a Predictor change",
        fixed.elapsed().as_secs_f64()
    );
    assert_watch_clean("wrong pull Secret, then fixed", watch, &["0.2", "0.1"]);

    // 8d. The registry down: a tag cannot be resolved; an image pinned by digest in the spec (as teams
    //     that pin in Git do) rolls out, cannot be pulled, and the Predictor says so before the
    //     progress deadline; the registry back, the rollout completes.
    let digest_03 = node.script("publish.sh", &["0.3"], Duration::from_secs(180));
    let digest_03 = digest_03.trim().to_string();
    node.script("registry.sh", &["stop"], Duration::from_secs(30));
    let watch = Watch::start(
        node,
        "registry-down",
        base,
        &["--until-version", "0.3", "--max-duration", "140s"],
    );
    node.apply(&predictor_yaml("0.3", url_t, sha_t));
    let (_, took) = wait_degraded(node, "RegistryUnreachable", Duration::from_secs(30));
    eprintln!(
        "[node test] registry down: tag 0.3 refused at pre-flight after {:.2} s",
        took.as_secs_f64()
    );
    assert!(deployment_image(node).starts_with(&format!("{IMAGE}:0.1@")));
    node.apply(&predictor_yaml(&format!("0.3@{digest_03}"), url_t, sha_t));
    let (stalled, took) = wait_degraded(node, "ImagePullBackOff", Duration::from_secs(20));
    eprintln!(
        "[node test] registry down: the pull of 0.3 failing is Degraded after {:.1} s (deadline 20 s): {}",
        took.as_secs_f64(),
        condition(&stalled, "Degraded").unwrap()["message"]
    );
    let back = Instant::now();
    node.script("registry.sh", &["start"], Duration::from_secs(30));
    wait_for(
        Duration::from_secs(150),
        "0.3 Ready once the registry is back",
        || {
            let p = node.predictor();
            (condition_is(&p, "Ready", "True")
                && p["status"]["version"] == "0.3"
                && p["status"]["imageDigest"] == digest_03.as_str()
                && p["status"]["ready"] == "2/2"
                && p["status"]["replicas"] == 2)
                .then_some(())
        },
    );
    eprintln!(
        "[node test] registry back: 0.3 Ready {:.1} s later (kubelet's pull back-off)",
        back.elapsed().as_secs_f64()
    );
    assert_watch_clean(
        "registry down mid-rollout, then back",
        watch,
        &["0.1", "0.3"],
    );
    assert_pulled(node, NS, &format!("{IMAGE}:0.3"));
}

//! The online gate's API on a real control plane: the apiserver refuses nonsense Canary rollouts
//! (schema ranges and CEL rules) and `kubectl explain` documents every field.
//!
//! The canary mechanics themselves (shadow copies, analysis over pods' `/metrics`) need pods that
//! serve HTTP; kwok's do not, and their addresses are not loopback, so they belong to the node
//! tier. The controller's decisions are covered by the reconcile tests against a fake apiserver.

use crate::{assert_accepted, assert_contains_all, assert_refused, in_namespace, valid_yaml};

#[tokio::test]
#[ignore = "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubectl: ./dev/test runs it"]
async fn nonsense_canary_rollouts_are_rejected_at_apply_time() {
    let (s, ns) = in_namespace("canary-invalid");
    let good = valid_yaml(
        "  rollout:\n    strategy: Canary\n    canaryPercent: 25\n    shadowPercent: 20\n    \
         analysis:\n      minSamples: 100\n      maxDisagreement: 0.05\n      \
         maxErrorRate: 0.01\n      maxP99LatencyRatio: 1.5\n",
    );
    let analysis = "    analysis:\n      minSamples: 100\n      maxDisagreement: 0.05\n      \
                    maxErrorRate: 0.01\n      maxP99LatencyRatio: 1.5\n";
    let long_name = format!("n{}", "a".repeat(56));
    let cases = [
        (
            "share-zero",
            good.replace("canaryPercent: 25", "canaryPercent: 0"),
            "spec.rollout.canaryPercent in body should be greater than or equal to 1",
        ),
        (
            "share-above-100",
            good.replace("canaryPercent: 25", "canaryPercent: 101"),
            "spec.rollout.canaryPercent in body should be less than or equal to 100",
        ),
        (
            "shadow-above-100",
            good.replace("shadowPercent: 20", "shadowPercent: 150"),
            "spec.rollout.shadowPercent in body should be less than or equal to 100",
        ),
        (
            "no-samples",
            good.replace("minSamples: 100", "minSamples: 0"),
            "spec.rollout.analysis.minSamples in body should be greater than or equal to 1",
        ),
        (
            "disagreement-above-one",
            good.replace("maxDisagreement: 0.05", "maxDisagreement: 1.5"),
            "spec.rollout.analysis.maxDisagreement in body should be less than or equal to 1",
        ),
        (
            "negative-error-rate",
            good.replace("maxErrorRate: 0.01", "maxErrorRate: -0.1"),
            "spec.rollout.analysis.maxErrorRate in body should be greater than or equal to 0",
        ),
        (
            "zero-latency-ratio",
            good.replace("maxP99LatencyRatio: 1.5", "maxP99LatencyRatio: 0"),
            "spec.rollout.analysis.maxP99LatencyRatio must be greater than 0",
        ),
        (
            "no-analysis",
            good.replace(analysis, ""),
            "spec.rollout.strategy Canary needs spec.rollout.analysis",
        ),
        (
            "no-threshold",
            good.replace(
                "      maxDisagreement: 0.05\n      maxErrorRate: 0.01\n      maxP99LatencyRatio: 1.5\n",
                "",
            ),
            "needs at least one of maxDisagreement, maxErrorRate and maxP99LatencyRatio",
        ),
        (
            "compare-without-copies",
            good.replace("shadowPercent: 20", "shadowPercent: 0"),
            "maxDisagreement needs shadowPercent > 0",
        ),
        (
            "unknown-strategy",
            good.replace("strategy: Canary", "strategy: BlueGreen"),
            "Unsupported value: \"BlueGreen\"",
        ),
        (
            long_name.as_str(),
            good.clone(),
            "a Canary Predictor's metadata.name must be at most 56 characters",
        ),
    ];
    assert_refused(&["apply", "--dry-run=server", "-n", ns, "-f", "-"], cases);
    // The good one, defaults filled in (share 10, no copies, deadline 600) without disagreement,
    // and a plain RollingUpdate with no analysis are accepted.
    let defaults = good
        .replace("    canaryPercent: 25\n    shadowPercent: 20\n", "")
        .replace("      maxDisagreement: 0.05\n", "");
    let rolling = good
        .replace("strategy: Canary", "strategy: RollingUpdate")
        .replace(analysis, "");
    let applied = assert_accepted(ns, &defaults);
    for yaml in [good.clone(), rolling] {
        assert_accepted(ns, &yaml);
    }
    assert_contains_all(
        &applied,
        &[
            "canaryPercent: 10",
            "shadowPercent: 0",
            "deadlineSeconds: 600",
        ],
    );
    // kubectl explain documents the new fields, and `kubectl get` has a ROLLOUT column.
    let explain = s
        .cluster
        .kubectl_ok(&["explain", "predictor.spec.rollout", "--recursive"]);
    assert_contains_all(
        &explain,
        &[
            "strategy",
            "canaryPercent",
            "shadowPercent",
            "analysis",
            "minSamples",
            "maxDisagreement",
            "maxErrorRate",
            "maxP99LatencyRatio",
            "deadlineSeconds",
        ],
    );
    let explain = s
        .cluster
        .kubectl_ok(&["explain", "predictor.spec.rollout.analysis.minSamples"]);
    assert!(explain.contains("never promoted blindly"), "{explain}");
    let explain = s
        .cluster
        .kubectl_ok(&["explain", "predictor.status.rollout"]);
    assert_contains_all(&explain, &["phase", "candidate", "measured", "RolledBack"]);
}

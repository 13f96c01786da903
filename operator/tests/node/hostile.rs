//! Section 13: hostile tenants beside another team's rollout (issue 26).

use std::time::Duration;

use serde_json::Value;

use crate::Setup;
use crate::cluster::*;
use crate::probe::*;
use crate::support::manifests::manifest;

/// The hostile team's namespace of section 13.
pub(crate) const HOSTILE_NS: &str = "mlops-hostile";

/// The store's image (dev/node/lib.sh): its fileserver also answers a 64 MiB `/metrics`.
pub(crate) const STORE_IMAGE: &str = "10.77.0.1:5443/mlops/model-store:node";

/// Host pids of the operator containers' processes (`/operator run`).
pub(crate) fn operator_pids() -> Vec<u32> {
    pids_running(b"/operator\0run")
}

/// A `/proc/<pid>/status` field in kB, as bytes.
pub(crate) fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The memory cgroup's peak of `pid` (cgroup v1 `memory.max_usage_in_bytes`, page cache included;
/// v2 `memory.peak`), if the machine has one.
pub(crate) fn cgroup_peak(pid: u32) -> Option<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let v1 = cgroups.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    });
    let file = match v1 {
        Some(path) => format!("/sys/fs/cgroup/memory{path}/memory.max_usage_in_bytes"),
        None => {
            let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
            format!("/sys/fs/cgroup{path}/memory.peak")
        }
    };
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Restarts of the operator pods' containers, summed.
pub(crate) fn operator_restarts(node: &Node) -> i64 {
    operator_pods(node)
        .iter()
        .map(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
        })
        .sum()
}

/// `"256Mi"` → bytes (the binary suffixes a memory limit uses).
pub(crate) fn quantity_bytes(q: &str) -> u64 {
    let (digits, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    n * match unit {
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "" => 1,
        other => panic!("unit {other} in {q}"),
    }
}

/// Issue 26, section 13: hostile tenants while another team rolls out. In a namespace of its own,
/// one team commits a Predictor whose model URL serves 1 GiB without a length, one whose model URL
/// never ends, and a Canary whose candidate image answers a 64 MiB `/metrics` to the analysis'
/// scrapes, all at once; meanwhile the test namespace's Predictor rolls out a new model under the
/// probe. The operator pods (from config/default) never restart, their memory stays under their
/// limit, the hostile Predictors are refused with their reasons, and the rollout fails no request.
pub(crate) fn hostile_tenants_under_load(setup: &Setup) {
    let (node, base, store, models) = (&setup.node, &setup.base, &setup.store, &setup.models);
    team_namespace(node, HOSTILE_NS);
    let (url_t, sha_t) = (
        format!("{store}/{}", models["MODEL_T"]),
        &models["MODEL_T_SHA256"],
    );
    let (url_b, sha_b) = (
        format!("{store}/{}", models["MODEL_B"]),
        &models["MODEL_B_SHA256"],
    );
    let hostile = |name: &str, image: &str, url: &str, sha: &str| {
        let mut p = predictor_object("0.2", url, sha);
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(HOSTILE_NS.into());
        p.spec.image = image.into();
        p
    };
    let loud = |image: &str| {
        let mut p = hostile("loud", image, &url_t, sha_t);
        p.spec.replicas = 1;
        p = operator::fixtures::canary(p);
        manifest(&[p])
    };
    let get = |name: &str| node.json(&["get", "predictor", name, "-n", HOSTILE_NS]);
    let restarts_before = operator_restarts(node);

    // The Canary's stable pod, an honest one, first.
    node.apply(&loud(&format!("{IMAGE}:0.2")));
    wait_for(
        Duration::from_secs(90),
        "the loud Canary Predictor Ready",
        || {
            let p = get("loud");
            condition_is(&p, "Ready", "True").then_some(())
        },
    );

    // All at once: 1 GiB without a length, an endless body, the candidate with a 64 MiB /metrics.
    let junk = "0".repeat(64);
    node.apply(&manifest(&[
        hostile(
            "junk",
            &format!("{IMAGE}:0.2"),
            &format!("{store}/hostile/junk-1g"),
            &junk,
        ),
        hostile(
            "endless",
            &format!("{IMAGE}:0.2"),
            &format!("{store}/hostile/endless"),
            &junk,
        ),
    ]));
    node.apply(&loud(STORE_IMAGE));
    wait_for(
        Duration::from_secs(90),
        "the loud candidate's canary pod ready and analysed",
        || {
            let p = get("loud");
            let out = node.kubectl(&[
                "get",
                "deploy",
                "loud-canary",
                "-n",
                HOSTILE_NS,
                "-o",
                "json",
            ]);
            let canary: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            (p["status"]["rollout"]["phase"] == "Analyzing"
                && canary["status"]["readyReplicas"].as_i64() >= Some(1))
            .then_some(())
        },
    );

    // Another team's rollout under the probe meanwhile.
    let r = measure_model_change(node, base, &predictor_yaml("0.2", &url_t, sha_t), sha_t);
    assert_clean_rollout("model change beside hostile tenants", &r);

    // The hostile Predictors, refused with their reasons; nothing they served is shown.
    for name in ["junk", "endless"] {
        let p = wait_for(Duration::from_secs(120), &format!("{name} refused"), || {
            let p = get(name);
            condition_is(&p, "ModelVerified", "False").then_some(p)
        });
        let c = condition(&p, "ModelVerified").unwrap();
        eprintln!(
            "[node test] hostile {name}: {} {}",
            c["reason"], c["message"]
        );
        assert_eq!(c["reason"], "FetchFailed", "{name}: {c}");
        let text = p["status"].to_string();
        assert!(
            !text.contains("junk junk") && !text.contains("more and more"),
            "{text}"
        );
        let deployments = node.kubectl(&["get", "deploy", name, "-n", HOSTILE_NS]);
        assert!(!deployments.status.success(), "{name} got a Deployment");
    }
    let logs = node.kubectl_ok(&[
        "logs",
        "-n",
        OPERATOR_NS,
        "-l",
        OPERATOR_LABEL,
        "--tail",
        "-1",
        "--prefix",
    ]);
    let refused_scrapes: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("cannot read pod metrics"))
        .collect();
    eprintln!(
        "[node test] loud canary: {} scrapes refused, e.g. {}",
        refused_scrapes.len(),
        refused_scrapes.first().unwrap_or(&"(none)")
    );
    assert!(
        !refused_scrapes.is_empty(),
        "no scrape of the loud canary was refused"
    );
    assert!(
        refused_scrapes.iter().any(|l| l.contains("limit")),
        "no scrape refused for its size: {refused_scrapes:?}"
    );
    assert!(
        !logs.contains("predictor_predictions_total{model=\"x\""),
        "a scrape was echoed"
    );
    let loud_now = get("loud");
    assert_ne!(
        loud_now["status"]["rollout"]["phase"], "Promoted",
        "{loud_now}"
    );
    assert_ne!(
        loud_now["status"]["rollout"]["phase"], "Promoting",
        "{loud_now}"
    );

    // The operator held: no restart, memory under the limit.
    assert_eq!(
        operator_restarts(node),
        restarts_before,
        "an operator pod restarted"
    );
    let deployment = node.json(&["get", "deploy", "predictor-operator", "-n", OPERATOR_NS]);
    let limit = quantity_bytes(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .expect("the operator's memory limit"),
    );
    let pids = operator_pids();
    assert_eq!(pids.len(), 2, "two operator processes");
    for pid in pids {
        let (hwm, cgroup) = (proc_kb(pid, "VmHWM:"), cgroup_peak(pid));
        eprintln!(
            "[node test] operator pid {pid}: peak RSS {:.1} MiB, cgroup peak {} (page cache \
             included), limit {:.0} MiB",
            hwm as f64 / 1048576.0,
            cgroup.map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            limit as f64 / 1048576.0
        );
        assert!(hwm < limit / 2, "operator pid {pid} peaked at {hwm} bytes");
    }

    // Back to where section 3b left the test namespace; the hostile namespace goes.
    node.kubectl_ok(&["delete", "namespace", HOSTILE_NS, "--wait=false"]);
    node.apply(&predictor_yaml("0.2", &url_b, sha_b));
    wait_serving(node, sha_b, "model B served again after section 13");
}

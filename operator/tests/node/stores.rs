//! Section 12: model stores, s3:// and oci:// models published by a team's CI (issue 18).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use operator::crd::S3Spec;

use crate::cluster::*;
use crate::probe::*;
use crate::support::manifests::manifest;

/// The Secret a team gives its Predictors for their model stores (`spec.model.credentials`).
pub(crate) const STORE_SECRET: &str = "model-stores";

/// `predictor <args>` (the static binary) on the host with `env`, as a team's CI runs it; its stdout.
pub(crate) fn predictor_with_env(args: &[&str], env: &[(&str, String)]) -> String {
    let bin = std::env::var("PREDICTOR_BIN").expect("PREDICTOR_BIN: the static predictor binary");
    let mut command = Command::new(bin);
    command.args(args).env_remove("REGISTRY_AUTH_FILE");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run predictor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "predictor {args:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `name: value` line of `predictor publish`'s output.
pub(crate) fn published(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name}: line in\n{out}"))
        .to_string()
}

/// Issue 18: models in the node's S3 store (SeaweedFS on the node IP) and as OCI artifacts in its
/// registry, published by `predictor publish` and read by the pods and the operator's pre-flight with
/// the credentials of one Secret; model-only rollouts http -> s3:// -> oci:// under load, 0 failed.
pub(crate) fn model_stores_under_load(node: &Node, base: &str, models: &HashMap<String, String>) {
    let (model_t, sha_t) = (&models["MODEL_T"], &models["MODEL_T_SHA256"]);
    let (model_a, sha_a) = (&models["MODEL_A"], &models["MODEL_A_SHA256"]);
    let t_store = Instant::now();
    let endpoint = node.script("s3-store.sh", &["start"], Duration::from_secs(900));
    let endpoint = endpoint.trim().to_string();
    assert_eq!(endpoint, "http://10.77.0.1:8333");
    eprintln!(
        "[node test] S3 store (SeaweedFS) on {endpoint} in {:.1} s",
        t_store.elapsed().as_secs_f64()
    );
    let store_env: HashMap<String, String> =
        std::fs::read_to_string(node.state.join("s3/credentials.env"))
            .expect("the S3 store's credentials.env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let (key, secret) = (
        store_env["AWS_ACCESS_KEY_ID"].clone(),
        store_env["AWS_SECRET_ACCESS_KEY"].clone(),
    );
    let docker_config = std::fs::read_to_string(node.state.join("registry/auth.json")).unwrap();
    let registry_password = std::fs::read_to_string(node.state.join("registry/password")).unwrap();
    let ca = std::fs::read_to_string(node.state.join("pki/ca.crt")).unwrap();

    // A team's CI publishes: model T to S3, model A to the registry as an OCI artifact.
    let s3_url = "s3://models/american/model-t.bin";
    let out = predictor_with_env(
        &[
            "publish",
            node.model_file(model_t).to_str().unwrap(),
            "--to",
            s3_url,
        ],
        &[
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", key.clone()),
            ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ],
    );
    assert_eq!(published(&out, "url"), s3_url);
    assert_eq!(&published(&out, "sha256"), sha_t);
    let out = predictor_with_env(
        &[
            "publish",
            node.model_file(model_a).to_str().unwrap(),
            "--to",
            "oci://10.77.0.1:5443/mlops/models/american:a",
        ],
        &[
            ("PREDICTOR_REGISTRY_AUTH", docker_config.clone()),
            ("PREDICTOR_STORE_CA", ca.clone()),
        ],
    );
    let oci_url = published(&out, "url");
    assert!(
        oci_url.starts_with("oci://10.77.0.1:5443/mlops/models/american@sha256:"),
        "{oci_url}"
    );
    assert_eq!(&published(&out, "sha256"), sha_a);

    // One Secret for both stores: the S3 keys and the endpoint they are for, the registry's docker
    // config and its CA; labelled by its owner for Predictors to use.
    node.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {STORE_SECRET}\n  namespace: {NS}\n  \
         labels: {{mlops.dev/model-credentials: \"true\"}}\ntype: Opaque\n\
         data:\n  AWS_ENDPOINT_URL: {}\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {}\n  \
         .dockerconfigjson: {}\n  ca.crt: {}\n",
        b64(endpoint.as_bytes()),
        b64(key.as_bytes()),
        b64(secret.as_bytes()),
        b64(docker_config.as_bytes()),
        b64(ca.as_bytes()),
    ));
    let stored = |url: &str, sha: &str| {
        let mut p = predictor_object("0.2", url, sha);
        p.spec.model.credentials = Some(STORE_SECRET.into());
        if url.starts_with("s3://") {
            p.spec.model.s3 = Some(S3Spec {
                endpoint: Some(endpoint.clone()),
                ..S3Spec::default()
            });
        }
        manifest(&[p])
    };
    for (what, url, sha) in [
        ("model-only change from http:// to s3://", s3_url, sha_t),
        (
            "model-only change from s3:// to oci://",
            oci_url.as_str(),
            sha_a,
        ),
    ] {
        let r = measure_model_change(node, base, &stored(url, sha), sha);
        assert_clean_rollout(what, &r);
        let p = node.predictor();
        assert!(condition_is(&p, "ModelVerified", "True"), "{what}: {p}");
    }

    // The pods got the credentials by reference; no secret in any object, Event or operator log.
    for pod in pods(node) {
        let env = &pod["spec"]["containers"][0]["env"];
        let secret_ref = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "AWS_SECRET_ACCESS_KEY")
            .unwrap_or_else(|| panic!("no AWS_SECRET_ACCESS_KEY in {env}"));
        assert_eq!(
            secret_ref["valueFrom"]["secretKeyRef"]["name"],
            STORE_SECRET
        );
    }
    let texts = [
        node.kubectl_ok(&["get", "predictor", NAME, "-n", NS, "-o", "yaml"]),
        node.kubectl_ok(&["get", "deployment", NAME, "-n", NS, "-o", "yaml"]),
        node.kubectl_ok(&["get", "pods", "-n", NS, "-o", "yaml"]),
        node.kubectl_ok(&["get", "events", "-n", NS]),
        node.kubectl_ok(&["logs", "-n", OPERATOR_NS, "-l", OPERATOR_LABEL, "--tail=-1"]),
        node.kubectl_ok(&[
            "logs",
            "-n",
            NS,
            "-l",
            &format!("app.kubernetes.io/instance={NAME}"),
            "--tail=-1",
        ]),
    ];
    for text in &texts {
        for leaked in [secret.as_str(), registry_password.trim()] {
            assert!(!text.contains(leaked), "a store credential leaked:\n{text}");
        }
    }
    eprintln!(
        "[node test] model stores: http -> s3:// -> oci:// with 0 failed requests, no credential shown"
    );
}

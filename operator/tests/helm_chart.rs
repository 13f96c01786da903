//! The Helm chart (charts/predictor-operator) and config/ cannot drift: `helm template` of the chart and
//! `kustomize build` of config/ must render the same objects (no cluster).
//!
//! - default values against config/default: the CRD, ServiceAccount, ClusterRole, ClusterRoleBinding,
//!   leader-election Role and RoleBinding, the Deployment and its PodDisruptionBudget;
//! - `namespaced.enabled` with config/namespaced's namespaces (read from its WATCH_NAMESPACES) against
//!   config/namespaced: a RoleBinding per namespace instead of the ClusterRoleBinding, and the same
//!   WATCH_NAMESPACES.
//!
//! Normalised away before comparing, and nothing else (every other field, list order and object must match):
//! - config/manager's Namespace: a chart does not create its release namespace (`helm install
//!   --create-namespace` or `kubectl create namespace`; docs/install.md#helm labels it for Pod Security
//!   "restricted" as config/manager does);
//! - the labels Helm adds and config/ has not ([`HELM_LABELS`]: the release, chart and version), on every
//!   object, in the pod template, and in the selectors of the Deployment, its PodDisruptionBudget and its
//!   pods' spread constraints (which select by release too, so two releases in one namespace keep their
//!   pods apart);
//! - how a number is spelled: kustomize rewrites the CRD's `minimum: 1.0` as `1`, so numbers compare by value.
//!
//! The chart's values that config/ has no counterpart for (image digest, pull Secrets, CA bundle, the
//! metrics Service, a release not named predictor-operator) are checked field by field, and values it
//! cannot use (values.schema.json, two CA bundles) are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "support/program.rs"]
mod program;
use program::program;

const RELEASE: &str = "predictor-operator";
const NAMESPACE: &str = "predictor-system";
/// Labels the chart adds to config/'s (`app.kubernetes.io/name` and `part-of` are config/'s own).
const HELM_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helm() -> PathBuf {
    program("helm", &["MLOPS_HELM_BIN"], "./dev/helm/build.sh")
}

fn kustomize() -> PathBuf {
    program(
        "kustomize",
        &["MLOPS_ARGOCD_BIN", "MLOPS_K8S_BIN"],
        "./dev/argocd/build.sh",
    )
}

/// The documents `command` prints, run in the repository root; panics with its stderr when it fails.
fn rendered(command: &mut Command) -> Vec<Value> {
    let out = command
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{command:?} failed: {stderr}");
    let text = String::from_utf8(out.stdout).expect("UTF-8 YAML");
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(&text)
        .unwrap_or_else(|e| panic!("{command:?} printed YAML that does not parse: {e}"))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `kustomize build config/<dir>`.
fn kustomize_build(dir: &str) -> Vec<Value> {
    rendered(Command::new(kustomize()).args(["build", &format!("config/{dir}")]))
}

/// `helm template` of the chart as release `release` in predictor-system, CRDs included, with `set`.
fn helm_template(release: &str, set: &[&str]) -> Vec<Value> {
    rendered(&mut helm_command(release, set))
}

fn helm_command(release: &str, set: &[&str]) -> Command {
    let mut helm = Command::new(helm());
    helm.args(["template", release, "charts/predictor-operator"])
        .args(["--namespace", NAMESPACE, "--include-crds"])
        .current_dir(repo_root());
    for s in set {
        helm.args(["--set", s]);
    }
    helm
}

/// (kind, namespace, name) of an object.
fn key(object: &Value) -> (String, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let meta = &object["metadata"];
    (
        text(&object["kind"]),
        text(&meta["namespace"]),
        text(&meta["name"]),
    )
}

fn by_key(objects: Vec<Value>) -> BTreeMap<(String, String, String), Value> {
    let mut map = BTreeMap::new();
    for object in objects {
        let k = key(&object);
        assert!(map.insert(k.clone(), object).is_none(), "{k:?} twice");
    }
    map
}

/// Removes [`HELM_LABELS`] wherever labels are: every object's, a pod template's, a selector's (a
/// Deployment's or PodDisruptionBudget's, and each spread constraint's of a pod template).
fn without_helm_labels(object: &mut Value) {
    let constraints = object
        .pointer("/spec/template/spec/topologySpreadConstraints")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let spread = (0..constraints).map(|i| {
        format!("/spec/template/spec/topologySpreadConstraints/{i}/labelSelector/matchLabels")
    });
    let labels = [
        "/metadata/labels",
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ]
    .map(String::from)
    .into_iter()
    .chain(spread);
    for pointer in labels {
        if let Some(Value::Object(labels)) = object.pointer_mut(&pointer) {
            HELM_LABELS.iter().for_each(|l| {
                labels.remove(*l);
            });
        }
    }
}

/// Every number as an f64: kustomize writes the CRD's `minimum: 1.0` as `1`, helm copies it as it is; the
/// same number either way.
fn numbers_by_value(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let f = n.as_f64().expect("a finite number");
            *n = serde_json::Number::from_f64(f).expect("finite");
        }
        Value::Array(items) => items.iter_mut().for_each(numbers_by_value),
        Value::Object(fields) => fields.values_mut().for_each(numbers_by_value),
        _ => {}
    }
}

/// Where `config` and `chart` differ, one line per JSON pointer with both values (absent: `-`).
fn differences(config: &Value, chart: &Value, at: &str, out: &mut Vec<String>) {
    match (config, chart) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                differences(x, y, &format!("{at}/{k}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{at}/{i}"), out);
            }
        }
        (a, b) if a != b => {
            let show = |v: &Value| {
                if v.is_null() {
                    "-".into()
                } else {
                    v.to_string()
                }
            };
            out.push(format!("  {at}: config {}, chart {}", show(a), show(b)));
        }
        _ => {}
    }
}

/// The chart rendered with `set` must be config/`dir` once normalised (the module's comment says how).
fn assert_same(dir: &str, set: &[&str]) {
    let mut config = kustomize_build(dir);
    let before = config.len();
    config.retain(|o| !(o["kind"] == "Namespace" && o["metadata"]["name"] == NAMESPACE));
    assert_eq!(before, config.len() + 1, "config/{dir} has the Namespace");
    let mut chart = helm_template(RELEASE, set);
    chart.iter_mut().for_each(without_helm_labels);
    config
        .iter_mut()
        .chain(&mut chart)
        .for_each(numbers_by_value);
    let (config, chart) = (by_key(config), by_key(chart));

    let config_keys: Vec<_> = config.keys().collect();
    let chart_keys: Vec<_> = chart.keys().collect();
    assert_eq!(
        chart_keys, config_keys,
        "the chart (values {set:?}) renders other objects than config/{dir}"
    );
    let differ: Vec<String> = config
        .iter()
        .filter(|(k, object)| chart[*k] != **object)
        .map(|(k, object)| {
            let mut lines = vec![format!("{k:?}:")];
            differences(object, &chart[k], "", &mut lines);
            lines.join("\n")
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the chart (values {set:?}) and config/{dir} differ:\n{}",
        differ.join("\n\n")
    );
}

#[test]
#[ignore = "needs helm, kustomize: ./dev/test runs it"]
fn chart_defaults_render_config_default() {
    assert_same("default", &[]);
}

#[test]
#[ignore = "needs helm, kustomize: ./dev/test runs it"]
fn chart_namespaced_renders_config_namespaced() {
    // config/namespaced's namespaces, from the WATCH_NAMESPACES it renders.
    let config = kustomize_build("namespaced");
    let deployment = config
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("config/namespaced has the Deployment");
    let namespaces = env_value(deployment, "WATCH_NAMESPACES").expect("WATCH_NAMESPACES");
    assert!(namespaces.contains(','), "config/namespaced lists several");
    let list = format!("namespaced.namespaces={{{namespaces}}}");
    assert_same("namespaced", &["namespaced.enabled=true", &list]);
}

/// The value of the operator container's variable `name`.
fn env_value(deployment: &Value, name: &str) -> Option<String> {
    let var = named(&operator_container(deployment)["env"], name)?;
    Some(var["value"].as_str().unwrap_or_default().to_string())
}

/// The item of `list` (env, volumes, mounts) called `name`.
fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item["name"] == name)
}

fn operator_container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The values config/ has no counterpart for render where they should.
#[test]
#[ignore = "needs helm, kustomize: ./dev/test runs it"]
fn chart_values_without_a_config_counterpart() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let objects = by_key(helm_template(
        "team-ops",
        &[
            "image.repository=registry.example.com/mlops/predictor-operator",
            &format!("image.digest={digest}"),
            "imagePullSecrets[0].name=registry-pull",
            "caBundle.configMap=registry-ca",
            "metrics.port=9090",
            "metrics.service.enabled=true",
            "namespaced.enabled=true",
        ],
    ));
    let name = "team-ops-predictor-operator";
    let get = |kind: &str, namespace: &str, name: &str| -> &Value {
        objects
            .get(&(kind.into(), namespace.into(), name.into()))
            .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} in {:?}", objects.keys()))
    };
    let deployment = get("Deployment", NAMESPACE, name);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = operator_container(deployment);
    assert_eq!(
        container["image"],
        format!("registry.example.com/mlops/predictor-operator@{digest}")
    );
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry-pull");
    assert_eq!(pod["serviceAccountName"], name);
    // The CA bundle: mounted read-only from the ConfigMap, named by SSL_CERT_FILE.
    let ssl = env_value(deployment, "SSL_CERT_FILE").expect("SSL_CERT_FILE");
    let mount = named(&container["volumeMounts"], "ca-bundle").expect("the CA bundle's mount");
    assert_eq!(mount["readOnly"], true);
    let mount_path = mount["mountPath"].as_str().unwrap();
    assert_eq!(ssl, format!("{mount_path}/ca-bundle.crt"));
    let volume = named(&pod["volumes"], "ca-bundle").expect("the CA bundle's volume");
    assert_eq!(volume["configMap"]["name"], "registry-ca");
    // Metrics on 9090: the listener, the port the probes use, the Service in front of it.
    assert_eq!(
        env_value(deployment, "METRICS_ADDR").as_deref(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(container["ports"][0]["containerPort"], 9090);
    let service = get("Service", NAMESPACE, &format!("{name}-metrics"));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    // A release of another name elects its leader apart, and namespaced with no list is the release's
    // namespace only.
    assert_eq!(env_value(deployment, "LEASE_NAME").as_deref(), Some(name));
    assert_eq!(
        env_value(deployment, "WATCH_NAMESPACES").as_deref(),
        Some(NAMESPACE)
    );
    let binding = get("RoleBinding", NAMESPACE, name);
    assert_eq!(binding["roleRef"]["name"], name);
    assert!(
        !objects
            .keys()
            .any(|(kind, ..)| kind == "ClusterRoleBinding"),
        "namespaced: nothing bound cluster-wide"
    );
}

/// values.schema.json and the templates refuse values that would be misread or ignored, saying which.
#[test]
#[ignore = "needs helm, kustomize: ./dev/test runs it"]
fn chart_refuses_values_it_cannot_use() {
    let refusals = [
        (
            "namespaced.namespace=team-a",
            "additional properties 'namespace'",
        ),
        ("namespaced.namespaces={Team_B}", "/namespaced/namespaces/0"),
        ("replicas=two", "/replicas"),
        ("image.digest=sha256:abc", "/image/digest"),
        (
            "caBundle.secret=tls,caBundle.configMap=ca",
            "set configMap or secret, not both",
        ),
    ];
    for (set, says) in refusals {
        let out = helm_command(RELEASE, &[set]).output().expect("run helm");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "helm template --set {set} rendered");
        assert!(stderr.contains(says), "--set {set}: {stderr}");
    }
}

//! The operator's RBAC in both install modes, read from the YAML in config/ (no cluster): what its
//! ServiceAccount is granted, where.
//!
//! Cluster-wide (config/default): the operator's rules in every namespace, leader election in
//! predictor-system. Namespaced (config/namespaced = config/default + config/components/namespaced): the
//! same rules in the listed team namespaces only, nothing cluster-wide, and WATCH_NAMESPACES naming
//! exactly those namespaces. The cluster tier checks the same against a real apiserver
//! (cluster/faults.rs `operator_rbac_is_exactly_what_it_uses`, cluster/namespaced.rs).
//!
//! The kustomizations are read as far as config/ uses them (`resources` files and directories,
//! `components`, `$patch: delete` and the one Deployment patch); anything else in them fails the test
//! rather than be misread.

#[path = "support/rbac.rs"]
mod rbac;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use rbac::{Grant, LEADER_ELECTION_RULES, OPERATOR_RULES, granted_by, grants};
use serde_json::Value;

const OPERATOR_NAMESPACE: &str = "predictor-system";
const OPERATOR_SA: &str = "predictor-operator";
/// Where a grant applies: a namespace, or [`CLUSTER`].
const CLUSTER: &str = "<cluster-wide>";

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// A kustomization rendered the way config/ uses kustomize: the objects of its resources, then its
/// components (each adds its resources and patches everything so far), then its own patches:
/// `$patch: delete` is applied, other patches are returned for the caller to check.
fn render(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let (mut objects, mut other_patches) = (Vec::new(), Vec::new());
    render_into(dir, &mut objects, &mut other_patches);
    (objects, other_patches)
}

fn render_into(dir: &Path, objects: &mut Vec<Value>, other_patches: &mut Vec<Value>) {
    let docs = yaml_documents(&dir.join("kustomization.yaml"));
    let [k] = docs.as_slice() else {
        panic!("{}: one kustomization document", dir.display())
    };
    for key in k.as_object().expect("a mapping").keys() {
        assert!(
            ["apiVersion", "kind", "resources", "components", "patches"].contains(&key.as_str()),
            "{}: `{key}` is not read by this test; teach it first",
            dir.display()
        );
    }
    let entries = |key: &str| -> Vec<PathBuf> {
        k[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| dir.join(e.as_str().expect("a path")))
                    .collect()
            })
            .unwrap_or_default()
    };
    for path in entries("resources") {
        if path.is_dir() {
            let (o, p) = render(&path);
            objects.extend(o);
            other_patches.extend(p);
        } else {
            objects.extend(yaml_documents(&path));
        }
    }
    for component in entries("components") {
        render_into(&component, objects, other_patches);
    }
    for patch in k["patches"].as_array().into_iter().flatten() {
        let file = patch["path"].as_str().expect("patches by path only");
        for doc in yaml_documents(&dir.join(file)) {
            if doc["$patch"] == "delete" {
                let before = objects.len();
                objects.retain(|o| {
                    o["kind"] != doc["kind"] || o["metadata"]["name"] != doc["metadata"]["name"]
                });
                assert_eq!(before, objects.len() + 1, "{file} deletes one object");
            } else {
                other_patches.push(doc);
            }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(object: Value) -> T {
    serde_json::from_value(object).unwrap_or_else(|e| panic!("{e}"))
}

fn is_operator(subjects: &Option<Vec<Subject>>) -> bool {
    let subjects = subjects.as_deref().unwrap_or_default();
    let operator = subjects.iter().any(|s| {
        s.kind == "ServiceAccount"
            && s.name == OPERATOR_SA
            && s.namespace.as_deref() == Some(OPERATOR_NAMESPACE)
    });
    if operator {
        assert_eq!(
            subjects.len(),
            1,
            "a binding of the operator binds no one else"
        );
    }
    operator
}

/// What the operator's ServiceAccount is granted by `objects`, per namespace (or [`CLUSTER`]).
fn operator_grants(objects: &[Value]) -> BTreeMap<String, BTreeSet<Grant>> {
    let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind).cloned();
    let cluster_roles: BTreeMap<String, ClusterRole> = of_kind("ClusterRole")
        .map(parse::<ClusterRole>)
        .map(|r| (r.metadata.name.clone().unwrap(), r))
        .collect();
    let roles: BTreeMap<(String, String), Role> = of_kind("Role")
        .map(parse::<Role>)
        .map(|r| {
            let key = (
                r.metadata.namespace.clone().unwrap(),
                r.metadata.name.clone().unwrap(),
            );
            (key, r)
        })
        .collect();
    let cluster_rules =
        |name: &str| granted_by(cluster_roles[name].rules.as_deref().unwrap_or_default());
    let mut granted: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for binding in of_kind("ClusterRoleBinding") {
        let binding: ClusterRoleBinding = parse(binding);
        if is_operator(&binding.subjects) {
            assert_eq!(binding.role_ref.kind, "ClusterRole");
            granted
                .entry(CLUSTER.into())
                .or_default()
                .extend(cluster_rules(&binding.role_ref.name));
        }
    }
    for binding in of_kind("RoleBinding") {
        let binding: RoleBinding = parse(binding);
        let namespace = binding
            .metadata
            .namespace
            .clone()
            .expect("a RoleBinding's namespace");
        if is_operator(&binding.subjects) {
            let rules = match binding.role_ref.kind.as_str() {
                "ClusterRole" => cluster_rules(&binding.role_ref.name),
                "Role" => granted_by(
                    roles[&(namespace.clone(), binding.role_ref.name.clone())]
                        .rules
                        .as_deref()
                        .unwrap_or_default(),
                ),
                other => panic!("roleRef kind {other}"),
            };
            granted.entry(namespace).or_default().extend(rules);
        }
    }
    granted
}

#[test]
fn rbac_of_both_modes_is_exactly_the_operators_rules() {
    let operator = grants(&[OPERATOR_RULES]);
    let leader = grants(&[LEADER_ELECTION_RULES]);

    // Cluster-wide: config/default.
    let (objects, patches) = render(&config().join("default"));
    assert!(patches.is_empty(), "{patches:?}");
    assert_eq!(
        operator_grants(&objects),
        BTreeMap::from([
            (CLUSTER.to_string(), operator.clone()),
            (OPERATOR_NAMESPACE.to_string(), leader.clone()),
        ])
    );

    // Namespaced: config/namespaced. The same rules in team-a and team-b only; nothing cluster-wide.
    let (objects, patches) = render(&config().join("namespaced"));
    let granted = operator_grants(&objects);
    assert_eq!(
        granted,
        BTreeMap::from([
            ("team-a".to_string(), operator.clone()),
            ("team-b".to_string(), operator.clone()),
            (OPERATOR_NAMESPACE.to_string(), leader),
        ])
    );
    assert!(
        !objects.iter().any(|o| o["kind"] == "ClusterRoleBinding"),
        "no ClusterRoleBinding in namespaced mode"
    );

    // ... and the operator watches exactly the namespaces it is granted (the component's one other
    // patch: WATCH_NAMESPACES on the operator's container).
    let [patch] = patches.as_slice() else {
        panic!("one Deployment patch expected: {patches:?}")
    };
    assert_eq!(patch["kind"], "Deployment");
    assert_eq!(patch["metadata"]["name"], "predictor-operator");
    let [container] = patch["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .as_slice()
    else {
        panic!("one container patched")
    };
    assert_eq!(container["name"], "operator");
    let watched: BTreeSet<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "WATCH_NAMESPACES")
        .and_then(|e| e["value"].as_str())
        .expect("WATCH_NAMESPACES is set")
        .split(',')
        .collect();
    let team_namespaces: BTreeSet<&str> = granted
        .keys()
        .map(String::as_str)
        .filter(|ns| *ns != OPERATOR_NAMESPACE)
        .collect();
    assert_eq!(watched, team_namespaces);
}

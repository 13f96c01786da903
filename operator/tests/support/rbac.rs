//! The operator's RBAC as (API group, resource, verb) triples: what the YAML of config/ must grant
//! (operator/tests/rbac.rs) and what the apiserver must report for its ServiceAccount (the cluster tier).
//! Pure: also included on its own by the test binary that needs no cluster.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::PolicyRule;

/// One grant: API group ("" is core), resource, verb.
pub type Grant = (String, String, String);

/// The operator's rules (config/rbac/cluster_role.yaml): exactly the calls operator/src makes, in every
/// namespace it works in.
pub const OPERATOR_RULES: &[(&str, &str, &str)] = &[
    ("mlops.dev", "predictors", "list"),
    ("mlops.dev", "predictors", "watch"),
    ("mlops.dev", "predictors/status", "patch"),
    ("apps", "deployments", "get"),
    ("apps", "deployments", "list"),
    ("apps", "deployments", "watch"),
    ("apps", "deployments", "create"),
    ("apps", "deployments", "patch"),
    ("", "services", "get"),
    ("", "services", "list"),
    ("", "services", "watch"),
    ("", "services", "create"),
    ("", "services", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "get"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("autoscaling", "horizontalpodautoscalers", "watch"),
    ("autoscaling", "horizontalpodautoscalers", "create"),
    ("autoscaling", "horizontalpodautoscalers", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "delete"),
    ("policy", "poddisruptionbudgets", "get"),
    ("policy", "poddisruptionbudgets", "list"),
    ("policy", "poddisruptionbudgets", "watch"),
    ("policy", "poddisruptionbudgets", "create"),
    ("policy", "poddisruptionbudgets", "patch"),
    ("policy", "poddisruptionbudgets", "delete"),
    ("events.k8s.io", "events", "create"),
    ("", "secrets", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
];

/// Leader election (config/rbac/leader_election_role.yaml): one Lease, in the operator's namespace.
pub const LEADER_ELECTION_RULES: &[(&str, &str, &str)] = &[
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
];

/// `triples` as a set.
pub fn grants(triples: &[&[(&str, &str, &str)]]) -> BTreeSet<Grant> {
    triples
        .iter()
        .flat_map(|t| t.iter())
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect()
}

/// Every (group, resource, verb) that `rules` grant. Rules limited to some object names, and
/// non-resource URLs, are not expected in the operator's RBAC and panic.
pub fn granted_by(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut all = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.as_ref().is_none_or(Vec::is_empty),
            "name-restricted rules are not expected: {rule:?}"
        );
        assert!(
            rule.non_resource_urls.as_ref().is_none_or(Vec::is_empty),
            "non-resource URLs are not expected: {rule:?}"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    all.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    all
}

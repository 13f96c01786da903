//! Step 1: what the apiserver's schema cannot refuse but the operator cannot run.

use kube::ResourceExt;

use crate::crd::Predictor;
use crate::error::Result;
use crate::resources::canary_name;
/// Step 1: what the apiserver's schema cannot refuse but the operator cannot run.
pub fn validate(predictor: &Predictor) -> Result<(), String> {
    let spec = &predictor.spec;
    if spec.image.trim().is_empty() || spec.image.chars().any(char::is_whitespace) {
        return Err(format!(
            "spec.image {:?} is not an image reference",
            spec.image
        ));
    }
    if !(1..=65535).contains(&spec.port) {
        return Err(format!("spec.port {} is outside 1-65535", spec.port));
    }
    if spec.replicas < 0 {
        return Err(format!("spec.replicas {} is negative", spec.replicas));
    }
    // NB: the CRD refuses other schemes too (the same rule), but only if it is up to date.
    crate::store_url::MODEL_URL.check(&spec.model.url)?;
    // What the CRD's rules say, also checked here (a stale CRD) and more: the URL as the pods parse it.
    if spec.model.url.starts_with("s3://") || spec.model.url.starts_with("oci://") {
        model_store::Location::parse(&spec.model.url)
            .map_err(|e| format!("spec.model.url: {e}"))?;
    }
    if spec.model.s3.is_some() && !spec.model.url.starts_with("s3://") {
        return Err("spec.model.s3 configures s3:// URLs only".into());
    }
    if let Some(validation) = &spec.validation {
        validate_gate(validation)?;
    }
    if let Some(autoscaling) = &spec.autoscaling {
        validate_autoscaling(autoscaling, spec.resources.as_ref())?;
    }
    if let Some(disruption) = &spec.disruption {
        validate_disruption(disruption)?;
    }
    if let Some(rollout) = spec.canary() {
        // NB: the CRD says the same, but only if it is up to date.
        if rollout.analysis.is_none() {
            return Err("spec.rollout.strategy Canary needs spec.rollout.analysis".into());
        }
        if predictor.name_any().len() > 56 {
            return Err(format!(
                "a Canary Predictor's name must be at most 56 characters (its canary Service is {})",
                canary_name(&predictor.name_any())
            ));
        }
    }
    Ok(())
}

/// The quality gate's part of step 1: the CRD says the same, but only if it is up to date (and an
/// explicit `null` threshold passes its `has()` rule).
fn validate_gate(validation: &crate::crd::ValidationSpec) -> Result<(), String> {
    let thresholds = [
        ("minAccuracy", validation.min_accuracy),
        ("maxAccuracyDrop", validation.max_accuracy_drop),
    ];
    if thresholds.iter().all(|(_, t)| t.is_none()) {
        return Err("spec.validation sets neither minAccuracy nor maxAccuracyDrop".into());
    }
    for (name, threshold) in thresholds {
        if let Some(t) = threshold.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(format!("spec.validation.{name} {t} is outside 0-1"));
        }
    }
    crate::store_url::DATA_URL.check(&validation.data.url)
}

/// The autoscaling part of step 1 (the CRD says the same, but only if it is up to date): bounds
/// in order, and a CPU request for the utilisation target to be a percentage of.
fn validate_autoscaling(
    autoscaling: &crate::crd::AutoscalingSpec,
    resources: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
) -> Result<(), String> {
    let (min, max) = (autoscaling.min_replicas, autoscaling.max_replicas);
    if min < 1 || min > max {
        return Err(format!(
            "spec.autoscaling needs 1 <= minReplicas <= maxReplicas, not {min} and {max}"
        ));
    }
    let has_cpu = |side: Option<&std::collections::BTreeMap<String, _>>| {
        side.is_some_and(|m| m.contains_key("cpu"))
    };
    if let Some(r) = resources
        && !has_cpu(r.requests.as_ref())
        && !has_cpu(r.limits.as_ref())
    {
        return Err(
            "spec.autoscaling needs a CPU request: spec.resources sets neither requests.cpu nor limits.cpu"
                .into(),
        );
    }
    Ok(())
}

/// The disruption budget's part of step 1 (the CRD says the same, but only if it is up to date):
/// exactly one of `maxUnavailable` and `minAvailable`, a count or a percentage, and never a
/// `maxUnavailable` of 0 (no pod could ever be evicted, so no node drained).
fn validate_disruption(disruption: &crate::crd::DisruptionSpec) -> Result<(), String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let (field, value, least) = match (&disruption.max_unavailable, &disruption.min_available) {
        (Some(max), None) => ("maxUnavailable", max, 1),
        (None, Some(min)) => ("minAvailable", min, 0),
        _ => {
            return Err(
                "spec.disruption sets exactly one of maxUnavailable and minAvailable".into(),
            );
        }
    };
    let valid = match value {
        IntOrString::Int(n) => *n >= least,
        IntOrString::String(s) => s.strip_suffix('%').is_some_and(|digits| {
            digits
                .parse::<i32>()
                .is_ok_and(|p| p.to_string() == digits && (least..=100).contains(&p))
        }),
    };
    if valid {
        Ok(())
    } else {
        let shown = match value {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => format!("{s:?}"),
        };
        Err(format!(
            "spec.disruption.{field} {shown} is neither a count of at least {least} nor a \
             percentage from {least}% to 100%"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::predictor;

    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    #[test]
    fn validate_refuses_what_the_schema_cannot() {
        let mut p = predictor("american", "team-a");
        assert_eq!(validate(&p), Ok(()));
        p.spec.image = "registry.local/american predictor:0.2".into();
        assert!(validate(&p).unwrap_err().contains("not an image reference"));
        let mut p = predictor("american", "team-a");
        p.spec.port = 70000;
        assert!(validate(&p).unwrap_err().contains("outside 1-65535"));
        let mut p = predictor("american", "team-a");
        p.spec.model.url = "file:///etc/shadow?token=t0k".into();
        let reason = validate(&p).unwrap_err();
        assert_eq!(
            reason,
            "model.url must start with http://, https://, hdfs://, s3:// or oci:// \
             (not file:///etc/shadow?***)"
        );
        p.spec.model.url = "/dev/zero".into();
        assert_eq!(
            validate(&p),
            Err(
                "model.url must start with http://, https://, hdfs://, s3:// or oci:// \
                 (not /dev/zero)"
                    .into()
            )
        );
        // s3:// and oci:// URLs as the pods parse them; store settings only for s3://.
        for (url, expected) in [
            ("s3://models/", "names no object"),
            (
                "oci://registry.local/models@sha256:abc",
                "not an OCI reference",
            ),
        ] {
            let mut p = predictor("american", "team-a");
            p.spec.model.url = url.into();
            let reason = validate(&p).unwrap_err();
            assert!(reason.contains(expected), "{url}: {reason}");
        }
        let mut p = predictor("american", "team-a");
        p.spec.model.s3 = Some(crate::crd::S3Spec::default());
        let reason = validate(&p).unwrap_err();
        assert!(reason.contains("s3:// URLs only"), "{reason}");

        let gate = |min: Option<f64>, drop: Option<f64>, url: &str| {
            let mut p = predictor("american", "team-a");
            p.spec.validation = Some(crate::crd::ValidationSpec {
                data: crate::crd::DataSpec {
                    url: url.into(),
                    sha256: crate::fixtures::SHA_B.into(),
                },
                min_accuracy: min,
                max_accuracy_drop: drop,
            });
            validate(&p)
        };
        let https = "https://d/eval.csv";
        assert_eq!(gate(Some(0.8), None, https), Ok(()));
        assert_eq!(gate(None, Some(0.0), https), Ok(()));
        assert_eq!(
            gate(None, None, https),
            Err("spec.validation sets neither minAccuracy nor maxAccuracyDrop".into())
        );
        assert_eq!(
            gate(Some(0.8), Some(1.5), https),
            Err("spec.validation.maxAccuracyDrop 1.5 is outside 0-1".into())
        );
        assert_eq!(
            gate(Some(0.8), None, "file:///etc/passwd"),
            Err(
                "validation.data.url must start with http://, https:// or hdfs:// \
                 (not file:///etc/passwd)"
                    .into()
            )
        );

        // A Canary needs an analysis and room for `-canary` in its name.
        let mut p = crate::fixtures::canary(predictor("american", "team-a"));
        assert_eq!(validate(&p), Ok(()));
        p.spec.rollout.as_mut().unwrap().analysis = None;
        assert_eq!(
            validate(&p),
            Err("spec.rollout.strategy Canary needs spec.rollout.analysis".into())
        );
        let p = crate::fixtures::canary(predictor(&"a".repeat(57), "team-a"));
        assert!(validate(&p).unwrap_err().contains("at most 56 characters"));

        // Autoscaling needs ordered bounds and a CPU request (the default has one).
        let mut p = crate::fixtures::autoscaled(predictor("american", "team-a"));
        assert_eq!(validate(&p), Ok(()));
        p.spec.autoscaling.as_mut().unwrap().min_replicas = 7;
        assert_eq!(
            validate(&p),
            Err("spec.autoscaling needs 1 <= minReplicas <= maxReplicas, not 7 and 6".into())
        );
        let mut p = crate::fixtures::autoscaled(predictor("american", "team-a"));
        let memory_only = BTreeMap::from([("memory".to_string(), Quantity("1Gi".into()))]);
        p.spec.resources = Some(ResourceRequirements {
            requests: Some(memory_only.clone()),
            limits: Some(memory_only),
            ..ResourceRequirements::default()
        });
        assert!(validate(&p).unwrap_err().contains("needs a CPU request"));
        let limits = p.spec.resources.as_mut().unwrap().limits.as_mut().unwrap();
        limits.insert("cpu".into(), Quantity("1".into()));
        assert_eq!(validate(&p), Ok(()), "the request defaults to the limit");
    }

    #[test]
    fn a_disruption_budget_is_one_count_or_percentage() {
        use crate::crd::DisruptionSpec;
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::{Int, String as Percent};
        let budget = |max: Option<IntOrString>, min: Option<IntOrString>| {
            let mut p = predictor("american", "team-a");
            p.spec.disruption = Some(DisruptionSpec {
                max_unavailable: max,
                min_available: min,
            });
            validate(&p)
        };
        for ok in [
            budget(Some(Int(1)), None),
            budget(Some(Percent("100%".into())), None),
            budget(None, Some(Int(0))),
            budget(None, Some(Percent("0%".into()))),
            budget(None, Some(Percent("50%".into()))),
        ] {
            assert_eq!(ok, Ok(()));
        }
        let one = "spec.disruption sets exactly one of maxUnavailable and minAvailable";
        assert_eq!(budget(None, None), Err(one.into()));
        assert_eq!(budget(Some(Int(1)), Some(Int(1))), Err(one.into()));
        assert_eq!(
            budget(Some(Int(0)), None),
            Err(
                "spec.disruption.maxUnavailable 0 is neither a count of at least 1 nor a \
                 percentage from 1% to 100%"
                    .into()
            )
        );
        for bad in ["0%", "101%", "50", "05%", "-1%", "half"] {
            let reason = budget(Some(Percent(bad.into())), None).unwrap_err();
            assert!(reason.contains(&format!("{bad:?}")), "{bad}: {reason}");
        }
        assert!(budget(None, Some(Int(-1))).is_err());
    }
}

//! The whole status of a Predictor at one moment: every condition's verdict, with the transition
//! times kept from the status before, and the fields (pods, what they serve, the measured quality,
//! the autoscaler's counts) read from the same observation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::check::QualityCheck;
use super::conditions::{
    autoscaling_condition, degraded_condition, image_resolved_condition, model_verified_condition,
    progressing_condition, quality_gate_condition, ready_condition,
};
use super::drift::drift_of;
use super::kstatus::set_kstatus;
use super::observed::{Observed, Pods};
use super::rollout::{rollout_of, scaling};
use super::verdict::{
    AUTOSCALING, DEGRADED, DRIFT, IMAGE_RESOLVED, MODEL_VERIFIED, PROGRESSING, QUALITY_GATE, READY,
    condition, short,
};
use crate::crd::{AutoscalingStatus, Predictor, PredictorStatus, QualityStatus};
use crate::resources::service_url;

/// The status `predictor` should have, given what was observed at `now`.
pub fn compute_status(predictor: &Predictor, observed: &Observed, now: &Time) -> PredictorStatus {
    let previous = predictor.status.clone().unwrap_or_default();
    let generation = predictor.metadata.generation;
    let rollout = scaling(
        rollout_of(observed.deployment),
        observed.deployment,
        &previous,
    );
    let pods = Pods::observe(
        predictor,
        observed.deployment,
        observed.placement.as_ref(),
        &rollout,
        &previous,
    );
    let quality = predictor
        .spec
        .validation
        .as_ref()
        .and_then(|_| quality_status(predictor, &observed.quality, &previous));
    // The QualityGate condition exists only while the Predictor asks for the gate.
    let gate = predictor.spec.validation.as_ref().map(|_| {
        (
            QUALITY_GATE,
            quality_gate_condition(predictor, &observed.quality, quality.as_ref()),
        )
    });
    let autoscaling = predictor.spec.autoscaling.as_ref().map(|spec| {
        (
            AUTOSCALING,
            autoscaling_condition(spec, observed.autoscaler),
        )
    });
    // Drift exists only while the Predictor asks for it, and never bears on the others.
    let (drift, drift_status) = predictor
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.drift.as_ref())
        .map(|spec| {
            let (v, status) = drift_of(spec, observed.drift.as_ref(), &previous);
            ((DRIFT, v), status)
        })
        .unzip();
    let conditions = [
        (READY, ready_condition(&rollout, &pods, observed)),
        (PROGRESSING, progressing_condition(&rollout, observed)),
        (DEGRADED, degraded_condition(&rollout, observed)),
        (
            MODEL_VERIFIED,
            model_verified_condition(predictor, &observed.model),
        ),
        (
            IMAGE_RESOLVED,
            image_resolved_condition(predictor, &observed.image),
        ),
    ]
    .into_iter()
    .chain(gate)
    .chain(autoscaling)
    .chain(drift)
    .map(|(type_, v)| condition(&previous.conditions, type_, v, generation, now))
    .collect();
    let Pods {
        desired,
        total,
        ready,
        nodes,
        version,
        model_sha256,
        image_digest,
    } = pods;
    let mut status = PredictorStatus {
        observed_generation: generation,
        replicas: Some(total),
        ready_replicas: Some(ready),
        ready: Some(format!("{ready}/{desired}")),
        nodes,
        model_short: model_sha256.as_deref().map(|s| short(s).to_string()),
        version,
        model_sha256,
        image_digest,
        url: Some(service_url(predictor)),
        quality,
        autoscaling: autoscaling_status(predictor, observed, total, desired),
        rollout: None,
        last_good_model: None,
        last_good_image: None,
        drift: drift_status.flatten(),
        conditions,
    };
    set_kstatus(&mut status, &previous.conditions, generation, now);
    status
}

/// What the status shows of `spec.model`'s measured accuracy: the new measurement, else the one
/// `previous` holds of the same model (it stays true while that model serves).
fn quality_status(
    predictor: &Predictor,
    check: &QualityCheck,
    previous: &PredictorStatus,
) -> Option<QualityStatus> {
    match check {
        QualityCheck::Passed { measured, .. } | QualityCheck::Below { measured, .. } => {
            Some(measured.clone())
        }
        QualityCheck::Serving => previous
            .quality
            .clone()
            .filter(|q| q.model_sha256 == predictor.spec.model.sha256),
        _ => None,
    }
}

/// `status.autoscaling`: the pods there are and the pods wanted, as the autoscaler last saw them
/// (before it has computed a count: as the Deployment says).
fn autoscaling_status(
    predictor: &Predictor,
    observed: &Observed,
    total: i32,
    desired: i32,
) -> Option<AutoscalingStatus> {
    let spec = predictor.spec.autoscaling.as_ref()?;
    let hpa = observed.autoscaler.and_then(|a| a.status.as_ref());
    Some(AutoscalingStatus {
        current_replicas: hpa.and_then(|s| s.current_replicas).unwrap_or(total),
        // 0 until the autoscaler has computed a count (it says 0 while it cannot measure).
        desired_replicas: hpa
            .map(|s| s.desired_replicas)
            .filter(|d| *d > 0)
            .unwrap_or(desired),
        min_replicas: spec.min_replicas,
        max_replicas: spec.max_replicas,
        last_scale_time: hpa.and_then(|s| s.last_scale_time.clone()),
    })
}

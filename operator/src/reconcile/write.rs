//! What the operator writes about a Predictor: its status (only when it changed, not for mere early
//! progress, and never from a version its own last write replaced) and its Events.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};

use super::context::Context;
use super::rollout::ANALYSIS_POLL;
use crate::crd::{Predictor, PredictorStatus};
use crate::error::{Error, Result};
use crate::resources::{FIELD_MANAGER, Served};
use crate::status::{self, Observed, RolloutView, compute_status_with_rollout, status_events};

/// How long a new rollout's progress details (pod counts, messages) go unwritten: a quick rollout
/// then costs two status writes (begun, done) instead of one per step of the Deployment controller.
const PROGRESS_QUIET: Duration = Duration::from_secs(10);
/// The Event for a Deployment changed (`after`) by this reconcile.
pub(super) async fn announce_rollout(
    predictor: &Predictor,
    before: Option<&Deployment>,
    after: &Deployment,
    ctx: &Context,
) {
    let wanted = Served::of(after);
    // A creation has no Event: the status tells it (see `status::status_events`).
    let Some(old) = before.map(Served::of) else {
        return;
    };
    let mut changes = Vec::new();
    if old.pod_image != wanted.pod_image {
        changes.push(format!(
            "image {} → {}",
            show(&old.pod_image),
            show(&wanted.pod_image)
        ));
    }
    if old.model_sha256 != wanted.model_sha256 || old.model_url != wanted.model_url {
        changes.push(format!(
            "model {} → {}",
            status::short(old.model_sha256.as_deref().unwrap_or("?")),
            status::short(&predictor.spec.model.sha256)
        ));
    }
    if old.version != wanted.version {
        changes.push(format!(
            "version {} → {}",
            show(&old.version),
            show(&wanted.version)
        ));
    }
    // Drift repair or an annotation alone replaces no pod: nothing to announce.
    if !changes.is_empty() {
        let note = format!("rolling update: {}", changes.join(", "));
        publish(predictor, ctx, false, status::reason::ROLLING_UPDATE, note).await;
    }
}

pub(super) fn show(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(none)")
}

/// Computes the status and writes it only if it differs from what the object already says, and
/// not for mere progress early in a rollout: then it returns when to look again.
#[tracing::instrument(name = "status", skip_all)]
pub(super) async fn update_status(
    predictor: &Predictor,
    observed: &Observed<'_>,
    view: &RolloutView,
    ctx: &Context,
) -> Result<Option<Duration>> {
    if ctx.own_writes.is_replaced(predictor) {
        return Ok(None);
    }
    let now = Timestamp::now();
    let new = compute_status_with_rollout(predictor, observed, view, &Time(now));
    let old = predictor.status.clone().unwrap_or_default();
    if old == new {
        return Ok(None);
    }
    if let Some(wait) = status::defer_progress(&old, &new, now, PROGRESS_QUIET) {
        return Ok(Some(wait));
    }
    if let Some(wait) = status::defer_analysis(&old, &new, now, ANALYSIS_POLL) {
        return Ok(Some(wait));
    }
    if let Some(wait) = status::defer_drift(&old, &new, now, drift_figures_every(predictor)) {
        return Ok(Some(wait));
    }
    if !patch_status(predictor, &new, ctx).await? {
        return Ok(None);
    }
    for event in status_events(&old, &new) {
        publish(predictor, ctx, event.warning, &event.reason, event.note).await;
    }
    Ok(None)
}

/// How often new drift figures alone (samples, PSI) are written: once per window, at least a
/// minute and at most ten apart. A change of the Drift condition's status or reason is written at
/// once.
fn drift_figures_every(predictor: &Predictor) -> Duration {
    let window = predictor
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.drift.as_ref())
        .map_or(Duration::ZERO, |d| d.window());
    window.clamp(Duration::from_secs(60), Duration::from_secs(600))
}

/// Server-side apply of the status under the operator's field manager (like the children): the
/// apiserver merges by ownership, and a field the operator stops setting is removed. False when
/// the Predictor changed since this reconcile read it (see [`status_patch`]): nothing written.
pub(super) async fn patch_status(
    predictor: &Predictor,
    status: &PredictorStatus,
    ctx: &Context,
) -> Result<bool> {
    let api: Api<Predictor> = Api::namespaced(
        ctx.client.clone(),
        &predictor.namespace().unwrap_or_default(),
    );
    let patch = status_patch(status, predictor.resource_version().as_deref());
    match api
        .patch_status(
            &predictor.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(written) => {
            ctx.metrics.wrote("status");
            ctx.own_writes.wrote(predictor, &written);
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::debug!(predictor = %predictor.name_any(), "status computed from an older version: not written");
            Ok(false)
        }
        Err(e) => Err(Error::kube("apply status")(e)),
    }
}

/// The apply configuration of a status write: apiVersion, kind, the resourceVersion the status
/// was computed from, and the status. The apiserver refuses it (409) when the Predictor changed
/// since (its spec was edited, or the reconcile read a cache that had not seen the operator's own
/// last write: see [`super::OwnWrites`]); that version's watch event brings the next reconcile.
pub fn status_patch(status: &PredictorStatus, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = serde_json::json!({
        "apiVersion": Predictor::api_version(&()),
        "kind": Predictor::kind(&()),
        "status": status,
    });
    if let Some(version) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    patch
}

/// Publishes an Event on the Predictor; a failure is logged, never fails the reconcile.
pub(super) async fn publish(
    predictor: &Predictor,
    ctx: &Context,
    warning: bool,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        // The Events API caps notes at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    // NB: a fresh Recorder per Event: a shared one folds Events with the same reason into one
    // series that keeps the first note, hiding e.g. the second of two different rolling updates.
    // Events are only published on changes, so there is no flood to aggregate.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    match recorder.publish(&event, &predictor.object_ref(&())).await {
        Ok(()) => ctx.metrics.wrote("event"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot publish event")
        }
    }
}

//! What one reconcile does with the Deployments: the direct step (the stable Deployment takes the
//! spec) or the canary step (the candidate on canary pods, measured and judged), and a stalled
//! rollout's pods read for an image they cannot pull.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use model_store::redact;

use super::context::Context;

use super::children::is_applied;
use crate::analysis::{Samples, Verdict, judge};
use crate::canary::{self, Progress, Stage};
use crate::crd::{Candidate, ModelRef, Predictor};
use crate::error::{Error, Result};
use crate::resources::{
    FIELD_MANAGER, Served, build_canary_deployment, build_canary_service, build_deployment,
    canary_name, selector_labels, stable_replicas,
};
use crate::scrape;
use crate::status::{self, Rollout, RolloutView};

/// How often a canary under analysis is measured again.
pub(super) const ANALYSIS_POLL: Duration = Duration::from_secs(10);
/// What one reconcile does with a Predictor's Deployments beside its Service, and what the status
/// says of its rollout.
#[derive(Default)]
pub(super) struct Step {
    /// The stable Deployment to apply if it differs (`None`: leave it as it is).
    pub(super) stable: Option<Deployment>,
    /// The canary Deployment and Service to apply (only what differs from what exists).
    pub(super) canary: Option<Deployment>,
    pub(super) canary_service: Option<Service>,
    /// Name of a canary Deployment to scale to zero: rolled back, promoted, or no longer wanted.
    /// (Scaled, not deleted: the operator deletes no Deployment; the garbage collector removes its
    /// children with the Predictor.)
    pub(super) retire: Option<String>,
    pub(super) view: RolloutView,
    /// A verdict that ended an analysis (`promoted` or the rollback's reason), for the metric.
    pub(super) ended: Option<&'static str>,
    /// A canary is being measured: look again soon.
    pub(super) analysing: bool,
}

/// A RollingUpdate Predictor: the stable Deployment takes the spec; a canary left from when it was
/// a Canary Predictor (its own, seen in the cache; it is not asked for) is retired.
pub(super) fn direct_step(
    predictor: &Predictor,
    pod_image: Option<&str>,
    leftover: Option<&Deployment>,
) -> Result<Step> {
    Ok(Step {
        stable: pod_image
            .map(|image| build_deployment(predictor, image))
            .transpose()?,
        retire: leftover
            .filter(|d| has_pods(d))
            .and_then(|d| d.metadata.name.clone()),
        ..Step::default()
    })
}

pub(super) fn has_pods(deployment: &Deployment) -> bool {
    deployment.spec.replicas.unwrap_or(1) > 0
}

/// A Canary Predictor: see [`canary::stage`]. While the candidate is analysed, the stable
/// Deployment keeps what it serves and the canary runs the candidate; once every canary pod is
/// ready, the pods are measured and judged: a pass promotes (the stable Deployment takes the
/// candidate; the canary is retired when that rollout is complete), a failure retires the canary.
#[tracing::instrument(name = "canary", skip_all)]
pub(super) async fn canary_step(
    predictor: &Predictor,
    ctx: &Context,
    namespace: &str,
    pod_image: Option<&str>,
    stable: Option<&Deployment>,
    (current_canary, current_canary_service): (Option<&Deployment>, Option<&Service>),
) -> Result<Step> {
    let name = canary_name(&predictor.name_any());
    let now = Time(Timestamp::now());
    let served = stable.map(Served::of);
    let candidate = pod_image.map(|image| Candidate::of(predictor, image));
    let stage = canary::stage(predictor, served.as_ref(), candidate.as_ref());
    let stable_complete = matches!(status::rollout_of(stable), Rollout::Complete);
    let last_good = match (stable_complete, served.as_ref()) {
        (true, Some(s)) => last_good(s),
        _ => previous_view(predictor).last_good,
    };
    let has_canary = current_canary.is_some_and(has_pods);
    // The canary Service exists as long as the Predictor is a Canary one, candidate or not: the
    // stable pods' SHADOW_URL names it from the start, and a name that does not resolve yet would
    // be remembered as such by the cluster DNS's negative cache (CoreDNS: up to 30 s), delaying
    // the first copies to a new canary by that much.
    let canary_service =
        Some(build_canary_service(predictor)?).filter(|s| !is_applied(s, current_canary_service));
    // The stable Deployment rebuilt on what it serves now (the candidate waits in the canary).
    let keep = || -> Result<Option<Deployment>> {
        served
            .as_ref()
            .and_then(|s| canary::keep_serving(predictor, s))
            .map(|(p, image)| build_deployment(&p, &image))
            .transpose()
    };
    let view = |progress: Progress| RolloutView {
        rollout: canary::next_rollout(predictor, &stage, candidate.as_ref(), progress, &now),
        last_good: last_good.clone(),
    };
    let (Stage::Analysing, Some(candidate), Some(image)) = (&stage, &candidate, pod_image) else {
        let stable_desired = match stage {
            Stage::Rejected => keep()?,
            _ => pod_image
                .map(|image| build_deployment(predictor, image))
                .transpose()?,
        };
        // A promoted candidate's canary keeps serving its share until every stable pod runs it.
        let settled = stable_complete && is_applied_opt(stable_desired.as_ref(), stable);
        return Ok(Step {
            stable: stable_desired,
            canary_service,
            retire: (has_canary && (stage == Stage::Rejected || settled)).then_some(name),
            view: view(Progress::Settled { stable_complete }),
            ..Step::default()
        });
    };

    let canary_desired =
        build_canary_deployment(predictor, image, stable_replicas(predictor, stable))?;
    let ready = is_applied(&canary_desired, current_canary)
        && status::rollout_of(current_canary) == Rollout::Complete;
    let analysing = Step {
        stable: keep()?,
        canary: Some(canary_desired.clone()).filter(|_| !ready),
        canary_service: canary_service.clone(),
        analysing: true,
        ..Step::default()
    };
    if !ready {
        let why = match status::rollout_of(current_canary) {
            // The candidate's own pods cannot start (its progress deadline passed): nothing to
            // measure, and nothing to wait for.
            Rollout::Failed(why) if is_applied(&canary_desired, current_canary) => {
                return Ok(Step {
                    stable: keep()?,
                    retire: Some(name),
                    view: view(Progress::NeverReady(why)),
                    ended: Some(canary::reason::CANARY_NOT_READY),
                    ..Step::default()
                });
            }
            Rollout::InProgress(why) | Rollout::Failed(why) | Rollout::Scaling(why) => why,
            Rollout::Missing => "creating the canary Deployment".into(),
            Rollout::Complete => "updating the canary Deployment".into(),
        };
        return Ok(Step {
            view: view(Progress::Starting(why)),
            ..analysing
        });
    }

    let Some(spec) = predictor.spec.canary().and_then(|r| r.analysis.as_ref()) else {
        // validate() refused this already.
        return Ok(analysing);
    };
    let (stable_samples, canary_samples) = measure(ctx, namespace, predictor, candidate).await;
    let started = canary::analysis_started(predictor, candidate, &now);
    let verdict = judge(
        spec,
        &stable_samples,
        &canary_samples,
        canary::elapsed(&started, &now),
    );
    let view = view(Progress::Judged(&verdict));
    Ok(match &verdict {
        Verdict::Waiting { .. } => Step { view, ..analysing },
        Verdict::Pass { .. } => Step {
            // Promote: a normal rolling update of the stable Deployment to the candidate.
            stable: Some(build_deployment(predictor, image)?),
            view,
            ended: Some("promoted"),
            ..Step::default()
        },
        Verdict::Fail { reason, .. } => Step {
            stable: keep()?,
            retire: Some(name),
            view,
            ended: Some(*reason),
            ..Step::default()
        },
    })
}

/// Whether `desired` (if any) is what `current` already holds.
pub(super) fn is_applied_opt(desired: Option<&Deployment>, current: Option<&Deployment>) -> bool {
    desired.is_none_or(|d| is_applied(d, current))
}

/// What the stable pods serve, for `status.lastGoodModel` and `lastGoodImage`.
pub(super) fn last_good(served: &Served) -> Option<(ModelRef, String)> {
    Some((
        ModelRef {
            url: redact(served.model_url.as_deref()?),
            sha256: served.model_sha256.clone()?,
        },
        served.pod_image.clone()?,
    ))
}

/// The rollout part of the status as it is (for a reconcile that changes nothing about it).
pub(super) fn previous_view(predictor: &Predictor) -> RolloutView {
    let status = predictor.status.clone().unwrap_or_default();
    RolloutView {
        rollout: status.rollout,
        last_good: status.last_good_model.zip(status.last_good_image),
    }
}

/// The stable pods' and the candidate's counters, read from the ready pods' `/metrics`. A pod
/// that cannot be listed or read only costs its samples: the analysis waits for more.
pub(super) async fn measure(
    ctx: &Context,
    namespace: &str,
    predictor: &Predictor,
    candidate: &Candidate,
) -> (Samples, Samples) {
    let selector = selector_labels(&predictor.name_any())
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let pods = match pods
        .list(&ListParams::default().labels(&selector).match_any())
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(pod_selector = %selector, error = %e, "cannot list pods");
            return Default::default();
        }
    };
    let (stable, canary) = scrape::targets(&pods, predictor.spec.port, candidate);
    let read = |addresses: Vec<String>| async move {
        let texts: Vec<_> = futures::stream::iter(addresses)
            .map(|address| async move {
                // The answer is held (and parsed) within the memory budget, then dropped: only
                // its few counters are kept.
                let _memory = ctx
                    .checker
                    .budget()
                    .reserve(scrape::MAX_BYTES, "a /metrics scrape")
                    .await?;
                let text = ctx.pod_metrics.fetch(&address).await;
                text.map(|text| scrape::parse(&text, candidate))
                    .map_err(|reason| format!("{address}: {reason}"))
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut sum = Samples::default();
        for samples in texts {
            match samples {
                Ok(samples) => sum.merge(&samples),
                Err(reason) => tracing::warn!(%reason, "cannot read pod metrics"),
            }
        }
        sum
    };
    tokio::join!(read(stable), read(canary))
}

/// Scales the canary Deployment `name` to zero, if there is one to retire.
pub(super) async fn retire_if(
    api: &Api<Deployment>,
    name: Option<&str>,
    ctx: &Context,
) -> Result<()> {
    let Some(name) = name else {
        return Ok(());
    };
    let patch = serde_json::json!({"spec": {"replicas": 0}});
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::kube("retire canary"))?;
    ctx.metrics.wrote("deployment");
    Ok(())
}

/// Why the new pods of `deployment`'s rollout cannot start, if the kubelet cannot pull their
/// image: read from the pods (only while a rollout runs), because a pod in `ImagePullBackOff`
/// changes nothing in the Deployment's status until the progress deadline. A failed read is
/// logged and costs only the early warning.
#[tracing::instrument(name = "pull", skip_all)]
pub(super) async fn stalled_pull(
    ctx: &Context,
    namespace: &str,
    name: &str,
    deployment: &Deployment,
) -> Option<String> {
    if !matches!(
        status::rollout_of(Some(deployment)),
        Rollout::InProgress(_) | Rollout::Failed(_)
    ) {
        return None;
    }
    let image = Served::of(deployment).pod_image?;
    let selector = selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    // NB: from the apiserver's watch cache (resourceVersion=0): a second-old view is enough.
    match pods
        .list(&ListParams::default().labels(&selector).match_any())
        .await
    {
        Ok(list) => status::pull_failure(&list.items, &image),
        Err(e) => {
            tracing::warn!(pod_selector = %selector, error = %e, "cannot list pods");
            None
        }
    }
}

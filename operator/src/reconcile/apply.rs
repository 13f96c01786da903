//! Step 5: applies what differs (the Service, the stable and canary Deployments, the
//! autoscaler, the disruption budget), retires a canary no longer wanted, deletes an autoscaler or
//! a disruption budget no longer asked for, and hands the replica count over to the autoscaler
//! when there is one. Only the Predictor's own.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use super::children::{Current, apply_if, delete_if, hand_over_replicas, is_applied};
use super::context::Context;
use super::rollout::{Step, retire_if};
use crate::crd::Predictor;
use crate::error::Result;
use crate::ownership::owned_by;
use crate::resources::{build_autoscaler, build_disruption_budget, build_service, stable_replicas};

/// What the apply left: the stable Deployment and the autoscaler as applied (`None`: as they were).
pub(super) struct Applied {
    pub(super) deployment: Option<Deployment>,
    pub(super) autoscaler: Option<HorizontalPodAutoscaler>,
}

/// Applies `step` and the Service, autoscaler and disruption budget beside it, independent
/// requests together.
#[tracing::instrument(name = "apply", skip_all)]
pub(super) async fn apply_children(
    predictor: &Predictor,
    ctx: &Context,
    namespace: &str,
    current: &Current,
    step: &Step,
) -> Result<Applied> {
    let name = predictor.name_any();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), namespace);
    let service =
        Some(build_service(predictor)?).filter(|s| !is_applied(s, current.service.as_ref()));
    let deployment = step
        .stable
        .as_ref()
        .filter(|d| !is_applied(*d, current.deployment.as_ref()));
    let autoscaler = build_autoscaler(predictor)?;
    let (autoscaler_changed, stale_autoscaler) =
        optional_child(autoscaler.as_ref(), current.autoscaler.as_ref(), predictor);
    // Autoscaled: before an apply without the replica count, the count is handed over (see
    // `build_replicas_handover`; the operator may still own it from before autoscaling, until
    // the autoscaler's first scale), and a Deployment created now gets `minReplicas` right after.
    let handover = predictor
        .spec
        .autoscaling
        .as_ref()
        .filter(|_| deployment.is_some());
    if let (Some(_), Some(existing)) = (handover, &current.deployment) {
        let replicas = stable_replicas(predictor, Some(existing));
        hand_over_replicas(&deployments, predictor, replicas, ctx).await?;
    }
    // The disruption budget, like the autoscaler: applied while the Predictor has 2 pods or more,
    // its own deleted when it has fewer.
    let budget = build_disruption_budget(predictor)?;
    let (budget_changed, stale_budget) = optional_child(
        budget.as_ref(),
        current.disruption_budget.as_ref(),
        predictor,
    );
    // The two applies the status reads back, and beside them the writes that only have to succeed.
    let writes = async {
        futures::try_join!(
            apply_if(&services, service.as_ref(), ctx, "service"),
            apply_if(&deployments, step.canary.as_ref(), ctx, "deployment"),
            apply_if(&services, step.canary_service.as_ref(), ctx, "service"),
            retire_if(&deployments, step.retire.as_deref(), ctx),
            delete_if(
                &autoscalers,
                stale_autoscaler.then_some(&name),
                ctx,
                "autoscaler"
            ),
            apply_if(&budgets, budget_changed, ctx, "disruption_budget"),
            delete_if(
                &budgets,
                stale_budget.then_some(&name),
                ctx,
                "disruption_budget"
            ),
        )
        .map(|_| ())
    };
    let (applied, applied_autoscaler, ()) = futures::try_join!(
        apply_if(&deployments, deployment, ctx, "deployment"),
        apply_if(&autoscalers, autoscaler_changed, ctx, "autoscaler"),
        writes,
    )?;
    let deployment = match (handover, &current.deployment, applied) {
        (Some(autoscaling), None, Some(_)) => {
            Some(hand_over_replicas(&deployments, predictor, autoscaling.min_replicas, ctx).await?)
        }
        (_, _, applied) => applied,
    };
    Ok(Applied {
        deployment,
        autoscaler: applied_autoscaler,
    })
}

/// A child the Predictor may or may not want (its autoscaler, its disruption budget): the desired
/// object when it differs from `current` (to apply), and whether `current` is to be deleted: not
/// wanted any more, and the Predictor's own (one of the same name that someone else made, read by
/// name when not in the cache, is not the operator's to delete).
fn optional_child<'a, K: Resource + Serialize>(
    desired: Option<&'a K>,
    current: Option<&K>,
    predictor: &Predictor,
) -> (Option<&'a K>, bool) {
    let changed = desired.filter(|d| !is_applied(*d, current));
    let stale = desired.is_none() && current.is_some_and(|c| owned_by(c, predictor));
    (changed, stale)
}

//! The children of a Predictor: read (from the caches, else the apiserver's watch cache), applied
//! when they differ, the replica count handed over to an autoscaler, deleted when no longer wanted
//! (an autoscaler, a disruption budget).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, GetParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use crate::crd::Predictor;
use crate::error::{Error, Result};
use crate::ownership::{self, Conflict};
use crate::resources::{
    FIELD_MANAGER, HANDOVER_FIELD_MANAGER, build_replicas_handover, canary_name,
    wants_disruption_budget,
};
/// The children one reconcile reads, as they are (the Predictor's own or not: see
/// [`ownership`]).
pub(super) struct Current {
    pub(super) deployment: Option<Deployment>,
    pub(super) service: Option<Service>,
    pub(super) autoscaler: Option<HorizontalPodAutoscaler>,
    /// The canary Deployment: asked for when the Predictor is a Canary one, else only a leftover
    /// in the cache (to retire).
    pub(super) canary: Option<Deployment>,
    /// The canary Service, when the Predictor is a Canary one.
    pub(super) canary_service: Option<Service>,
    /// The PodDisruptionBudget: asked for when the Predictor has 2 pods or more, else only a
    /// leftover in the cache (to delete).
    pub(super) disruption_budget: Option<PodDisruptionBudget>,
}

impl Current {
    /// An object under a child's name that `predictor` does not control, said in words: never
    /// applied, scaled, retired or deleted (see [`ownership`]).
    pub(super) fn conflict(&self, predictor: &Predictor) -> Option<String> {
        let conflicts = [
            self.deployment
                .as_ref()
                .and_then(|d| Conflict::of(d, predictor)),
            self.service
                .as_ref()
                .and_then(|s| Conflict::of(s, predictor)),
            self.autoscaler
                .as_ref()
                .filter(|_| predictor.spec.autoscaling.is_some())
                .and_then(|a| Conflict::of(a, predictor)),
            self.canary
                .as_ref()
                .filter(|_| predictor.spec.canary().is_some())
                .and_then(|d| Conflict::of(d, predictor)),
            self.canary_service
                .as_ref()
                .and_then(|s| Conflict::of(s, predictor)),
            self.disruption_budget
                .as_ref()
                .filter(|_| wants_disruption_budget(predictor))
                .and_then(|b| Conflict::of(b, predictor)),
        ];
        let conflicts: Vec<Conflict> = conflicts.into_iter().flatten().collect();
        ownership::describe(&conflicts)
    }
}

/// Reads the children, independent requests together: at scale the apiserver's latency, not the
/// operator, bounds how many Predictors are reconciled per second.
#[tracing::instrument(name = "read", skip_all)]
pub(super) async fn read_children(
    predictor: &Predictor,
    ctx: &Context,
    namespace: &str,
) -> Result<Current> {
    let name = predictor.name_any();
    let canary = canary_name(&name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), namespace);
    let wants_canary = predictor.spec.canary().is_some();
    // An autoscaler, a disruption budget and a canary Deployment are looked for in the apiserver
    // only when the Predictor wants them; one left from when it did (to be deleted or retired) is
    // in the cache, which sees every child the operator made.
    let autoscaler = wanted_child(
        predictor.spec.autoscaling.is_some(),
        &ctx.children.autoscalers,
        &autoscalers,
        &name,
        namespace,
    );
    let disruption_budget = wanted_child(
        wants_disruption_budget(predictor),
        &ctx.children.disruption_budgets,
        &budgets,
        &name,
        namespace,
    );
    let canary_deployment = wanted_child(
        wants_canary,
        &ctx.children.deployments,
        &deployments,
        &canary,
        namespace,
    );
    let canary_service = async {
        match wants_canary {
            true => child(&ctx.children.services, &services, &canary, namespace).await,
            false => Ok(None),
        }
    };
    let (deployment, service, autoscaler, canary, canary_service, disruption_budget) = futures::try_join!(
        child(&ctx.children.deployments, &deployments, &name, namespace),
        child(&ctx.children.services, &services, &name, namespace),
        autoscaler,
        canary_deployment,
        canary_service,
        disruption_budget,
    )?;
    Ok(Current {
        deployment,
        service,
        autoscaler,
        canary,
        canary_service,
        disruption_budget,
    })
}

/// A child from the operator's cache; if it is not there (not created yet, or its watch event not
/// arrived), from the apiserver's watch cache (`resourceVersion=0`). A stale read only costs a
/// redundant (no-op) apply.
pub(super) async fn child<K>(
    store: &Store<K>,
    api: &Api<K>,
    name: &str,
    namespace: &str,
) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    if let Some(cached) = cached(store, name, namespace) {
        return Ok(Some(cached));
    }
    match api.get_with(name, &GetParams::any()).await {
        Ok(object) => Ok(Some(object)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(Error::kube("get child")(e)),
    }
}

/// [`child`] when the Predictor wants it, else only what the cache holds (a leftover to remove).
async fn wanted_child<K>(
    wanted: bool,
    store: &Store<K>,
    api: &Api<K>,
    name: &str,
    namespace: &str,
) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match wanted {
        true => child(store, api, name, namespace).await,
        false => Ok(cached(store, name, namespace)),
    }
}

/// A child from the operator's cache only.
pub(super) fn cached<K>(store: &Store<K>, name: &str, namespace: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|cached| (*cached).clone())
}

/// Whether `current` already holds every field of `desired` (server defaults may add more), so
/// applying it again would change nothing. Also repairs drift: an edited field makes this false.
pub fn is_applied<K: Serialize>(desired: &K, current: Option<&K>) -> bool {
    let Some(current) = current else {
        return false;
    };
    match (serde_json::to_value(desired), serde_json::to_value(current)) {
        (Ok(d), Ok(c)) => is_subset(&d, &c),
        _ => false,
    }
}

/// `desired ⊆ actual`: objects by key, arrays element by element with equal length, scalars equal.
pub(super) fn is_subset(desired: &serde_json::Value, actual: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| is_subset(v, av))),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(dv, av)| is_subset(dv, av))
        }
        _ => desired == actual,
    }
}

/// [`apply`] when there is something to apply; the applied object, if any.
pub(super) async fn apply_if<K>(
    api: &Api<K>,
    object: Option<&K>,
    ctx: &Context,
    what: &str,
) -> Result<Option<K>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    match object {
        Some(object) => apply(api, object, ctx, what).await.map(Some),
        None => Ok(None),
    }
}

/// Server-side apply of one child under the operator's single field manager.
pub(super) async fn apply<K>(api: &Api<K>, object: &K, ctx: &Context, what: &str) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(Error::kube("apply child"))?;
    ctx.metrics.wrote(what);
    Ok(applied)
}

/// Applies `replicas` to the Deployment under [`HANDOVER_FIELD_MANAGER`], unforced: a conflict
/// (the autoscaler has already set another count) is an error, and the reconcile is retried with
/// fresh objects rather than reverting a scale.
pub(super) async fn hand_over_replicas(
    api: &Api<Deployment>,
    predictor: &Predictor,
    replicas: i32,
    ctx: &Context,
) -> Result<Deployment> {
    let applied = api
        .patch(
            &predictor.name_any(),
            &PatchParams::apply(HANDOVER_FIELD_MANAGER),
            &Patch::Apply(build_replicas_handover(predictor, replicas)),
        )
        .await
        .map_err(Error::kube("hand over replicas"))?;
    ctx.metrics.wrote("deployment");
    Ok(applied)
}

/// Deletes the child `name` (counted as `what`) when there is one to delete. The two children the
/// operator deletes are those nothing can switch off: an autoscaler when autoscaling was turned
/// off (left running, it would keep overriding `spec.replicas`), and a disruption budget when the
/// Predictor has fewer than 2 pods (on one pod a budget protects nothing, or with `minAvailable`
/// blocks every drain of its node).
pub(super) async fn delete_if<K>(
    api: &Api<K>,
    name: Option<&str>,
    ctx: &Context,
    what: &'static str,
) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(name) = name else {
        return Ok(());
    };
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(Error::kube("delete child")(e)),
    }
    ctx.metrics.wrote(what);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::predictor;
    use crate::resources::build_deployment;

    #[test]
    fn applied_means_every_desired_field_is_present() {
        let p = predictor("american", "team-a");
        let desired = build_deployment(&p, &p.spec.image).unwrap();
        assert!(!is_applied(&desired, None));
        // What the apiserver returns: our fields plus defaults and status.
        let mut stored = serde_json::to_value(&desired).unwrap();
        stored["metadata"]["resourceVersion"] = "42".into();
        stored["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            "IfNotPresent".into();
        stored["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst".into();
        stored["status"] = serde_json::json!({"replicas": 2});
        let stored: Deployment = serde_json::from_value(stored).unwrap();
        assert!(is_applied(&desired, Some(&stored)));
        // Someone edited a field we own: apply again.
        let mut edited = stored.clone();
        edited.spec.replicas = Some(5);
        assert!(!is_applied(&desired, Some(&edited)));
        // Someone removed an env var: arrays must match in length.
        let mut edited = stored;
        let container = &mut edited.spec.template.spec.as_mut().unwrap().containers[0];
        container.env.as_mut().unwrap().pop();
        assert!(!is_applied(&desired, Some(&edited)));
    }
}

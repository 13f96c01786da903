//! The reconciler: for one Predictor, validate → check the model (bytes, then quality) and the
//! image → (Canary: measure the candidate) → build → apply → read a stalled rollout's pods →
//! compute status → patch status, each a named step. The steps that touch the network (`apply_*`,
//! `patch_*`, `publish`, `measure`) hold no logic; the logic lives in the pure builders, `canary`,
//! `analysis` and `status`.
//!
//! One job per file, in the order of the steps: `validate`, `children` (reading them, and the
//! requests that change one), `stop` (an invalid spec or a child's name taken: the status says
//! why, nothing is applied), `preflight`, `rollout` (the direct and canary steps, with measuring
//! and retiring), `apply`, `drift` (reading the pods' drift signals), `write` (status and Events, with `own_writes`); `context` (what every
//! reconcile shares); `tests`: whole reconciles against a fake apiserver.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::crd::Predictor;
use crate::error::{Error, Result};
use crate::ownership::owned_by;
use crate::resources::{Served, managed_children, managed_pods};
use crate::status::{self, Observed, Placement, Rollout};
use crate::watch::{self, Scope};

mod apply;
mod children;
mod context;
mod drift;
mod own_writes;
mod preflight;
mod rollout;
mod stop;
#[cfg(test)]
mod tests;
mod validate;
mod write;

use apply::apply_children;
pub use children::is_applied;
use children::read_children;
pub use context::{ChildWriters, Children, Context};
use drift::read_drift;
pub use own_writes::OwnWrites;
use preflight::{Preflight, preflight};
use rollout::{ANALYSIS_POLL, canary_step, direct_step, stalled_pull};
pub use validate::validate;
pub use write::status_patch;
use write::{announce_rollout, update_status};

/// How often a running rollout is looked at again even if its Deployment did not change.
const ROLLOUT_POLL: Duration = Duration::from_secs(10);
/// How often a settled Predictor is looked at again even if nothing changed (drift repair).
const RESYNC: Duration = Duration::from_secs(600);
/// When a refused model is looked at again: storage is fixed by people, not in seconds.
const MODEL_RETRY: Duration = Duration::from_secs(60);
/// When a refused image is looked at again: a registry restarts, or CI pushes the tag the commit
/// already names, within seconds.
const IMAGE_RETRY: Duration = Duration::from_secs(15);
/// When a Predictor whose child's name is taken is looked at again: the object in the way has no
/// label of ours, so no watch says when it is gone.
const CONFLICT_RETRY: Duration = Duration::from_secs(15);

/// Reconciles one Predictor.
pub async fn reconcile(predictor: Arc<Predictor>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    // One span per reconcile, one per step inside it: a log line says which Predictor and step.
    let span = tracing::info_span!("reconcile", predictor = %status::key(&predictor));
    // NB: boxed: unboxed, the steps' nested futures overflow rustc's query depth limit while it
    // lays out this future in a release build ("queries overflow the depth limit!").
    let result = Box::pin(reconcile_steps(&predictor, &ctx))
        .instrument(span)
        .await;
    ctx.metrics.reconciled(started.elapsed());
    result
}

async fn reconcile_steps(predictor: &Predictor, ctx: &Context) -> Result<Action> {
    let name = predictor.name_any();
    let namespace = predictor
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let mut current = read_children(predictor, ctx, &namespace).await?;

    // Step 1: validate; and only the Predictor's own (a child's name taken by an object this
    // Predictor does not control). Either stops the reconcile before any rollout.
    if let Err(reason) = validate(predictor) {
        return stop::invalid_spec(predictor, &current, reason, ctx).await;
    }
    if let Some(conflict) = current.conflict(predictor) {
        return stop::child_conflict(predictor, &current, conflict, ctx).await;
    }
    // A leftover canary that is not the Predictor's own is not retired either.
    current.canary = current.canary.take().filter(|d| owned_by(d, predictor));

    // Step 2: the pre-flights.
    let served = current.deployment.as_ref().map(Served::of);
    let checks = preflight(predictor, ctx, served.as_ref(), &namespace).await;

    // Steps 3 and 4: where the rollout stands (Canary: measuring the candidate's canary pods when
    // they are all ready) and what to build (pure).
    let pod_image = checks.pod_image(predictor);
    let step = match predictor.spec.canary() {
        Some(_) => {
            let canary = (current.canary.as_ref(), current.canary_service.as_ref());
            let stable = current.deployment.as_ref();
            canary_step(predictor, ctx, &namespace, pod_image, stable, canary).await?
        }
        None => direct_step(predictor, pod_image, current.canary.as_ref())?,
    };

    // Step 5: apply what differs.
    let applied = apply_children(predictor, ctx, &namespace, &current, &step).await?;
    if let Some(result) = step.ended {
        ctx.metrics.canary_verdict(result);
    }

    // Step 6: during a rollout left as it was, whether its new pods cannot pull their image.
    let pull_failure = match (&applied.deployment, &current.deployment) {
        (None, Some(existing)) => stalled_pull(ctx, &namespace, &name, existing).await,
        _ => None,
    };

    // Step 7: compute the status (pure) and write it if it changed; announce a rollout.
    let deployment = applied.deployment.as_ref().or(current.deployment.as_ref());
    let placement = ctx.children.placement(predictor);
    // A pod cache that does not agree with the Deployment yet is looked at again like a rollout.
    let rolling = matches!(status::rollout_of(deployment), Rollout::InProgress(_))
        || placement.is_some_and(|p| !p.agrees_with(deployment));
    let next = next_look(&checks, step.analysing, rolling);
    // Step 7a: drift (while asked for): the last reading, the pods read again when it is due.
    let (drift, drift_due) = read_drift(predictor, ctx, &namespace).await;
    let next = drift_due.map_or(next, |due| due.min(next));
    let autoscaler = applied
        .autoscaler
        .as_ref()
        .or(current.autoscaler.as_ref())
        .filter(|_| predictor.spec.autoscaling.is_some());
    let observed = Observed {
        drift,
        ..observe(deployment, checks, pull_failure, autoscaler, placement)
    };
    let announce = async {
        if let Some(applied) = &applied.deployment {
            announce_rollout(predictor, current.deployment.as_ref(), applied, ctx).await;
        }
    };
    let ((), deferred) = tokio::join!(
        announce,
        update_status(predictor, &observed, &step.view, ctx)
    );
    Ok(Action::requeue(deferred?.map_or(next, |d| d.min(next))))
}

/// What the status is computed from.
fn observe<'a>(
    deployment: Option<&'a Deployment>,
    checks: Preflight,
    pull_failure: Option<String>,
    autoscaler: Option<&'a HorizontalPodAutoscaler>,
    placement: Option<Placement>,
) -> Observed<'a> {
    Observed {
        deployment,
        model: checks.model,
        quality: checks.quality,
        image: checks.image,
        pull_failure,
        invalid: None,
        conflict: None,
        autoscaler,
        placement,
        drift: None,
    }
}

/// When to look again though nothing watched changed: the model store, the registry or a Secret
/// may be fixed without the Predictor changing; a canary is measured again; and a rollout is
/// looked at while it runs (pods stuck pulling change nothing that is watched), as are pods the
/// pod cache has not caught up with (their changes trigger nothing).
fn next_look(checks: &Preflight, analysing: bool, rolling: bool) -> Duration {
    if checks.refused_image() {
        IMAGE_RETRY
    } else if checks.refused_model() {
        MODEL_RETRY
    } else if analysing {
        ANALYSIS_POLL
    } else if rolling {
        ROLLOUT_POLL
    } else {
        RESYNC
    }
}

/// What to do after a failed reconcile.
pub fn error_policy(predictor: Arc<Predictor>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    tracing::warn!(predictor = %status::key(&predictor), %error, "reconcile failed");
    Action::requeue(error.requeue_after())
}

/// Runs the controller over `scope` until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(
    ctx: Arc<Context>,
    writers: ChildWriters,
    scope: &Scope,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    // One watch per namespace of the scope (one in all), one store of Predictors over them.
    let (predictors, writer) = reflector::store();
    let watches = scope
        .apis::<Predictor>(&client)
        .into_iter()
        .map(|(ns, api)| {
            let config = watcher::Config::default().any_semantic();
            (ns, watcher(api, config).default_backoff())
        })
        .collect();
    // NB: the pods' watch fills their cache and triggers no reconcile. What the status says of
    // pods (ready, on how many nodes) changes only when a pod turns ready or not, comes or goes,
    // and each of those changes the Deployment's status a moment later (its ReplicaSet counts the
    // pod: two controller writes after the pod's own event), so the Deployment's watch triggers
    // the reconcile, which finds the pod's change in the cache. A pod trigger would only add
    // reconciles, and status writes half-way between the two events. Should the cache lag all the
    // same, the status does not trust it and looks again ([`Placement::agrees_with`]).
    let pods = cached(
        &client,
        scope,
        writers.pods,
        watcher::Config::default().labels_from(&managed_pods()),
        status::keep_placement,
    );
    let drift = forget_deleted(predictors.clone(), ctx.clone());
    let controller = Controller::for_stream(
        watch::reflect(writer, watches).applied_objects(),
        predictors,
    )
    .owns_stream(cached_children(&client, scope, writers.deployments))
    .owns_stream(cached_children(&client, scope, writers.services))
    .owns_stream(cached_children(&client, scope, writers.autoscalers))
    .owns_stream(cached_children(&client, scope, writers.disruption_budgets))
    // NB: the debounce folds the burst of status updates a rollout produces into one reconcile.
    .with_config(
        ControllerConfig::default()
            .concurrency(concurrency)
            .debounce(Duration::from_millis(300)),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((object, _)) => tracing::debug!(predictor = %object, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "controller event"),
        }
    });
    // The pod cache is filled while the controller runs, and stops with it (the watch itself
    // never ends: were it to, the controller would go on without it).
    let pods = pods
        .chain(futures::stream::pending())
        .for_each(|_| std::future::ready(()));
    tokio::select! {
        () = controller => {}
        () = pods => {}
        () = drift => {}
    }
}

/// How often the drift memory of deleted Predictors is dropped.
const DRIFT_FORGET_EVERY: Duration = Duration::from_secs(60);

/// Drops, every [`DRIFT_FORGET_EVERY`], the drift history and metric series of the Predictors no
/// longer in `predictors` (a deletion brings no reconcile, and a relist may hide it). Never ends.
async fn forget_deleted(predictors: reflector::Store<Predictor>, ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(DRIFT_FORGET_EVERY);
    loop {
        tick.tick().await;
        // Before the first list the store is empty, not the Predictors.
        if !matches!(
            futures::FutureExt::now_or_never(predictors.wait_until_ready()),
            Some(Ok(()))
        ) {
            continue;
        }
        let uids = predictors.state().iter().filter_map(|p| p.uid()).collect();
        for (namespace, name) in ctx.drift.keep_only(&uids) {
            ctx.metrics.forget_drift(&namespace, &name);
        }
    }
}

/// Watches the children this operator manages in `scope` (by label: less to watch, and nothing else
/// triggers reconciles), keeps them in `writer`'s cache, and yields each change as a reconcile trigger.
fn cached_children<K>(
    client: &Client,
    scope: &Scope,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let config = watcher::Config::default().labels_from(&managed_children());
    cached(client, scope, writer, config, strip_managed_fields)
}

/// Watches the objects of kind `K` that `config` selects in `scope` (one watch per namespace of
/// the scope), keeps them in `writer`'s cache as `trim` leaves them, and yields each change.
fn cached<K>(
    client: &Client,
    scope: &Scope,
    writer: reflector::store::Writer<K>,
    config: watcher::Config,
    trim: impl Fn(&mut K) + Clone + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let watches = scope
        .apis::<K>(client)
        .into_iter()
        .map(|(ns, api)| {
            let events = watcher(api, config.clone())
                .default_backoff()
                .modify(trim.clone());
            (ns, events)
        })
        .collect();
    watch::reflect(writer, watches).touched_objects()
}

/// `object` without its `managedFields`: nobody reads who manages which field from the cache, and
/// it is a third of each object.
fn strip_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

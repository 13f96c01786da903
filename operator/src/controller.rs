//! The reconciler: for one Predictor, validate → check the model (bytes, then quality) and the
//! image → (Canary: measure the candidate) → build → apply → read a stalled rollout's pods →
//! compute status → patch status, each a named step. The steps that touch the network (`apply_*`,
//! `patch_*`, `publish`, `measure`) hold no logic; the logic lives in the pure builders, `canary`,
//! `analysis` and `status`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, GetParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use predictor::source::redact;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::analysis::{Samples, Verdict, judge};
use crate::canary::{self, Progress, Stage};
use crate::crd::{Candidate, ModelRef, Predictor, PredictorStatus};
use crate::error::{Error, Result};
use crate::image::ImageChecker;
use crate::metrics::Metrics;
use crate::model_access;
use crate::model_check::ModelChecker;
use crate::ownership::{self, Conflict, owned_by};
use crate::quality::QualityGate;
use crate::resources::{
    FIELD_MANAGER, HANDOVER_FIELD_MANAGER, Served, build_autoscaler, build_canary_deployment,
    build_canary_service, build_deployment, build_replicas_handover, build_service, canary_name,
    selector_labels, stable_replicas,
};
use crate::scrape::{self, PodMetrics};
use crate::status::{
    self, ImageCheck, ModelCheck, Observed, QualityCheck, Rollout, RolloutView,
    compute_status_with_rollout, status_events,
};
use crate::watch::{self, Scope};

/// How often a running rollout is looked at again even if its Deployment did not change.
const ROLLOUT_POLL: Duration = Duration::from_secs(10);
/// How often a settled Predictor is looked at again even if nothing changed (drift repair).
const RESYNC: Duration = Duration::from_secs(600);
/// How long a new rollout's progress details (pod counts, messages) go unwritten: a quick rollout
/// then costs two status writes (begun, done) instead of one per step of the Deployment controller.
const PROGRESS_QUIET: Duration = Duration::from_secs(10);
/// When a refused model is looked at again: storage is fixed by people, not in seconds.
const MODEL_RETRY: Duration = Duration::from_secs(60);
/// How often a canary under analysis is measured again.
const ANALYSIS_POLL: Duration = Duration::from_secs(10);
/// When a refused image is looked at again: a registry restarts, or CI pushes the tag the commit
/// already names, within seconds.
const IMAGE_RETRY: Duration = Duration::from_secs(15);
/// When a Predictor whose child's name is taken is looked at again: the object in the way has no
/// label of ours, so no watch says when it is gone.
const CONFLICT_RETRY: Duration = Duration::from_secs(15);

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// Who the operator's Events say they come from.
    pub reporter: Reporter,
    pub checker: ModelChecker,
    /// The offline quality gate (`spec.validation`).
    pub gate: QualityGate,
    pub images: ImageChecker,
    pub metrics: Arc<Metrics>,
    /// The operator's Deployments, Services and HorizontalPodAutoscalers as its watches last saw
    /// them.
    pub children: Children,
    /// Where a canary analysis reads the pods' counters from.
    pub pod_metrics: Arc<dyn PodMetrics>,
}

/// Caches of the children, filled by the watches that also trigger reconciles: reading a child
/// costs the apiserver nothing (at 1,000 Predictors, GETs were a third of the operator's requests).
#[derive(Clone)]
pub struct Children {
    deployments: Store<Deployment>,
    services: Store<Service>,
    autoscalers: Store<HorizontalPodAutoscaler>,
}

/// The write side of [`Children`], handed to [`run`].
pub struct ChildWriters {
    deployments: reflector::store::Writer<Deployment>,
    services: reflector::store::Writer<Service>,
    autoscalers: reflector::store::Writer<HorizontalPodAutoscaler>,
}

impl Children {
    /// Empty caches and their writers.
    pub fn new() -> (Self, ChildWriters) {
        let (deployments, deployment_writer) = reflector::store();
        let (services, service_writer) = reflector::store();
        let (autoscalers, autoscaler_writer) = reflector::store();
        (
            Self {
                deployments,
                services,
                autoscalers,
            },
            ChildWriters {
                deployments: deployment_writer,
                services: service_writer,
                autoscalers: autoscaler_writer,
            },
        )
    }
}

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
        predictor::source::Location::parse(&spec.model.url)
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

/// Reconciles one Predictor.
pub async fn reconcile(predictor: Arc<Predictor>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_steps(&predictor, &ctx).await;
    ctx.metrics.reconciled(started.elapsed());
    result
}

async fn reconcile_steps(predictor: &Predictor, ctx: &Context) -> Result<Action> {
    let name = predictor.name_any();
    let namespace = predictor
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &namespace);
    let Current {
        deployment: current,
        service: current_service,
        autoscaler: current_autoscaler,
        canary: current_canary,
        canary_service: current_canary_service,
    } = read_children(predictor, ctx, &namespace).await?;

    // Step 1: validate.
    if let Err(reason) = validate(predictor) {
        tracing::warn!(predictor = %status::key(predictor), %reason, "invalid spec");
        let observed = Observed {
            deployment: current.as_ref(),
            model: ModelCheck::Unchecked {
                reason: status::reason::INVALID_SPEC.into(),
                message: "not checked: the spec is invalid".into(),
            },
            quality: QualityCheck::Unchecked {
                reason: status::reason::INVALID_SPEC.into(),
                message: "not measured: the spec is invalid".into(),
            },
            image: ImageCheck::Unchecked {
                reason: status::reason::INVALID_SPEC.into(),
                message: "not resolved: the spec is invalid".into(),
            },
            pull_failure: None,
            invalid: Some(reason.clone()),
            conflict: None,
            autoscaler: current_autoscaler.as_ref(),
        };
        // An invalid spec is not a rollout: nothing is deferred.
        update_status(predictor, &observed, &previous_view(predictor), ctx).await?;
        return Err(Error::InvalidSpec { name, reason });
    }

    // Step 1b: only the Predictor's own. An object under a child's name that this Predictor does
    // not control is never applied, scaled, retired or deleted: the Predictor says so until it is
    // gone (nothing watches an object without our labels, hence the poll).
    let conflicts = [
        current.as_ref().and_then(|d| Conflict::of(d, predictor)),
        current_service
            .as_ref()
            .and_then(|s| Conflict::of(s, predictor)),
        current_autoscaler
            .as_ref()
            .filter(|_| predictor.spec.autoscaling.is_some())
            .and_then(|a| Conflict::of(a, predictor)),
        current_canary
            .as_ref()
            .filter(|_| predictor.spec.canary().is_some())
            .and_then(|d| Conflict::of(d, predictor)),
        current_canary_service
            .as_ref()
            .and_then(|s| Conflict::of(s, predictor)),
    ];
    let conflicts: Vec<Conflict> = conflicts.into_iter().flatten().collect();
    if let Some(conflict) = ownership::describe(&conflicts) {
        tracing::warn!(predictor = %status::key(predictor), %conflict, "child conflict");
        let observed = Observed {
            deployment: current.as_ref().filter(|d| owned_by(*d, predictor)),
            model: ModelCheck::Unchecked {
                reason: status::reason::CHILD_CONFLICT.into(),
                message: "not checked: a child's name is taken, see Degraded".into(),
            },
            quality: QualityCheck::Unchecked {
                reason: status::reason::CHILD_CONFLICT.into(),
                message: "not measured: a child's name is taken, see Degraded".into(),
            },
            image: ImageCheck::Unchecked {
                reason: status::reason::CHILD_CONFLICT.into(),
                message: "not resolved: a child's name is taken, see Degraded".into(),
            },
            pull_failure: None,
            invalid: None,
            conflict: Some(conflict),
            autoscaler: None,
        };
        let deferred = update_status(predictor, &observed, &previous_view(predictor), ctx).await?;
        return Ok(Action::requeue(
            deferred.map_or(CONFLICT_RETRY, |d| d.min(CONFLICT_RETRY)),
        ));
    }
    // A leftover canary that is not the Predictor's own is not retired either.
    let current_canary = current_canary.filter(|d| owned_by(d, predictor));

    // Step 2: pre-flight checks of the model (its bytes, then its quality) and the image, each
    // only when it differs from what the pods run.
    let served = current.as_ref().map(Served::of);
    let running = served
        .as_ref()
        .is_some_and(|s| s.runs_model(&predictor.spec.model));
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let model_checks = async {
        // The store access the pods will have (spec.model.s3 and its credentials Secret).
        let (model, access) = model_access::check_model(
            &predictor.spec.model,
            running,
            &secrets,
            &ctx.checker,
            &ctx.metrics,
        )
        .instrument(tracing::info_span!("model", predictor = %status::key(predictor)))
        .await;
        let quality = ctx
            .gate
            .check(
                &predictor.spec,
                &model,
                served.as_ref(),
                &access,
                &ctx.metrics,
            )
            .await;
        // Checked and gated: the spooled copy is not needed any more.
        ctx.checker.release(&predictor.spec.model);
        (model, quality)
    };
    let ((model, quality), image) = tokio::join!(
        model_checks,
        ctx.images
            .check(predictor, served.as_ref(), &secrets, &ctx.metrics),
    );

    // Step 3 (Canary only): where the rollout stands, measuring the candidate's canary pods
    // when they are all ready.
    // Steps 4 and 5: build (pure) and apply what differs. A refused model (bytes or quality) or
    // image leaves the Deployment untouched.
    let pod_image = match (&model, image.pod_image(predictor)) {
        (ModelCheck::Rejected { .. }, _) | (_, None) => None,
        _ if quality.refuses() => None,
        (_, Some(pod_image)) => Some(pod_image),
    };
    let step = match predictor.spec.canary() {
        Some(_) => {
            let canary = (current_canary.as_ref(), current_canary_service.as_ref());
            canary_step(
                predictor,
                ctx,
                &namespace,
                pod_image,
                current.as_ref(),
                canary,
            )
            .await?
        }
        None => direct_step(predictor, pod_image, current_canary.as_ref())?,
    };
    let service =
        Some(build_service(predictor)?).filter(|s| !is_applied(s, current_service.as_ref()));
    let deployment = step
        .stable
        .as_ref()
        .filter(|d| !is_applied(*d, current.as_ref()));
    let autoscaler = build_autoscaler(predictor)?;
    let autoscaler_changed = autoscaler
        .as_ref()
        .filter(|a| !is_applied(*a, current_autoscaler.as_ref()));
    // Autoscaled: before an apply without the replica count, the count is handed over (see
    // `build_replicas_handover`; the operator may still own it from before autoscaling, until
    // the autoscaler's first scale), and a Deployment created now gets `minReplicas` right after.
    let handover = predictor
        .spec
        .autoscaling
        .as_ref()
        .filter(|_| deployment.is_some());
    if let (Some(_), Some(current)) = (handover, &current) {
        hand_over_replicas(
            &deployments,
            predictor,
            stable_replicas(predictor, Some(current)),
            ctx,
        )
        .await?;
    }
    // Only the Predictor's own: a HorizontalPodAutoscaler of the same name that someone else
    // made (read by name when not in the cache) is not the operator's to delete.
    let stale_autoscaler = current_autoscaler
        .as_ref()
        .filter(|a| autoscaler.is_none() && owned_by(*a, predictor))
        .map(|_| name.as_str());
    let (_, applied, _, _, _, applied_autoscaler, _) = futures::try_join!(
        apply_if(&services, service.as_ref(), ctx, "service"),
        apply_if(&deployments, deployment, ctx, "deployment"),
        apply_if(&deployments, step.canary.as_ref(), ctx, "deployment"),
        apply_if(&services, step.canary_service.as_ref(), ctx, "service"),
        retire_if(&deployments, step.retire.as_deref(), ctx),
        apply_if(&autoscalers, autoscaler_changed, ctx, "autoscaler"),
        delete_if(&autoscalers, stale_autoscaler, ctx),
    )?;
    let applied = match (handover, &current, applied) {
        (Some(autoscaling), None, Some(_)) => {
            Some(hand_over_replicas(&deployments, predictor, autoscaling.min_replicas, ctx).await?)
        }
        (_, _, applied) => applied,
    };
    if let Some(result) = step.ended {
        ctx.metrics.canary_verdict(result);
    }

    // Step 5: during a rollout left as it was, whether its new pods cannot pull their image.
    let pull_failure = match (&applied, &current) {
        (None, Some(current)) => stalled_pull(ctx, &namespace, &name, current).await,
        _ => None,
    };

    // Steps 6 and 7: compute the status (pure) and patch it if it changed; announce a rollout.
    let refused_model = matches!(model, ModelCheck::Rejected { .. }) || quality.refuses();
    let refused_image = matches!(image, ImageCheck::Rejected { .. });
    let observed = Observed {
        deployment: applied.as_ref().or(current.as_ref()),
        model,
        quality,
        image,
        pull_failure,
        invalid: None,
        conflict: None,
        autoscaler: applied_autoscaler
            .as_ref()
            .or(current_autoscaler.as_ref())
            .filter(|_| predictor.spec.autoscaling.is_some()),
    };
    let rolling = matches!(
        status::rollout_of(observed.deployment),
        Rollout::InProgress(_)
    );
    let announce = async {
        if let Some(applied) = &applied {
            announce_rollout(predictor, current.as_ref(), applied, ctx).await;
        }
    };
    let ((), deferred) = tokio::join!(
        announce,
        update_status(predictor, &observed, &step.view, ctx)
    );

    // The model store, the registry or a Secret may be fixed without the Predictor changing:
    // look again later.
    // A rollout is looked at while it runs, too: pods stuck pulling change nothing that is watched.
    let next = if refused_image {
        IMAGE_RETRY
    } else if refused_model {
        MODEL_RETRY
    } else if step.analysing {
        ANALYSIS_POLL
    } else if rolling {
        ROLLOUT_POLL
    } else {
        RESYNC
    };
    Ok(Action::requeue(deferred?.map_or(next, |d| d.min(next))))
}

/// What one reconcile does with a Predictor's Deployments beside its Service, and what the status
/// says of its rollout.
#[derive(Default)]
struct Step {
    /// The stable Deployment to apply if it differs (`None`: leave it as it is).
    stable: Option<Deployment>,
    /// The canary Deployment and Service to apply (only what differs from what exists).
    canary: Option<Deployment>,
    canary_service: Option<Service>,
    /// Name of a canary Deployment to scale to zero: rolled back, promoted, or no longer wanted.
    /// (Scaled, not deleted: the operator deletes no Deployment; the garbage collector removes its
    /// children with the Predictor.)
    retire: Option<String>,
    view: RolloutView,
    /// A verdict that ended an analysis (`promoted` or the rollback's reason), for the metric.
    ended: Option<&'static str>,
    /// A canary is being measured: look again soon.
    analysing: bool,
}

/// A RollingUpdate Predictor: the stable Deployment takes the spec; a canary left from when it was
/// a Canary Predictor (its own, seen in the cache; it is not asked for) is retired.
fn direct_step(
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

fn has_pods(deployment: &Deployment) -> bool {
    deployment.spec.replicas.unwrap_or(1) > 0
}

/// A Canary Predictor: see [`canary::stage`]. While the candidate is analysed, the stable
/// Deployment keeps what it serves and the canary runs the candidate; once every canary pod is
/// ready, the pods are measured and judged: a pass promotes (the stable Deployment takes the
/// candidate; the canary is retired when that rollout is complete), a failure retires the canary.
async fn canary_step(
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
fn is_applied_opt(desired: Option<&Deployment>, current: Option<&Deployment>) -> bool {
    desired.is_none_or(|d| is_applied(d, current))
}

/// What the stable pods serve, for `status.lastGoodModel` and `lastGoodImage`.
fn last_good(served: &Served) -> Option<(ModelRef, String)> {
    Some((
        ModelRef {
            url: redact(served.model_url.as_deref()?),
            sha256: served.model_sha256.clone()?,
        },
        served.pod_image.clone()?,
    ))
}

/// The rollout part of the status as it is (for a reconcile that changes nothing about it).
fn previous_view(predictor: &Predictor) -> RolloutView {
    let status = predictor.status.clone().unwrap_or_default();
    RolloutView {
        rollout: status.rollout,
        last_good: status.last_good_model.zip(status.last_good_image),
    }
}

/// The stable pods' and the candidate's counters, read from the ready pods' `/metrics`. A pod
/// that cannot be listed or read only costs its samples: the analysis waits for more.
async fn measure(
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
async fn retire_if(api: &Api<Deployment>, name: Option<&str>, ctx: &Context) -> Result<()> {
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
async fn stalled_pull(
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

/// The children one reconcile reads, as they are (the Predictor's own or not: see
/// [`ownership`]).
struct Current {
    deployment: Option<Deployment>,
    service: Option<Service>,
    autoscaler: Option<HorizontalPodAutoscaler>,
    /// The canary Deployment: asked for when the Predictor is a Canary one, else only a leftover
    /// in the cache (to retire).
    canary: Option<Deployment>,
    /// The canary Service, when the Predictor is a Canary one.
    canary_service: Option<Service>,
}

/// Reads the children, independent requests together: at scale the apiserver's latency, not the
/// operator, bounds how many Predictors are reconciled per second.
async fn read_children(predictor: &Predictor, ctx: &Context, namespace: &str) -> Result<Current> {
    let name = predictor.name_any();
    let canary = canary_name(&name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    let wants_canary = predictor.spec.canary().is_some();
    // An autoscaler is looked for in the apiserver only when the Predictor wants one; one left
    // from when it did (to be deleted) is in the cache, which sees every autoscaler it made.
    let autoscaler = async {
        match predictor.spec.autoscaling {
            Some(_) => child(&ctx.children.autoscalers, &autoscalers, &name, namespace).await,
            None => Ok(cached(&ctx.children.autoscalers, &name, namespace)),
        }
    };
    let canary_deployment = async {
        match wants_canary {
            true => child(&ctx.children.deployments, &deployments, &canary, namespace).await,
            false => Ok(cached(&ctx.children.deployments, &canary, namespace)),
        }
    };
    let canary_service = async {
        match wants_canary {
            true => child(&ctx.children.services, &services, &canary, namespace).await,
            false => Ok(None),
        }
    };
    let (deployment, service, autoscaler, canary, canary_service) = futures::try_join!(
        child(&ctx.children.deployments, &deployments, &name, namespace),
        child(&ctx.children.services, &services, &name, namespace),
        autoscaler,
        canary_deployment,
        canary_service,
    )?;
    Ok(Current {
        deployment,
        service,
        autoscaler,
        canary,
        canary_service,
    })
}

/// A child from the operator's cache; if it is not there (not created yet, or its watch event not
/// arrived), from the apiserver's watch cache (`resourceVersion=0`). A stale read only costs a
/// redundant (no-op) apply.
async fn child<K>(store: &Store<K>, api: &Api<K>, name: &str, namespace: &str) -> Result<Option<K>>
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

/// A child from the operator's cache only.
fn cached<K>(store: &Store<K>, name: &str, namespace: &str) -> Option<K>
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
fn is_subset(desired: &serde_json::Value, actual: &serde_json::Value) -> bool {
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
async fn apply_if<K>(
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
async fn apply<K>(api: &Api<K>, object: &K, ctx: &Context, what: &str) -> Result<K>
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
async fn hand_over_replicas(
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

/// Deletes the autoscaler `name` when there is one to delete: autoscaling was turned off, and a
/// HorizontalPodAutoscaler left running would keep overriding `spec.replicas`. (The one child
/// the operator deletes: nothing can switch an autoscaler off.)
async fn delete_if(
    api: &Api<HorizontalPodAutoscaler>,
    name: Option<&str>,
    ctx: &Context,
) -> Result<()> {
    let Some(name) = name else {
        return Ok(());
    };
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(Error::kube("delete autoscaler")(e)),
    }
    ctx.metrics.wrote("autoscaler");
    Ok(())
}

/// Events for a Deployment created or changed (`after`) by this reconcile.
async fn announce_rollout(
    predictor: &Predictor,
    before: Option<&Deployment>,
    after: &Deployment,
    ctx: &Context,
) {
    let wanted = Served::of(after);
    let Some(old) = before.map(Served::of) else {
        let note = format!(
            "created Deployment and Service for version {} with image {} and model {}",
            wanted.version.as_deref().unwrap_or("?"),
            show(&wanted.pod_image),
            status::short(&predictor.spec.model.sha256)
        );
        publish(predictor, ctx, false, status::reason::CREATED, note).await;
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

fn show(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(none)")
}

/// Computes the status and writes it only if it differs from what the object already says, and
/// not for mere progress early in a rollout: then it returns when to look again.
async fn update_status(
    predictor: &Predictor,
    observed: &Observed<'_>,
    view: &RolloutView,
    ctx: &Context,
) -> Result<Option<Duration>> {
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
    patch_status(predictor, &new, ctx).await?;
    for event in status_events(&old, &new) {
        publish(predictor, ctx, event.warning, &event.reason, event.note).await;
    }
    Ok(None)
}

/// Server-side apply of the status under the operator's field manager (like the children): the
/// apiserver merges by ownership, and a field the operator stops setting is removed.
async fn patch_status(
    predictor: &Predictor,
    status: &PredictorStatus,
    ctx: &Context,
) -> Result<()> {
    let api: Api<Predictor> = Api::namespaced(
        ctx.client.clone(),
        &predictor.namespace().unwrap_or_default(),
    );
    let patch = status_patch(status);
    api.patch_status(
        &predictor.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube("apply status"))?;
    ctx.metrics.wrote("status");
    Ok(())
}

/// The apply configuration of a status write: apiVersion, kind and the status, nothing else.
pub fn status_patch(status: &PredictorStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": Predictor::api_version(&()),
        "kind": Predictor::kind(&()),
        "status": status,
    })
}

/// Publishes an Event on the Predictor; a failure is logged, never fails the reconcile.
async fn publish(predictor: &Predictor, ctx: &Context, warning: bool, reason: &str, note: String) {
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
            tracing::warn!(predictor = %status::key(predictor), error = %e, "cannot publish event")
        }
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
    Controller::for_stream(
        watch::reflect(writer, watches).applied_objects(),
        predictors,
    )
    .owns_stream(cached_children(&client, scope, writers.deployments))
    .owns_stream(cached_children(&client, scope, writers.services))
    .owns_stream(cached_children(&client, scope, writers.autoscalers))
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
    })
    .await;
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
    let watches = scope
        .apis::<K>(client)
        .into_iter()
        .map(|(ns, api)| {
            let config = watcher::Config::default()
                .labels("app.kubernetes.io/managed-by=predictor-operator");
            let events = watcher(api, config)
                .default_backoff()
                // Nobody reads who manages which field from the cache; it is a third of each object.
                .modify(|object| object.meta_mut().managed_fields = None);
            (ns, events)
        })
        .collect();
    watch::reflect(writer, watches).touched_objects()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::predictor;
    use crate::resources::build_deployment;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

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
}

/// Whole reconciles against a fake apiserver that checks every call the operator makes.
#[cfg(test)]
mod reconcile_tests {
    use super::*;
    use crate::crd::{DataSpec, ModelSpec, ValidationSpec};
    use crate::fixtures::apiserver::{self, ApiServer, Call};
    use crate::fixtures::{
        IMAGE_DIGEST, SHA_A, deployment_of, predictor, resolved, shuffled_labels, time,
    };
    use crate::resources::build_service;
    use crate::status::{
        DEGRADED, IMAGE_RESOLVED, MODEL_VERIFIED, PROGRESSING, QUALITY_GATE, READY, compute_status,
        find_condition, reason,
    };
    use ::predictor::testing::FileServer;
    use http::Method;
    use tokio::task::JoinHandle;

    const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/team-a/deployments/american";
    const SERVICE: &str = "/api/v1/namespaces/team-a/services/american";
    const STATUS: &str = "/apis/mlops.dev/v1alpha1/namespaces/team-a/predictors/american/status";
    const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

    fn context(client: Client, checker: ModelChecker) -> Arc<Context> {
        Arc::new(Context {
            client,
            reporter: Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some("test".into()),
            },
            gate: QualityGate::new(&checker, 1 << 20),
            checker,
            images: ImageChecker::new(true, Duration::from_secs(5)).unwrap(),
            metrics: Arc::default(),
            children: Children::new().0,
            pod_metrics: Arc::new(FakePodMetrics::default()),
        })
    }

    /// Pod metrics from memory: `address` → exposition text; any other address fails.
    #[derive(Default)]
    struct FakePodMetrics(std::collections::BTreeMap<String, String>);

    impl PodMetrics for FakePodMetrics {
        fn fetch<'a>(
            &'a self,
            address: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<String, String>> {
            let text = self
                .0
                .get(address)
                .cloned()
                .ok_or_else(|| format!("no pod at {address}"));
            Box::pin(async move { text })
        }
    }

    fn context_with(client: Client, checker: ModelChecker, pods: FakePodMetrics) -> Arc<Context> {
        let mut ctx = Arc::into_inner(context(client, checker)).expect("one owner");
        ctx.pod_metrics = Arc::new(pods);
        Arc::new(ctx)
    }

    fn checker() -> ModelChecker {
        crate::fixtures::checker(true, 1 << 20, Duration::from_secs(5))
    }

    /// `p` with its image pinned by digest in the spec: the image check needs no registry.
    fn pinned_by_spec(mut p: Predictor) -> Predictor {
        p.spec.image = format!("{}@{IMAGE_DIGEST}", p.spec.image);
        p
    }

    fn start(p: &Predictor, ctx: &Arc<Context>) -> JoinHandle<Result<Action>> {
        tokio::spawn(reconcile(Arc::new(p.clone()), ctx.clone()))
    }

    /// A reconcile of `p` whose model was verified earlier (no download in the test).
    fn start_verified(p: &Predictor) -> (Arc<Context>, ApiServer, JoinHandle<Result<Action>>) {
        let checker = checker();
        checker.remember(&p.spec.model);
        let (client, server) = apiserver::client();
        let ctx = context(client, checker);
        let reconcile = start(p, &ctx);
        (ctx, server, reconcile)
    }

    /// The reconcile's result; fails on any request made instead of finishing.
    async fn finished(reconcile: JoinHandle<Result<Action>>, server: &mut ApiServer) -> Action {
        tokio::select! {
            done = reconcile => done.expect("reconcile panicked").expect("reconcile succeeded"),
            call = server.next() => panic!("unexpected request {}", call.line()),
        }
    }

    /// Answers the GETs of both children (the operator sends them together, in either order).
    async fn answer_child_reads(
        server: &mut ApiServer,
        deployment: Option<&Deployment>,
        service: Option<&Service>,
    ) {
        answer_reads(server, deployment, service, &[]).await;
    }

    /// Answers the GETs of the Deployment, the Service and the objects at `missing` (404), sent
    /// together in any order.
    async fn answer_reads(
        server: &mut ApiServer,
        deployment: Option<&Deployment>,
        service: Option<&Service>,
        missing: &[&str],
    ) {
        let mut answers = vec![(DEPLOYMENT, json(deployment)), (SERVICE, json(service))];
        answers.extend(missing.iter().map(|path| (*path, None)));
        answer_gets(server, &answers).await;
    }

    fn json(object: Option<&impl serde::Serialize>) -> Option<serde_json::Value> {
        object.map(|o| serde_json::to_value(o).expect("serialisable"))
    }

    /// Answers one GET of each path in `answers` (the object, or 404), sent together in any
    /// order; fails on any other request.
    async fn answer_gets(server: &mut ApiServer, answers: &[(&str, Option<serde_json::Value>)]) {
        let mut seen = Vec::new();
        for _ in 0..answers.len() {
            let call = server.next().await;
            assert_eq!(call.method, Method::GET, "{}", call.line());
            seen.push(call.path.clone());
            match answers.iter().find(|(path, _)| *path == call.path) {
                Some((_, Some(object))) => call.reply(object),
                Some((_, None)) => call.not_found(),
                None => panic!("unexpected request {}", call.line()),
            }
        }
        seen.sort();
        let mut expected: Vec<String> = answers.iter().map(|(p, _)| p.to_string()).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    /// Answers `n` server-side applies by echoing them; their paths, sorted.
    async fn answer_applies(server: &mut ApiServer, n: usize) -> Vec<String> {
        let mut applied = Vec::new();
        for _ in 0..n {
            let call = server.next().await;
            call.assert_apply(FIELD_MANAGER);
            applied.push(call.path.clone());
            call.echo();
        }
        applied.sort();
        applied
    }

    /// Answers the status apply and one Event per reason in `event_reasons`, which go out together in
    /// any order: `check` looks at the status, each Event says a reason not yet seen.
    async fn answer_status_and_events(
        server: &mut ApiServer,
        p: &Predictor,
        event_reasons: &[&str],
        check: impl FnOnce(&PredictorStatus),
    ) {
        let mut check = Some(check);
        let mut reasons = event_reasons.to_vec();
        for _ in 0..=event_reasons.len() {
            let call = server.next().await;
            match call.path.as_str() {
                STATUS => {
                    let status: PredictorStatus =
                        serde_json::from_value(call.body["status"].clone()).unwrap();
                    check.take().expect("one status")(&status);
                    reply_status(call, p);
                }
                EVENTS => {
                    assert_eq!(call.line(), format!("POST {EVENTS}"));
                    let reason = call.body["reason"].as_str().unwrap_or_default();
                    let at = reasons.iter().position(|r| *r == reason);
                    let at = at.unwrap_or_else(|| panic!("Event {reason:?}, left {reasons:?}"));
                    reasons.swap_remove(at);
                    call.echo();
                }
                _ => panic!("unexpected request {}", call.line()),
            }
        }
        assert!(check.is_none(), "no status apply");
    }

    /// Answers a status apply with the Predictor carrying the applied status.
    fn reply_status(call: Call, p: &Predictor) {
        call.assert_apply(FIELD_MANAGER);
        assert_eq!(call.body["apiVersion"], "mlops.dev/v1alpha1");
        assert_eq!(call.body["kind"], "Predictor");
        assert_eq!(
            call.body.as_object().map(|o| o.len()),
            Some(3),
            "only apiVersion, kind and status: {}",
            call.body
        );
        let mut stored = p.clone();
        stored.status = Some(serde_json::from_value(call.body["status"].clone()).unwrap());
        call.reply(&stored);
    }

    #[tokio::test]
    async fn a_rejected_model_never_writes_the_deployment() {
        let store = FileServer::start();
        let mut p = pinned_by_spec(predictor("american", "team-a"));
        p.spec.model.url = store.put("/american.model", b"not the pinned model".to_vec());
        p.spec.model.sha256 = SHA_A.into();
        let (client, mut server) = apiserver::client();
        let ctx = context(client, checker());
        let reconcile = start(&p, &ctx);

        answer_child_reads(&mut server, None, None).await;
        let call = server.next().await;
        assert_eq!(
            call.path,
            SERVICE,
            "only the Service is applied: {}",
            call.line()
        );
        call.assert_apply(FIELD_MANAGER);
        call.echo();
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let verified = find_condition(&status, MODEL_VERIFIED).unwrap();
        assert_eq!(
            (verified.status.as_str(), verified.reason.as_str()),
            ("False", reason::DIGEST_MISMATCH)
        );
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(
            (call.method.clone(), call.path.as_str()),
            (Method::POST, EVENTS)
        );
        assert_eq!(call.body["reason"], reason::MODEL_REJECTED);
        call.echo();

        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(Duration::from_secs(60)));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A Predictor serving a good model (from `store`), asked for `candidate` under a gate of
    /// `minAccuracy` 0.8 and `maxAccuracyDrop` 0.05 on the sample: (the Predictor, its Deployment
    /// and Service as they are).
    fn gated_change(store: &FileServer, candidate: &str) -> (Predictor, Deployment, Service) {
        let sample = ::predictor::sample::SAMPLE_CSV;
        let put = |path: &str, csv: &str, date: &str| {
            let (bytes, sha256) = ::predictor::testing::trained_model(csv.as_bytes(), date);
            ModelSpec {
                url: store.put(path, bytes),
                sha256,
                ..ModelSpec::default()
            }
        };
        let mut p = pinned_by_spec(predictor("american", "team-a"));
        p.spec.model = put("/good.model", sample, "2026-11-24T00:00:00Z");
        let deployment = deployment_of(&p).rolled_out(2);
        let service = build_service(&p).unwrap();
        let observed = Observed {
            deployment: Some(&deployment),
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: resolved(&p),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        p.status = Some(compute_status(&p, &observed, &time(0)));
        // Generation 2: the candidate, and the gate.
        p.metadata.generation = Some(2);
        p.spec.model = match candidate {
            "shuffled" => put(
                "/shuffled.model",
                &shuffled_labels(sample, 7),
                "2026-11-25T00:00:00Z",
            ),
            _ => put("/retrained.model", sample, "2026-11-25T00:00:00Z"),
        };
        p.spec.validation = Some(ValidationSpec {
            data: DataSpec {
                url: store.put("/eval.csv", sample),
                sha256: ::predictor::model::sha256_hex(sample.as_bytes()),
            },
            min_accuracy: Some(0.8),
            max_accuracy_drop: Some(0.05),
        });
        (p, deployment, service)
    }

    /// A model trained on shuffled labels, with the right digest: the gate scores it and the
    /// serving model on the validation data, refuses it, and the Deployment is never written.
    #[tokio::test]
    async fn a_model_below_the_quality_gate_never_writes_the_deployment() {
        let store = FileServer::start();
        let (p, deployment, service) = gated_change(&store, "shuffled");
        let (client, mut server) = apiserver::client();
        let ctx = context(client, checker());
        let reconcile = start(&p, &ctx);

        answer_child_reads(&mut server, Some(&deployment), Some(&service)).await;
        // No apply: the next call is the status.
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let quality = status.quality.clone().expect("the measured accuracies");
        assert_eq!(quality.model_sha256, p.spec.model.sha256);
        let serving = quality
            .serving_accuracy
            .expect("the serving model was scored");
        assert!(quality.accuracy < 0.8 && serving >= 0.9, "{quality:?}");
        for type_ in [QUALITY_GATE, DEGRADED] {
            let c = find_condition(&status, type_).unwrap();
            assert_eq!(c.reason, reason::MODEL_BELOW_QUALITY_GATE, "{type_}");
            assert!(
                c.message
                    .contains(&format!("accuracy {:.4}", quality.accuracy))
                    && c.message.contains("minAccuracy 0.8000")
                    && c.message.contains(&format!("{serving:.4}"))
                    && c.message.contains("maxAccuracyDrop 0.0500"),
                "{type_}: {}",
                c.message
            );
        }
        assert_eq!(
            find_condition(&status, MODEL_VERIFIED).unwrap().status,
            "True",
            "its bytes are fine"
        );
        assert_eq!(
            status.model_sha256,
            p.status.as_ref().unwrap().model_sha256,
            "the old model still serves"
        );
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(call.path, EVENTS, "{}", call.line());
        assert_eq!(call.body["reason"], reason::MODEL_BELOW_QUALITY_GATE);
        assert_eq!(call.body["type"], "Warning");
        call.echo();

        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(MODEL_RETRY));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A credentials Secret its owner did not label for Predictors (any Secret of the namespace a
    /// team member names): the model is refused, and the Deployment, so the pods' env, is never
    /// written.
    #[tokio::test]
    async fn an_unlabelled_credentials_secret_never_reaches_the_pods() {
        let store = FileServer::start();
        let (mut p, deployment, service) = gated_change(&store, "retrained");
        p.spec.validation = None;
        p.spec.model.credentials = Some("team-db-password".into());
        let (client, mut server) = apiserver::client();
        let ctx = context(client, checker());
        let reconcile = start(&p, &ctx);

        answer_child_reads(&mut server, Some(&deployment), Some(&service)).await;
        let call = server.next().await;
        assert_eq!(
            call.line(),
            "GET /api/v1/namespaces/team-a/secrets/team-db-password"
        );
        call.reply(&serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "team-db-password", "namespace": "team-a"},
            "data": {"AWS_ACCESS_KEY_ID": "QUtJRA==", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"}
        }));
        // No apply: the next call is the status.
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let verified = find_condition(&status, MODEL_VERIFIED).unwrap();
        assert_eq!(verified.reason, reason::CREDENTIALS_UNUSABLE);
        assert!(
            verified
                .message
                .contains("label mlops.dev/model-credentials: \"true\""),
            "{}",
            verified.message
        );
        assert_eq!(
            status.model_sha256,
            p.status.as_ref().unwrap().model_sha256,
            "the old model still serves"
        );
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(call.path, EVENTS, "{}", call.line());
        assert_eq!(call.body["reason"], reason::MODEL_REJECTED);
        let note = call.body["note"].as_str().unwrap_or_default();
        assert!(
            note.contains("mlops.dev/model-credentials"),
            "{}",
            call.body
        );
        call.echo();

        finished(reconcile, &mut server).await;
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A retrained model as good as the serving one passes: the Deployment is applied and the
    /// status shows the measured accuracies.
    #[tokio::test]
    async fn a_model_that_passes_the_quality_gate_rolls_out() {
        let store = FileServer::start();
        let (p, deployment, service) = gated_change(&store, "retrained");
        let (client, mut server) = apiserver::client();
        let ctx = context(client, checker());
        let reconcile = start(&p, &ctx);

        answer_child_reads(&mut server, Some(&deployment), Some(&service)).await;
        let call = server.next().await;
        assert_eq!(call.path, DEPLOYMENT, "{}", call.line());
        call.assert_apply(FIELD_MANAGER);
        assert!(
            call.body.to_string().contains(&p.spec.model.sha256),
            "the Deployment runs the candidate"
        );
        call.echo();
        answer_status_and_events(&mut server, &p, &[reason::ROLLING_UPDATE], |status| {
            let gate = find_condition(status, QUALITY_GATE).unwrap();
            assert_eq!(
                (gate.status.as_str(), gate.reason.as_str()),
                ("True", reason::QUALITY_GATE_PASSED),
                "{}",
                gate.message
            );
            let quality = status.quality.clone().unwrap();
            assert!(quality.accuracy >= 0.9, "{quality:?}");
            assert_eq!(quality.serving_accuracy, Some(quality.accuracy));
        })
        .await;
        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(ROLLOUT_POLL));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// An image whose pull Secret is missing: the Secret is read by name (the only Secret call),
    /// the Deployment is never written, and the status and an Event say why.
    #[tokio::test]
    async fn a_refused_image_never_writes_the_deployment() {
        let mut p = predictor("american", "team-a");
        // A loopback port nothing listens on: the registry is never reached anyway.
        p.spec.image = "127.0.0.1:9/american-predictor:0.3".into();
        p.spec.image_pull_secrets = vec!["pull-team-a".into()];
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_child_reads(&mut server, None, None).await;
        let call = server.next().await;
        assert_eq!(
            (call.method.clone(), call.path.as_str()),
            (Method::GET, "/api/v1/namespaces/team-a/secrets/pull-team-a")
        );
        call.not_found();
        let call = server.next().await;
        assert_eq!(call.path, SERVICE, "only the Service: {}", call.line());
        call.echo();
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        for type_ in [IMAGE_RESOLVED, DEGRADED] {
            let c = find_condition(&status, type_).unwrap();
            assert_eq!(c.reason, reason::REGISTRY_UNAUTHORIZED, "{type_}");
            assert!(
                c.message.contains("pull secret pull-team-a")
                    && c.message.contains("no such Secret")
                    && c.message.contains("the Deployment was left unchanged"),
                "{type_}: {}",
                c.message
            );
        }
        assert_eq!(status.image_digest, None);
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(call.path, EVENTS, "{}", call.line());
        assert_eq!(call.body["reason"], reason::IMAGE_REJECTED);
        assert_eq!(call.body["type"], "Warning");
        call.echo();

        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(IMAGE_RETRY));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// An object under a child's name that the Predictor does not control is never adopted:
    /// nothing is applied, scaled or deleted (not even the children that are free), the status
    /// says ChildConflict naming it, one Warning Event says so, and the Predictor is looked at
    /// again soon (nothing watches an object without our labels).
    #[tokio::test]
    async fn a_child_it_does_not_control_is_left_alone_and_named() {
        let p = pinned_by_spec(predictor("american", "team-a"));
        // A Service made by hand, and one another controller owns under the canary's name.
        let mut victim = build_service(&p).unwrap();
        victim.metadata.owner_references = None;
        victim.metadata.labels = None;
        let (ctx, mut server, reconcile) = start_verified(&p);
        answer_child_reads(&mut server, None, Some(&victim)).await;
        answer_status_and_events(&mut server, &p, &[reason::CHILD_CONFLICT], |status| {
            for type_ in [DEGRADED, READY, PROGRESSING] {
                let c = find_condition(status, type_).unwrap();
                assert_eq!(c.reason, reason::CHILD_CONFLICT, "{type_}");
            }
            let degraded = find_condition(status, DEGRADED).unwrap();
            assert_eq!(degraded.status, "True");
            assert!(
                degraded
                    .message
                    .starts_with("Service american exists, with no controller: the operator"),
                "{}",
                degraded.message
            );
            assert_eq!(
                find_condition(status, MODEL_VERIFIED).unwrap().status,
                "Unknown"
            );
        })
        .await;
        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(CONFLICT_RETRY));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A Canary Predictor whose `-canary` Deployment belongs to someone else (here: to another
    /// Predictor of the same name, since deleted) neither applies nor retires it.
    #[tokio::test]
    async fn a_canary_deployment_of_another_owner_is_neither_applied_nor_retired() {
        let p = pinned_by_spec(crate::fixtures::canary(predictor("american", "team-a")));
        let stable = deployment_of(&p).rolled_out(2);
        let service = build_service(&p).unwrap();
        let canary_service = crate::resources::build_canary_service(&p).unwrap();
        let mut foreign = crate::fixtures::canary_deployment_of(&p).rolled_out(2);
        for owner in foreign.metadata.owner_references.iter_mut().flatten() {
            owner.uid = "11111111-2222-3333-4444-555555555555".into();
        }
        let (ctx, mut server, reconcile) = start_verified(&p);
        answer_canary_reads(
            &mut server,
            (Some(&stable), Some(&service)),
            (Some(&foreign), Some(&canary_service)),
        )
        .await;
        answer_status_and_events(&mut server, &p, &[reason::CHILD_CONFLICT], |status| {
            let c = find_condition(status, DEGRADED).unwrap();
            assert_eq!(c.reason, reason::CHILD_CONFLICT);
            assert!(
                c.message.starts_with(
                    "Deployment american-canary exists, controlled by Predictor/american:"
                ),
                "{}",
                c.message
            );
        })
        .await;
        assert_eq!(
            finished(reconcile, &mut server).await,
            Action::requeue(CONFLICT_RETRY)
        );
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A rollout whose new pod cannot pull its image: the pods are listed (selector, watch
    /// cache), and the status says so long before the progress deadline.
    #[tokio::test]
    async fn a_rollout_stuck_pulling_is_degraded_early() {
        let p = predictor("american", "team-a");
        let deployment = deployment_of(&p).rolling(2, 1);
        let service = build_service(&p).unwrap();
        let image = Served::of(&deployment).pod_image.unwrap();
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_child_reads(&mut server, Some(&deployment), Some(&service)).await;
        let call = server.next().await;
        assert_eq!(call.line(), "GET /api/v1/namespaces/team-a/pods");
        assert!(
            call.query
                .contains("labelSelector=app.kubernetes.io%2Finstance%3Damerican")
                && call.query.contains("resourceVersion=0"),
            "{}",
            call.query
        );
        call.reply(&serde_json::json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [{
                "metadata": {"name": "american-new", "namespace": "team-a"},
                "spec": {"containers": [{"name": "predictor", "image": image}]},
                "status": {"containerStatuses": [{
                    "name": "predictor", "image": image, "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
                }]}
            }]
        }));
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let degraded = find_condition(&status, DEGRADED).unwrap();
        assert_eq!(degraded.reason, reason::IMAGE_PULL_BACK_OFF);
        assert!(
            degraded.message.contains("american-new") && degraded.message.contains("Back-off"),
            "{}",
            degraded.message
        );
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(call.path, EVENTS, "{}", call.line());
        assert_eq!(call.body["reason"], reason::IMAGE_PULL_BACK_OFF);
        call.echo();

        let action = finished(reconcile, &mut server).await;
        assert_eq!(
            action,
            Action::requeue(ROLLOUT_POLL),
            "looked at again soon"
        );
        drop(ctx);
        server.expect_no_more().await;
    }

    #[tokio::test]
    async fn children_are_applied_before_the_status() {
        let p = pinned_by_spec(predictor("american", "team-a"));
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_child_reads(&mut server, None, None).await;
        assert_eq!(
            answer_applies(&mut server, 2).await,
            [SERVICE, DEPLOYMENT].map(String::from).to_vec()
        );
        // Then the status, and the "Created" Event (these two go out together).
        answer_status_and_events(&mut server, &p, &[reason::CREATED], |_| {}).await;

        finished(reconcile, &mut server).await;
        drop(ctx);
        server.expect_no_more().await;
    }

    const CANARY: &str = "/apis/apps/v1/namespaces/team-a/deployments/american-canary";
    const CANARY_SERVICE: &str = "/api/v1/namespaces/team-a/services/american-canary";
    const PODS: &str = "/api/v1/namespaces/team-a/pods";

    /// A Canary Predictor serving model A on 2 stable pods, its spec now asking for model B
    /// (generation 2), whose canary pod is up: (the Predictor, its stable Deployment and Service,
    /// the canary Deployment and Service, the pod list).
    fn canary_change() -> (
        Predictor,
        Deployment,
        Service,
        Deployment,
        Service,
        serde_json::Value,
    ) {
        let mut p = pinned_by_spec(crate::fixtures::canary(predictor("american", "team-a")));
        let stable = deployment_of(&p).rolled_out(2);
        let service = build_service(&p).unwrap();
        let observed = Observed {
            deployment: Some(&stable),
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: resolved(&p),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        p.status = Some(compute_status(&p, &observed, &time(0)));
        p.metadata.generation = Some(2);
        p.spec.model.sha256 = crate::fixtures::SHA_B.into();
        let canary = crate::fixtures::canary_deployment_of(&p).rolled_out(1);
        let canary_service = crate::resources::build_canary_service(&p).unwrap();
        let image = Served::of(&stable).pod_image.unwrap();
        let pod = |name: &str, ip: &str, track: Option<&str>, model: &str| {
            let mut labels = serde_json::json!({
                "app.kubernetes.io/instance": "american", "app.kubernetes.io/name": "predictor"
            });
            if let Some(track) = track {
                labels["mlops.dev/track"] = track.into();
            }
            serde_json::json!({
                "metadata": {"name": name, "namespace": "team-a", "labels": labels},
                "spec": {"containers": [{"name": "predictor", "image": image,
                    "env": [{"name": "MODEL_SHA256", "value": model}]}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
            })
        };
        let pods = serde_json::json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [
                pod("american-1", "10.0.0.1", None, SHA_A),
                pod("american-2", "10.0.0.2", None, SHA_A),
                pod("american-canary-1", "10.0.0.3", Some("canary"), crate::fixtures::SHA_B),
            ]
        });
        (p, stable, service, canary, canary_service, pods)
    }

    /// `/metrics` of a predictor that answered `requests` predictions in about a millisecond
    /// each and, on a stable pod, compared `agreed` and `disagreed` copies with the candidate
    /// (version 0.2, model B).
    fn exposition(requests: u32, agreed: u32, disagreed: u32) -> String {
        use ::predictor::metrics::{Metrics, Route, ShadowResult};
        let metrics = Metrics::default();
        for _ in 0..requests {
            metrics.observe(Route::of("/api/american"), 200, Duration::from_micros(900));
        }
        let shadow = metrics.shadow();
        let model = &crate::fixtures::SHA_B[..12];
        for (result, n) in [
            (ShadowResult::Agree, agreed),
            (ShadowResult::Disagree, disagreed),
        ] {
            for _ in 0..n {
                shadow.count(result, "0.2", model);
            }
        }
        metrics.render(true)
    }

    /// The reconcile of `canary_change()`, its pods' `/metrics` saying `metrics` (the two stable
    /// pods, then the canary pod), answered up to the pod list: (the Predictor, the canary
    /// Deployment, the context, the running reconcile, the fake apiserver).
    async fn analysing(
        metrics: [String; 3],
    ) -> (
        Predictor,
        Deployment,
        Arc<Context>,
        JoinHandle<Result<Action>>,
        ApiServer,
    ) {
        let (p, stable, service, canary, canary_service, pods) = canary_change();
        let [a, b, c] = metrics;
        let metrics = FakePodMetrics(
            [
                ("10.0.0.1:5008", a),
                ("10.0.0.2:5008", b),
                ("10.0.0.3:5008", c),
            ]
            .map(|(addr, text)| (addr.to_string(), text))
            .into(),
        );
        let checker = checker();
        checker.remember(&p.spec.model);
        let (client, mut server) = apiserver::client();
        let ctx = context_with(client, checker, metrics);
        let reconcile = start(&p, &ctx);

        answer_canary_reads(
            &mut server,
            (Some(&stable), Some(&service)),
            (Some(&canary), Some(&canary_service)),
        )
        .await;
        let call = server.next().await;
        assert_eq!(call.line(), format!("GET {PODS}"));
        call.reply(&pods);
        (p, canary, ctx, reconcile, server)
    }

    /// Answers the GETs of the canary Deployment and Service (sent together).
    /// Answers a Canary Predictor's reads of its four children, sent together in any order.
    async fn answer_canary_reads(
        server: &mut ApiServer,
        (stable, service): (Option<&Deployment>, Option<&Service>),
        (canary, canary_service): (Option<&Deployment>, Option<&Service>),
    ) {
        let answers = [
            (DEPLOYMENT, json(stable)),
            (SERVICE, json(service)),
            (CANARY, json(canary)),
            (CANARY_SERVICE, json(canary_service)),
        ];
        answer_gets(server, &answers).await;
    }

    /// A candidate that disagrees with the stable model on 40 % of the copies: the canary is
    /// scaled to zero, the stable Deployment is not written, the status says RolledBack with the
    /// figures and thresholds, and one Warning Event says why.
    #[tokio::test]
    async fn a_candidate_that_disagrees_is_rolled_back() {
        let (p, canary, ctx, reconcile, mut server) = analysing([
            exposition(500, 60, 40),
            exposition(500, 60, 40),
            exposition(150, 0, 0),
        ])
        .await;
        // Retired: scaled to zero (the operator deletes nothing).
        let call = server.next().await;
        assert_eq!(call.line(), format!("PATCH {CANARY}"), "{}", call.line());
        assert_eq!(call.content_type, "application/merge-patch+json");
        assert_eq!(call.body, serde_json::json!({"spec": {"replicas": 0}}));
        call.reply(&canary);
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "no stable write: {}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let rollout = status.rollout.clone().expect("a rollout status");
        assert_eq!(
            (rollout.phase.as_str(), rollout.reason.as_str()),
            ("RolledBack", "DisagreementTooHigh")
        );
        assert_eq!(rollout.candidate.model_sha256, crate::fixtures::SHA_B);
        let measured = rollout.measured.clone().unwrap();
        assert_eq!(
            (measured.samples, measured.compared, measured.disagreement),
            (150, 200, Some(0.4))
        );
        let degraded = find_condition(&status, DEGRADED).unwrap();
        assert_eq!(degraded.reason, reason::CANARY_ROLLED_BACK);
        assert!(
            degraded.message.contains(
                "disagreement 0.4000 on 200 compared predictions (maxDisagreement 0.0500)"
            ) && degraded
                .message
                .contains("keep serving version 0.2 with model 9f2c1e0d4b3a"),
            "{}",
            degraded.message
        );
        assert_eq!(
            status.model_sha256.as_deref(),
            Some(SHA_A),
            "model A serves"
        );
        assert_eq!(
            status.last_good_model.as_ref().map(|m| m.sha256.as_str()),
            Some(SHA_A)
        );
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(call.path, EVENTS, "{}", call.line());
        assert_eq!(call.body["reason"], reason::CANARY_ROLLED_BACK);
        assert_eq!(call.body["type"], "Warning");
        call.echo();

        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(RESYNC));
        let text = ctx.metrics.render();
        assert!(
            text.contains(
                "predictor_operator_canary_verdicts_total{result=\"DisagreementTooHigh\"} 1"
            ),
            "{text}"
        );
        drop(ctx);
        server.expect_no_more().await;
    }

    /// No traffic: the candidate is never promoted; the status says how many samples it waits
    /// for, and the canary is measured again soon.
    #[tokio::test]
    async fn without_traffic_the_analysis_waits_and_says_so() {
        let (p, _canary, ctx, reconcile, mut server) = analysing([
            exposition(0, 0, 0),
            exposition(0, 0, 0),
            exposition(0, 0, 0),
        ])
        .await;
        answer_status_and_events(&mut server, &p, &[reason::CANARY_STARTED], |status| {
            let progressing = find_condition(status, status::PROGRESSING).unwrap();
            assert_eq!(
                (
                    progressing.status.as_str(),
                    progressing.reason.as_str(),
                    progressing.message.as_str()
                ),
                ("True", reason::CANARY_ANALYSIS, "waiting: 0 of 100 samples")
            );
            assert_eq!(status.rollout.as_ref().unwrap().phase, "Analyzing");
        })
        .await;
        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(ANALYSIS_POLL));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A candidate that agrees and is as fast: the stable Deployment rolls over to it (a normal
    /// rolling update), the canary keeps serving meanwhile, and the status says Promoting.
    #[tokio::test]
    async fn a_good_candidate_is_promoted_by_a_rolling_update() {
        let (p, _canary, ctx, reconcile, mut server) = analysing([
            exposition(500, 100, 0),
            exposition(500, 99, 1),
            exposition(150, 0, 0),
        ])
        .await;
        let call = server.next().await;
        assert_eq!(call.path, DEPLOYMENT, "{}", call.line());
        call.assert_apply(FIELD_MANAGER);
        assert!(
            call.body.to_string().contains(crate::fixtures::SHA_B),
            "the stable Deployment runs the candidate"
        );
        call.echo();
        answer_status_and_events(
            &mut server,
            &p,
            &[reason::ROLLING_UPDATE, reason::CANARY_PROMOTED],
            |status| {
                let rollout = status.rollout.clone().unwrap();
                assert_eq!(
                    (rollout.phase.as_str(), rollout.reason.as_str()),
                    ("Promoting", "AnalysisPassed"),
                    "{}",
                    rollout.message
                );
            },
        )
        .await;
        finished(reconcile, &mut server).await;
        assert!(
            ctx.metrics
                .render()
                .contains("predictor_operator_canary_verdicts_total{result=\"promoted\"} 1")
        );
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A canary whose pods never became ready is rolled back without being measured.
    #[tokio::test]
    async fn a_canary_that_never_becomes_ready_is_rolled_back() {
        let (p, stable, service, _, canary_service, _) = canary_change();
        let stuck = crate::fixtures::canary_deployment_of(&p).deadline_exceeded();
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_canary_reads(
            &mut server,
            (Some(&stable), Some(&service)),
            (Some(&stuck), Some(&canary_service)),
        )
        .await;
        let call = server.next().await;
        assert_eq!(call.line(), format!("PATCH {CANARY}"), "no pod list first");
        assert_eq!(call.body, serde_json::json!({"spec": {"replicas": 0}}));
        call.reply(&stuck);
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let rollout = status.rollout.clone().unwrap();
        assert_eq!(
            (rollout.phase.as_str(), rollout.reason.as_str()),
            ("RolledBack", "CanaryNotReady")
        );
        assert!(
            rollout.message.contains("has timed out progressing"),
            "{}",
            rollout.message
        );
        assert_eq!(
            find_condition(&status, DEGRADED).unwrap().reason,
            reason::CANARY_ROLLED_BACK
        );
        reply_status(call, &p);
        let call = server.next().await;
        assert_eq!(call.path, EVENTS, "{}", call.line());
        assert_eq!(call.body["reason"], reason::CANARY_ROLLED_BACK);
        call.echo();
        finished(reconcile, &mut server).await;
        assert!(
            ctx.metrics
                .render()
                .contains("predictor_operator_canary_verdicts_total{result=\"CanaryNotReady\"} 1")
        );
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A rollout status about the candidate of [`canary_change`].
    fn rollout_of_candidate(p: &Predictor, phase: &str, reason: &str) -> crate::crd::RolloutStatus {
        let image = crate::fixtures::resolved(p)
            .pod_image(p)
            .unwrap()
            .to_string();
        crate::crd::RolloutStatus {
            phase: phase.into(),
            reason: reason.into(),
            message: "candidate failed the analysis on (figures)".into(),
            candidate: Candidate::of(p, &image),
            generation: Some(2),
            started_at: Some(time(0)),
            measured: None,
            measured_at: None,
        }
    }

    /// The spec still names a rolled-back candidate (the operator never edits it): no canary is
    /// started again, the stable Deployment is left alone, and nothing is written.
    #[tokio::test]
    async fn a_rolled_back_candidate_is_not_tried_again() {
        let (mut p, stable, service, canary, canary_service, _) = canary_change();
        let mut retired = canary;
        retired.spec.replicas = Some(0);
        let served = Served::of(&stable);
        let view = RolloutView {
            rollout: Some(rollout_of_candidate(
                &p,
                "RolledBack",
                "DisagreementTooHigh",
            )),
            last_good: last_good(&served),
        };
        let observed = Observed {
            deployment: Some(&stable),
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: resolved(&p),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        p.status = Some(compute_status_with_rollout(&p, &observed, &view, &time(5)));
        assert_eq!(
            find_condition(p.status.as_ref().unwrap(), DEGRADED)
                .unwrap()
                .reason,
            reason::CANARY_ROLLED_BACK
        );
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_canary_reads(
            &mut server,
            (Some(&stable), Some(&service)),
            (Some(&retired), Some(&canary_service)),
        )
        .await;
        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(RESYNC));
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A new Canary Predictor: its stable pods name the canary Service as their shadow target from
    /// the start, so that Service is applied with them, before any candidate. (A name that did not
    /// resolve yet would sit in the cluster DNS's negative cache when the first canary starts,
    /// and the copies to it would fail for that long.)
    #[tokio::test]
    async fn a_new_canary_predictor_gets_its_canary_service_at_once() {
        let p = pinned_by_spec(crate::fixtures::canary(predictor("american", "team-a")));
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_canary_reads(&mut server, (None, None), (None, None)).await;
        assert_eq!(
            answer_applies(&mut server, 3).await,
            [SERVICE, CANARY_SERVICE, DEPLOYMENT]
                .map(String::from)
                .to_vec()
        );
        answer_status_and_events(&mut server, &p, &[reason::CREATED], |_| {}).await;
        finished(reconcile, &mut server).await;
        drop(ctx);
        server.expect_no_more().await;
    }

    /// Promoted: once every stable pod runs the candidate, the canary is retired and the status
    /// says Promoted.
    #[tokio::test]
    async fn a_promoted_candidate_retires_its_canary_once_the_stable_pods_run_it() {
        let (mut p, _, service, canary, canary_service, _) = canary_change();
        // The stable Deployment was rolled over to the candidate and is done.
        let stable = deployment_of(&p).rolled_out(2);
        let mut status = p.status.clone().unwrap();
        status.rollout = Some(rollout_of_candidate(&p, "Promoting", "AnalysisPassed"));
        p.status = Some(status);
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_canary_reads(
            &mut server,
            (Some(&stable), Some(&service)),
            (Some(&canary), Some(&canary_service)),
        )
        .await;
        let call = server.next().await;
        assert_eq!(call.line(), format!("PATCH {CANARY}"));
        assert_eq!(call.body, serde_json::json!({"spec": {"replicas": 0}}));
        call.reply(&canary);
        let call = server.next().await;
        assert_eq!(call.path, STATUS, "{}", call.line());
        let status: PredictorStatus = serde_json::from_value(call.body["status"].clone()).unwrap();
        let rollout = status.rollout.clone().unwrap();
        assert_eq!(
            (rollout.phase.as_str(), rollout.reason.as_str()),
            ("Promoted", "Promoted")
        );
        assert_eq!(status.model_sha256.as_deref(), Some(crate::fixtures::SHA_B));
        assert_eq!(
            status.last_good_model.as_ref().map(|m| m.sha256.as_str()),
            Some(crate::fixtures::SHA_B)
        );
        reply_status(call, &p);
        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(RESYNC));
        drop(ctx);
        server.expect_no_more().await;
    }

    const AUTOSCALER: &str =
        "/apis/autoscaling/v2/namespaces/team-a/horizontalpodautoscalers/american";

    /// The unforced apply of the replica count under the handover manager; answered with
    /// `deployment` holding that count.
    async fn answer_handover(server: &mut ApiServer, replicas: i32, mut deployment: Deployment) {
        let call = server.next().await;
        assert_eq!(call.path, DEPLOYMENT, "{}", call.line());
        assert_eq!(call.content_type, "application/apply-patch+yaml");
        assert!(
            call.query
                .contains("fieldManager=predictor-operator-handover")
                && !call.query.contains("force"),
            "{}",
            call.query
        );
        assert_eq!(call.body["spec"], serde_json::json!({"replicas": replicas}));
        deployment.spec.replicas = Some(replicas);
        call.reply(&deployment);
    }

    /// A new autoscaled Predictor: its Deployment is created without a replica count, which is
    /// handed over at `minReplicas` right after; its autoscaler is applied with it.
    #[tokio::test]
    async fn a_new_autoscaled_predictor_starts_at_min_replicas_and_gets_its_autoscaler() {
        let p = pinned_by_spec(crate::fixtures::autoscaled(predictor("american", "team-a")));
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_reads(&mut server, None, None, &[AUTOSCALER]).await;
        let mut created = None;
        let mut applied = Vec::new();
        for _ in 0..3 {
            let call = server.next().await;
            call.assert_apply(FIELD_MANAGER);
            applied.push(call.path.clone());
            if call.path == DEPLOYMENT {
                assert_eq!(
                    call.body["spec"].get("replicas"),
                    None,
                    "the autoscaler's field"
                );
                created = Some(serde_json::from_value::<Deployment>(call.body.clone()).unwrap());
            }
            call.echo();
        }
        applied.sort();
        assert_eq!(
            applied,
            [SERVICE, DEPLOYMENT, AUTOSCALER].map(String::from).to_vec()
        );
        answer_handover(&mut server, 2, created.unwrap()).await;
        answer_status_and_events(&mut server, &p, &[reason::CREATED], |status| {
            let autoscaling = status.autoscaling.as_ref().unwrap();
            assert_eq!(
                (
                    autoscaling.desired_replicas,
                    autoscaling.min_replicas,
                    autoscaling.max_replicas
                ),
                (2, 2, 6)
            );
            assert_eq!(status.ready.as_deref(), Some("0/2"));
            let c = find_condition(status, status::AUTOSCALING).unwrap();
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("Unknown", "AutoscalerPending")
            );
        })
        .await;
        finished(reconcile, &mut server).await;
        drop(ctx);
        server.expect_no_more().await;
    }

    /// A rollout of an autoscaled Predictor: the count the autoscaler set is handed over before
    /// the template is applied without it, so the apply can neither revert it nor drop it.
    #[tokio::test]
    async fn a_rollout_of_an_autoscaled_predictor_keeps_the_autoscalers_replica_count() {
        let before = pinned_by_spec(crate::fixtures::autoscaled(predictor("american", "team-a")));
        let mut live = deployment_of(&before).rolled_out(5);
        live.spec.replicas = Some(5);
        let service = build_service(&before).unwrap();
        let mut p = before.clone();
        p.spec.model.sha256 = crate::fixtures::SHA_B.into();
        p.metadata.generation = Some(2);
        let (ctx, mut server, reconcile) = start_verified(&p);

        answer_reads(&mut server, Some(&live), Some(&service), &[AUTOSCALER]).await;
        answer_handover(&mut server, 5, live.clone()).await;
        let mut applied = Vec::new();
        for _ in 0..2 {
            let call = server.next().await;
            call.assert_apply(FIELD_MANAGER);
            if call.path == DEPLOYMENT {
                assert_eq!(
                    call.body["spec"].get("replicas"),
                    None,
                    "the autoscaler's field"
                );
            }
            applied.push(call.path.clone());
            call.echo();
        }
        applied.sort();
        assert_eq!(applied, [DEPLOYMENT, AUTOSCALER].map(String::from).to_vec());
        answer_status_and_events(&mut server, &p, &[reason::ROLLING_UPDATE], |_| {}).await;
        finished(reconcile, &mut server).await;
        drop(ctx);
        server.expect_no_more().await;
    }

    /// Autoscaling turned off: the operator takes the replica count back (forced apply) and
    /// deletes its autoscaler, which it knows from its cache.
    #[tokio::test]
    async fn turning_autoscaling_off_deletes_the_autoscaler_and_takes_the_count_back() {
        let autoscaled = crate::fixtures::autoscaled(predictor("american", "team-a"));
        let mut live = deployment_of(&autoscaled).rolled_out(5);
        live.spec.replicas = Some(5);
        let service = build_service(&autoscaled).unwrap();
        let hpa = crate::resources::build_autoscaler(&autoscaled)
            .unwrap()
            .unwrap();
        let p = predictor("american", "team-a");
        let checker = checker();
        checker.remember(&p.spec.model);
        let (client, mut server) = apiserver::client();
        let mut ctx = Arc::into_inner(context(client, checker)).expect("one owner");
        let (children, mut writers) = Children::new();
        writers
            .autoscalers
            .apply_watcher_event(&watcher::Event::Apply(hpa));
        ctx.children = children;
        let ctx = Arc::new(ctx);
        let reconcile = start(&p, &ctx);

        answer_child_reads(&mut server, Some(&live), Some(&service)).await;
        let mut calls = Vec::new();
        for _ in 0..2 {
            let call = server.next().await;
            calls.push(call.line());
            if call.method == Method::DELETE {
                assert_eq!(call.path, AUTOSCALER);
                call.reply(
                    &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                );
            } else {
                call.assert_apply(FIELD_MANAGER);
                assert_eq!(call.body["spec"]["replicas"], 2, "spec.replicas again");
                call.echo();
            }
        }
        calls.sort();
        assert_eq!(
            calls,
            [
                format!("DELETE {AUTOSCALER}"),
                format!("PATCH {DEPLOYMENT}")
            ]
        );
        answer_status_and_events(&mut server, &p, &[], |status| {
            assert_eq!(status.autoscaling, None);
            assert!(find_condition(status, status::AUTOSCALING).is_none());
        })
        .await;
        finished(reconcile, &mut server).await;
        drop(ctx);
        server.expect_no_more().await;
    }

    #[tokio::test]
    async fn an_up_to_date_predictor_causes_no_writes() {
        let mut p = predictor("american", "team-a");
        let deployment = deployment_of(&p).rolled_out(2);
        let service = build_service(&p).unwrap();
        let observed = Observed {
            deployment: Some(&deployment),
            model: ModelCheck::Verified,
            quality: QualityCheck::Off,
            image: resolved(&p),
            pull_failure: None,
            invalid: None,
            conflict: None,
            autoscaler: None,
        };
        p.status = Some(compute_status(&p, &observed, &time(0)));
        let (client, mut server) = apiserver::client();
        let ctx = context(client, checker());
        let reconcile = start(&p, &ctx);

        answer_child_reads(&mut server, Some(&deployment), Some(&service)).await;
        let action = finished(reconcile, &mut server).await;
        assert_eq!(action, Action::requeue(RESYNC));
        drop(ctx);
        server.expect_no_more().await;
    }
}

//! What every reconcile shares.

use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::{Client, ResourceExt};

use super::own_writes::OwnWrites;
use crate::crd::Predictor;
use crate::drift::DriftTracker;
use crate::image::ImageChecker;
use crate::metrics::Metrics;
use crate::model_check::ModelChecker;
use crate::quality::QualityGate;
use crate::scrape::PodMetrics;
use crate::status::Placement;

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
    /// The operator's Deployments, Services, HorizontalPodAutoscalers, PodDisruptionBudgets and
    /// pods as its watches last saw them.
    pub children: Children,
    /// Where a canary analysis reads the pods' counters from.
    pub pod_metrics: Arc<dyn PodMetrics>,
    /// The versions the operator's own status writes replaced (see [`OwnWrites`]).
    pub own_writes: OwnWrites,
    /// Per Predictor with `spec.monitoring.drift`: its pods' drift history and last reading.
    pub drift: DriftTracker,
}

/// Caches of the children, filled by the watches that also trigger reconciles: reading a child
/// costs the apiserver nothing (at 1,000 Predictors, GETs were a third of the operator's requests).
/// And of their pods (cut down to where they run and whether they are ready), whose watch
/// triggers nothing: see [`super::run`].
#[derive(Clone)]
pub struct Children {
    pub(super) deployments: Store<Deployment>,
    pub(super) services: Store<Service>,
    pub(super) autoscalers: Store<HorizontalPodAutoscaler>,
    pub(super) disruption_budgets: Store<PodDisruptionBudget>,
    pub(super) pods: Store<Pod>,
}

/// The write side of [`Children`], handed to [`super::run`].
pub struct ChildWriters {
    pub(super) deployments: reflector::store::Writer<Deployment>,
    pub(super) services: reflector::store::Writer<Service>,
    pub(super) autoscalers: reflector::store::Writer<HorizontalPodAutoscaler>,
    pub(super) disruption_budgets: reflector::store::Writer<PodDisruptionBudget>,
    pub(super) pods: reflector::store::Writer<Pod>,
}

impl Children {
    /// Empty caches and their writers.
    pub fn new() -> (Self, ChildWriters) {
        let (deployments, deployment_writer) = reflector::store();
        let (services, service_writer) = reflector::store();
        let (autoscalers, autoscaler_writer) = reflector::store();
        let (disruption_budgets, disruption_budget_writer) = reflector::store();
        let (pods, pod_writer) = reflector::store();
        (
            Self {
                deployments,
                services,
                autoscalers,
                disruption_budgets,
                pods,
            },
            ChildWriters {
                deployments: deployment_writer,
                services: service_writer,
                autoscalers: autoscaler_writer,
                disruption_budgets: disruption_budget_writer,
                pods: pod_writer,
            },
        )
    }

    /// Where `predictor`'s ready pods run, as the pod cache has them (no request); `None` until
    /// the pod watch has listed once (at the operator's start, or never without RBAC to watch).
    pub(super) fn placement(&self, predictor: &Predictor) -> Option<Placement> {
        self.pods.wait_until_ready().now_or_never()?.ok()?;
        Some(Placement::of(
            self.pods.state().iter().map(|pod| pod.as_ref()),
            &predictor.namespace().unwrap_or_default(),
            &predictor.name_any(),
        ))
    }

    /// The pods whose drift signals `predictor`'s drift reading reads (see
    /// [`crate::scrape::drift_targets`]), from the pod cache (none before it has listed).
    pub(super) fn drift_targets(&self, predictor: &Predictor) -> Vec<(String, String)> {
        if !matches!(self.pods.wait_until_ready().now_or_never(), Some(Ok(()))) {
            return Vec::new();
        }
        let pods = self.pods.state();
        crate::scrape::drift_targets(
            pods.iter().map(|pod| pod.as_ref()),
            &predictor.namespace().unwrap_or_default(),
            &predictor.name_any(),
            predictor.spec.port,
        )
    }
}

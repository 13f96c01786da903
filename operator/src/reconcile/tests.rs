//! Whole reconciles against a fake apiserver that checks every call the operator makes.

use super::rollout::*;
use super::write::*;
use super::*;
use crate::crd::{Candidate, DataSpec, ModelSpec, PredictorStatus, ValidationSpec};
use crate::fixtures::apiserver::{self, ApiServer, Call};
use crate::fixtures::{
    IMAGE_DIGEST, SHA_A, deployment_of, observed_of, predictor, shuffled_labels, time,
};
use crate::image::ImageChecker;
use crate::model_check::ModelChecker;
use crate::quality::QualityGate;
use crate::resources::FIELD_MANAGER;
use crate::resources::{build_disruption_budget, build_service};
use crate::scrape::PodMetrics;
use crate::status::{
    DEGRADED, IMAGE_RESOLVED, MODEL_VERIFIED, PROGRESSING, QUALITY_GATE, READY, compute_status,
    find_condition, reason,
};
use crate::status::{RolloutView, compute_status_with_rollout};
use ::model_store::testing::FileServer;
use http::Method;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::Reporter;
use tokio::task::JoinHandle;

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/team-a/deployments/american";
const SERVICE: &str = "/api/v1/namespaces/team-a/services/american";
const STATUS: &str = "/apis/mlops.dev/v1alpha1/namespaces/team-a/predictors/american/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";
const BUDGET: &str = "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets/american";

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
        own_writes: OwnWrites::default(),
        drift: Default::default(),
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
    start_with(p, checker)
}

/// A reconcile of `p` checking models with `checker`, against a fake apiserver.
fn start_with(
    p: &Predictor,
    checker: ModelChecker,
) -> (Arc<Context>, ApiServer, JoinHandle<Result<Action>>) {
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

/// [`finished`], and then, with the context gone, no request at all.
async fn ended(
    reconcile: JoinHandle<Result<Action>>,
    mut server: ApiServer,
    ctx: Arc<Context>,
) -> Action {
    let action = finished(reconcile, &mut server).await;
    drop(ctx);
    server.expect_no_more().await;
    action
}

/// The next request, which must be the status apply, and the status it applies.
async fn next_status(server: &mut ApiServer) -> (Call, PredictorStatus) {
    let call = server.next().await;
    assert_eq!(call.path, STATUS, "{}", call.line());
    let status = serde_json::from_value(call.body["status"].clone()).unwrap();
    (call, status)
}

/// Answers the next request, which must be a Warning Event for `reason`.
async fn answer_warning(server: &mut ApiServer, reason: &str) {
    let call = server.next().await;
    assert_eq!(call.path, EVENTS, "{}", call.line());
    assert_eq!(call.body["reason"], reason);
    assert_eq!(call.body["type"], "Warning");
    call.echo();
}

/// The PodDisruptionBudget the operator builds for `p`, which has 2 pods or more.
fn budget_of(p: &Predictor) -> PodDisruptionBudget {
    build_disruption_budget(p)
        .unwrap()
        .expect("2 pods or more get a budget")
}

/// Answers the GETs of the children of a Predictor with 2 pods or more: its Deployment, Service
/// and PodDisruptionBudget (the operator sends them together, in any order).
async fn answer_child_reads(
    server: &mut ApiServer,
    deployment: Option<&Deployment>,
    service: Option<&Service>,
    budget: Option<&PodDisruptionBudget>,
) {
    answer_reads(server, deployment, service, budget, &[]).await;
}

/// Answers the GETs of the Deployment, the Service, the PodDisruptionBudget and the objects at
/// `missing` (404), sent together in any order.
async fn answer_reads(
    server: &mut ApiServer,
    deployment: Option<&Deployment>,
    service: Option<&Service>,
    budget: Option<&PodDisruptionBudget>,
    missing: &[&str],
) {
    let mut answers = vec![
        (DEPLOYMENT, json(deployment)),
        (SERVICE, json(service)),
        (BUDGET, json(budget)),
    ];
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

/// Answers a status apply with the Predictor carrying the applied status, at the next
/// resourceVersion when the status changed (as the apiserver does).
fn reply_status(call: Call, p: &Predictor) {
    call.assert_apply(FIELD_MANAGER);
    assert_eq!(call.body["apiVersion"], "mlops.dev/v1alpha1");
    assert_eq!(call.body["kind"], "Predictor");
    let mut expected = status_patch(&PredictorStatus::default(), p.resource_version().as_deref());
    expected["status"] = call.body["status"].clone();
    assert_eq!(
        call.body, expected,
        "only apiVersion, kind, the version read and the status"
    );
    let mut stored = p.clone();
    stored.status = Some(serde_json::from_value(call.body["status"].clone()).unwrap());
    if stored.status != p.status {
        let version = p.resource_version().and_then(|v| v.parse::<u64>().ok());
        stored.metadata.resource_version = version.map(|v| (v + 1).to_string());
    }
    call.reply(&stored);
}

#[tokio::test]
async fn a_rejected_model_never_writes_the_deployment() {
    let store = FileServer::start();
    let mut p = pinned_by_spec(predictor("american", "team-a"));
    p.spec.model.url = store.put("/american.model", b"not the pinned model".to_vec());
    p.spec.model.sha256 = SHA_A.into();
    let (ctx, mut server, reconcile) = start_with(&p, checker());

    answer_child_reads(&mut server, None, None, None).await;
    assert_eq!(
        answer_applies(&mut server, 2).await,
        [SERVICE, BUDGET].map(String::from).to_vec(),
        "the Service and the budget, never the Deployment"
    );
    let (call, status) = next_status(&mut server).await;
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

    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
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
    let observed = observed_of(&p, Some(&deployment));
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
    let (ctx, mut server, reconcile) = start_with(&p, checker());

    answer_child_reads(
        &mut server,
        Some(&deployment),
        Some(&service),
        Some(&budget_of(&p)),
    )
    .await;
    // No apply: the next call is the status.
    let (call, status) = next_status(&mut server).await;
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
    answer_warning(&mut server, reason::MODEL_BELOW_QUALITY_GATE).await;

    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(MODEL_RETRY));
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
    let (ctx, mut server, reconcile) = start_with(&p, checker());

    answer_child_reads(
        &mut server,
        Some(&deployment),
        Some(&service),
        Some(&budget_of(&p)),
    )
    .await;
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
    let (call, status) = next_status(&mut server).await;
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

    ended(reconcile, server, ctx).await;
}

/// A retrained model as good as the serving one passes: the Deployment is applied and the
/// status shows the measured accuracies.
#[tokio::test]
async fn a_model_that_passes_the_quality_gate_rolls_out() {
    let store = FileServer::start();
    let (p, deployment, service) = gated_change(&store, "retrained");
    let (ctx, mut server, reconcile) = start_with(&p, checker());

    answer_child_reads(
        &mut server,
        Some(&deployment),
        Some(&service),
        Some(&budget_of(&p)),
    )
    .await;
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
    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(ROLLOUT_POLL));
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

    answer_child_reads(&mut server, None, None, None).await;
    let call = server.next().await;
    assert_eq!(
        (call.method.clone(), call.path.as_str()),
        (Method::GET, "/api/v1/namespaces/team-a/secrets/pull-team-a")
    );
    call.not_found();
    assert_eq!(
        answer_applies(&mut server, 2).await,
        [SERVICE, BUDGET].map(String::from).to_vec(),
        "the Service and the budget, never the Deployment"
    );
    let (call, status) = next_status(&mut server).await;
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
    answer_warning(&mut server, reason::IMAGE_REJECTED).await;

    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(IMAGE_RETRY));
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
    answer_child_reads(&mut server, None, Some(&victim), None).await;
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
    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(CONFLICT_RETRY));
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
        Some(&budget_of(&p)),
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

    answer_child_reads(
        &mut server,
        Some(&deployment),
        Some(&service),
        Some(&budget_of(&p)),
    )
    .await;
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
    let (call, status) = next_status(&mut server).await;
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

    answer_child_reads(&mut server, None, None, None).await;
    assert_eq!(
        answer_applies(&mut server, 3).await,
        [SERVICE, DEPLOYMENT, BUDGET].map(String::from).to_vec()
    );
    // Then the status, and no Event: a creation has none.
    answer_status_and_events(&mut server, &p, &[], |_| {}).await;

    ended(reconcile, server, ctx).await;
}

/// A status computed from a version since replaced (by the operator's own last status write
/// that the cache had not yet seen, or a spec change) is refused by the apiserver (409): no
/// write, no Event, no error; the newer version's watch event brings the next reconcile.
#[tokio::test]
async fn a_status_computed_from_an_older_version_is_not_written() {
    let mut p = pinned_by_spec(predictor("american", "team-a"));
    p.metadata.resource_version = Some("7".into());
    let (ctx, mut server, reconcile) = start_verified(&p);

    answer_child_reads(&mut server, None, None, None).await;
    answer_applies(&mut server, 3).await;
    let call = server.next().await;
    assert_eq!(call.path, STATUS);
    call.assert_apply(FIELD_MANAGER);
    assert_eq!(
        call.body["metadata"],
        serde_json::json!({"resourceVersion": "7"})
    );
    call.refuse(
        http::StatusCode::CONFLICT,
        "Conflict",
        "the object has been modified; please apply your changes to the latest version",
    );

    finished(reconcile, &mut server).await;
    assert!(
        !ctx.metrics.render().contains("kind=\"status\""),
        "no status write counted"
    );
    drop(ctx);
    server.expect_no_more().await;
}

/// After a status write, a reconcile that still sees the version it replaced (the cache has
/// not yet seen the write) leaves the status alone; once the newer version is seen, it writes.
#[tokio::test]
async fn a_reconcile_of_the_version_its_own_write_replaced_writes_no_status() {
    let mut p = pinned_by_spec(predictor("american", "team-a"));
    p.metadata.resource_version = Some("7".into());
    let (ctx, mut server, reconcile) = start_verified(&p);
    answer_child_reads(&mut server, None, None, None).await;
    answer_applies(&mut server, 3).await;
    answer_status_and_events(&mut server, &p, &[], |_| {}).await;
    finished(reconcile, &mut server).await;

    // A child's watch event starts another reconcile while the cache still has version 7.
    let again = start(&p, &ctx);
    answer_child_reads(&mut server, None, None, None).await;
    answer_applies(&mut server, 3).await;
    finished(again, &mut server).await;

    // Version 8 (the write's own watch event): computed and written again.
    p.metadata.resource_version = Some("8".into());
    let current = start(&p, &ctx);
    answer_child_reads(&mut server, None, None, None).await;
    answer_applies(&mut server, 3).await;
    answer_status_and_events(&mut server, &p, &[], |_| {}).await;
    finished(current, &mut server).await;
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
    let observed = observed_of(&p, Some(&stable));
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
        Some(&budget_of(&p)),
    )
    .await;
    let call = server.next().await;
    assert_eq!(call.line(), format!("GET {PODS}"));
    call.reply(&pods);
    (p, canary, ctx, reconcile, server)
}

/// Answers a Canary Predictor's reads of its five children (with 2 pods or more), sent together
/// in any order.
async fn answer_canary_reads(
    server: &mut ApiServer,
    (stable, service): (Option<&Deployment>, Option<&Service>),
    (canary, canary_service): (Option<&Deployment>, Option<&Service>),
    budget: Option<&PodDisruptionBudget>,
) {
    let answers = [
        (DEPLOYMENT, json(stable)),
        (SERVICE, json(service)),
        (CANARY, json(canary)),
        (CANARY_SERVICE, json(canary_service)),
        (BUDGET, json(budget)),
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
        degraded
            .message
            .contains("disagreement 0.4000 on 200 compared predictions (maxDisagreement 0.0500)")
            && degraded
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
    answer_warning(&mut server, reason::CANARY_ROLLED_BACK).await;

    let action = finished(reconcile, &mut server).await;
    assert_eq!(action, Action::requeue(RESYNC));
    let text = ctx.metrics.render();
    assert!(
        text.contains("predictor_operator_canary_verdicts_total{result=\"DisagreementTooHigh\"} 1"),
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
    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(ANALYSIS_POLL));
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
        Some(&budget_of(&p)),
    )
    .await;
    let call = server.next().await;
    assert_eq!(call.line(), format!("PATCH {CANARY}"), "no pod list first");
    assert_eq!(call.body, serde_json::json!({"spec": {"replicas": 0}}));
    call.reply(&stuck);
    let (call, status) = next_status(&mut server).await;
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
    let observed = observed_of(&p, Some(&stable));
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
        Some(&budget_of(&p)),
    )
    .await;
    assert_eq!(ended(reconcile, server, ctx).await, Action::requeue(RESYNC));
}

/// A new Canary Predictor: its stable pods name the canary Service as their shadow target from
/// the start, so that Service is applied with them, before any candidate. (A name that did not
/// resolve yet would sit in the cluster DNS's negative cache when the first canary starts,
/// and the copies to it would fail for that long.)
#[tokio::test]
async fn a_new_canary_predictor_gets_its_canary_service_at_once() {
    let p = pinned_by_spec(crate::fixtures::canary(predictor("american", "team-a")));
    let (ctx, mut server, reconcile) = start_verified(&p);

    answer_canary_reads(&mut server, (None, None), (None, None), None).await;
    assert_eq!(
        answer_applies(&mut server, 4).await,
        [SERVICE, CANARY_SERVICE, DEPLOYMENT, BUDGET]
            .map(String::from)
            .to_vec()
    );
    answer_status_and_events(&mut server, &p, &[], |_| {}).await;
    ended(reconcile, server, ctx).await;
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
        Some(&budget_of(&p)),
    )
    .await;
    let call = server.next().await;
    assert_eq!(call.line(), format!("PATCH {CANARY}"));
    assert_eq!(call.body, serde_json::json!({"spec": {"replicas": 0}}));
    call.reply(&canary);
    let (call, status) = next_status(&mut server).await;
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
    assert_eq!(ended(reconcile, server, ctx).await, Action::requeue(RESYNC));
}

const AUTOSCALER: &str = "/apis/autoscaling/v2/namespaces/team-a/horizontalpodautoscalers/american";

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

    answer_reads(&mut server, None, None, None, &[AUTOSCALER]).await;
    let mut created = None;
    let mut applied = Vec::new();
    for _ in 0..4 {
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
        [SERVICE, DEPLOYMENT, AUTOSCALER, BUDGET]
            .map(String::from)
            .to_vec()
    );
    answer_handover(&mut server, 2, created.unwrap()).await;
    answer_status_and_events(&mut server, &p, &[], |status| {
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
    ended(reconcile, server, ctx).await;
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

    let budget = budget_of(&p);
    answer_reads(
        &mut server,
        Some(&live),
        Some(&service),
        Some(&budget),
        &[AUTOSCALER],
    )
    .await;
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
    ended(reconcile, server, ctx).await;
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

    answer_child_reads(
        &mut server,
        Some(&live),
        Some(&service),
        Some(&budget_of(&p)),
    )
    .await;
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
    ended(reconcile, server, ctx).await;
}

#[tokio::test]
async fn an_up_to_date_predictor_causes_no_writes() {
    let mut p = predictor("american", "team-a");
    let deployment = deployment_of(&p).rolled_out(2);
    let service = build_service(&p).unwrap();
    let observed = observed_of(&p, Some(&deployment));
    p.status = Some(compute_status(&p, &observed, &time(0)));
    let (ctx, mut server, reconcile) = start_with(&p, checker());

    answer_child_reads(
        &mut server,
        Some(&deployment),
        Some(&service),
        Some(&budget_of(&p)),
    )
    .await;
    assert_eq!(ended(reconcile, server, ctx).await, Action::requeue(RESYNC));
}

/// A new Predictor with 2 pods: its PodDisruptionBudget is applied with the Deployment and the
/// Service, over all its pods, one at a time.
#[tokio::test]
async fn a_predictor_with_two_pods_gets_a_disruption_budget() {
    let p = pinned_by_spec(predictor("american", "team-a"));
    let (ctx, mut server, reconcile) = start_verified(&p);

    answer_child_reads(&mut server, None, None, None).await;
    let mut applied = Vec::new();
    for _ in 0..3 {
        let call = server.next().await;
        call.assert_apply(FIELD_MANAGER);
        if call.path == BUDGET {
            assert_eq!(call.body, json(Some(&budget_of(&p))).unwrap());
            assert_eq!(call.body["spec"]["maxUnavailable"], 1);
        }
        applied.push(call.path.clone());
        call.echo();
    }
    applied.sort();
    assert_eq!(
        applied,
        [SERVICE, DEPLOYMENT, BUDGET].map(String::from).to_vec()
    );
    answer_status_and_events(&mut server, &p, &[], |_| {}).await;
    ended(reconcile, server, ctx).await;
}

/// Scaled down to one pod: the operator deletes its budget, which it knows from its cache (it
/// does not ask the apiserver for a budget it does not want), and applies the new count.
#[tokio::test]
async fn scaling_to_one_pod_deletes_the_disruption_budget() {
    let two = pinned_by_spec(predictor("american", "team-a"));
    let live = deployment_of(&two).rolled_out(2);
    let service = build_service(&two).unwrap();
    let mut p = two.clone();
    p.spec.replicas = 1;
    p.metadata.generation = Some(2);
    let checker = checker();
    checker.remember(&p.spec.model);
    let (client, mut server) = apiserver::client();
    let mut ctx = Arc::into_inner(context(client, checker)).expect("one owner");
    let (children, mut writers) = Children::new();
    writers
        .disruption_budgets
        .apply_watcher_event(&watcher::Event::Apply(budget_of(&two)));
    ctx.children = children;
    let ctx = Arc::new(ctx);
    let reconcile = start(&p, &ctx);

    answer_gets(
        &mut server,
        &[
            (DEPLOYMENT, json(Some(&live))),
            (SERVICE, json(Some(&service))),
        ],
    )
    .await;
    let mut calls = Vec::new();
    for _ in 0..2 {
        let call = server.next().await;
        calls.push(call.line());
        if call.method == Method::DELETE {
            call.reply(
                &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            );
        } else {
            call.assert_apply(FIELD_MANAGER);
            assert_eq!(call.body["spec"]["replicas"], 1);
            call.echo();
        }
    }
    calls.sort();
    assert_eq!(
        calls,
        [format!("DELETE {BUDGET}"), format!("PATCH {DEPLOYMENT}")]
    );
    answer_status_and_events(&mut server, &p, &[], |_| {}).await;
    finished(reconcile, &mut server).await;
    assert!(
        ctx.metrics
            .render()
            .contains("predictor_operator_writes_total{kind=\"disruption_budget\"} 1"),
        "{}",
        ctx.metrics.render()
    );
    drop(ctx);
    server.expect_no_more().await;
}

/// A PodDisruptionBudget under the Predictor's name that someone else made is never adopted
/// (the Predictor says ChildConflict naming it) and never deleted.
#[tokio::test]
async fn a_disruption_budget_it_does_not_control_is_left_alone_and_named() {
    let p = pinned_by_spec(predictor("american", "team-a"));
    let mut foreign = budget_of(&p);
    foreign.metadata.owner_references = None;
    foreign.metadata.labels = None;
    let (ctx, mut server, reconcile) = start_verified(&p);
    answer_child_reads(&mut server, None, None, Some(&foreign)).await;
    answer_status_and_events(&mut server, &p, &[reason::CHILD_CONFLICT], |status| {
        let degraded = find_condition(status, DEGRADED).unwrap();
        assert_eq!(degraded.reason, reason::CHILD_CONFLICT);
        assert!(
            degraded
                .message
                .starts_with("PodDisruptionBudget american exists, with no controller:"),
            "{}",
            degraded.message
        );
    })
    .await;
    let action = ended(reconcile, server, ctx).await;
    assert_eq!(action, Action::requeue(CONFLICT_RETRY));
}

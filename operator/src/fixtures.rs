//! Test fixtures that read like sentences: `predictor("american", "team-a")`,
//! `deployment_of(&p).rolling(2, 1)`.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::{
    AnalysisSpec, AutoscalingSpec, ModelSpec, Predictor, PredictorSpec, PredictorStatus,
    RolloutSpec, RolloutStrategy,
};
use crate::image::ImageReference;
use crate::resources::build_deployment;
use crate::status::{ImageCheck, ModelCheck, Observed, QualityCheck, find_condition};

/// Two valid model digests.
pub const SHA_A: &str = "9f2c1e0d4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub const SHA_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The manifest digest the fixture Predictor's image tag resolves to.
pub const IMAGE_DIGEST: &str =
    "sha256:5d1c0e9b8a7f6e5d4c3b2a19f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b";

/// The DESIGN.md example Predictor, as if read from the apiserver (uid, generation 1).
pub fn predictor(name: &str, namespace: &str) -> Predictor {
    let mut p = Predictor::new(
        name,
        PredictorSpec {
            image: "registry.local/american-predictor:0.2".into(),
            model: ModelSpec {
                url: "https://models.example.org/american/2026-11-24.model".into(),
                sha256: SHA_A.into(),
                ..ModelSpec::default()
            },
            port: 5008,
            replicas: 2,
            version: None,
            progress_deadline_seconds: None,
            resources: None,
            image_pull_secrets: Vec::new(),
            validation: None,
            autoscaling: None,
            rollout: None,
            disruption: None,
            monitoring: None,
        },
    );
    p.metadata.namespace = Some(namespace.into());
    p.metadata.uid = Some("00000000-0000-0000-0000-00000000a11c".into());
    p.metadata.generation = Some(1);
    p
}

/// `p` rolled out as a Canary: half the replicas for the candidate, 20 % of live requests copied,
/// judged on 100 samples against every threshold.
pub fn canary(mut p: Predictor) -> Predictor {
    p.spec.rollout = Some(RolloutSpec {
        strategy: RolloutStrategy::Canary,
        canary_percent: 50,
        shadow_percent: 20,
        analysis: Some(AnalysisSpec {
            min_samples: 100,
            max_disagreement: Some(0.05),
            max_error_rate: Some(0.01),
            max_p99_latency_ratio: Some(1.5),
            deadline_seconds: 600,
        }),
    });
    p
}

/// `p` autoscaled between 2 and 6 pods at 60 % CPU, scaling down one minute after the load.
pub fn autoscaled(mut p: Predictor) -> Predictor {
    use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
    p.spec.autoscaling = Some(AutoscalingSpec {
        min_replicas: 2,
        max_replicas: 6,
        target_cpu_utilization_percentage: 60,
        behavior: Some(HorizontalPodAutoscalerBehavior {
            scale_down: Some(HPAScalingRules {
                stabilization_window_seconds: Some(60),
                ..HPAScalingRules::default()
            }),
            scale_up: None,
        }),
    });
    p
}

/// A model (digest [`SHA_A`]) on a loopback port nothing listens on (9, discard): any download of
/// it fails at once.
pub fn unreachable_model() -> ModelSpec {
    ModelSpec {
        url: "http://127.0.0.1:9/unreachable".into(),
        sha256: SHA_A.into(),
        ..ModelSpec::default()
    }
}

/// `2026-11-25T10:00:00Z` plus `secs` seconds.
pub fn time(secs: i64) -> Time {
    let base: Timestamp = "2026-11-25T10:00:00Z".parse().expect("valid timestamp");
    Time(
        base.checked_add(SignedDuration::from_secs(secs))
            .expect("in range"),
    )
}

/// What the image pre-flight says of the fixture Predictor's image: its tag is [`IMAGE_DIGEST`].
pub fn resolved(p: &Predictor) -> ImageCheck {
    let image = ImageReference::parse(&p.spec.image).expect("fixture image parses");
    ImageCheck::Passed(image.pinned(IMAGE_DIGEST))
}

/// What the status of the fixture Predictor is computed from when every pre-flight check passed
/// and `d` is its Deployment (if any): nothing invalid, in conflict or failing to pull, and its
/// pods not listed yet (so no node count: see [`crate::status::Placement`]).
pub fn observed(d: Option<&Deployment>) -> Observed<'_> {
    observed_of(&predictor("american", "team-a"), d)
}

/// The same for `p`: its image [`resolved`], every other check passed.
pub fn observed_of<'a>(p: &Predictor, d: Option<&'a Deployment>) -> Observed<'a> {
    Observed {
        deployment: d,
        model: ModelCheck::Passed(()),
        quality: QualityCheck::Off,
        image: resolved(p),
        pull_failure: None,
        invalid: None,
        conflict: None,
        autoscaler: None,
        placement: None,
        drift: None,
    }
}

/// `(status, reason)` of the condition `t` in `s`, which must have it.
pub fn cond<'a>(s: &'a PredictorStatus, t: &str) -> (&'a str, &'a str) {
    let c = find_condition(s, t).unwrap();
    (c.status.as_str(), c.reason.as_str())
}

/// The Deployment the operator builds for `p` (image pinned as [`resolved`] says), with a status
/// to be chosen.
pub fn deployment_of(p: &Predictor) -> DeploymentFixture {
    let image = resolved(p);
    let pod_image = image.pod_image(p).expect("resolved");
    let mut d = build_deployment(p, pod_image).expect("fixture predictor builds");
    d.metadata.generation = Some(1);
    DeploymentFixture(d)
}

/// The canary Deployment the operator builds for `p`'s candidate, with a status to be chosen.
pub fn canary_deployment_of(p: &Predictor) -> DeploymentFixture {
    let image = resolved(p);
    let pod_image = image.pod_image(p).expect("resolved");
    let mut d = crate::resources::build_canary_deployment(p, pod_image, p.spec.replicas)
        .expect("fixture predictor builds");
    d.metadata.generation = Some(1);
    DeploymentFixture(d)
}

/// A pod of `d` (its template's labels, in its namespace) named `name`, bound to `node` and ready,
/// as the apiserver has it (status, conditions, owner, managed fields).
pub fn ready_pod(d: &Deployment, name: &str, node: &str) -> Pod {
    let template = d.spec.template.clone();
    let condition = |type_: &str| PodCondition {
        type_: type_.into(),
        status: "True".into(),
        last_transition_time: Some(time(0)),
        ..PodCondition::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: d.metadata.namespace.clone(),
            labels: template.metadata.and_then(|m| m.labels),
            resource_version: Some("7".into()),
            uid: Some(format!("uid-{name}")),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: format!("{}-5d9", d.metadata.name.as_deref().unwrap_or_default()),
                uid: "uid-rs".into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("kubelet".into()),
                operation: Some("Update".into()),
                ..ManagedFieldsEntry::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec.map(|spec| PodSpec {
            node_name: Some(node.into()),
            ..spec
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.0.0.7".into()),
            conditions: Some(vec![
                condition("PodScheduled"),
                condition("Initialized"),
                condition("ContainersReady"),
                condition("Ready"),
            ]),
            ..PodStatus::default()
        }),
    }
}

pub struct DeploymentFixture(Deployment);

impl DeploymentFixture {
    /// Just created: the deployment controller has not looked at it yet.
    pub fn without_status(self) -> Deployment {
        self.0
    }

    /// Every one of `n` pods updated and available.
    pub fn rolled_out(self, n: i32) -> Deployment {
        self.with_status(n, n, n, n)
    }

    /// Mid-rollout: `updated` of `desired` pods run the new template, plus one surge pod of the old.
    pub fn rolling(self, desired: i32, updated: i32) -> Deployment {
        self.with_status(desired + 1, desired, updated, desired)
    }

    /// The deployment controller gave up.
    pub fn deadline_exceeded(self) -> Deployment {
        let mut d = self.with_status(2, 0, 0, 0);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"american-5d9\" has timed out progressing.".into()),
            ..DeploymentCondition::default()
        }]);
        d
    }

    /// Any counts: `total` pods, `ready` of them ready, `updated` on the current template,
    /// `available` available.
    pub fn with_counts(self, total: i32, ready: i32, updated: i32, available: i32) -> Deployment {
        self.with_status(total, ready, updated, available)
    }

    fn with_status(mut self, total: i32, ready: i32, updated: i32, available: i32) -> Deployment {
        self.0.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(total),
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        });
        self.0
    }
}

/// `csv` (labelled, `text,country_code` with the label last on each line, as in
/// `predictor/src/sample.csv`) with its labels dealt out again in an order fixed by `seed`: the
/// same texts and the same share of each country, but labels that say nothing about the text. A
/// model trained on it is a valid model file that predicts no better than chance.
pub fn shuffled_labels(csv: &str, seed: u64) -> String {
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default();
    let rows: Vec<(&str, &str)> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.rsplit_once(',').expect("a labelled row"))
        .collect();
    let mut labels: Vec<&str> = rows.iter().map(|(_, label)| *label).collect();
    // Fisher-Yates driven by a 64-bit LCG (Knuth's MMIX constants): reproducible, no crate needed.
    let mut state = seed;
    for i in (1..labels.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        labels.swap(i, (state >> 33) as usize % (i + 1));
    }
    let mut out = format!("{header}\n");
    for ((text, _), label) in rows.iter().zip(labels) {
        out.push_str(&format!("{text},{label}\n"));
    }
    out
}

/// A model checker (enabled or not) of models up to `max_bytes`, downloading within `timeout` into
/// a spool of its own (a temporary directory removed with it) and a 64 MiB memory budget.
pub fn checker(
    enabled: bool,
    max_bytes: u64,
    timeout: std::time::Duration,
) -> crate::model_check::ModelChecker {
    let fetcher = model_store::Fetcher::new(timeout).expect("an HTTP client");
    crate::model_check::ModelChecker::new(
        enabled,
        max_bytes,
        std::sync::Arc::new(crate::spool::Spool::scratch(fetcher).expect("a temporary spool")),
        std::sync::Arc::new(crate::budget::Budget::new(64 << 20)),
    )
}

/// A fake apiserver for reconcile tests: a kube [`Client`](kube::Client) whose requests a test
/// answers one by one, in the order it expects them (kube-rs/controller-rs's pattern).
#[cfg(test)]
pub mod apiserver {
    use std::time::Duration;

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use tower_test::mock::{Handle, SendResponse};

    /// How long a scenario waits for the next request before the test fails.
    const WAIT: Duration = Duration::from_secs(10);

    /// A client talking to the returned [`ApiServer`].
    pub fn client() -> (kube::Client, ApiServer) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "default"), ApiServer(handle))
    }

    /// The server side: hands out the client's requests.
    pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

    /// One request the client made, waiting for its response.
    pub struct Call {
        pub method: Method,
        /// Path without the query, e.g. `/apis/apps/v1/namespaces/team-a/deployments/american`.
        pub path: String,
        pub query: String,
        pub content_type: String,
        /// The body as JSON (`Null` when empty).
        pub body: serde_json::Value,
        respond: SendResponse<Response<Body>>,
    }

    impl ApiServer {
        /// The next request; panics if none comes within 10 s (a missing call) or the client is gone.
        pub async fn next(&mut self) -> Call {
            let (request, respond) = tokio::time::timeout(WAIT, self.0.next_request())
                .await
                .expect("the client made no further request within 10 s")
                .expect("the client was dropped before making the expected request");
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            Call {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: if bytes.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("request body is JSON")
                },
                respond,
            }
        }

        /// Asserts the client made no request it was not expected to (waits briefly for one).
        pub async fn expect_no_more(&mut self) {
            if let Ok(Some((request, _))) =
                tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await
            {
                panic!("unexpected request {} {}", request.method(), request.uri());
            }
        }
    }

    impl Call {
        /// `"METHOD /path"`, for assertions and messages.
        pub fn line(&self) -> String {
            format!("{} {}", self.method, self.path)
        }

        /// A server-side apply under `manager`, forced.
        pub fn assert_apply(&self, manager: &str) {
            assert_eq!(self.method, Method::PATCH, "{}", self.line());
            assert_eq!(
                self.content_type,
                "application/apply-patch+yaml",
                "{}",
                self.line()
            );
            assert!(
                self.query.contains(&format!("fieldManager={manager}"))
                    && self.query.contains("force=true"),
                "{} ?{}",
                self.line(),
                self.query
            );
        }

        /// Answers with `object` as JSON, status 200.
        pub fn reply(self, object: &impl serde::Serialize) {
            let body = serde_json::to_vec(object).expect("serialisable response");
            self.respond.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Body::from(body))
                    .expect("response"),
            );
        }

        /// Answers with what was sent (what a create or apply of a new object returns, roughly).
        pub fn echo(self) {
            let body = self.body.clone();
            self.reply(&body);
        }

        /// Answers 404 with a `Status` body, as the apiserver does for a missing object.
        pub fn not_found(self) {
            self.refuse(StatusCode::NOT_FOUND, "NotFound", "not found");
        }

        /// Answers `code` with a `Status` body, as the apiserver refuses a request.
        pub fn refuse(self, code: StatusCode, reason: &str, message: &str) {
            let status = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()
            });
            self.respond.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&status).expect("json")))
                    .expect("response"),
            );
        }
    }
}

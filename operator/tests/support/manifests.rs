//! The one Predictor builder of the tests and benches: `operator::fixtures::predictor` pointed at a
//! served model, and its manifest for `kubectl apply`.

use kube::api::ObjectMeta;
use operator::crd::{ModelSpec, Predictor};

use super::files::ServedModel;

/// Predictor `name` running `image` with `replicas` pods on `model`, as a client writes it: no
/// namespace (kubectl's `-n` or the Api's decides), nothing the apiserver sets (uid, generation).
pub fn predictor(name: &str, image: &str, model: &ServedModel, replicas: i32) -> Predictor {
    let mut p = operator::fixtures::predictor(name, "ignored");
    p.metadata = ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    p.spec.image = image.into();
    p.spec.model = ModelSpec {
        url: model.url.clone(),
        sha256: model.sha.clone(),
        ..ModelSpec::default()
    };
    p.spec.replicas = replicas;
    p
}

/// `predictors` as one manifest stream for `kubectl apply -f -` (JSON documents, which are YAML).
pub fn manifest(predictors: &[Predictor]) -> String {
    predictors
        .iter()
        .map(|p| {
            format!(
                "---\n{}\n",
                serde_json::to_string(p).expect("a Predictor serializes")
            )
        })
        .collect()
}

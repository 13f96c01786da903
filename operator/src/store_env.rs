//! The pods' environment for their model's store: `spec.model.s3` as values, and the keys of the
//! Secret `spec.model.credentials` names by reference, under the variable names the predictor reads
//! ([`model_store::StoreAccess::from_env`]). The same table makes the operator's own access
//! for its pre-flight download (`model_access`), so it reads the store exactly as the pods will.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use model_store::access::{REGISTRY_AUTH_ENV, STORE_CA_ENV};

use crate::crd::ModelSpec;

/// The Secret's key (and the pods' variable) naming the S3 endpoint its keys are for.
pub const ENDPOINT_KEY: &str = "AWS_ENDPOINT_URL";

/// The Secret's keys and the variables the pods get them as.
pub const SECRET_KEYS: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
    (".dockerconfigjson", REGISTRY_AUTH_ENV),
    ("ca.crt", STORE_CA_ENV),
];

/// `spec.model.s3` as the variables [`S3Settings::from_lookup`] reads (values, not secrets).
pub(crate) fn s3_variables(model: &ModelSpec) -> Vec<(&'static str, String)> {
    let Some(s3) = &model.s3 else {
        return Vec::new();
    };
    let mut vars = Vec::new();
    if let Some(endpoint) = &s3.endpoint {
        vars.push(("AWS_ENDPOINT_URL", endpoint.clone()));
    }
    if let Some(region) = &s3.region {
        vars.push(("AWS_REGION", region.clone()));
    }
    if s3.path_style == Some(false) {
        vars.push(("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "true".into()));
    }
    vars
}

/// The pods' environment for the model's store: the S3 settings as values, each Secret key as an
/// optional `secretKeyRef` (a Secret holds only the keys its store needs). Without
/// `spec.model.s3.endpoint`, the endpoint is the Secret's own `AWS_ENDPOINT_URL` when it names one
/// (with one, [`access_from`] refused any other before the pods were changed).
pub fn pod_env(model: &ModelSpec) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = s3_variables(model)
        .into_iter()
        .map(|(name, value)| EnvVar {
            name: name.into(),
            value: Some(value),
            ..EnvVar::default()
        })
        .collect();
    if let Some(secret) = &model.credentials {
        let from_secret = |key: &str, name: &str| EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: key.into(),
                    optional: Some(true),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        if !vars.iter().any(|v| v.name == ENDPOINT_KEY) {
            vars.push(from_secret(ENDPOINT_KEY, ENDPOINT_KEY));
        }
        vars.extend(SECRET_KEYS.iter().map(|(key, name)| from_secret(key, name)));
    }
    vars
}

//! What a Predictor's model store needs, for the pods and for the operator's own download alike:
//! `spec.model.s3` and the keys of the Secret `spec.model.credentials` names, under the environment
//! variable names the predictor reads ([`predictor::source::StoreAccess::from_env`]). One table
//! ([`SECRET_KEYS`]) makes both the pods' env ([`pod_env`]) and the pre-flight's access
//! ([`access_from`]), so the operator reads the store exactly as the pods will.
//!
//! The operator never uses its own environment or service account for a Predictor's store.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use kube::Api;
use predictor::registry_auth::DockerConfig;
use predictor::s3::S3Settings;
use predictor::source::{REGISTRY_AUTH_ENV, STORE_CA_ENV, StoreAccess};

use crate::crd::ModelSpec;
use crate::error::{Error, Result};

/// The Secret's keys and the variables the pods get them as.
pub const SECRET_KEYS: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
    (".dockerconfigjson", REGISTRY_AUTH_ENV),
    ("ca.crt", STORE_CA_ENV),
];

/// `spec.model.s3` as the variables [`S3Settings::from_lookup`] reads (values, not secrets).
fn s3_variables(model: &ModelSpec) -> Vec<(&'static str, String)> {
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
/// optional `secretKeyRef` (a Secret holds only the keys its store needs).
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
        vars.extend(SECRET_KEYS.iter().map(|(key, name)| EnvVar {
            name: (*name).into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: (*key).into(),
                    optional: Some(true),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }));
    }
    vars
}

/// The access the pods will have, from `spec.model` and the Secret's data (pure). The reason it is
/// refused never quotes a value.
pub fn access_from(
    model: &ModelSpec,
    data: &BTreeMap<String, ByteString>,
) -> Result<StoreAccess, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        data.get(key)
            .map(|value| {
                String::from_utf8(value.0.clone())
                    .map(|text| text.trim().to_string())
                    .map_err(|_| format!("its {key} is not UTF-8 text"))
            })
            .transpose()
    };
    let mut env = s3_variables(model)
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect::<BTreeMap<_, _>>();
    for (key, name) in &SECRET_KEYS[..3] {
        if let Some(value) = text(key)?.filter(|v| !v.is_empty()) {
            env.insert((*name).to_string(), value);
        }
    }
    let registry = match data.get(SECRET_KEYS[3].0) {
        Some(json) => Some(
            DockerConfig::parse(&json.0)
                .map_err(|reason| format!("its {}: {reason}", SECRET_KEYS[3].0))?,
        ),
        None => None,
    };
    Ok(StoreAccess {
        s3: S3Settings::from_lookup(|name| env.get(name).cloned()),
        registry,
        ca_pem: text(SECRET_KEYS[4].0)?.map(String::into_bytes),
    })
}

/// The access for `model`: its S3 settings, and the Secret it names read from the apiserver (by
/// name only: the operator lists and keeps no Secrets).
pub async fn resolve(model: &ModelSpec, secrets: &Api<Secret>) -> Result<StoreAccess> {
    let Some(name) = model.credentials.as_ref().map(|c| &c.name) else {
        return access_from(model, &BTreeMap::new()).map_err(|reason| Error::ModelCredentials {
            secret: "-".into(),
            reason,
        });
    };
    let unusable = |reason: String| Error::ModelCredentials {
        secret: name.clone(),
        reason,
    };
    let secret = named_secret(secrets, name, "get model credentials", unusable).await?;
    access_from(model, &secret.data.unwrap_or_default()).map_err(unusable)
}

/// The Secret `name` that a Predictor names (model credentials, pull Secrets): read by name only (no
/// list or watch; the operator reads exactly the Secrets Predictors name and keeps none of them). A
/// missing Secret or one the apiserver refuses is `unusable`; other errors are the apiserver's.
pub async fn named_secret(
    secrets: &Api<Secret>,
    name: &str,
    action: &'static str,
    unusable: impl Fn(String) -> Error,
) -> Result<Secret> {
    match secrets.get_opt(name).await {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => Err(unusable("there is no such Secret".into())),
        Err(kube::Error::Api(status)) => Err(unusable(format!(
            "the apiserver refused to read it: {} ({})",
            status.reason, status.code
        ))),
        Err(e) => Err(Error::kube(action)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::S3Spec;

    fn model() -> ModelSpec {
        ModelSpec {
            url: "s3://models/american.bin".into(),
            sha256: "0".repeat(64),
            credentials: Some("store-keys".into()),
            s3: Some(S3Spec {
                endpoint: Some("http://10.77.0.1:8333".into()),
                region: None,
                path_style: Some(false),
            }),
        }
    }

    #[test]
    fn the_pods_get_the_settings_as_values_and_the_secret_by_reference() {
        let env = serde_json::to_value(pod_env(&model())).unwrap();
        let secret = |key: &str, name: &str| serde_json::json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "store-keys", "key": key, "optional": true}}});
        assert_eq!(
            env,
            serde_json::json!([
                {"name": "AWS_ENDPOINT_URL", "value": "http://10.77.0.1:8333"},
                {"name": "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "value": "true"},
                secret("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                secret("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
                secret("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
                secret(".dockerconfigjson", "PREDICTOR_REGISTRY_AUTH"),
                secret("ca.crt", "PREDICTOR_STORE_CA"),
            ])
        );
        let plain = ModelSpec {
            url: "https://models.example.com/m.bin".into(),
            ..ModelSpec::default()
        };
        assert!(pod_env(&plain).is_empty());
    }

    #[test]
    fn the_operator_reads_the_store_as_the_pods_do() {
        let data = BTreeMap::from([
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                ByteString(b"AKID\n".to_vec()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                ByteString(b"s3cr3t".to_vec()),
            ),
            (
                ".dockerconfigjson".to_string(),
                ByteString(
                    br#"{"auths": {"10.77.0.1:5443": {"username": "u", "password": "pw"}}}"#
                        .to_vec(),
                ),
            ),
        ]);
        let access = access_from(&model(), &data).unwrap();
        assert_eq!(
            access.s3,
            S3Settings {
                endpoint: Some("http://10.77.0.1:8333".into()),
                region: None,
                virtual_hosted_style: true,
                access_key_id: Some("AKID".into()),
                secret_access_key: Some("s3cr3t".into()),
                session_token: None,
            }
        );
        let registry = access.registry.unwrap();
        assert_eq!(
            registry.credentials_for("10.77.0.1:5443").unwrap().username,
            "u"
        );
        assert_eq!(access.ca_pem, None);
    }

    #[test]
    fn an_unusable_secret_is_refused_without_quoting_it() {
        for (key, value, expected) in [
            (
                ".dockerconfigjson",
                b"{\"hunter2\"".to_vec(),
                "its .dockerconfigjson: not JSON",
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                vec![0xff, 0xfe],
                "its AWS_SECRET_ACCESS_KEY is not UTF-8",
            ),
        ] {
            let data = BTreeMap::from([(key.to_string(), ByteString(value))]);
            let err = access_from(&model(), &data).unwrap_err();
            assert!(err.contains(expected) && !err.contains("hunter2"), "{err}");
        }
    }
}

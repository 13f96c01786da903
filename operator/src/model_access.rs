//! What a Predictor's model store needs, for the pods and for the operator's own download alike:
//! `spec.model.s3` and the keys of the Secret `spec.model.credentials` names, under the environment
//! variable names the predictor reads ([`model_store::StoreAccess::from_env`]). One table
//! ([`SECRET_KEYS`]) makes both the pods' env ([`crate::store_env::pod_env`]) and the pre-flight's
//! access ([`access_from`]), so the operator reads the store exactly as the pods will.
//!
//! The operator never uses its own environment or service account for a Predictor's store.
//!
//! A Secret is used only by its owner's consent: it carries [`CONSENT_LABEL`]` = "true"`, so a team
//! member who may write Predictors cannot hand any Secret of the namespace to pods whose image they
//! choose. Its S3 keys are signed only for the endpoint the Secret names (its `AWS_ENDPOINT_URL`, or
//! AWS S3 when it names none): `spec.model.s3.endpoint` may only repeat it, so keys never go to a
//! host the Secret's owner did not name.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use model_store::StoreAccess;
use model_store::registry::auth::DockerConfig;
use model_store::s3::S3Settings;

use crate::crd::ModelSpec;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model_check::{ModelChecker, rejection};
use crate::status::ModelCheck;
use crate::store_env::s3_variables;
pub use crate::store_env::{ENDPOINT_KEY, SECRET_KEYS};

/// The label by which a Secret's owner lets Predictors use it as model credentials.
pub const CONSENT_LABEL: &str = "mlops.dev/model-credentials";
/// The access the pods will have, from `spec.model` and the Secret's data (pure). The reason it is
/// refused never quotes a value. NB: S3 keys are for the endpoint the Secret names (AWS S3 when it
/// names none); a `spec.model.s3.endpoint` that is not that one is refused here, before any request
/// is signed or sent.
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
    let mut has_keys = false;
    for (key, name) in &SECRET_KEYS[..3] {
        if let Some(value) = text(key)?.filter(|v| !v.is_empty()) {
            env.insert((*name).to_string(), value);
            has_keys = true;
        }
    }
    let named = text(ENDPOINT_KEY)?.filter(|v| !v.is_empty());
    let spec = model.s3.as_ref().and_then(|s3| s3.endpoint.as_deref());
    if has_keys && model.url.starts_with("s3://") {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        match (named.as_deref(), spec) {
            (Some(named), Some(spec)) if !same(named, spec) => {
                return Err(format!(
                    "spec.model.s3.endpoint is not the endpoint its {ENDPOINT_KEY} names, and \
                     its keys are only signed for that one: remove spec.model.s3.endpoint or \
                     make it the Secret's"
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "it names no endpoint ({ENDPOINT_KEY}) while spec.model.s3.endpoint names \
                     one, and its keys are only signed for the endpoint it names (AWS S3 when \
                     none): add {ENDPOINT_KEY} to the Secret"
                ));
            }
            _ => {}
        }
    }
    // As in the pods ([`pod_env`]): the spec's endpoint (the Secret's, when it has keys), else the
    // Secret's.
    if let Some(endpoint) = named.filter(|_| spec.is_none()) {
        env.insert(ENDPOINT_KEY.to_string(), endpoint);
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
    consented(&secret).map_err(unusable)?;
    access_from(model, &secret.data.unwrap_or_default()).map_err(unusable)
}

/// Whether the Secret's owner lets Predictors use it: [`CONSENT_LABEL`]` = "true"`.
pub fn consented(secret: &Secret) -> Result<(), String> {
    let labels = secret.metadata.labels.as_ref();
    match labels
        .and_then(|l| l.get(CONSENT_LABEL))
        .map(String::as_str)
    {
        Some("true") => Ok(()),
        _ => Err(format!(
            "it does not carry the label {CONSENT_LABEL}: \"true\" by which its owner lets \
             Predictors use it as model credentials, so neither the operator nor the pods use it"
        )),
    }
}

/// Step 2's model check: the store access the pods will have (`spec.model.s3` and its credentials
/// Secret), then `checker`'s check with it. A Secret that cannot be used refuses the model before
/// any request leaves (`CredentialsUnusable`); the access is then anonymous.
pub async fn check_model(
    model: &ModelSpec,
    running: bool,
    secrets: &Api<Secret>,
    checker: &ModelChecker,
    metrics: &Metrics,
) -> (ModelCheck, StoreAccess) {
    match resolve(model, secrets).await {
        Ok(access) => (
            checker.check(model, running, &access, metrics).await,
            access,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "model credentials unusable");
            (rejection(&e), StoreAccess::default())
        }
    }
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
    use crate::store_env::pod_env;

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
        // No endpoint in the spec: the one the Secret names, if any.
        let mut from_secret = model();
        from_secret.s3 = None;
        let env = serde_json::to_value(pod_env(&from_secret)).unwrap();
        assert_eq!(env[0], secret("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL"));
        assert_eq!(env.as_array().unwrap().len(), 6);
    }

    fn keys(endpoint: Option<&str>) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::from([
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                ByteString(b"AKID".to_vec()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                ByteString(b"s3cr3t".to_vec()),
            ),
        ]);
        if let Some(endpoint) = endpoint {
            data.insert(
                ENDPOINT_KEY.into(),
                ByteString(endpoint.as_bytes().to_vec()),
            );
        }
        data
    }

    #[test]
    fn s3_keys_are_for_the_endpoint_the_secret_names() {
        let spec_endpoint = |endpoint: Option<&str>| ModelSpec {
            s3: Some(S3Spec {
                endpoint: endpoint.map(str::to_string),
                ..S3Spec::default()
            }),
            ..model()
        };
        // The spec names another endpoint than the Secret: refused, without quoting it.
        let err = access_from(
            &spec_endpoint(Some("http://attacker.example:8333")),
            &keys(Some("http://10.77.0.1:8333")),
        )
        .unwrap_err();
        assert!(
            err.contains("spec.model.s3.endpoint is not the endpoint its AWS_ENDPOINT_URL names")
                && !err.contains("10.77.0.1"),
            "{err}"
        );
        // The Secret names none (its keys are AWS keys) and the spec names one: refused.
        let err = access_from(
            &spec_endpoint(Some("http://attacker.example:8333")),
            &keys(None),
        )
        .unwrap_err();
        assert!(
            err.contains("it names no endpoint (AWS_ENDPOINT_URL)"),
            "{err}"
        );
        // The Secret's endpoint, from the Secret or repeated by the spec (a trailing '/' aside).
        for spec in [None, Some("http://10.77.0.1:8333/")] {
            let access =
                access_from(&spec_endpoint(spec), &keys(Some("http://10.77.0.1:8333"))).unwrap();
            let endpoint = access.s3.endpoint.unwrap();
            assert_eq!(endpoint.trim_end_matches('/'), "http://10.77.0.1:8333");
        }
        // AWS keys for AWS: no endpoint anywhere.
        let access = access_from(&spec_endpoint(None), &keys(None)).unwrap();
        assert_eq!(access.s3.endpoint, None);
        // Without keys nothing is signed: any endpoint (an anonymous store, a CA bundle only).
        let ca_only = BTreeMap::from([("ca.crt".to_string(), ByteString(b"pem".to_vec()))]);
        let access = access_from(&spec_endpoint(Some("http://10.0.0.9:80")), &ca_only).unwrap();
        assert_eq!(access.s3.endpoint.as_deref(), Some("http://10.0.0.9:80"));
        // ...and, as in the pods, the spec's endpoint is the one used when it names one.
        let mut named_only = ca_only.clone();
        named_only.insert(
            ENDPOINT_KEY.into(),
            ByteString(b"http://10.0.0.8:80".to_vec()),
        );
        let access = access_from(&spec_endpoint(Some("http://10.0.0.9:80")), &named_only).unwrap();
        assert_eq!(access.s3.endpoint.as_deref(), Some("http://10.0.0.9:80"));
    }

    fn secret(labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("store-keys".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            data: Some(keys(Some("http://10.77.0.1:8333"))),
            ..Secret::default()
        }
    }

    #[test]
    fn a_secret_without_the_consent_label_is_refused() {
        assert_eq!(consented(&secret(&[(CONSENT_LABEL, "true")])), Ok(()));
        for labels in [
            &[][..],
            &[(CONSENT_LABEL, "false")][..],
            &[(CONSENT_LABEL, "yes")][..],
            &[("mlops.dev/other", "true")][..],
        ] {
            let err = consented(&secret(labels)).unwrap_err();
            assert!(
                err.contains("label mlops.dev/model-credentials: \"true\""),
                "{labels:?}: {err}"
            );
        }
    }

    /// The Secret as the apiserver returns it, then what the model check says.
    async fn checked(secret: Secret) -> ModelCheck {
        let (client, mut server) = crate::fixtures::apiserver::client();
        let secrets: Api<Secret> = Api::namespaced(client, "team-a");
        // Disabled: a usable Secret says Unchecked, without downloading anything.
        let checker = crate::fixtures::checker(false, 1 << 20, std::time::Duration::from_secs(1));
        let metrics = Metrics::default();
        let model = model();
        let (check, ()) = tokio::join!(
            check_model(&model, false, &secrets, &checker, &metrics),
            async {
                let call = server.next().await;
                assert_eq!(
                    call.line(),
                    "GET /api/v1/namespaces/team-a/secrets/store-keys"
                );
                call.reply(&secret);
            }
        );
        server.expect_no_more().await;
        check.0
    }

    #[tokio::test]
    async fn the_model_check_refuses_a_secret_its_owner_did_not_label() {
        let ModelCheck::Rejected { reason, message } = checked(secret(&[])).await else {
            panic!("an unlabelled Secret was used")
        };
        assert_eq!(reason, crate::status::reason::CREDENTIALS_UNUSABLE);
        assert!(
            message.starts_with("model credentials Secret store-keys cannot be used: it does not carry the label mlops.dev/model-credentials: \"true\""),
            "{message}"
        );
        assert!(matches!(
            checked(secret(&[(CONSENT_LABEL, "true")])).await,
            ModelCheck::Unchecked { .. }
        ));
    }

    #[test]
    fn the_operator_reads_the_store_as_the_pods_do() {
        let mut data = BTreeMap::from([
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
        data.insert(
            ENDPOINT_KEY.into(),
            ByteString(b"http://10.77.0.1:8333".to_vec()),
        );
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

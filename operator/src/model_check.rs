//! The pre-flight model check: before a new `spec.model` reaches the Deployment, download the file,
//! verify its sha256 and that it is a predictor model file. A refused model never rolls out, so the
//! old pods keep serving.
//!
//! [`verify_model`] is pure; [`ModelChecker`] adds the download and a cache of verified
//! `(url, sha256)` pairs so a model is fetched once, not on every reconcile. The download is the
//! operator's fetch-once [`Spool`]: the predictor's own bounded [`Fetcher`] (size limit, timeouts,
//! redacted errors) streamed through sha256 to disk, so the operator checks exactly what the pods
//! will read, holds a chunk at a time whatever the URL serves, and the quality gate reads the same
//! copy. Decoding the file reserves what it may take from the operator's [`Budget`] first.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use model_store::{StoreAccess, redact};

use crate::budget::Budget;
use crate::crd::ModelSpec;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::spool::{Refused, Spool, Spooled};
use crate::status::{ModelCheck, reason};
use crate::store_url::{DATA_URL, MODEL_URL};

/// Verified pairs kept at most; past that the cache starts over (cheap, and only costs a re-download).
const CACHE_LIMIT: usize = 4096;

/// Checks downloaded bytes against the pinned digest, then that they are a valid model file.
pub fn verify_model(url: &str, expected_sha256: &str, bytes: &[u8]) -> Result<()> {
    let actual = predictor::model::sha256_hex(bytes);
    if actual != expected_sha256 {
        return Err(Error::ModelDigest {
            url: redact(url),
            expected: expected_sha256.into(),
            actual,
        });
    }
    verify_model_file(url, bytes)
}

/// Checks that bytes (of the pinned digest) are a valid model file.
pub fn verify_model_file(url: &str, bytes: &[u8]) -> Result<()> {
    predictor::model::ModelFile::from_bytes(bytes).map_err(|e| Error::ModelInvalid {
        url: redact(url),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// The CamelCase reason a refused model shows in the status.
pub fn refusal_reason(error: &Error) -> &'static str {
    match error {
        Error::ModelDigest { .. } => reason::DIGEST_MISMATCH,
        Error::ModelInvalid { .. } => reason::NOT_A_MODEL_FILE,
        Error::ModelCredentials { .. } => reason::CREDENTIALS_UNUSABLE,
        _ => reason::FETCH_FAILED,
    }
}

/// How a failed check shows in the status.
pub fn rejection(error: &Error) -> ModelCheck {
    ModelCheck::Rejected {
        reason: refusal_reason(error).into(),
        message: format!("{error}; the Deployment was left unchanged"),
    }
}

/// The spooled file of `model` in `spool` (downloaded now, at most `max_bytes` within `budget`,
/// unless the spool keeps it), its digest checked while it was written: what the model check and
/// the quality gate both read.
///
/// NB: a plain fn returning [`spooled`]'s future, not an `async fn` around it: one more layer of
/// nesting takes the reconcile future past rustc's layout depth limit.
pub fn spooled_model<'a>(
    spool: &'a Spool,
    budget: &'a Budget,
    max_bytes: u64,
    model: &'a ModelSpec,
    access: &'a StoreAccess,
) -> impl Future<Output = Result<Arc<Spooled>>> + 'a {
    let file = (Pinned::Model, model.url.as_str(), model.sha256.as_str());
    spooled(spool, budget, max_bytes, file, access)
}

/// Which pinned file a download is: the URL rule it must keep and the errors it fails with.
#[derive(Clone, Copy, Debug)]
pub enum Pinned {
    /// `spec.model`.
    Model,
    /// `spec.validation.data`.
    Data,
}

/// The spooled file `(kind, url, sha256)` in `spool` (downloaded now, at most `max_bytes` within
/// `budget`, unless the spool keeps it), its digest checked while it was written. A URL `kind`'s
/// rule refuses (file://, a bare path), also one read back from a Deployment, is refused before
/// anything is read.
pub async fn spooled(
    spool: &Spool,
    budget: &Budget,
    max_bytes: u64,
    (kind, url, sha256): (Pinned, &str, &str),
    access: &StoreAccess,
) -> Result<Arc<Spooled>> {
    let rule = match kind {
        Pinned::Model => MODEL_URL,
        Pinned::Data => DATA_URL,
    };
    rule.check(url)
        .map_err(|reason| kind.fetch_failed(url, reason))?;
    spool
        .get(url, sha256, max_bytes, access, budget)
        .await
        .map_err(|refused| match refused {
            Refused::Fetch(reason) => kind.fetch_failed(url, reason),
            Refused::Digest(actual) => kind.digest_mismatch(url, sha256, actual),
        })
}

impl Pinned {
    /// The file at `url` could not be read: `reason`.
    fn fetch_failed(self, url: &str, reason: String) -> Error {
        let url = redact(url);
        match self {
            Pinned::Model => Error::ModelFetch { url, reason },
            Pinned::Data => Error::DataFetch { url, reason },
        }
    }

    /// The file at `url` has sha256 `actual`, not the pinned `expected`.
    fn digest_mismatch(self, url: &str, expected: &str, actual: String) -> Error {
        let (url, expected) = (redact(url), expected.to_string());
        match self {
            Pinned::Model => Error::ModelDigest {
                url,
                expected,
                actual,
            },
            Pinned::Data => Error::DataDigest {
                url,
                expected,
                actual,
            },
        }
    }
}

/// Downloads and verifies models, remembering the ones that passed.
pub struct ModelChecker {
    enabled: bool,
    max_bytes: u64,
    spool: Arc<Spool>,
    budget: Arc<Budget>,
    verified: Mutex<HashSet<ModelSpec>>,
}

impl ModelChecker {
    /// A checker that downloads at most `max_bytes` per model into `spool`, decoding within
    /// `budget`; `enabled == false` reports every model as unchecked.
    pub fn new(enabled: bool, max_bytes: u64, spool: Arc<Spool>, budget: Arc<Budget>) -> Self {
        Self {
            enabled,
            max_bytes,
            spool,
            budget,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// The largest model file it downloads.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The spool its downloads go to (the quality gate reads the same copies).
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// The memory budget its downloads and decodes reserve from.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    fn is_cached(&self, model: &ModelSpec) -> bool {
        self.verified.lock().expect("cache lock").contains(model)
    }

    /// Marks `model` as verified (also used when the Deployment already runs it).
    pub fn remember(&self, model: &ModelSpec) {
        let mut cache = self.verified.lock().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(model.clone());
    }

    /// Lets the spool delete `model`'s file once nothing reads it (the reconcile that checked and
    /// gated it is done).
    pub fn release(&self, model: &ModelSpec) {
        self.spool.forget(&model.url, &model.sha256);
    }

    /// Checks `model`: `running` says the Deployment already runs it (it was checked before it
    /// rolled out, so it is not fetched again); else from the cache, or by downloading it.
    pub async fn check(
        &self,
        model: &ModelSpec,
        running: bool,
        access: &StoreAccess,
        metrics: &Metrics,
    ) -> ModelCheck {
        if !self.enabled {
            return ModelCheck::Unchecked {
                reason: reason::CHECK_DISABLED.into(),
                message: "the operator runs with --skip-model-check; the pods verify the digest themselves"
                    .into(),
            };
        }
        if running {
            self.remember(model);
        }
        if self.is_cached(model) {
            return ModelCheck::Passed(());
        }
        match self.verify(model, access).await {
            Ok(()) => {
                metrics.model_check("verified");
                self.remember(model);
                ModelCheck::Passed(())
            }
            Err(e) => {
                metrics.model_check(e.metric_label());
                tracing::warn!(url = %redact(&model.url), error = %e, "model refused");
                rejection(&e)
            }
        }
    }

    /// The spooled file of `model` (see [`spooled_model`]).
    pub async fn spooled(&self, model: &ModelSpec, access: &StoreAccess) -> Result<Arc<Spooled>> {
        spooled_model(&self.spool, &self.budget, self.max_bytes, model, access).await
    }

    /// Downloads (once) and decodes `model`, the decode within what the budget lends it.
    async fn verify(&self, model: &ModelSpec, access: &StoreAccess) -> Result<()> {
        let file = self.spooled(model, access).await?;
        let fail = |reason: String| Error::ModelFetch {
            url: redact(&model.url),
            reason,
        };
        let _memory = self
            .budget
            .reserve(
                predictor::model::decode_memory_bound(file.len),
                "verifying the model",
            )
            .await
            .map_err(fail)?;
        let bytes = file
            .read()
            .await
            .map_err(|e| fail(format!("cannot read the spooled copy: {e}")))?;
        let url = model.url.clone();
        tokio::task::spawn_blocking(move || verify_model_file(&url, &bytes))
            .await
            .map_err(|e| fail(format!("the verifying thread failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::SHA_A;
    use std::time::Duration;

    fn anonymous() -> StoreAccess {
        StoreAccess::default()
    }

    fn model_bytes() -> Vec<u8> {
        let settings = predictor::train::TrainSettings::default();
        predictor::train::train_from_bytes(
            predictor::sample::SAMPLE_CSV.as_bytes(),
            "sample",
            &settings,
            "2026-11-24T00:00:00Z",
        )
        .unwrap()
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn a_model_file_with_the_pinned_digest_passes() {
        let bytes = model_bytes();
        let sha = predictor::model::sha256_hex(&bytes);
        verify_model("http://m/x", &sha, &bytes).unwrap();
    }

    #[test]
    fn a_wrong_digest_names_both_digests() {
        let bytes = model_bytes();
        let actual = predictor::model::sha256_hex(&bytes);
        let err = verify_model("http://m/x", SHA_A, &bytes).unwrap_err();
        let ModelCheck::Rejected { reason, message } = rejection(&err) else {
            panic!("not rejected")
        };
        assert_eq!(reason, "DigestMismatch");
        assert!(
            message.contains(SHA_A) && message.contains(&actual),
            "{message}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_model_is_refused_even_with_its_digest() {
        let bytes = b"<html>not found</html>".to_vec();
        let sha = predictor::model::sha256_hex(&bytes);
        let err = verify_model("http://m/x", &sha, &bytes).unwrap_err();
        assert_eq!(err.metric_label(), "model_invalid");
        assert!(
            err.to_string().contains("not a predictor model file"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn disabled_is_unchecked_unreachable_is_refused_and_cached_models_are_not_fetched() {
        let metrics = Metrics::default();
        let model = crate::fixtures::unreachable_model();
        let off = crate::fixtures::checker(false, 1 << 20, Duration::from_secs(1));
        assert!(matches!(
            off.check(&model, true, &anonymous(), &metrics).await,
            ModelCheck::Unchecked { .. }
        ));

        let on = crate::fixtures::checker(true, 1 << 20, Duration::from_secs(1));
        // hdfs:// is read too (with the same fetcher): a NameNode that is not there is a fetch
        // failure, within the 1 s timeout.
        let hdfs = ModelSpec {
            url: "hdfs://127.0.0.1:9/m".into(),
            ..model.clone()
        };
        assert!(matches!(
            on.check(&hdfs, false, &anonymous(), &metrics).await,
            ModelCheck::Rejected { reason, .. } if reason == "FetchFailed"
        ));
        // Port 9 (discard) on loopback refuses the connection: a fetch failure...
        assert!(matches!(
            on.check(&model, false, &anonymous(), &metrics).await,
            ModelCheck::Rejected { reason, .. } if reason == "FetchFailed"
        ));
        // ...unless the Deployment already runs it, which also makes it known to be good.
        assert_eq!(
            on.check(&model, true, &anonymous(), &metrics).await,
            ModelCheck::Passed(())
        );
        assert_eq!(
            on.check(&model, false, &anonymous(), &metrics).await,
            ModelCheck::Passed(())
        );
    }

    /// Checks beyond the memory budget wait for it instead of adding up past it: with room for one
    /// model's decode at a time, four models checked at once are all verified (one after another)
    /// and the budget is whole again after; a model whose decode needs more than the whole budget
    /// is refused with both sizes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_beyond_the_budget_wait_for_it_and_a_model_larger_than_it_is_refused() {
        let metrics = Metrics::default();
        let store = model_store::testing::FileServer::start();
        let models: Vec<ModelSpec> = (0..4)
            .map(|i| {
                let (bytes, sha256) = predictor::testing::trained_model(
                    predictor::sample::SAMPLE_CSV.as_bytes(),
                    &format!("2026-12-0{}T00:00:00Z", i + 1),
                );
                ModelSpec {
                    url: store.put(&format!("/m{i}.model"), bytes),
                    sha256,
                    ..ModelSpec::default()
                }
            })
            .collect();
        let len = store.get("/m0.model").unwrap().len() as u64;
        let one_at_a_time =
            predictor::model::decode_memory_bound(len) + crate::spool::DOWNLOAD_MEMORY;
        let checker_within = |budget: u64| {
            ModelChecker::new(
                true,
                1 << 20,
                Arc::new(
                    Spool::scratch(model_store::Fetcher::new(Duration::from_secs(5)).unwrap())
                        .unwrap(),
                ),
                Arc::new(Budget::new(budget)),
            )
        };
        let checker = checker_within(one_at_a_time);
        let access = StoreAccess::default();
        let checks = models
            .iter()
            .map(|m| checker.check(m, false, &access, &metrics));
        for check in futures::future::join_all(checks).await {
            assert_eq!(check, ModelCheck::Passed(()));
        }
        assert_eq!(checker.budget().available(), checker.budget().total());

        let small = checker_within(predictor::model::decode_memory_bound(len) - (64 << 10));
        let ModelCheck::Rejected { reason, message } = small
            .check(&models[0], false, &StoreAccess::default(), &metrics)
            .await
        else {
            panic!("a decode larger than the budget is refused")
        };
        assert_eq!(reason, "FetchFailed");
        assert!(
            message.contains("verifying the model needs ")
                && message.contains("more than the operator's whole in-flight budget of"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_download_is_verified_once_and_a_wrong_digest_or_size_is_refused() {
        let metrics = Metrics::default();
        let bytes = model_bytes();
        let sha = predictor::model::sha256_hex(&bytes);
        let store = model_store::testing::FileServer::start();
        let on = crate::fixtures::checker(true, 1 << 24, Duration::from_secs(5));
        let good = ModelSpec {
            url: store.put("/good.model", bytes.clone()),
            sha256: sha,
            ..ModelSpec::default()
        };
        assert_eq!(
            on.check(&good, false, &anonymous(), &metrics).await,
            ModelCheck::Passed(())
        );
        let wrong = ModelSpec {
            sha256: SHA_A.into(),
            ..good.clone()
        };
        assert!(matches!(
            on.check(&wrong, false, &anonymous(), &metrics).await,
            ModelCheck::Rejected { reason, .. } if reason == "DigestMismatch"
        ));
        let small = crate::fixtures::checker(true, 100, Duration::from_secs(5));
        let ModelCheck::Rejected { reason, message } =
            small.check(&good, false, &anonymous(), &metrics).await
        else {
            panic!("a model over --model-max-bytes is refused")
        };
        assert_eq!(reason, "FetchFailed");
        assert!(
            message.contains("more than the 100-byte limit"),
            "{message}"
        );
    }
}

/// The redaction rule end to end: credentials and a presigned URL's signature in `spec.model.url`
/// reach neither the error text, the status conditions nor the Event notes.
#[cfg(test)]
mod redaction_tests {
    use super::*;
    use crate::fixtures::{SHA_A, deployment_of, predictor, time};
    use crate::status::{Observed, compute_status, status_events};
    use std::time::Duration;

    const SECRET_URL: &str = "https://alice:hunter2@models.example.org/m.model?X-Amz-Signature=deadbeefcafe&X-Amz-Credential=AKIA1";

    fn assert_hidden(text: &str) {
        for secret in [
            "alice",
            "hunter2",
            "X-Amz-Signature",
            "deadbeefcafe",
            "AKIA1",
        ] {
            assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
        }
    }

    #[test]
    fn a_rejected_models_error_status_and_events_hide_credentials_and_query() {
        let err = verify_model(SECRET_URL, SHA_A, b"not the model").unwrap_err();
        assert_hidden(&err.to_string());
        assert!(
            err.to_string()
                .contains("https://***@models.example.org/m.model?***"),
            "{err}"
        );

        let mut p = predictor("american", "team-a");
        let d = deployment_of(&p).rolled_out(2);
        p.status = Some(compute_status(
            &p,
            &crate::fixtures::observed_of(&p, Some(&d)),
            &time(0),
        ));
        p.spec.model.url = SECRET_URL.into();
        let rejected = Observed {
            model: rejection(&err),
            ..crate::fixtures::observed_of(&p, Some(&d))
        };
        let status = compute_status(&p, &rejected, &time(5));
        assert_hidden(&serde_json::to_string(&status).unwrap());
        let events = status_events(p.status.as_ref().unwrap(), &status);
        assert!(!events.is_empty());
        for event in events {
            assert_hidden(&event.note);
        }

        // A verified model names its URL in ModelVerified: redacted too.
        let verified = crate::fixtures::observed_of(&p, Some(&d));
        let status = compute_status(&p, &verified, &time(5));
        let json = serde_json::to_string(&status).unwrap();
        assert_hidden(&json);
        assert!(json.contains("models.example.org/m.model"), "{json}");
    }

    #[tokio::test]
    async fn a_failed_download_hides_credentials_and_query() {
        let metrics = Metrics::default();
        let checker = crate::fixtures::checker(true, 1 << 20, Duration::from_secs(2));
        // Port 9 (discard) on loopback refuses the connection.
        let model = ModelSpec {
            url: "http://alice:hunter2@127.0.0.1:9/m.model?X-Amz-Signature=deadbeefcafe".into(),
            sha256: SHA_A.into(),
            ..ModelSpec::default()
        };
        let ModelCheck::Rejected { reason, message } = checker
            .check(&model, false, &StoreAccess::default(), &metrics)
            .await
        else {
            panic!("an unreachable model store is a rejection")
        };
        assert_eq!(reason, "FetchFailed");
        assert_hidden(&message);
        assert!(
            message.contains("http://***@127.0.0.1:9/m.model?***"),
            "{message}"
        );
    }
}

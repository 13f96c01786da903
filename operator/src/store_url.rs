//! The one rule for every URL the operator reads: a model's (`spec.model.url`, or the `MODEL_URL`
//! a Deployment says its pods serve) and a validation data set's. Only the schemes the pods read
//! from a store are allowed; `file://` and bare paths are refused (they would name a file in the
//! operator's own pod, `/etc/...` or `/dev/zero`, not what the pods load).
//!
//! The CRD's CEL rule, its message, `validate`'s check of the spec and the downloads' own check
//! are all made here, so the apiserver, the reconcile and the fetchers cannot disagree.

use kube::core::{Message, Rule};
use model_store::redact;

/// Which URLs may name what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlRule {
    /// The field, as the CRD's messages name it.
    field: &'static str,
    schemes: &'static [&'static str],
}

/// `spec.model.url`, and the model URL a Deployment serves.
pub const MODEL_URL: UrlRule = UrlRule {
    field: "model.url",
    schemes: &["http://", "https://", "hdfs://", "s3://", "oci://"],
};

/// `spec.validation.data.url`.
pub const DATA_URL: UrlRule = UrlRule {
    field: "validation.data.url",
    schemes: &["http://", "https://", "hdfs://"],
};

impl UrlRule {
    /// What the rule says, the same words from the apiserver, the status and the fetchers:
    /// `model.url must start with http://, https://, hdfs://, s3:// or oci://`.
    pub fn message(&self) -> String {
        let (last, rest) = self.schemes.split_last().expect("a rule has schemes");
        format!(
            "{} must start with {} or {last}",
            self.field,
            rest.join(", ")
        )
    }

    /// The CRD's CEL rule on the field, with [`Self::message`].
    pub fn cel(&self) -> Rule {
        let allowed: Vec<String> = self
            .schemes
            .iter()
            .map(|scheme| format!("self.startsWith('{scheme}')"))
            .collect();
        Rule::new(allowed.join(" || ")).message(Message::Message(self.message()))
    }

    /// `url` if the rule allows it; else why not, naming the URL only [`redact`]ed.
    pub fn check(&self, url: &str) -> Result<(), String> {
        if self.schemes.iter().any(|scheme| url.starts_with(scheme)) {
            Ok(())
        } else {
            Err(format!("{} (not {})", self.message(), redact(url)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_and_bare_paths_are_refused_with_the_crds_message() {
        for url in [
            "file:///etc/hostname",
            "/dev/zero",
            "etc/passwd",
            "FILE:///x",
            "ftp://h/x",
            "",
        ] {
            let reason = MODEL_URL.check(url).unwrap_err();
            assert!(
                reason.starts_with(
                    "model.url must start with http://, https://, hdfs://, s3:// or oci:// (not "
                ),
                "{url}: {reason}"
            );
            assert!(DATA_URL.check(url).is_err(), "{url}");
        }
        for url in [
            "http://m/x",
            "https://m/x",
            "hdfs://nn:9000/x",
            "s3://b/k",
            "oci://r/m@sha256:0",
        ] {
            assert_eq!(MODEL_URL.check(url), Ok(()), "{url}");
        }
        assert_eq!(DATA_URL.check("https://d/eval.csv"), Ok(()));
        assert!(DATA_URL.check("s3://b/eval.csv").is_err());
        // The URL is shown redacted.
        let reason = MODEL_URL.check("file:///etc/shadow?token=t0k").unwrap_err();
        assert!(!reason.contains("t0k"), "{reason}");
    }

    #[test]
    fn the_crd_rule_is_the_same_rule() {
        let rule = serde_json::to_value(MODEL_URL.cel()).unwrap();
        assert_eq!(
            rule,
            serde_json::json!({
                "rule": "self.startsWith('http://') || self.startsWith('https://') || \
                         self.startsWith('hdfs://') || self.startsWith('s3://') || \
                         self.startsWith('oci://')",
                "message": "model.url must start with http://, https://, hdfs://, s3:// or oci://"
            })
        );
        let rule = serde_json::to_value(DATA_URL.cel()).unwrap();
        assert_eq!(
            rule["message"],
            "validation.data.url must start with http://, https:// or hdfs://"
        );
    }
}

//! Objects in S3-compatible storage, `s3://bucket/key`: requests signed (SigV4, presigned URLs) by
//! `rusty-s3`, sent by this crate's own HTTP client ([`crate::fetch`]), so an `s3://` download gets
//! the same size limit, timeouts and redaction as an `https://` one.
//!
//! Why rusty-s3 and not `object_store` or `aws-sdk-s3`: it only signs (sans-IO, hmac + sha2), which
//! keeps the static predictor under the 10 MB image budget; object_store added ~3 MB with its own
//! retry, credential-provider and XML machinery, aws-sdk-s3 more.
//!
//! Where the store is and who asks are [`S3Settings`]: an endpoint for any S3-compatible server
//! (SeaweedFS, Ceph RGW, MinIO, R2, …), region, path-style or virtual-hosted requests, and keys. The
//! CLI and the server read them from the usual `AWS_*` variables ([`S3Settings::from_env`]); the
//! operator builds them from a Predictor's `spec.model` and its credentials Secret, never from its own
//! environment. No keys means anonymous (unsigned) requests, as for a public bucket.
//!
//! Errors are plain reasons that never carry a key, a token or a signed URL.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use rusty_s3::actions::S3Action;
use rusty_s3::{Bucket, Credentials, UrlStyle};

/// Region signed for when none is set (what the AWS SDKs assume; most S3-compatible servers ignore it).
const DEFAULT_REGION: &str = "us-east-1";
/// How long a signed request stays valid: longer than any download may take.
const SIGNATURE_VALID_FOR: Duration = Duration::from_secs(3600);

/// An `s3://bucket/key` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// Splits `s3://bucket/key`; refuses what a store would misread and keys in the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .get(..5)
            .filter(|scheme| scheme.eq_ignore_ascii_case("s3://"))
            .map(|_| &url[5..])
            .ok_or_else(|| "not an s3:// URL".to_string())?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') {
            return Err(
                "keys in s3:// URLs are not used: set AWS_ACCESS_KEY_ID and \
                        AWS_SECRET_ACCESS_KEY (or the Predictor's credentials Secret)"
                    .into(),
            );
        }
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a bucket name (3-63 lowercase letters, digits, '.' and '-')"
            ));
        }
        if key.is_empty() || key.ends_with('/') {
            return Err("the URL names no object: use s3://bucket/path/to/object".into());
        }
        Ok(Self {
            bucket: bucket.into(),
            key: key.into(),
        })
    }
}

/// How to reach an S3-compatible store and sign for it.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct S3Settings {
    /// `http(s)://host:port` of a non-AWS store; unset = AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `https://bucket.host/key` instead of `https://host/bucket/key` (path style, the default,
    /// is what most S3-compatible servers serve).
    pub virtual_hosted_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Settings {
    /// Everything but the secret key and session token: `Debug` output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .finish()
    }
}

impl S3Settings {
    /// The usual variables: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`Self::from_env`] over any source of variables (tests, a pod's env).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let either = |a: &str, b: &str| var(a).or_else(|| var(b));
        Self {
            endpoint: either("AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
            region: either("AWS_REGION", "AWS_DEFAULT_REGION"),
            virtual_hosted_style: var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
        }
    }

    /// Where requests go, for messages: the endpoint, or AWS.
    pub fn shown_endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or("AWS S3")
    }
}

/// The request to make: read or write the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Get,
    Put,
}

/// The URL that does `action` on the object, signed with the settings' keys (unsigned without
/// keys). NB: a signed URL is a credential until it expires: it is sent, never shown.
pub fn signed_url(
    url: &S3Url,
    settings: &S3Settings,
    action: Action,
) -> Result<reqwest::Url, String> {
    let region = settings.region.as_deref().unwrap_or(DEFAULT_REGION);
    // NB: without an endpoint the region is part of the host the keys are signed for: a region
    // such as `evil.example/` would send them elsewhere.
    let is_region = (1..=64).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !is_region {
        return Err(format!(
            "the S3 region {region:?} is not a region name (lowercase letters, digits and '-')"
        ));
    }
    let endpoint = match &settings.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => format!("https://s3.{region}.amazonaws.com"),
    };
    let endpoint = reqwest::Url::parse(&endpoint)
        .ok()
        .filter(|e| matches!(e.scheme(), "http" | "https") && e.host_str().is_some())
        .ok_or_else(|| format!("the S3 endpoint {endpoint:?} is not an http:// or https:// URL"))?;
    let style = if settings.virtual_hosted_style {
        UrlStyle::VirtualHost
    } else {
        UrlStyle::Path
    };
    let bucket =
        Bucket::new(endpoint, style, url.bucket.clone(), region.to_string()).map_err(|e| {
            format!(
                "cannot address bucket {:?} at that endpoint: {e}",
                url.bucket
            )
        })?;
    let credentials = match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => Some(match &settings.session_token {
            Some(token) => Credentials::new_with_token(id, secret, token),
            None => Credentials::new(id, secret),
        }),
        (None, None) => None,
        _ => {
            return Err(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: only one is set".into(),
            );
        }
    };
    Ok(match action {
        Action::Get => bucket
            .get_object(credentials.as_ref(), &url.key)
            .sign(SIGNATURE_VALID_FOR),
        Action::Put => bucket
            .put_object(credentials.as_ref(), &url.key)
            .sign(SIGNATURE_VALID_FOR),
    })
}

/// Writes `bytes` as the object (one signed PUT), trusting `ca_pem` too; done within `timeout`.
pub async fn put(
    url: &S3Url,
    settings: &S3Settings,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    bytes: Vec<u8>,
) -> Result<(), String> {
    let signed = signed_url(url, settings, Action::Put)?;
    let mut client = crate::tls::bounded_client(timeout, Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        client = client.tls_certs_merge(crate::transport::certificates(pem)?);
    }
    let client = client.build().map_err(|e| {
        format!(
            "cannot build an HTTP client: {}",
            crate::transport::describe_reqwest(&e)
        )
    })?;
    let response = client.put(signed).body(bytes).send().await.map_err(|e| {
        format!(
            "{} (the store at {})",
            crate::transport::describe_reqwest(&e),
            settings.shown_endpoint()
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(describe_status(
        status,
        &body[..body.len().min(16 << 10)],
        settings,
    ))
}

/// What an S3 error answer means, in words a user can act on: the status and the S3 error code of
/// its body (never the body itself, which may echo the request).
pub fn describe_status(status: StatusCode, body: &[u8], settings: &S3Settings) -> String {
    let code = s3_error_code(&String::from_utf8_lossy(body));
    let store = settings.shown_endpoint();
    match (status, code) {
        (StatusCode::NOT_FOUND, Some("NoSuchBucket")) => {
            "not found: no such bucket (NoSuchBucket)".into()
        }
        (StatusCode::NOT_FOUND, code) => {
            format!("not found: no such object ({})", code.unwrap_or("HTTP 404"))
        }
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, code) => format!(
            "the store at {store} refused the credentials ({}): check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or the Predictor's credentials Secret",
            code.unwrap_or(status.as_str())
        ),
        (_, Some(code)) => format!("the store at {store} answered HTTP {status} ({code})"),
        (_, None) => format!("the store at {store} answered HTTP {status}"),
    }
}

/// The S3 error codes a message may name: the documented ones a download or an upload meets. A
/// code is the store's answer, so only one of these is shown, never whatever the body says (an
/// endpoint may be any server, and its answer must not be echoed).
const KNOWN_ERROR_CODES: [&str; 36] = [
    "AccessDenied",
    "AccountProblem",
    "AllAccessDisabled",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "BadDigest",
    "EntityTooLarge",
    "ExpiredToken",
    "IncompleteBody",
    "InternalError",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidObjectState",
    "InvalidRequest",
    "InvalidSecurity",
    "InvalidToken",
    "KeyTooLongError",
    "MethodNotAllowed",
    "MissingContentLength",
    "NoSuchBucket",
    "NoSuchKey",
    "NotImplemented",
    "NotSignedUp",
    "PermanentRedirect",
    "PreconditionFailed",
    "QuotaExceeded",
    "Redirect",
    "RequestExpired",
    "RequestTimeTooSkewed",
    "RequestTimeout",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SlowDown",
    "TemporaryRedirect",
    "XAmzContentSHA256Mismatch",
];

/// The `<Code>…</Code>` of an S3 error body quoted in `text`, if it is one of [`KNOWN_ERROR_CODES`].
fn s3_error_code(text: &str) -> Option<&'static str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    KNOWN_ERROR_CODES
        .iter()
        .copied()
        .find(|known| *known == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key_and_refuses_the_rest() {
        assert_eq!(
            S3Url::parse("s3://models/american/v1.bin").unwrap(),
            S3Url {
                bucket: "models".into(),
                key: "american/v1.bin".into()
            }
        );
        for (url, expected) in [
            ("s3://models/", "names no object"),
            ("s3://models", "names no object"),
            ("s3://models/dir/", "names no object"),
            ("s3://AK:SK@models/m.bin", "keys in s3:// URLs are not used"),
            ("s3://My_Bucket/m.bin", "not a bucket name"),
            ("s3://m/m.bin", "not a bucket name"),
            ("http://models/m.bin", "not an s3:// URL"),
        ] {
            let err = S3Url::parse(url).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
            assert!(!err.contains("SK@"), "{err}");
        }
    }

    #[test]
    fn settings_come_from_the_usual_variables_and_debug_hides_secrets() {
        let vars = [
            ("AWS_ENDPOINT", "http://127.0.0.1:8333"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-key"),
            ("AWS_SESSION_TOKEN", "t0ken"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "TRUE"),
        ];
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let settings = S3Settings::from_lookup(lookup);
        assert_eq!(
            settings,
            S3Settings {
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: Some("eu-west-1".into()),
                virtual_hosted_style: true,
                access_key_id: Some("AKID".into()),
                secret_access_key: Some("s3cr3t-key".into()),
                session_token: Some("t0ken".into()),
            }
        );
        let debug = format!("{settings:?}");
        assert!(debug.contains("AKID") && !debug.contains("s3cr3t") && !debug.contains("t0ken"));
    }

    #[test]
    fn requests_are_signed_for_the_endpoint_in_path_or_host_style() {
        let url = S3Url::parse("s3://models/american/v1.bin").unwrap();
        let keys = S3Settings {
            endpoint: Some("http://127.0.0.1:8333".into()),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("s3cr3t-key".into()),
            ..S3Settings::default()
        };
        let signed = signed_url(&url, &keys, Action::Get).unwrap();
        assert_eq!(
            signed.origin().ascii_serialization(),
            "http://127.0.0.1:8333"
        );
        assert_eq!(signed.path(), "/models/american/v1.bin");
        let query = signed.query().unwrap();
        assert!(query.contains("X-Amz-Credential=AKID%2F") && query.contains("X-Amz-Signature="));
        assert!(!query.contains("s3cr3t"), "{query}");
        // The same request on another object or with another verb has another signature.
        let put = signed_url(&url, &keys, Action::Put).unwrap();
        assert_ne!(put.query(), signed.query());
        // AWS by default, virtual-hosted; no keys: unsigned.
        let aws = S3Settings {
            region: Some("eu-west-1".into()),
            virtual_hosted_style: true,
            ..S3Settings::default()
        };
        let anonymous = signed_url(&url, &aws, Action::Get).unwrap();
        assert_eq!(
            anonymous.as_str(),
            "https://models.s3.eu-west-1.amazonaws.com/american/v1.bin"
        );
    }

    #[test]
    fn half_a_key_pair_and_a_bad_endpoint_are_refused() {
        let url = S3Url::parse("s3://models/m.bin").unwrap();
        let half = S3Settings {
            access_key_id: Some("AKID".into()),
            ..Default::default()
        };
        let err = signed_url(&url, &half, Action::Get).unwrap_err();
        assert!(err.contains("go together"), "{err}");
        let bad = S3Settings {
            endpoint: Some("127.0.0.1:8333".into()),
            ..Default::default()
        };
        let err = signed_url(&url, &bad, Action::Get).unwrap_err();
        assert!(err.contains("not an http:// or https:// URL"), "{err}");
        // A region is part of AWS's host name: one that would change the host is refused.
        for region in ["evil.example/", "x.evil.example#", "EU", ""] {
            let keys = S3Settings {
                region: Some(region.into()),
                access_key_id: Some("AKID".into()),
                secret_access_key: Some("s3cr3t".into()),
                ..Default::default()
            };
            let err = signed_url(&url, &keys, Action::Get).unwrap_err();
            assert!(err.contains("is not a region name"), "{region}: {err}");
        }
    }

    #[test]
    fn error_answers_are_told_by_status_and_s3_code_only() {
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:8333".into()),
            ..S3Settings::default()
        };
        let body = |code: &str| {
            format!(
                "<?xml version=\"1.0\"?><Error><Code>{code}</Code><StringToSign>AKID s3cr3t</StringToSign></Error>"
            )
        };
        for (status, code, expected) in [
            (
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "not found: no such object (NoSuchKey)",
            ),
            (
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "not found: no such bucket (NoSuchBucket)",
            ),
            (
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "the store at http://127.0.0.1:8333 refused the credentials (SignatureDoesNotMatch)",
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "the store at http://127.0.0.1:8333 answered HTTP 503 Service Unavailable (SlowDown)",
            ),
        ] {
            let text = describe_status(status, body(code).as_bytes(), &settings);
            assert!(text.starts_with(expected), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
        let text = describe_status(StatusCode::FORBIDDEN, b"", &settings);
        assert!(text.contains("refused the credentials (403)"), "{text}");
    }

    #[test]
    fn the_error_code_is_read_from_the_body_only_when_it_is_one() {
        let text = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>…</Message></Error>";
        assert_eq!(s3_error_code(text), Some("SignatureDoesNotMatch"));
        assert_eq!(s3_error_code("<Code>a b</Code>"), None);
        assert_eq!(s3_error_code("no body"), None);
        // A code that is not a known one is the server's own words: not shown.
        assert_eq!(s3_error_code("<Code>AKIAEXAMPLEINTERNAL</Code>"), None);
        let settings = S3Settings::default();
        let text = describe_status(
            StatusCode::FORBIDDEN,
            b"<Error><Code>AKIAEXAMPLEINTERNAL</Code></Error>",
            &settings,
        );
        assert!(
            text.contains("refused the credentials (403)") && !text.contains("AKIA"),
            "{text}"
        );
    }
}

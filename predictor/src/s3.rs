//! Reads and writes one object in S3-compatible storage, `s3://bucket/key`, with Apache Arrow's
//! `object_store` (SigV4 signing, retries, the AWS environment's conventions).
//!
//! Where the store is and who asks are [`S3Settings`]: an endpoint for any S3-compatible server
//! (SeaweedFS, Ceph RGW, MinIO, R2, …), region, path-style or virtual-hosted requests, and keys. The
//! CLI and the server read them from the usual `AWS_*` variables ([`S3Settings::from_env`]); the
//! operator builds them from a Predictor's `spec.model` and its credentials Secret, never from its own
//! environment. No keys at all means anonymous (unsigned) requests, as for a public bucket.
//!
//! Errors are plain reasons that never carry a key or a signature; [`crate::source`] adds the location.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, ObjectStoreExt, PutPayload, RetryConfig,
};

/// Region signed for when none is set (what the AWS SDKs assume; most S3-compatible servers ignore it).
const DEFAULT_REGION: &str = "us-east-1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
        Path::parse(key).map_err(|e| format!("{key:?} is not an object key: {e}"))?;
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
    /// Without keys, let the AWS conventions find credentials (web identity token, container
    /// credentials). Only for a process's own environment, never for the operator checking a
    /// Predictor's model on its behalf.
    pub ambient: bool,
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

/// Environment variables whose presence lets the AWS conventions find credentials without keys.
const AMBIENT_CREDENTIAL_VARIABLES: [&str; 3] = [
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

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
            ambient: AMBIENT_CREDENTIAL_VARIABLES
                .iter()
                .any(|name| var(name).is_some()),
        }
    }

    /// Where requests go, for messages: the endpoint, or AWS.
    fn shown_endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or("AWS S3")
    }
}

/// A client for the URL's bucket: every request within `timeout`, at most two retries within 10 s
/// (a store that is down is reported in about a second, not after object_store's default 3 minutes).
fn client(
    url: &S3Url,
    settings: &S3Settings,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<AmazonS3, String> {
    crate::tls::install_crypto_provider();
    let mut options = ClientOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(CONNECT_TIMEOUT.min(timeout));
    if let Some(pem) = ca_pem {
        let certificates = Certificate::from_pem_bundle(pem)
            .ok()
            .filter(|certificates| !certificates.is_empty())
            .ok_or("the store's CA bundle holds no PEM certificate")?;
        for certificate in certificates {
            options = options.with_root_certificate(certificate);
        }
    }
    let mut builder = if settings.ambient && settings.access_key_id.is_none() {
        AmazonS3Builder::from_env()
    } else {
        AmazonS3Builder::new()
    };
    if let Some(endpoint) = &settings.endpoint {
        let lower = endpoint.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err(format!(
                "the S3 endpoint {endpoint:?} is not an http:// or https:// URL"
            ));
        }
        options = options.with_allow_http(lower.starts_with("http://"));
        builder = builder.with_endpoint(endpoint);
    }
    builder = match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => {
            let builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            match &settings.session_token {
                Some(token) => builder.with_token(token),
                None => builder,
            }
        }
        (None, None) if settings.ambient => builder,
        // NB: without this, object_store would ask the EC2 metadata service for credentials.
        (None, None) => builder.with_skip_signature(true),
        _ => {
            return Err(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: only one is set".into(),
            );
        }
    };
    builder
        .with_bucket_name(&url.bucket)
        .with_region(settings.region.as_deref().unwrap_or(DEFAULT_REGION))
        .with_virtual_hosted_style_request(settings.virtual_hosted_style)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        })
        .with_client_options(options)
        .build()
        .map_err(|e| format!("cannot configure the S3 client: {e}"))
}

fn path(url: &S3Url) -> Result<Path, String> {
    Path::parse(&url.key).map_err(|e| format!("{:?} is not an object key: {e}", url.key))
}

/// The whole object (async), refusing more than `max_bytes` before downloading when the store says
/// its size, else as soon as the limit is passed.
pub async fn fetch(
    url: &S3Url,
    settings: &S3Settings,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
    let store = client(url, settings, ca_pem, timeout)?;
    let got = store
        .get(&path(url)?)
        .await
        .map_err(|e| describe(&e, settings))?;
    let len = got.meta.size;
    if len > max_bytes {
        return Err(format!(
            "{len} bytes is more than the {max_bytes}-byte limit"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe(&e, settings))?;
        if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(format!("more than the {max_bytes}-byte limit"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Opens the object for blocking, streaming reads: `(reader, length in bytes)`. Not for use inside
/// an async runtime (it runs its own).
pub fn open(
    url: &S3Url,
    settings: &S3Settings,
    timeout: Duration,
) -> Result<(Box<dyn Read + Send>, u64), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("s3-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the S3 I/O thread: {e}"))?;
    let store = client(url, settings, None, timeout)?;
    let got = runtime
        .block_on(store.get(&path(url)?))
        .map_err(|e| describe(&e, settings))?;
    let len = got.meta.size;
    let shown = settings.clone();
    let stream = got
        .into_stream()
        .map_err(move |e| std::io::Error::other(describe(&e, &shown)));
    let reader = tokio_util::io::SyncIoBridge::new_with_handle(
        tokio_util::io::StreamReader::new(stream),
        runtime.handle().clone(),
    );
    Ok((
        Box::new(crate::source::OwnRuntime {
            reader,
            _runtime: runtime,
        }),
        len,
    ))
}

/// Writes `bytes` as the object (one PUT, or a multipart upload for big objects).
pub async fn put(
    url: &S3Url,
    settings: &S3Settings,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    bytes: Vec<u8>,
) -> Result<(), String> {
    let store = client(url, settings, ca_pem, timeout)?;
    store
        .put(&path(url)?, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|e| describe(&e, settings))
}

/// What went wrong, in words a user can act on; never a key, never the whole response.
fn describe(error: &object_store::Error, settings: &S3Settings) -> String {
    let text = error.to_string();
    let code = s3_error_code(&text);
    match error {
        object_store::Error::NotFound { .. } => match code.as_deref() {
            Some("NoSuchBucket") => "not found: no such bucket (NoSuchBucket)".into(),
            Some(code) => format!("not found: no such object ({code})"),
            None => "not found: no such object (HTTP 404)".into(),
        },
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            format!(
                "the store at {} refused the credentials ({}): check AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or the Predictor's credentials Secret",
                settings.shown_endpoint(),
                code.as_deref().unwrap_or("HTTP 401/403")
            )
        }
        _ => {
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                if let Some(http) = cause.downcast_ref::<object_store::client::HttpError>() {
                    let mut why = String::new();
                    let mut inner = std::error::Error::source(http);
                    while let Some(cause) = inner {
                        why = cause.to_string();
                        inner = cause.source();
                    }
                    let what = match http.kind() {
                        object_store::client::HttpErrorKind::Connect => "cannot connect to",
                        object_store::client::HttpErrorKind::Timeout => "timed out talking to",
                        _ => "the request failed at",
                    };
                    return format!("{what} the store at {}: {why}", settings.shown_endpoint());
                }
                source = cause.source();
            }
            match code {
                Some(code) => format!("the store answered {code}"),
                None => text.chars().take(300).collect(),
            }
        }
    }
}

/// The `<Code>…</Code>` of an S3 error body quoted in `text`, if any.
fn s3_error_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_string()).filter(|code| {
        !code.is_empty() && code.len() < 64 && code.bytes().all(|b| b.is_ascii_alphanumeric())
    })
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
            ("s3://models/a//b", "not an object key"),
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
                ambient: false,
            }
        );
        let debug = format!("{settings:?}");
        assert!(debug.contains("AKID") && !debug.contains("s3cr3t") && !debug.contains("t0ken"));
        let ambient = S3Settings::from_lookup(|name| {
            (name == "AWS_WEB_IDENTITY_TOKEN_FILE").then(|| "/var/run/token".to_string())
        });
        assert!(ambient.ambient && ambient.endpoint.is_none());
    }

    #[test]
    fn half_a_key_pair_and_a_bad_endpoint_are_refused() {
        let url = S3Url::parse("s3://models/m.bin").unwrap();
        let half = S3Settings {
            access_key_id: Some("AKID".into()),
            ..Default::default()
        };
        let err = client(&url, &half, None, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("go together"), "{err}");
        let bad = S3Settings {
            endpoint: Some("127.0.0.1:8333".into()),
            ..Default::default()
        };
        let err = client(&url, &bad, None, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("not an http:// or https:// URL"), "{err}");
        let err = client(
            &url,
            &S3Settings::default(),
            Some(b"nope"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.contains("CA bundle"), "{err}");
    }

    #[test]
    fn the_error_code_is_read_from_the_body_only_when_it_is_one() {
        let text = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
                    <Error><Code>SignatureDoesNotMatch</Code><Message>…</Message></Error>";
        assert_eq!(
            s3_error_code(text).as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(s3_error_code("<Code>a b</Code>"), None);
        assert_eq!(s3_error_code("no body"), None);
    }

    #[tokio::test]
    async fn a_store_that_is_down_is_reported_at_once_by_its_endpoint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = S3Settings {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("s3cr3t-key".into()),
            ..Default::default()
        };
        let url = S3Url::parse("s3://models/m.bin").unwrap();
        let started = std::time::Instant::now();
        let err = fetch(&url, &settings, None, Duration::from_secs(5), 1 << 20)
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!(
                "cannot connect to the store at http://127.0.0.1:{port}"
            )),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

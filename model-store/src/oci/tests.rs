use super::*;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn parses_tags_and_digests_and_refuses_the_rest() {
    let url = OciUrl::parse(&format!("oci://127.0.0.1:5000/models/american@{DIGEST}")).unwrap();
    assert_eq!(url.registry, "127.0.0.1:5000");
    assert_eq!(url.repository, "models/american");
    assert_eq!(url.digest.as_deref(), Some(DIGEST));
    assert_eq!(url.manifest_reference(), DIGEST);
    let url = OciUrl::parse("oci://registry.example.com/team/model:v2").unwrap();
    assert_eq!(url.tag.as_deref(), Some("v2"));
    assert_eq!(url.manifest_reference(), "v2");
    assert_eq!(
        url.pinned(DIGEST),
        format!("oci://registry.example.com/team/model@{DIGEST}")
    );
    let url = OciUrl::parse(&format!("OCI://localhost/a/b.c__d-e:V_1.2@{DIGEST}")).unwrap();
    assert_eq!(
        (url.registry.as_str(), url.repository.as_str()),
        ("localhost", "a/b.c__d-e")
    );
    assert_eq!(
        (url.tag.as_deref(), url.digest.as_deref()),
        (Some("V_1.2"), Some(DIGEST))
    );
    let url = OciUrl::parse("oci://[::1]:5000/m").unwrap();
    assert_eq!(
        (url.tag.as_deref(), url.manifest_reference()),
        (None, "latest")
    );
    for (url, expected) in [
        ("oci://registry.example.com", "names no repository"),
        (
            "oci://u:pw@registry.example.com/m:v1",
            "credentials in oci:// URLs",
        ),
        ("oci://models/american:v1", "is not a registry host"),
        ("oci://r.example.com/m@sha256:abc", "not"),
        ("oci://r.example.com/Models:v1", "not an OCI reference"),
        ("oci://r.example.com/m:-v1", "the tag \"-v1\""),
        ("oci://r.example.com/m:a/b", "component \"m:a\""),
        ("oci://r.example.com//m", "component \"\""),
        (
            "oci://r.example.com:x/m",
            "the registry \"r.example.com:x\"",
        ),
        ("oci://r.example.com/m@md5:0", "not sha256"),
        ("s3://r/m", "not an oci:// URL"),
    ] {
        let err = OciUrl::parse(url).unwrap_err();
        assert!(err.contains(expected), "{url}: {err}");
        assert!(!err.contains("pw@"), "{err}");
    }
}

#[test]
fn loopback_hosts_are_recognised() {
    for host in [
        "localhost:5000",
        "127.0.0.1",
        "127.0.0.2:5000",
        "[::1]:5000",
    ] {
        assert!(is_loopback(host), "{host}");
    }
    for host in ["10.77.0.1:5443", "registry.local", "[fe80::1]:5000"] {
        assert!(!is_loopback(host), "{host}");
    }
}

#[test]
fn the_artifact_manifest_is_an_oci_artifact_naming_the_model() {
    let manifest = artifact_manifest(b"model bytes", "american.bin");
    let value: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": EMPTY_CONFIG_MEDIA_TYPE,
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2
            },
            "layers": [{
                "mediaType": MODEL_MEDIA_TYPE,
                "digest": digest_of(b"model bytes"),
                "size": 11,
                "annotations": {"org.opencontainers.image.title": "american.bin"}
            }]
        })
    );
    assert_eq!(
        model_layer(&manifest).unwrap().digest,
        digest_of(b"model bytes")
    );
}

#[test]
fn the_model_layer_is_ours_or_the_only_one() {
    let layer = |media_type: &str| serde_json::json!({"mediaType": media_type, "digest": DIGEST, "size": 1});
    let manifest = |layers: Vec<serde_json::Value>| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": EMPTY_CONFIG_MEDIA_TYPE, "digest": DIGEST, "size": 2},
            "layers": layers
        }))
        .unwrap()
    };
    // oras push's default layer type.
    let oras = manifest(vec![layer("application/vnd.oci.image.layer.v1.tar")]);
    assert!(model_layer(&oras).is_ok());
    let two = manifest(vec![layer("a/b"), layer(MODEL_MEDIA_TYPE)]);
    assert_eq!(model_layer(&two).unwrap().media_type, MODEL_MEDIA_TYPE);
    let err = model_layer(&manifest(vec![layer("a/b"), layer("c/d")])).unwrap_err();
    assert!(err.contains("2 layers"), "{err}");
    let err = model_layer(&manifest(vec![])).unwrap_err();
    assert!(err.contains("no layers"), "{err}");
    let err = model_layer(b"{\"not\": 1}").unwrap_err();
    assert!(err.contains("not an OCI image manifest"), "{err}");
    let odd =
        serde_json::json!({"mediaType": MODEL_MEDIA_TYPE, "digest": "sha256:../../x", "size": 1});
    let err = model_layer(&manifest(vec![odd])).unwrap_err();
    assert!(
        err.contains("the model layer's digest is not sha256"),
        "{err}"
    );
    // The manifest is the registry's answer: its words never show in a reason.
    let echo = serde_json::json!({"mediaType": MODEL_MEDIA_TYPE, "digest": "AKIAEXAMPLEINTERNAL", "size": 1});
    let err = model_layer(&manifest(vec![echo])).unwrap_err();
    assert!(!err.contains("AKIA"), "{err}");
    let err = model_layer(br#"{"layers": "AKIAEXAMPLEINTERNAL"}"#).unwrap_err();
    assert!(
        err.contains("(line 1, column") && !err.contains("AKIA"),
        "{err}"
    );
}

mod fake {
    //! A registry on loopback behind Bearer tokens (a pull token cannot write), whose blobs
    //! are served by a storage on another host it redirects to.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::{Path, Query, State};
    use axum::http::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};

    use super::super::digest_of;
    use crate::registry::auth::basic_token;

    pub const PASSWORD: &str = "fake-s3cret";

    #[derive(Default)]
    pub struct Seen {
        pub blobs: HashMap<String, Vec<u8>>,
        pub manifests: HashMap<String, Vec<u8>>,
        pub uploads: usize,
        pub challenges: usize,
        /// The scopes tokens were asked for.
        pub scopes: Vec<String>,
        /// The Authorization header of each request the storage got.
        pub storage_authorizations: Vec<Option<String>>,
    }

    #[derive(Clone)]
    pub struct Fake {
        pub seen: Arc<Mutex<Seen>>,
        /// `127.0.0.1:<port>`: the registry.
        pub host: String,
        /// `localhost:<port>`: its blob storage.
        storage: String,
    }

    fn errors(status: StatusCode, code: &str) -> Response {
        (status, crate::testing::registry_error(code)).into_response()
    }

    async fn v2(
        State(fake): State<Fake>,
        method: Method,
        headers: HeaderMap,
        Path(rest): Path<String>,
        Query(query): Query<HashMap<String, String>>,
        body: Bytes,
    ) -> Response {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let writes = method == Method::POST || method == Method::PUT;
        let mut seen = fake.seen.lock().unwrap();
        if !matches!(
            (token, writes),
            (Some("tok-push"), _) | (Some("tok-pull"), false)
        ) {
            seen.challenges += 1;
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="fake",scope="repository:models/american:pull""#,
                fake.host
            );
            return (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, challenge)]).into_response();
        }
        if method == Method::POST && rest.ends_with("/blobs/uploads/") {
            let location = format!("/v2/{rest}1");
            return (StatusCode::ACCEPTED, [(LOCATION, location)]).into_response();
        }
        if method == Method::PUT && rest.contains("/blobs/uploads/") {
            let digest = query.get("digest").cloned().unwrap_or_default();
            if digest_of(&body) != digest {
                return errors(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
            }
            seen.uploads += 1;
            seen.blobs.insert(digest, body.to_vec());
            return StatusCode::CREATED.into_response();
        }
        if let Some((_, digest)) = rest.split_once("/blobs/") {
            return match (seen.blobs.contains_key(digest), method) {
                (false, _) => errors(StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
                (true, Method::HEAD) => StatusCode::OK.into_response(),
                (true, _) => {
                    let location = format!("http://{}/{digest}", fake.storage);
                    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)]).into_response()
                }
            };
        }
        let Some((_, reference)) = rest.split_once("/manifests/") else {
            return errors(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
        };
        if method == Method::PUT {
            let digest = digest_of(&body);
            seen.manifests.insert(reference.to_string(), body.to_vec());
            seen.manifests.insert(digest.clone(), body.to_vec());
            return (StatusCode::CREATED, [("docker-content-digest", digest)]).into_response();
        }
        match seen.manifests.get(reference) {
            Some(manifest) => manifest.clone().into_response(),
            None => errors(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        }
    }

    async fn token(
        State(fake): State<Fake>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, String>>,
    ) -> Response {
        let alice = format!("Basic {}", basic_token("alice", PASSWORD));
        if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(alice.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let scope = query.get("scope").cloned().unwrap_or_default();
        let token = if scope.ends_with(":pull,push") {
            "tok-push"
        } else {
            "tok-pull"
        };
        fake.seen.lock().unwrap().scopes.push(scope);
        format!(r#"{{"token":"{token}"}}"#).into_response()
    }

    async fn storage(
        State(fake): State<Fake>,
        headers: HeaderMap,
        Path(digest): Path<String>,
    ) -> Response {
        let mut seen = fake.seen.lock().unwrap();
        let authorization = headers
            .get(AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        seen.storage_authorizations.push(authorization);
        match seen.blobs.get(&digest) {
            Some(blob) => blob.clone().into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }

    /// Starts the registry and its storage.
    pub async fn start() -> Fake {
        let registry = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let store = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            seen: Arc::default(),
            host: registry.local_addr().unwrap().to_string(),
            storage: format!("localhost:{}", store.local_addr().unwrap().port()),
        };
        let app = Router::new()
            .route("/v2/{*rest}", axum::routing::any(v2))
            .route("/token", axum::routing::get(token))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(registry, app).await });
        let app = Router::new()
            .route("/{digest}", axum::routing::get(storage))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(store, app).await });
        fake
    }
}

fn docker_config(host: &str, password: &str) -> DockerConfig {
    let json = serde_json::json!({"auths": {host: {"username": "alice", "password": password}}});
    DockerConfig::parse(json.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn artifacts_round_trip_through_bearer_auth_and_a_blob_redirect() {
    let fake = fake::start().await;
    let config = docker_config(&fake.host, fake::PASSWORD);
    let limit = Duration::from_secs(5);
    let tag = OciUrl::parse(&format!("oci://{}/models/american:v1", fake.host)).unwrap();
    let model = b"model bytes".to_vec();
    let pushed = push(&tag, Some(&config), None, limit, model.clone(), "m.bin")
        .await
        .unwrap();
    let digest = digest_of(&artifact_manifest(&model, "m.bin"));
    assert_eq!(pushed, tag.pinned(&digest));
    // Pushed again: the registry has both blobs, nothing is uploaded.
    push(&tag, Some(&config), None, limit, model.clone(), "m.bin")
        .await
        .unwrap();
    let pinned = OciUrl::parse(&pushed).unwrap();
    for url in [&pinned, &tag] {
        let fetched = fetch(url, Some(&config), None, limit, 1 << 20).await;
        assert_eq!(fetched.as_deref(), Ok(&model[..]));
    }
    {
        let seen = fake.seen.lock().unwrap();
        assert_eq!(seen.uploads, 2);
        // One challenge per session, answered once: the token is reused after it.
        assert_eq!(seen.challenges, 4);
        let push_scope = "repository:models/american:pull,push".to_string();
        let pull_scope = "repository:models/american:pull".to_string();
        assert_eq!(
            seen.scopes,
            [
                push_scope.clone(),
                push_scope,
                pull_scope.clone(),
                pull_scope
            ]
        );
        // The storage got the layer twice, never with the registry's token.
        assert_eq!(seen.storage_authorizations, [None, None]);
    }

    let err = fetch(&pinned, Some(&config), None, limit, 5)
        .await
        .unwrap_err();
    assert!(
        err.contains("11 bytes is more than the 5-byte limit"),
        "{err}"
    );
    let wrong = docker_config(&fake.host, "not-the-password");
    for url in [&pinned, &tag] {
        let err = fetch(url, Some(&wrong), None, limit, 1 << 20)
            .await
            .unwrap_err();
        assert!(err.contains("refused the credentials"), "{err}");
        assert!(!err.contains("not-the-password"), "{err}");
    }
    let err = push(&tag, Some(&wrong), None, limit, model.clone(), "m.bin")
        .await
        .unwrap_err();
    assert!(err.contains("refused the credentials"), "{err}");
    let missing = OciUrl::parse(&format!("oci://{}/models/american:v2", fake.host)).unwrap();
    let err = fetch(&missing, Some(&config), None, limit, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        err.starts_with("not found") && err.contains("no manifest v2 in models/american"),
        "{err}"
    );
    let other = OciUrl::parse(&pinned.pinned(&digest_of(b"another manifest"))).unwrap();
    let err = fetch(&other, Some(&config), None, limit, 1 << 20)
        .await
        .unwrap_err();
    assert!(err.starts_with("not found"), "{err}");

    // A registry whose storage returns other bytes than the layer's digest, or a manifest
    // other than the pinned one under the pinned digest.
    fake.seen
        .lock()
        .unwrap()
        .blobs
        .insert(digest_of(&model), b"MODEL BYTES".to_vec());
    let err = fetch(&tag, Some(&config), None, limit, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        err.contains("the layer's bytes do not match its digest"),
        "{err}"
    );
    let manifest = fake.seen.lock().unwrap().manifests["v1"].clone();
    fake.seen
        .lock()
        .unwrap()
        .manifests
        .insert(other.digest.clone().unwrap(), manifest);
    let err = fetch(&other, Some(&config), None, limit, 1 << 20)
        .await
        .unwrap_err();
    assert!(err.contains("does not match the pinned digest"), "{err}");
}

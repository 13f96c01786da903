//! Registry tier: the image [`Resolver`] against a real registry, Debian's `docker-registry` (the
//! CNCF distribution registry), behind htpasswd (bcrypt) Basic auth on a loopback port.
//!
//! The test pushes a tiny OCI image itself with the plain registry API (two blob uploads, one
//! manifest PUT), then asks the resolver for its tag: the manifest's sha256, ImageNotFound for a
//! missing tag or repository, RegistryUnauthorized for a wrong or missing password, and
//! RegistryUnreachable once the registry is stopped. Needs `docker-registry` and `htpasswd`
//! (`apt-get install docker-registry apache2-utils`); ignored by a plain `cargo test`, `./dev/test`
//! runs it, and when selected it fails at once if either program is missing.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use operator::image::{DockerConfig, ImageReference, Resolver};
use predictor::model::sha256_hex;
use predictor::testing::poll;
use support::{Proc, free_port};

const INSTALL: &str = "apt-get install -y docker-registry apache2-utils";
const USER: &str = "alice";
const PASSWORD: &str = "pull-s3cret";
const REPOSITORY: &str = "team/american-predictor";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Fails at once, naming the install command, when `program` is not on PATH.
fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} not found on PATH: install it with `{INSTALL}`"
    );
}

/// `docker-registry serve` with filesystem storage in `dir` and htpasswd auth for alice.
fn start_registry(dir: &Path, port: u16) -> Proc {
    let htpasswd = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .expect("run htpasswd");
    assert!(
        htpasswd.status.success(),
        "htpasswd -Bbn failed: {htpasswd:?}"
    );
    std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).expect("write htpasswd");
    std::fs::create_dir_all(dir.join("data")).expect("create storage dir");
    let config = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: registry-test\n\
         auth:\n  htpasswd:\n    realm: test-registry\n    path: {htpasswd}\n",
        data = dir.join("data").display(),
        htpasswd = dir.join("htpasswd").display(),
    );
    std::fs::write(dir.join("config.yml"), config).expect("write registry config");
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(dir.join("config.yml"));
    let mut registry = Proc::spawn("docker-registry", cmd, &dir.join("registry.log"));
    let addr = format!("127.0.0.1:{port}");
    poll(Duration::from_secs(20), "docker-registry to listen", || {
        assert!(
            registry.running(),
            "docker-registry exited:\n{}",
            registry.tail(20)
        );
        std::net::TcpStream::connect(&addr).ok()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", registry.tail(20)));
    registry
}

/// Pushes a one-layer OCI image as `<repository>:<tag>` with the plain registry API; returns the
/// manifest's digest (`sha256:…` of the exact bytes PUT).
async fn push_image(http: &reqwest::Client, base: &str, tag: &str) -> String {
    // An empty tar archive (two zero blocks) is a valid, uncompressed layer.
    let layer = vec![0u8; 1024];
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    }))
    .unwrap();
    let config_digest = push_blob(http, base, &config).await;
    assert_eq!(push_blob(http, base, &layer).await, layer_digest);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len()
        }]
    }))
    .unwrap();
    let digest = format!("sha256:{}", sha256_hex(&manifest));
    let response = http
        .put(format!("{base}/v2/{REPOSITORY}/manifests/{tag}"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", MANIFEST_TYPE)
        .body(manifest)
        .send()
        .await
        .expect("PUT manifest");
    assert_eq!(response.status(), 201, "PUT manifest: {response:?}");
    assert_eq!(
        response.headers()["docker-content-digest"]
            .to_str()
            .unwrap(),
        digest
    );
    digest
}

/// A monolithic blob upload: POST for an upload URL, PUT the bytes with their digest.
async fn push_blob(http: &reqwest::Client, base: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let started = http
        .post(format!("{base}/v2/{REPOSITORY}/blobs/uploads/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("POST blob upload");
    assert_eq!(started.status(), 202, "POST blob upload: {started:?}");
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let done = http
        .put(format!("{location}{separator}digest={digest}"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT blob");
    assert_eq!(done.status(), 201, "PUT blob: {done:?}");
    digest
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs docker-registry (apt-get install docker-registry apache2-utils): ./dev/test runs it"]
async fn tags_resolve_to_manifest_digests_on_a_real_registry() {
    require("docker-registry");
    require("htpasswd");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut registry = start_registry(dir.path(), port);
    let host = format!("127.0.0.1:{port}");
    let base = format!("http://{host}");
    predictor::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let digest = push_image(&http, &base, "0.2").await;

    // The credentials come the way the operator will get them: from a .dockerconfigjson.
    let dockerconfig = serde_json::json!({"auths": {
        format!("http://{host}"): {"username": USER, "password": PASSWORD}
    }});
    let config = DockerConfig::parse("regcred", dockerconfig.to_string().as_bytes()).unwrap();
    let image = ImageReference::parse(&format!("{host}/{REPOSITORY}:0.2")).unwrap();
    let credentials = config
        .credentials_for(&image.registry)
        .expect("credentials for the registry");
    let resolver = Resolver::new(Duration::from_secs(5)).unwrap();

    let resolved = resolver.resolve(&image, Some(credentials)).await;
    assert_eq!(
        resolved.as_deref().map_err(ToString::to_string),
        Ok(digest.as_str()),
        "registry log:\n{}",
        registry.tail(20)
    );
    let pinned = ImageReference::parse(&image.pinned(&digest)).unwrap();
    assert_eq!(
        resolver.resolve(&pinned, Some(credentials)).await.unwrap(),
        digest
    );

    for missing in ["0.3", "0.2-rc1"] {
        let image = ImageReference::parse(&format!("{host}/{REPOSITORY}:{missing}")).unwrap();
        let err = resolver
            .resolve(&image, Some(credentials))
            .await
            .unwrap_err();
        assert_eq!(err.metric_label(), "image_not_found", "{err}");
    }
    let other_repository = ImageReference::parse(&format!("{host}/team/nothing:0.2")).unwrap();
    let err = resolver
        .resolve(&other_repository, Some(credentials))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "image_not_found", "{err}");

    let wrong = operator::image::Credentials {
        username: USER.into(),
        password: "not-the-password".into(),
    };
    let err = resolver.resolve(&image, Some(&wrong)).await.unwrap_err();
    assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    let err = resolver.resolve(&image, None).await.unwrap_err();
    assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");

    registry.terminate(Duration::from_secs(10));
    let err = resolver
        .resolve(&image, Some(credentials))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "registry_unreachable", "{err}");
    assert!(err.to_string().contains(&host), "{err}");
}

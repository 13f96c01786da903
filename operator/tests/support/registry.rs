//! A real private registry for the tiers that test image resolution: Debian's `docker-registry`
//! (the CNCF distribution registry) on a loopback port, behind htpasswd (bcrypt) Basic auth, started
//! by `dev/registry.sh` (the launcher of the node tier's registry too); and a pusher of tiny OCI
//! images written with the plain registry API (two blob uploads, one manifest PUT), so no image tool
//! is needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use model_store::testing::poll;
use predictor::model::sha256_hex;

use super::{Proc, free_port, launcher};

/// How to install what this module runs.
pub const INSTALL: &str = "apt-get install -y docker-registry apache2-utils";
/// The one user of the registry and its password.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "pull-s3cret";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Fails at once, naming the install command, when `program` is not on PATH.
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} not found on PATH: install it with `{INSTALL}`"
    );
}

/// A `kubernetes.io/dockerconfigjson` Secret `name` holding `docker_config`
/// ([`Registry::docker_config`]).
pub fn pull_secret(name: &str, docker_config: &str) -> Secret {
    let mut secret = Secret {
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(
            [(
                ".dockerconfigjson".to_string(),
                ByteString(docker_config.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    secret.metadata.name = Some(name.into());
    secret
}

/// A running `docker-registry serve` with its storage and config in `dir`.
pub struct Registry {
    dir: PathBuf,
    proc: Option<Proc>,
    /// `127.0.0.1:<port>`: the registry part of image references.
    pub host: String,
    http: reqwest::Client,
}

impl Registry {
    /// Starts a registry with its config and filesystem storage in `dir` and htpasswd auth for [`USER`].
    pub fn start(dir: &Path) -> Registry {
        require("docker-registry");
        require("htpasswd");
        let host = format!("127.0.0.1:{}", free_port());
        model_store::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client");
        let mut registry = Registry {
            dir: dir.to_path_buf(),
            proc: None,
            host,
            http,
        };
        registry.resume();
        registry
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Stops the registry process (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(Duration::from_secs(10));
        }
    }

    /// Starts the registry again on the same port and storage (after [`stop`](Self::stop)); the
    /// launcher writes its config on every start.
    pub fn resume(&mut self) {
        let mut cmd = launcher("dev/registry.sh", "registry_serve");
        cmd.arg(&self.dir).args([&self.host, USER, PASSWORD]);
        let mut proc = Proc::spawn("docker-registry", cmd, &self.dir.join("registry.log"));
        poll(Duration::from_secs(20), "docker-registry to listen", || {
            assert!(proc.running(), "docker-registry exited:\n{}", proc.tail(20));
            std::net::TcpStream::connect(&self.host).ok()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", proc.tail(20)));
        self.proc = Some(proc);
    }

    /// The last lines of the registry's log.
    pub fn tail(&self, n: usize) -> String {
        self.proc
            .as_ref()
            .map_or_else(|| "(stopped)".into(), |p| p.tail(n))
    }

    /// A `.dockerconfigjson` with `password` for this registry, as `kubectl create secret
    /// docker-registry` writes it.
    pub fn docker_config(&self, password: &str) -> String {
        serde_json::json!({"auths": {
            self.base(): {"username": USER, "password": password}
        }})
        .to_string()
    }

    /// Pushes a one-layer OCI image as `repository:tag`, whose bytes differ with `variant`;
    /// returns the manifest's digest (`sha256:…` of the exact bytes PUT).
    pub async fn push(&self, repository: &str, tag: &str, variant: u8) -> String {
        // A tar archive of zero blocks is a valid, uncompressed (empty) layer; a different length
        // makes a different layer, config and manifest.
        let layer = vec![0u8; 1024 * (2 + usize::from(variant))];
        let layer_digest = format!("sha256:{}", sha256_hex(&layer));
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
        }))
        .unwrap();
        let config_digest = self.push_blob(repository, &config).await;
        assert_eq!(self.push_blob(repository, &layer).await, layer_digest);
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
        let response = self
            .http
            .put(format!("{}/v2/{repository}/manifests/{tag}", self.base()))
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
    async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let base = self.base();
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let started = self
            .http
            .post(format!("{base}/v2/{repository}/blobs/uploads/"))
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
        let done = self
            .http
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
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

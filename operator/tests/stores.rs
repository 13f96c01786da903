//! Stores tier: models in S3-compatible object storage and as OCI artifacts, on real servers on
//! loopback: SeaweedFS (`weed`, built from the Go module proxy by `dev/cluster/build-binaries.sh
//! weed`) with S3 keys, and Debian's `docker-registry` behind htpasswd.
//!
//! The real `predictor` binary (`PREDICTOR_BIN`, the static build `./dev/static-bins.sh` makes)
//! publishes model files to both (`predictor publish`, `--update` committing a Predictor manifest in a
//! Git checkout), trains from `s3://`, and serves from `s3://` and `oci://` with its credentials from
//! the environment, as a pod gets them from `spec.model.credentials`. A wrong digest, wrong
//! credentials, a missing object and a store that is down each leave the server not ready with the
//! reason in `/readyz`; the operator's pre-flight check, given the same Secret, refuses the same
//! models with the same reasons. No credential reaches a log, an answer, `/metrics` or a status
//! message. Ignored by a plain `cargo test`; `./dev/test` runs it, and when selected it fails at once
//! naming what is missing.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::ByteString;
use model_store::s3::{S3Settings, S3Url};
use model_store::testing::poll;
use operator::crd::{ModelSpec, S3Spec};
use operator::metrics::Metrics;
use operator::model_access::access_from;
use operator::status::ModelCheck;
use serde_json::Value;
use support::registry::{self, PASSWORD, Registry, USER};
use support::seaweedfs::SeaweedFs;
use support::{free_port, repo_root};

const DATE_A: &str = "2026-11-27T08:00:00Z";
const DATE_B: &str = "2026-11-27T09:00:00Z";
/// How long a server may take to say ready or why not.
const SETTLE: Duration = Duration::from_secs(30);

fn predictor_bin() -> PathBuf {
    let bin = std::env::var("PREDICTOR_BIN").unwrap_or_else(|_| {
        panic!(
            "PREDICTOR_BIN is not set: build the predictor with ./dev/static-bins.sh and set \
             PREDICTOR_BIN=<its dir>/predictor (./dev/test does both)"
        )
    });
    PathBuf::from(bin)
}

/// The environment a pod gets from a credentials Secret, for this test's stores.
struct Credentials {
    env: Vec<(&'static str, String)>,
}

impl Credentials {
    fn new(s3: &SeaweedFs, registry_auth: &str, secret_key: &str) -> Self {
        Self {
            env: vec![
                ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", s3.access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY", secret_key.to_string()),
                ("PREDICTOR_REGISTRY_AUTH", registry_auth.to_string()),
            ],
        }
    }

    fn apply(&self, command: &mut Command) {
        command
            .env_remove("REGISTRY_AUTH_FILE")
            .env("HOME", "/nonexistent");
        for (name, value) in &self.env {
            command.env(name, value);
        }
    }
}

/// `predictor <args>` with `credentials` in its environment; waits for it.
fn cli(credentials: &Credentials, args: &[&str]) -> Output {
    let mut command = Command::new(predictor_bin());
    command.args(args);
    credentials.apply(&mut command);
    command.output().expect("run predictor")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `name: value` line of `predictor publish`'s output.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name}: line in\n{out}"))
}

/// A `predictor serve` process on a loopback port, logging (debug) to a file.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, credentials: &Credentials, url: &str, sha256: &str) -> Server {
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let mut command = Command::new(predictor_bin());
        command
            .args(["serve", "--model-url", url, "--model-sha256", sha256])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::from(File::create(&log).unwrap()))
            .stderr(Stdio::from(
                File::create(dir.join(format!("serve-{port}.err"))).unwrap(),
            ));
        credentials.apply(&mut command);
        Server {
            child: command.spawn().expect("run predictor serve"),
            port,
            log,
        }
    }

    fn get(&self, path: &str) -> String {
        reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// Polls `/readyz` until its answer contains `needle`; returns it.
    fn readyz_until(&self, needle: &str) -> String {
        let mut last = String::new();
        poll(SETTLE, &format!("/readyz to say {needle:?}"), || {
            last = self.get("/readyz");
            last.contains(needle).then(|| last.clone())
        })
        .unwrap_or_else(|e| panic!("{e}; last answer: {last}\nlog:\n{}", self.logs()))
    }

    fn logs(&self) -> String {
        let err = self.log.with_extension("err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }

    /// Stops the server; everything it said (answers seen + logs) for the secret check.
    fn stop(mut self, seen: &mut Vec<String>) {
        seen.push(self.get("/metrics"));
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        seen.push(self.logs());
    }
}

/// The operator's pre-flight check of `model` with `secret` as the credentials Secret's data.
async fn preflight(model: &ModelSpec, secret: &BTreeMap<String, ByteString>) -> ModelCheck {
    let access = access_from(model, secret).expect("a usable Secret");
    operator::fixtures::checker(true, 64 << 20, Duration::from_secs(20))
        .check(model, false, &access, &Metrics::default())
        .await
}

fn rejected(check: ModelCheck) -> (String, String) {
    match check {
        ModelCheck::Rejected { reason, message } => (reason, message),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
#[ignore = "needs weed (dev/cluster/build-binaries.sh weed), docker-registry and PREDICTOR_BIN: ./dev/test runs it"]
fn models_in_s3_and_oci_stores_are_pinned_checked_and_refused_with_reasons() {
    let bin = predictor_bin();
    assert!(
        bin.is_file(),
        "PREDICTOR_BIN {} is not a file",
        bin.display()
    );
    registry::require("docker-registry");
    model_store::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = SeaweedFs::start(&dir.path().join("s3"));
    std::fs::create_dir_all(dir.path().join("registry")).unwrap();
    let mut registry = Registry::start(&dir.path().join("registry"));
    let auth = registry.docker_config(PASSWORD);
    let wrong_auth = registry.docker_config("not-the-password");
    let good = Credentials::new(&s3, &auth, &s3.secret_key);
    let secrets = [
        s3.secret_key.clone(),
        PASSWORD.to_string(),
        model_store::registry::auth::basic_token(USER, PASSWORD),
    ];
    let mut seen: Vec<String> = Vec::new();

    // Two models, files on disk as `predictor train` writes them.
    let train = std::fs::read(repo_root().join("../shared/data/tweets/train.csv")).unwrap();
    let (bytes_a, sha_a) = predictor::testing::trained_model(&train, DATE_A);
    let (bytes_b, sha_b) = predictor::testing::trained_model(&train, DATE_B);
    let file_a = dir.path().join("american-a.bin");
    let file_b = dir.path().join("american-b.bin");
    std::fs::write(&file_a, &bytes_a).unwrap();
    std::fs::write(&file_b, &bytes_b).unwrap();

    // --- publish: s3 keeps the URL, oci pins the artifact's manifest digest --------------------------
    let out = cli(
        &good,
        &[
            "publish",
            file_a.to_str().unwrap(),
            "--to",
            "s3://models/american-a.bin",
        ],
    );
    let published = text(&out);
    assert!(out.status.success(), "{published}");
    assert_eq!(line(&published, "url"), "s3://models/american-a.bin");
    assert_eq!(line(&published, "sha256"), sha_a);
    let tag = format!("oci://{}/models/american:b", registry.host);
    let out = cli(&good, &["publish", file_b.to_str().unwrap(), "--to", &tag]);
    let published = text(&out);
    assert!(out.status.success(), "{published}");
    let oci_b = line(&published, "url").to_string();
    assert!(
        oci_b.starts_with(&format!("oci://{}/models/american@sha256:", registry.host)),
        "{oci_b}"
    );
    assert_eq!(line(&published, "sha256"), sha_b);
    seen.push(published);

    // --update: the manifest in a Git checkout gets both, in one commit.
    let checkout = dir.path().join("gitops");
    std::fs::create_dir_all(&checkout).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(&checkout)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "--quiet", "-b", "main"]);
    git(&["config", "user.email", "ci@example.invalid"]);
    git(&["config", "user.name", "ci"]);
    let manifest = checkout.join("predictor.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: mlops.example.com/v1alpha1\nkind: Predictor\nmetadata:\n  name: american\nspec:\n  \
             image: registry.local/american-predictor:0.2\n  model:\n    # published by CI\n    url: s3://models/american-a.bin\n    \
             sha256: \"{sha_a}\"\n    credentials:\n      name: model-stores\n"
        ),
    )
    .unwrap();
    git(&["add", "predictor.yaml"]);
    git(&["commit", "--quiet", "-m", "first model"]);
    let out = cli(
        &good,
        &[
            "publish",
            file_b.to_str().unwrap(),
            "--to",
            &tag,
            "--update",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let head = git(&["rev-parse", "HEAD"]);
    assert!(
        text(&out).contains(&format!("in commit {head}")),
        "{}",
        text(&out)
    );
    assert_eq!(git(&["status", "--porcelain"]), "", "everything committed");
    let committed = git(&["show", "HEAD:predictor.yaml"]);
    assert!(
        committed.contains(&format!("    url: {oci_b}\n"))
            && committed.contains(&format!("    sha256: \"{sha_b}\"\n"))
            && committed.contains("# published by CI"),
        "{committed}"
    );
    assert!(git(&["log", "-1", "--format=%s"]).starts_with("model: oci://"));

    // --- train from s3:// makes the same model as from the local file ------------------------------
    let data_url = S3Url::parse("s3://models/data/train.csv").unwrap();
    let settings = S3Settings {
        endpoint: Some(s3.endpoint.clone()),
        access_key_id: Some(s3.access_key.clone()),
        secret_access_key: Some(s3.secret_key.clone()),
        ..S3Settings::default()
    };
    runtime
        .block_on(model_store::s3::put(
            &data_url,
            &settings,
            None,
            Duration::from_secs(20),
            train.clone(),
        ))
        .unwrap();
    let trained = dir.path().join("from-s3.bin");
    let out = cli(
        &good,
        &[
            "train",
            "--data",
            "s3://models/data/train.csv",
            "--model-date",
            DATE_A,
            "--out",
            trained.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(&trained).unwrap(),
        bytes_a,
        "same data, same date, same model file"
    );

    // --- serve from both stores ---------------------------------------------------------------------
    let s3_a = "s3://models/american-a.bin";
    for (url, sha) in [
        (s3_a, &sha_a),
        (oci_b.as_str(), &sha_b),
        (tag.as_str(), &sha_b),
    ] {
        let server = Server::start(dir.path(), &good, url, sha);
        let ready: Value = serde_json::from_str(&server.readyz_until("\"ready\"")).unwrap();
        assert_eq!(ready["model_sha256"], sha.as_str(), "{url}");
        seen.push(server.get("/readyz"));
        server.stop(&mut seen);
    }

    // --- refused, with the reason, while the stores are up ------------------------------------------
    let wrong_s3 = Credentials::new(&s3, &auth, "not-the-secret-key");
    let wrong_registry = Credentials::new(&s3, &wrong_auth, &s3.secret_key);
    let missing_tag = format!("oci://{}/models/american:nothing", registry.host);
    let cases: [(&str, &Credentials, &str, &str, &str); 6] = [
        ("s3, wrong digest", &good, s3_a, &sha_b, "sha256 mismatch"),
        (
            "s3, wrong secret key",
            &wrong_s3,
            s3_a,
            &sha_a,
            "refused the credentials",
        ),
        (
            "s3, missing object",
            &good,
            "s3://models/nothing.bin",
            &sha_a,
            "not found: no such object",
        ),
        (
            "oci, wrong digest",
            &good,
            &oci_b,
            &sha_a,
            "sha256 mismatch",
        ),
        (
            "oci, wrong password",
            &wrong_registry,
            &oci_b,
            &sha_b,
            "refused the credentials",
        ),
        ("oci, missing tag", &good, &missing_tag, &sha_b, "not found"),
    ];
    for (what, credentials, url, sha, reason) in cases {
        let server = Server::start(dir.path(), credentials, url, sha);
        let answer = server.readyz_until(reason);
        eprintln!("[stores test] {what}: {answer}");
        assert!(answer.contains("not ready"), "{what}: {answer}");
        seen.push(answer);
        server.stop(&mut seen);
    }

    // --- the operator's pre-flight, with the same stores as a Secret ---------------------------------
    let access_key = s3.access_key.clone();
    let endpoint = s3.endpoint.clone();
    // NB: the keys are signed only for the endpoint the Secret names (spec.model.s3 repeats it).
    let secret = |secret_key: &str, docker_config: &str| {
        BTreeMap::from([
            (
                "AWS_ENDPOINT_URL".to_string(),
                ByteString(endpoint.clone().into_bytes()),
            ),
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                ByteString(access_key.clone().into_bytes()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                ByteString(secret_key.as_bytes().to_vec()),
            ),
            (
                ".dockerconfigjson".to_string(),
                ByteString(docker_config.as_bytes().to_vec()),
            ),
        ])
    };
    let secret_key = s3.secret_key.clone();
    let model = |url: &str, sha: &str| ModelSpec {
        url: url.into(),
        sha256: sha.into(),
        credentials: Some("model-stores".into()),
        s3: url.starts_with("s3://").then(|| S3Spec {
            endpoint: Some(endpoint.clone()),
            ..S3Spec::default()
        }),
    };
    runtime.block_on(async {
        let ok = secret(&secret_key, &auth);
        assert_eq!(
            preflight(&model(s3_a, &sha_a), &ok).await,
            ModelCheck::Passed(())
        );
        assert_eq!(
            preflight(&model(&oci_b, &sha_b), &ok).await,
            ModelCheck::Passed(())
        );
        for (what, model, secret, reason, needle) in [
            (
                "s3, wrong digest",
                model(s3_a, &sha_b),
                ok.clone(),
                "DigestMismatch",
                sha_a.as_str(),
            ),
            (
                "s3, wrong secret key",
                model(s3_a, &sha_a),
                secret("not-the-secret-key", &auth),
                "FetchFailed",
                "refused the credentials",
            ),
            (
                "oci, wrong digest",
                model(&oci_b, &sha_a),
                ok.clone(),
                "DigestMismatch",
                sha_b.as_str(),
            ),
            (
                "oci, wrong password",
                model(&oci_b, &sha_b),
                secret(&secret_key, &wrong_auth),
                "FetchFailed",
                "refused the credentials",
            ),
        ] {
            let (got, message) = rejected(preflight(&model, &secret).await);
            eprintln!("[stores test] pre-flight, {what}: {got}: {message}");
            assert_eq!(got, reason, "{what}: {message}");
            assert!(message.contains(needle), "{what}: {message}");
            seen.push(message);
        }
    });

    // --- stores down: not ready, saying which store cannot be reached --------------------------------
    s3.stop();
    registry.stop();
    for (url, sha) in [(s3_a, &sha_a), (oci_b.as_str(), &sha_b)] {
        let server = Server::start(dir.path(), &good, url, sha);
        let answer = server.readyz_until("cannot connect");
        eprintln!("[stores test] store down, {url}: {answer}");
        seen.push(answer);
        server.stop(&mut seen);
    }
    let (got, message) = runtime.block_on(async {
        rejected(preflight(&model(s3_a, &sha_a), &secret(&secret_key, &auth)).await)
    });
    assert_eq!(got, "FetchFailed");
    assert!(
        message.contains("cannot connect") && message.contains(&format!("the store at {endpoint}")),
        "{message}"
    );
    seen.push(message);

    // No credential anywhere: answers, /metrics, logs (at debug), CLI output, status messages.
    assert!(seen.len() > 30, "{} texts checked", seen.len());
    for text in &seen {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a credential leaked:\n{text}"
            );
        }
    }
}

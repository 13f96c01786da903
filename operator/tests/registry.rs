//! Registry tier: the registry client ([`model_store::registry`]) against a real registry, Debian's
//! `docker-registry` (the CNCF distribution registry), behind htpasswd (bcrypt) Basic auth on a
//! loopback port, as the image [`Resolver`] and as `oci://` models use it.
//!
//! Images: the test pushes a tiny OCI image itself with the plain registry API (two blob uploads,
//! one manifest PUT), then asks the resolver for its tag: the manifest's sha256, ImageNotFound for
//! a missing tag or repository, RegistryUnauthorized for a wrong or missing password, and
//! RegistryUnreachable once the registry is stopped (the registry is `support::registry`'s).
//! Models: a real model file pushed with `model_store::oci::push` and fetched back with
//! `model_store::oci::fetch`, by tag and by digest, and refused with the reason for a wrong password,
//! a missing tag, an unknown pinned digest and a registry that is down. TLS: the store CA a
//! Predictor gives (`ca.crt`) is trusted on top of the platform's roots, against `openssl
//! s_server` with a certificate of a throwaway CA. Needs `docker-registry` and `htpasswd`
//! (`apt-get install docker-registry apache2-utils`) and `openssl`; ignored by a
//! plain `cargo test`, `./dev/test` runs it, and when selected it fails at once if either program is
//! missing.

mod support;

use std::process::Command;
use std::time::Duration;

use model_store::oci::{self, OciUrl};
use model_store::registry::{Access, Client, MAX_BODY_BYTES};
use model_store::testing::poll;
use operator::image::{DockerConfig, ImageReference, Resolver};
use predictor::model::{ModelFile, sha256_hex};
use support::pki::make_pki;
use support::registry::{PASSWORD, Registry, USER, require};
use support::{Proc, free_port};

const REPOSITORY: &str = "team/american-predictor";

/// A registry whose storage is in a temporary directory (removed when dropped, after the registry).
fn start() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    (dir, registry)
}

/// A docker config with `password` for `registry`: the credentials come the way the operator and
/// the pods get them, from a `.dockerconfigjson`.
fn docker_config(registry: &Registry, password: &str) -> DockerConfig {
    DockerConfig::parse(registry.docker_config(password).as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs docker-registry (apt-get install docker-registry apache2-utils): ./dev/test runs it"]
async fn tags_resolve_to_manifest_digests_on_a_real_registry() {
    let (_dir, mut registry) = start();
    let host = registry.host.clone();
    let digest = registry.push(REPOSITORY, "0.2", 0).await;

    let config = docker_config(&registry, PASSWORD);
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

    // Two tags the repository lacks, and a repository the registry lacks.
    for missing in [
        format!("{host}/{REPOSITORY}:0.3"),
        format!("{host}/{REPOSITORY}:0.2-rc1"),
        format!("{host}/team/nothing:0.2"),
    ] {
        let image = ImageReference::parse(&missing).unwrap();
        let err = resolver
            .resolve(&image, Some(credentials))
            .await
            .unwrap_err();
        assert_eq!(err.metric_label(), "image_not_found", "{missing}: {err}");
    }

    let wrong = operator::image::Credentials {
        username: USER.into(),
        password: "not-the-password".into(),
    };
    let err = resolver.resolve(&image, Some(&wrong)).await.unwrap_err();
    assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    let err = resolver.resolve(&image, None).await.unwrap_err();
    assert_eq!(err.metric_label(), "registry_unauthorized", "{err}");

    registry.stop();
    let err = resolver
        .resolve(&image, Some(credentials))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "registry_unreachable", "{err}");
    assert!(err.to_string().contains(&host), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs docker-registry (apt-get install docker-registry apache2-utils): ./dev/test runs it"]
async fn models_round_trip_as_oci_artifacts_through_a_real_registry() {
    let (_dir, mut registry) = start();
    let host = registry.host.clone();
    let config = docker_config(&registry, PASSWORD);
    let wrong = docker_config(&registry, "not-the-password");
    let (model, sha) = predictor::testing::trained_model(
        predictor::sample::SAMPLE_CSV.as_bytes(),
        "2026-11-27T00:00:00Z",
    );
    let timeout = Duration::from_secs(10);
    let max_bytes = 64 << 20;
    let manifest_digest = format!(
        "sha256:{}",
        sha256_hex(&oci::artifact_manifest(&model, "american.bin"))
    );

    let tag = OciUrl::parse(&format!("oci://{host}/models/american:v1")).unwrap();
    // By tag; then without a tag, by its digest (the registry has the blobs already): both give
    // the artifact's URL pinned by its manifest digest.
    let untagged = OciUrl::parse(&format!("oci://{host}/models/american")).unwrap();
    let pinned = tag.pinned(&manifest_digest);
    for url in [&tag, &untagged] {
        let model = model.clone();
        let pushed = oci::push(url, Some(&config), None, timeout, model, "american.bin")
            .await
            .unwrap_or_else(|e| panic!("{url:?}: {e}\nregistry log:\n{}", registry.tail(20)));
        assert_eq!(pushed, pinned);
    }
    let pinned = OciUrl::parse(&pinned).unwrap();
    for url in [&pinned, &tag] {
        let fetched = oci::fetch(url, Some(&config), None, timeout, max_bytes)
            .await
            .unwrap_or_else(|e| panic!("{url:?}: {e}\nregistry log:\n{}", registry.tail(20)));
        assert_eq!(sha256_hex(&fetched), sha, "{url:?}");
        ModelFile::from_bytes(&fetched).expect("a model file");
    }

    // Refused, with the reason and never the password.
    let missing = OciUrl::parse(&format!("oci://{host}/models/american:v2")).unwrap();
    // A pinned digest the registry has no manifest for: the reason names that digest.
    let other_digest = format!("sha256:{}", sha256_hex(b"another manifest"));
    let other = OciUrl::parse(&tag.pinned(&other_digest)).unwrap();
    let not_found = format!("not found in the registry {host}: it has no manifest");
    let refused = "refused the credentials".to_string();
    let refusals = [
        (
            "wrong password",
            &tag,
            Some(&wrong),
            max_bytes,
            refused.clone(),
        ),
        (
            "wrong password, pinned",
            &pinned,
            Some(&wrong),
            max_bytes,
            refused.clone(),
        ),
        ("no credentials", &tag, None, max_bytes, refused),
        (
            "missing tag",
            &missing,
            Some(&config),
            max_bytes,
            format!("{not_found} v2 in models/american"),
        ),
        (
            "no latest",
            &untagged,
            Some(&config),
            max_bytes,
            format!("{not_found} latest in models/american"),
        ),
        (
            "unknown pinned digest",
            &other,
            Some(&config),
            max_bytes,
            format!("{not_found} {other_digest}"),
        ),
        (
            "too big",
            &pinned,
            Some(&config),
            1024,
            "bytes is more than the 1024-byte limit".into(),
        ),
    ];
    for (what, url, config, max_bytes, expected) in refusals {
        let err = oci::fetch(url, config, None, timeout, max_bytes)
            .await
            .unwrap_err();
        eprintln!("[registry test] {what}: {err}");
        assert!(err.contains(&expected), "{what}: {err}");
        assert!(!err.contains("not-the-password"), "{what}: {err}");
    }
    let err = oci::push(&tag, Some(&wrong), None, timeout, model.clone(), "a.bin")
        .await
        .unwrap_err();
    eprintln!("[registry test] push, wrong password: {err}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    registry.stop();
    for url in [&pinned, &tag] {
        let err = oci::fetch(url, Some(&config), None, timeout, max_bytes)
            .await
            .unwrap_err();
        eprintln!("[registry test] stopped: {err}");
        assert!(
            err.contains(&format!("the registry {host}: cannot connect")),
            "{err}"
        );
    }
    let err = oci::push(&tag, Some(&config), None, timeout, model, "a.bin")
        .await
        .unwrap_err();
    eprintln!("[registry test] push, stopped: {err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs openssl: ./dev/test runs it"]
async fn a_store_ca_is_trusted_on_top_of_the_platform_roots() {
    require("openssl");
    let dir = tempfile::tempdir().expect("temp dir");
    // ca.crt, and apiserver.{crt,key}: a serving certificate for 127.0.0.1 signed by it.
    make_pki(dir.path());
    let address = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new("openssl");
    command
        .args(["s_server", "-quiet", "-www", "-accept", &address])
        .arg("-cert")
        .arg(dir.path().join("apiserver.crt"))
        .arg("-key")
        .arg(dir.path().join("apiserver.key"));
    let mut server = Proc::spawn("openssl s_server", command, &dir.path().join("server.log"));
    poll(
        Duration::from_secs(10),
        "openssl s_server to listen",
        || {
            assert!(
                server.running(),
                "openssl s_server exited:\n{}",
                server.tail(20)
            );
            std::net::TcpStream::connect(&address).ok()
        },
    )
    .unwrap();
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let url = reqwest::Url::parse(&format!("https://{address}/")).unwrap();
    for ca_pem in [None, Some(ca.as_slice())] {
        let client = Client::new(Duration::from_secs(5), Duration::from_secs(5), ca_pem).unwrap();
        // A loopback session speaks plain HTTP: ask the HTTPS server by its URL.
        let mut session = client
            .session(&address, "models/american", Access::Pull, None)
            .unwrap();
        let request = session.request(reqwest::Method::GET, url.clone());
        let answer = session.answer(request, Some(MAX_BODY_BYTES)).await;
        match ca_pem {
            None => {
                let failure = answer.expect_err("an unknown issuer is refused");
                assert!(failure.reason().contains("cannot connect"), "{failure:?}");
                assert!(
                    failure.reason().contains("signed by an unknown CA"),
                    "{failure:?}"
                );
            }
            Some(_) => {
                let answer = answer.unwrap_or_else(|f| panic!("{f:?}\n{}", server.tail(20)));
                assert!(answer.status.is_success(), "{answer:?}");
            }
        }
    }
}

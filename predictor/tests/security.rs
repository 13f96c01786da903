//! Security checks against the real server on loopback: slow clients (slowloris) are cut off within the
//! request timeout while other clients are served; an oversized body is refused before it is sent, and
//! an oversized model download is refused; a model URL's credentials and query token never reach logs,
//! `/metrics`, `/readyz` or error messages, nor do store credentials from the environment (S3 keys, a
//! registry docker config).

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::FileServer;
use common::server::{MODEL_DATE, serving_model, trained_model};
use model_store::testing::free_port as closed_port;
use model_store::testing::poll;

/// The request timeout the slow-client tests run with.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How much later than [`TIMEOUT`] a slow client may still be connected.
const SLACK: Duration = Duration::from_millis(1500);

/// What a slow client does.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slow {
    /// Sends a request head that never ends, a byte at a time.
    Head,
    /// Sends a whole head, then the body a byte at a time.
    Body,
    /// Connects and sends nothing.
    Silent,
}

/// Runs one slow client for at most 10 s: how long until the server ended the connection, and what it
/// answered before that.
fn slow_client(port: u16, kind: Slow) -> (Duration, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let (head, trickle): (&[u8], &[u8]) = match kind {
        Slow::Head => (b"POST /api/american HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a"),
        Slow::Body => (
            b"POST /api/american HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
            b" ",
        ),
        Slow::Silent => (b"", b""),
    };
    stream.write_all(head).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(10) {
        if stream.write_all(trickle).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[test]
fn slow_clients_are_cut_off_within_the_timeout_while_others_are_served() {
    let (_store, server) = serving_model(|config| config.request_timeout = TIMEOUT);
    let port = server.port;
    let slow: Vec<_> = (0..30)
        .map(|i| {
            let kind = [Slow::Head, Slow::Body, Slow::Silent][i % 3];
            thread::spawn(move || (kind, slow_client(port, kind)))
        })
        .collect();

    // Meanwhile an ordinary client keeps getting prompt answers.
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < TIMEOUT + SLACK {
        let sent = Instant::now();
        let response = client
            .post(server.url("/api/american"))
            .body(r#"{"text": "still answering in Ohio"}"#)
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "an ordinary request took {:?} next to slow clients",
            sent.elapsed()
        );
        served += 1;
        thread::sleep(Duration::from_millis(50));
    }
    assert!(served >= 10, "{served}");

    for handle in slow {
        let (kind, (lasted, answer)) = handle.join().unwrap();
        assert!(
            lasted < TIMEOUT + SLACK,
            "{kind:?} client still connected after {lasted:?}; answer {answer:?}"
        );
        assert!(
            lasted >= TIMEOUT - Duration::from_millis(100),
            "{kind:?} client cut off after {lasted:?}, before the timeout"
        );
        if kind == Slow::Body {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        }
    }
    assert_eq!(
        client
            .post(server.url("/api/american"))
            .body(r#"{"text": "after"}"#)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[test]
fn oversized_body_is_refused_before_it_is_sent() {
    let (_store, server) = serving_model(|_| {});
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/american HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n{",
        )
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"request body is larger than"#),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn model_download_over_the_size_limit_is_refused() {
    let store = FileServer::start();
    store.put("/big.bin", vec![0u8; 4096]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(model_store::fetch(&store.url("/big.bin"), 1000))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("4096 bytes is more than the 1000-byte limit"),
        "{error}"
    );
}

const PASSWORD: &str = "pa55-s3cret-word";
const TOKEN: &str = "t0ken-s3cret";

/// Every form in which the secrets could show up: as given, and as HTTP basic auth sends them.
fn secrets() -> Vec<String> {
    vec![
        PASSWORD.to_string(),
        TOKEN.to_string(),
        // base64("user:pa55-s3cret-word"), what an `Authorization: Basic` header carries.
        "dXNlcjpwYTU1LXMzY3JldC13b3Jk".to_string(),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(&secret), "{what} leaks {secret:?}:\n{text}");
    }
}

/// GET or POST on the running binary: (status, body).
fn call(port: u16, path: &str, body: Option<&str>) -> (u16, String) {
    let client = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let request = match body {
        Some(body) => client.post(url).body(body.to_string()),
        None => client.get(url),
    };
    match request.send() {
        Ok(response) => (response.status().as_u16(), response.text().unwrap()),
        Err(_) => (0, String::new()),
    }
}

/// Polls `/readyz` (bounded) until its body contains `needle`; returns that body.
fn readyz_until(port: u16, needle: &str) -> String {
    let mut last = String::new();
    poll(
        Duration::from_secs(20),
        &format!("/readyz to say {needle:?}"),
        || {
            let (_, body) = call(port, "/readyz", None);
            last.clone_from(&body);
            body.contains(needle).then_some(body)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {last}"))
}

#[test]
fn model_url_credentials_never_reach_logs_metrics_or_answers() {
    let (bytes, sha) = trained_model(MODEL_DATE);
    let store = FileServer::start();
    let path = format!("/m.bin?token={TOKEN}");
    // First the store answers with the wrong file, then with none, then with the right one: every
    // message the model loader has gets logged and shown in /readyz on the way.
    store.put(&path, b"not the pinned model".to_vec());
    let url = format!("http://user:{PASSWORD}@127.0.0.1:{}{path}", store.port);
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let port = closed_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_predictor"))
        .args(["serve", "--model-url", &url, "--model-sha256", &sha])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        // Everything our code and its libraries log, at the most talkative level that is not trace.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(File::create(&out_path).unwrap()))
        .stderr(Stdio::from(File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();

    let mut seen = vec![readyz_until(port, "sha256 mismatch")];
    seen.push(call(port, "/api/american", Some(r#"{"text": "hi"}"#)).1);
    store.remove(&path);
    seen.push(readyz_until(port, "HTTP 404"));
    store.put(&path, bytes);
    seen.push(readyz_until(port, "\"ready\""));
    seen.push(call(port, "/metrics", None).1);
    seen.push(call(port, "/api/american", Some("{not json")).1);
    seen.push(call(port, "/api/american", Some(r#"{"text": "hi"}"#)).1);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    for body in &seen {
        assert_no_secret("an HTTP answer", body);
    }
    assert!(seen[0].contains("http://***@127.0.0.1:"), "{}", seen[0]);
    assert!(seen[4].contains("predictor_model_info"), "{}", seen[4]);
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_no_secret("stdout", &out);
    assert_no_secret("stderr", &err);
    // The logs did name the model URL (redacted) for each outcome: the check above had something to check.
    for needle in ["sha256 mismatch", "HTTP 404", "model verified and loaded"] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(err.contains("/m.bin?***"), "{err}");

    // Errors the CLI prints for a bad or unreachable URL.
    let closed = closed_port();
    for args in [
        vec![
            "serve".to_string(),
            "--model-url".into(),
            format!("ftp://user:{PASSWORD}@host/m.bin?token={TOKEN}"),
            "--model-sha256".into(),
            sha.clone(),
        ],
        vec![
            "train".to_string(),
            "--data".into(),
            format!("http://user:{PASSWORD}@127.0.0.1:{closed}/d.csv?token={TOKEN}"),
            "--out".into(),
            logs.path().join("m.bin").display().to_string(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = common::predictor(&args);
        assert!(!out.status.success());
        let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
        assert!(stderr.contains("***"), "{stderr}");
        assert_no_secret("the CLI's error", &format!("{stdout}{stderr}"));
    }
}

#[test]
fn store_credentials_from_the_environment_never_reach_logs_metrics_or_answers() {
    model_store::tls::install_crypto_provider();
    let (bytes, sha) = trained_model(MODEL_DATE);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.bin");
    std::fs::write(&model, &bytes).unwrap();
    // Stores that are down: every attempt fails and is logged (at debug, with the clients' own logs).
    let closed = closed_port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let docker_config = format!(
        r#"{{"auths": {{"127.0.0.1:{closed}": {{"username": "user", "password": "{PASSWORD}"}}}}}}"#
    );
    let with_credentials = |command: &mut Command| {
        command
            .env("RUST_LOG", "debug")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "AKIDUSER")
            .env("AWS_SECRET_ACCESS_KEY", PASSWORD)
            .env("AWS_SESSION_TOKEN", TOKEN)
            .env("PREDICTOR_REGISTRY_AUTH", &docker_config);
    };
    for url in [
        "s3://models/american.bin".to_string(),
        format!("oci://127.0.0.1:{closed}/models/american:v1"),
    ] {
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        let port = closed_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_predictor"));
        command
            .args(["serve", "--model-url", &url, "--model-sha256", &sha])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::from(File::create(&out_path).unwrap()))
            .stderr(Stdio::from(File::create(&err_path).unwrap()));
        with_credentials(&mut command);
        let mut child = command.spawn().unwrap();
        let seen = [
            readyz_until(port, "cannot connect"),
            call(port, "/metrics", None).1,
            call(port, "/api/american", Some(r#"{"text": "hi"}"#)).1,
        ];
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
        for body in &seen {
            assert_no_secret("an HTTP answer", body);
        }
        assert!(
            seen[0].contains(&format!("127.0.0.1:{closed}")),
            "{}",
            seen[0]
        );
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert_no_secret("stderr", &err);
        assert_no_secret("stdout", &std::fs::read_to_string(&out_path).unwrap());
        assert!(err.contains("cannot connect"), "{err}");
    }
    // The CLI's errors: training from and publishing to stores that are down.
    for args in [
        vec![
            "train",
            "--data",
            "s3://data/train.csv",
            "--out",
            "/dev/null",
        ],
        vec![
            "publish",
            model.to_str().unwrap(),
            "--to",
            "s3://models/american.bin",
        ],
        vec![
            "publish",
            model.to_str().unwrap(),
            "--to",
            &format!("oci://127.0.0.1:{closed}/models/american:v1"),
        ],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_predictor"));
        command.args(&args);
        with_credentials(&mut command);
        let out = command.output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
        assert!(stderr.contains("cannot connect"), "{args:?}: {stderr}");
        assert_no_secret("the CLI's error", &format!("{stdout}{stderr}"));
    }
}

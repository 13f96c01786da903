//! `predictor serve` over real HTTP on loopback: the JSON contract, every client mistake, model sources
//! (good, wrong digest, down then up, gone after start, replaced by another file, truncated), graceful
//! shutdown, the drain (on its Unix socket only; `/drain` over TCP is 404 from any address), and
//! `eval --url` against `eval --model`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::FileServer;
use common::server::{TestServer, trained_model};
use model_store::testing::free_port as closed_port;
use predictor::server::ServeConfig;
use serde_json::{Value, json};

const DATE: &str = common::server::MODEL_DATE;

fn model_bytes() -> (Vec<u8>, String) {
    trained_model(DATE)
}

fn serving_model() -> (FileServer, TestServer) {
    common::server::serving_model(|_| {})
}

/// POST raw bytes with a content type: (status, JSON body).
fn post(
    server: &TestServer,
    content_type: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(server.url("/api/american"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}")),
    )
}

fn assert_error(
    server: &TestServer,
    body: impl Into<reqwest::blocking::Body>,
    status: u16,
    needle: &str,
) {
    let (got, json) = post(server, "application/json", body);
    assert_eq!(got, status, "{json}");
    let message = json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {json}"));
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[test]
fn answers_the_contract_and_refuses_client_mistakes_without_500() {
    let (_store, server) = serving_model();

    // The assignment's own request.
    let (status, answer) = post(
        &server,
        "application/json",
        r##"{"text": "#covid19 new york"}"##,
    );
    assert_eq!(status, 200);
    let keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{answer}");
    for key in [
        "is_american",
        "version",
        "model_date",
        "model",
        "probability",
    ] {
        assert!(keys.contains(&key), "{answer}");
    }
    // The model's digest prefix, as `kubectl get predictors` shows it.
    let (_, ready) = server.readyz();
    let model = answer["model"].as_str().unwrap();
    assert!(
        model.len() == 12 && ready["model_sha256"].as_str().unwrap().starts_with(model),
        "{answer} {ready}"
    );
    assert_eq!(answer["is_american"], 1);
    assert_eq!(answer["version"], "0.2");
    assert_eq!(answer["model_date"], DATE);
    let p = answer["probability"].as_f64().unwrap();
    assert!(p > 0.5 && p <= 1.0);

    // `wget --post-data` sends a form type; the body is still JSON.
    let (status, answer) = post(
        &server,
        "application/x-www-form-urlencoded",
        r#"{"text": "Cheers mate, a pint in Leeds"}"#,
    );
    assert_eq!((status, answer["is_american"].clone()), (200, json!(0)));

    assert_error(&server, "{\"text\": ", 400, "not valid JSON");
    assert_error(&server, "{}", 422, "missing `text`");
    assert_error(&server, r#"{"tweet": "hi"}"#, 422, "missing `text`");
    assert_error(&server, r#"{"text": 42}"#, 422, "`text` must be a string");
    assert_error(&server, r#"{"text": null}"#, 422, "`text` must be a string");
    assert_error(&server, r#"["text"]"#, 422, "expected a JSON object");
    assert_error(&server, vec![b'{'; 2 << 20], 413, "larger than");
    assert_error(
        &server,
        b"{\"text\": \"\xff\xfe bad\"}".to_vec(),
        400,
        "not valid JSON",
    );
    assert_error(
        &server,
        format!(r#"{{"texts": {}}}"#, json!(vec!["a"; 1001])),
        422,
        "at most 1000",
    );
    assert_error(&server, r#"{"texts": ["ok", 3]}"#, 422, "must be a string");

    let get = reqwest::blocking::get(server.url("/api/american")).unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert!(serde_json::from_str::<Value>(&get.text().unwrap()).unwrap()["error"].is_string());
    assert_eq!(
        reqwest::blocking::get(server.url("/nope"))
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    let (status, empty) = post(&server, "application/json", r#"{"text": ""}"#);
    assert_eq!(status, 200, "{empty}");
    let long = "y'all in Texas ".repeat(100_000 / 15);
    let (status, _) = post(
        &server,
        "application/json",
        json!({ "text": long }).to_string(),
    );
    assert_eq!(status, 200);
    let (status, batch) = post(
        &server,
        "text/plain",
        r#"{"texts": ["go yankees", "cheers mate", ""]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(batch.as_array().unwrap().len(), 3);
    assert_eq!(batch[0]["version"], "0.2");

    // Still answering, and no 5xx was ever counted.
    assert_eq!(
        reqwest::blocking::get(server.url("/healthz"))
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        post(&server, "application/json", r#"{"text": "still here?"}"#).0,
        200
    );
    let metrics = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !metrics.contains("route=\"/api/american\",status=\"5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("predictor_http_requests_total{route=\"/api/american\",status=\"422\"} 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("predictor_model_info{version=\"0.2\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "predictor_http_request_duration_seconds_bucket{le=\"0.0001\",route=\"/api/american\"}"
        ),
        "{metrics}"
    );
    let page = reqwest::blocking::get(server.url("/"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("<form") && !page.contains("http://") && !page.contains("https://"),
        "page must work offline"
    );
    server.stop().unwrap();
}

#[test]
fn wrong_digest_stays_not_ready_naming_both_digests() {
    let (bytes, sha) = model_bytes();
    let store = FileServer::start();
    store.put("/m.bin", bytes);
    let wrong = "0".repeat(64);
    let server = TestServer::start(ServeConfig::new(store.url("/m.bin"), wrong.clone(), "0.2"));
    std::thread::sleep(Duration::from_millis(400));
    let (status, body) = server.readyz();
    assert_eq!(status, 503);
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains(&wrong) && reason.contains(&sha) && reason.contains("sha256 mismatch"),
        "{reason}"
    );
    let (status, answer) = post(&server, "application/json", r#"{"text": "hi"}"#);
    assert_eq!(status, 503, "never serves an unverified model: {answer}");
}

/// Serves `bytes` (pinned by their own sha256) and asserts the server stays not ready, saying `why`.
fn assert_stays_not_ready(bytes: Vec<u8>, why: &str) {
    let store = FileServer::start();
    let sha = predictor::model::sha256_hex(&bytes);
    store.put("/m.bin", bytes);
    let server = TestServer::start(ServeConfig::new(store.url("/m.bin"), sha, "0.2"));
    std::thread::sleep(Duration::from_millis(400));
    let (status, body) = server.readyz();
    assert_eq!(status, 503);
    assert!(body["reason"].as_str().unwrap().contains(why), "{body}");
}

#[test]
fn truncated_or_foreign_model_stays_not_ready() {
    let (bytes, _) = model_bytes();
    assert_stays_not_ready(bytes[..bytes.len() - 100].to_vec(), "truncated or corrupt");
    assert_stays_not_ready(
        b"<html>not a model</html>".to_vec(),
        "not a predictor model file",
    );
}

#[test]
fn model_store_down_at_start_then_up_becomes_ready_without_restart() {
    let (bytes, sha) = model_bytes();
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/m.bin");
    let server = TestServer::start(ServeConfig::new(url, sha, "0.2"));
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = server.readyz();
    assert_eq!(status, 503);
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("cannot connect"), "{body}");
    // It keeps retrying (50 ms, then doubling up to 200 ms in tests): attempt 1 was not the last.
    let attempt: u64 = reason
        .strip_prefix("attempt ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt number in {reason:?}"));
    assert!(attempt >= 2, "{reason}");
    assert_eq!(
        reqwest::blocking::get(server.url("/healthz"))
            .unwrap()
            .status()
            .as_u16(),
        200,
        "alive while not ready"
    );

    let listener =
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
    let store = FileServer::start_on(listener);
    store.put("/m.bin", bytes);
    server.wait_ready(Duration::from_secs(10));
    assert_eq!(
        post(&server, "application/json", r#"{"text": "hi"}"#).0,
        200
    );
}

#[test]
fn unrouted_request_with_a_late_body_leaves_the_connection_usable() {
    let (_store, server) = serving_model();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The body comes after the 404 could have been sent: the server must read it, not drop the connection.
    let body = br#"{"text": "hi"}"#;
    write!(
        stream,
        "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(body).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (mut answers, mut buf) = (String::new(), [0u8; 4096]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answers.ends_with("ok\n") && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answers.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(answers.starts_with("HTTP/1.1 404"), "{answers:?}");
    assert!(
        answers.contains("HTTP/1.1 200") && answers.ends_with("ok\n"),
        "the next request on the same connection: {answers:?}"
    );
}

/// The model's digest and date as `/readyz` reports them.
fn ready_model(server: &TestServer) -> (String, String) {
    let (status, body) = server.readyz();
    assert_eq!(status, 200, "{body}");
    (
        body["model_sha256"].as_str().unwrap().to_string(),
        body["model_date"].as_str().unwrap().to_string(),
    )
}

#[test]
fn model_store_gone_after_start_keeps_serving_the_verified_model() {
    let (store, server) = serving_model();
    let before = ready_model(&server);
    let store_port = store.port;
    store.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", store_port)).is_err(),
        "the store is really gone"
    );
    // Long enough for several retry rounds (50–200 ms in tests), were the server to poll the store.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        ready_model(&server),
        before,
        "still ready on the same model"
    );
    let (status, answer) = post(&server, "application/json", r#"{"text": "go yankees"}"#);
    assert_eq!((status, answer["model_date"].as_str()), (200, Some(DATE)));
}

#[test]
fn store_serving_another_file_later_is_never_served() {
    let (store, server) = serving_model();
    let (pinned, _) = ready_model(&server);
    // The store now answers the same URL with another valid model file.
    let (other, other_sha) = trained_model("2026-11-25T09:00:00Z");
    assert_ne!(other_sha, pinned);
    store.put(common::server::MODEL_PATH, other);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ready_model(&server),
        (pinned.clone(), DATE.to_string()),
        "the running server keeps its verified model"
    );

    // A restart (a new pod, a reload) pinned to the old digest refuses the new file and says why.
    let restarted = TestServer::start(ServeConfig::new(
        store.url(common::server::MODEL_PATH),
        pinned.clone(),
        "0.2",
    ));
    std::thread::sleep(Duration::from_millis(400));
    let (status, body) = restarted.readyz();
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("sha256 mismatch")
            && reason.contains(&pinned)
            && reason.contains(&other_sha),
        "{reason}"
    );
    let (status, answer) = post(&restarted, "application/json", r#"{"text": "hi"}"#);
    assert_eq!(status, 503, "never serves an unverified model: {answer}");
    assert_eq!(
        post(&server, "application/json", r#"{"text": "hi"}"#).1["model_date"],
        DATE
    );
}

/// A request in flight: its head and the first bytes of its body sent.
const IN_FLIGHT: &[u8] = br#"{"text": "finishing this one in Ohio"}"#;

fn start_request(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/american HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        IN_FLIGHT.len()
    )
    .unwrap();
    stream.write_all(&IN_FLIGHT[..10]).unwrap();
    stream
}

/// Sends the rest of [`start_request`]'s body and reads the answer to the end (the server closes).
fn finish_request(mut stream: TcpStream) -> String {
    stream.write_all(&IN_FLIGHT[10..]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request finished: {response:?}"
    );
    assert!(response.contains("\"is_american\""));
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "answers while draining close their connection: {response:?}"
    );
    response
}

/// Shutdown with `connections` requests in flight on a server with `threads` serving threads.
fn shutdown_finishes_in_flight_requests(threads: usize, connections: usize) {
    let (_store, mut server) = common::server::serving_model(|config| config.threads = threads);
    let streams: Vec<_> = (0..connections)
        .map(|_| start_request(server.port))
        .collect();
    std::thread::sleep(Duration::from_millis(100));

    server.begin_shutdown(Duration::from_millis(600));
    std::thread::sleep(Duration::from_millis(150));
    let (status, ready) = server.readyz();
    assert_eq!(
        (status, ready["reason"].as_str()),
        (503, Some("shutting down"))
    );

    let started = Instant::now();
    for stream in streams {
        finish_request(stream);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().unwrap();
}

#[test]
fn shutdown_turns_readiness_false_first_and_finishes_in_flight_requests() {
    shutdown_finishes_in_flight_requests(1, 1);
}

/// Connections are dealt in turn to the serving threads: with three threads and seven requests in
/// flight (the readiness check is another connection), every thread holds some when the drain begins,
/// and each finishes its own before `run` returns.
#[test]
fn every_serving_thread_finishes_its_in_flight_requests_on_shutdown() {
    shutdown_finishes_in_flight_requests(3, 7);
}

/// One request on `stream` (kept alive): the response head and body as text.
fn keep_alive_request(stream: &mut TcpStream) -> String {
    let body = br#"{"text": "on a kept-alive connection in Texas"}"#;
    write!(
        stream,
        "POST /api/american HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer is small: read until the JSON body is complete.
    while !response.ends_with(b"}") {
        let n = stream.read(&mut buf).expect("read the answer");
        assert!(
            n > 0,
            "connection closed early: {:?}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(response).unwrap().to_ascii_lowercase()
}

/// A server on the [`MODEL_DATE`] model answering `POST /drain` on a socket in a fresh directory:
/// (store, server, directory, socket path).
fn serving_with_drain_socket() -> (FileServer, TestServer, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("drain.sock");
    let path = socket.clone();
    let (store, server) = common::server::serving_model(|c| c.drain_socket = Some(path));
    (store, server, dir, socket)
}

/// What the pod's preStop hook runs: `/predictor drain --wait <wait>`, the socket from `DRAIN_SOCKET`.
fn pre_stop(socket: &Path, wait: &str) -> std::process::Output {
    common::predictor_with_env(
        &["drain", "--wait", wait],
        &[("DRAIN_SOCKET", socket.as_os_str())],
    )
}

#[test]
fn pre_stop_drains_through_the_socket_moving_kept_alive_clients_on_while_still_answering() {
    let (_store, server, _dir, socket) = serving_with_drain_socket();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the socket is its user's only: {mode:o}"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let before = keep_alive_request(&mut stream);
    assert!(before.starts_with("http/1.1 200"), "{before}");
    assert!(!before.contains("connection: close"), "{before}");
    assert_eq!(server.readyz().0, 200);

    let started = Instant::now();
    let out = pre_stop(&socket, "300ms");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(300), "it waits");

    // The kept-alive client gets its answer, told to reconnect; new clients are still answered.
    let after = keep_alive_request(&mut stream);
    assert!(after.starts_with("http/1.1 200"), "{after}");
    assert!(after.contains("connection: close"), "{after}");
    let (status, json) = post(&server, "application/json", r#"{"text": "new client"}"#);
    assert_eq!(status, 200, "{json}");
    let (status, ready) = server.readyz();
    assert_eq!(
        (status, ready["reason"].as_str()),
        (503, Some("shutting down"))
    );
    server.stop().unwrap();
    assert!(
        !socket.exists(),
        "the server removes its socket when it stops"
    );

    // No server there: it still waits, then says which socket it tried.
    let started = Instant::now();
    let out = pre_stop(&socket, "200ms");
    assert!(!out.status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it waits anyway"
    );
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains(&format!("the drain socket {}", socket.display())),
        "{stderr}"
    );
    // No socket named at all (a pod template without DRAIN_SOCKET): it says what to set.
    let out = common::predictor(&["drain", "--wait", "0s"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("DRAIN_SOCKET"),
        "{}",
        common::stderr(&out)
    );
}

/// A TCP connection to `port` on 127.0.0.1 from the source address `source` (any of 127.0.0.0/8).
fn connect_from(source: &str, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        stream.into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// `POST path` (empty body) on `stream`: the status line and the body (the headers carry a date).
fn post_empty(mut stream: TcpStream, path: &str) -> (String, String) {
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    (status, body.to_string())
}

/// In a mesh the sidecar proxy forwards the Service's traffic from 127.0.0.6; the pod's own processes
/// connect from 127.0.0.1. Over TCP neither can drain: `/drain` is an unknown route from any address,
/// with a drain socket open or not, and readiness stays true.
#[test]
fn drain_over_tcp_is_404_from_any_address_and_readiness_stays_true() {
    let (_store, with_socket, _dir, socket) = serving_with_drain_socket();
    let (_other_store, without_socket) = serving_model();
    for server in [&with_socket, &without_socket] {
        let unknown = post_empty(connect_from("127.0.0.1", server.port), "/nope");
        assert!(unknown.0.starts_with("HTTP/1.1 404"), "{unknown:?}");
        for source in ["127.0.0.1", "127.0.0.6", "127.0.0.2"] {
            let stream = connect_from(source, server.port);
            assert_eq!(stream.local_addr().unwrap().ip().to_string(), source);
            assert_eq!(post_empty(stream, "/drain"), unknown, "from {source}");
            let (status, ready) = server.readyz();
            assert_eq!(
                status, 200,
                "a request from {source} drained the server: {ready}"
            );
        }
    }
    // The socket still works: TCP was refused, not the drain.
    let out = pre_stop(&socket, "0s");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(with_socket.readyz().0, 503);
}

/// The pod's shape end to end with the real binary: `serve` and the preStop `drain` both find the socket
/// in `DRAIN_SOCKET`; after the drain, SIGTERM still shuts down cleanly and the socket file is gone.
/// A socket path that cannot be bound stops `serve` at once with an error naming it.
#[test]
fn serve_binds_the_drain_socket_from_its_env_and_refuses_a_path_it_cannot_bind() {
    let (bytes, sha) = model_bytes();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bin");
    std::fs::write(&model, bytes).unwrap();
    let socket = dir.path().join("drain.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let port = closed_port();
    let serve = |socket: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_predictor"));
        command
            .args([
                "serve",
                "--model-url",
                model.to_str().unwrap(),
                "--model-sha256",
                &sha,
            ])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("DRAIN_SOCKET", socket)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command
    };
    let child = serve(&socket).spawn().unwrap();
    let readyz = || {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/readyz"))
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    model_store::testing::poll(Duration::from_secs(20), "/readyz 200", || {
        (readyz() == 200).then_some(())
    })
    .unwrap();
    let out = pre_stop(&socket, "0s");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(readyz(), 503);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exited = child.wait_with_output().unwrap();
    assert!(exited.status.success(), "{}", common::stderr(&exited));
    assert!(!socket.exists(), "the socket file is removed at exit");

    for (bad, says) in [
        (
            dir.path().join("no-such-dir/drain.sock"),
            "No such file or directory",
        ),
        (model.clone(), "exists and is not a socket"),
    ] {
        let started = Instant::now();
        let out = serve(&bad).output().unwrap();
        assert!(!out.status.success());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "fails at start"
        );
        let stderr = common::stderr(&out);
        assert!(
            stderr.contains(&format!(
                "the drain socket {} (--drain-socket, DRAIN_SOCKET)",
                bad.display()
            )) && stderr.contains(says),
            "{stderr}"
        );
    }
    assert!(
        std::fs::metadata(&model).unwrap().len() > 0,
        "the model file was left alone"
    );
}

/// Keep-alive clients do not stick to one pod for ever: once a connection is older than
/// `max_connection_age`, its next answer closes it, so the client reconnects and kube-proxy may send
/// it to any current endpoint (a canary's, a new replica's). Younger connections are left alone.
#[test]
fn an_old_connection_is_closed_after_its_answer_so_clients_spread_again() {
    let (_store, server) = common::server::serving_model(|c| {
        c.max_connection_age = Some(Duration::from_millis(300));
    });
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    };
    let mut stream = connect();
    let young = keep_alive_request(&mut stream);
    assert!(young.starts_with("http/1.1 200"), "{young}");
    assert!(!young.contains("connection: close"), "{young}");
    std::thread::sleep(Duration::from_millis(350));
    let old = keep_alive_request(&mut stream);
    assert!(old.starts_with("http/1.1 200"), "{old}");
    assert!(old.contains("connection: close"), "{old}");
    // The server closed it after the answer: end of stream, nothing more.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // The client's new connection is young again.
    let again = keep_alive_request(&mut connect());
    assert!(!again.contains("connection: close"), "{again}");
    server.stop().unwrap();
}

/// A client that sends a whole oversized body before reading (no `Expect: 100-continue`, as most do)
/// reads the 413: the server reads and discards the rest (bounded) instead of resetting the connection
/// under the client's write.
#[test]
fn an_oversized_body_sent_in_full_gets_its_413_not_a_reset() {
    let (_store, server) = serving_model();
    for declared in [true, false] {
        let body = vec![b' '; 6 << 20];
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let framing = if declared {
            format!("Content-Length: {}", body.len())
        } else {
            "Transfer-Encoding: chunked".to_string()
        };
        write!(
            stream,
            "POST /api/american HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
        )
        .unwrap();
        if declared {
            stream.write_all(&body).expect("the whole body is accepted");
        } else {
            for chunk in body.chunks(64 << 10) {
                write!(stream, "{:x}\r\n", chunk.len()).unwrap();
                stream.write_all(chunk).expect("every chunk is accepted");
                stream.write_all(b"\r\n").unwrap();
            }
            stream.write_all(b"0\r\n\r\n").unwrap();
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "declared {declared}: {response:?}"
        );
        assert!(response.contains("larger than"), "{response:?}");
    }
    server.stop().unwrap();
}

#[test]
fn eval_url_reproduces_eval_model_accuracy() {
    let (store, server) = serving_model();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bin");
    std::fs::write(&model, store.get(common::server::MODEL_PATH).unwrap()).unwrap();
    let test = common::tweets("test.csv");
    let run = |args: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_predictor"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let offline = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
        "--json",
    ]);
    let base = server.url("");
    let live = run(&[
        "eval",
        "--url",
        &base,
        "--data",
        test.to_str().unwrap(),
        "--concurrency",
        "8",
        "--json",
    ]);
    assert_eq!(live["summary"]["accuracy"], offline["accuracy"]);
    assert_eq!(live["summary"]["confusion"], offline["confusion"]);
    assert_eq!(live["errors"], json!({}));
    assert_eq!(live["versions"], json!({"0.2": 1000}));
    assert!(live["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    let out = Command::new(env!("CARGO_BIN_EXE_predictor"))
        .args(["predict", "--url", &base, "#covid19 new york"])
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (answer["is_american"].clone(), answer["version"].clone()),
        (json!(1), json!("0.2"))
    );
}

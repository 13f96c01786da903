//! The product as users install it: the operator from `kubectl apply -k` (scenario 1), a
//! Predictor READY 2/2 answering by its DNS name (2), restricted pods with `/drain` off the network
//! (6), the image sizes (7), and no operator pod restarted by anything the scenarios did.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Setup;
use crate::cluster::*;
use crate::support::{repo_root, run_kubectl, wait_output};

/// Section 1: The operator as users install it: `kubectl apply -k`, 2 pods, one leads.
pub(crate) fn operator_installed(setup: &Setup) {
    let (node, leader) = (&setup.node, &setup.leader);
    eprintln!(
        "{}",
        node.kubectl_ok(&["get", "pods", "-n", OPERATOR_NS, "-o", "wide"])
    );
    let ops = operator_pods(node);
    assert_eq!(ops.len(), 2, "two operator pods");
    for pod in &ops {
        assert_eq!(pod["status"]["phase"], "Running", "{pod}");
        assert_eq!(pod["spec"]["containers"][0]["image"], OPERATOR_IMAGE);
        assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], PULL_SECRET);
        // In-cluster config: the service account token, no kubeconfig.
        assert_eq!(pod["spec"]["serviceAccountName"], "predictor-operator");
        assert!(pod_env(pod, "KUBECONFIG").is_none(), "{pod}");
    }
    assert!(
        ops.iter().any(|p| p["metadata"]["name"] == leader.as_str()),
        "the Lease holder {leader} is one of the operator pods"
    );
    let ns = node.json(&["get", "namespace", OPERATOR_NS]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_pulled(node, OPERATOR_NS, OPERATOR_IMAGE);
}

/// Section 2: READY 2/2 with real containers, pulled from the registry; `status.url` answers by its
/// DNS name from the pod network and `predictor eval --url` there reproduces the offline accuracy.
pub(crate) fn ready_and_answering(setup: &Setup) {
    let node = &setup.node;
    let (model_t, sha_t) = (&setup.models["MODEL_T"], &setup.models["MODEL_T_SHA256"]);
    let tweets = repo_root().join("../shared/data/tweets");
    let p = node.predictor();
    assert_pulled(node, NS, &format!("{IMAGE}:0.1"));
    let table = node.kubectl_ok(&["get", "predictors", "-n", NS]);
    eprintln!("{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], [NAME, "2/2", "0.1", &sha_t[..12]], "{table}");
    assert_eq!(p["status"]["modelSha256"], sha_t.as_str());
    let url = p["status"]["url"].as_str().expect("status.url").to_string();
    assert_eq!(url, format!("http://{NAME}.{NS}.svc:5008/api/american"));
    assert_eq!(row[4], url, "URL column: {table}");
    // The contract at status.url, by its DNS name, from the pod network (cluster DNS -> ClusterIP ->
    // kube-proxy DNAT to a pod). kube-proxy programs a new Service within about a second.
    let t_svc = Instant::now();
    let body = wait_for(Duration::from_secs(20), "status.url answers", || {
        let out = in_pod_network(
            "curl",
            &[
                "-sS",
                "--fail-with-body",
                "--max-time",
                "5",
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"text": "Traffic on I-95 is a nightmare this morning, go Yankees"}"#,
                &url,
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    eprintln!(
        "[node test] curl {url} (DNS name, from netns {CLIENT_NETNS}) answered {:.1} s after Ready: {body}",
        t_svc.elapsed().as_secs_f64()
    );
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    assert!(
        answer["is_american"] == 0 || answer["is_american"] == 1,
        "{answer}"
    );
    assert_eq!(answer["version"], "0.1", "{answer}");
    assert_eq!(answer["model"], &sha_t[..12], "{answer}");
    assert!(
        answer["model_date"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01"),
        "{answer}"
    );

    // `eval --url` by the DNS name, from the pod network, reproduces the offline evaluation.
    let test_csv = tweets.join("test.csv").display().to_string();
    let offline = accuracy_line(&predictor_cli(&[
        "eval",
        "--model",
        &node.model_file(model_t).display().to_string(),
        "--data",
        &test_csv,
    ]));
    let dns_base = url.strip_suffix("/api/american").unwrap();
    let predictor_bin = std::env::var("PREDICTOR_BIN").unwrap();
    let live = accuracy_line(&in_pod_network(
        &predictor_bin,
        &["eval", "--url", dns_base, "--data", &test_csv],
    ));
    eprintln!("[node test] offline: {offline} | {dns_base} from the pod network: {live}");
    assert_eq!(offline, live);
}

/// Section 6: Restricted pods: the API's view and the kernel's; `POST /drain` from inside a pod's
/// netns is 404 (issue 26).
pub(crate) fn restricted_pods(setup: &Setup) {
    let node = &setup.node;
    let ns = node.json(&["get", "namespace", NS]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for pod in pods(node) {
        let c = &pod["spec"]["containers"][0]["securityContext"];
        assert_eq!(c["readOnlyRootFilesystem"], true, "{pod}");
        assert_eq!(c["allowPrivilegeEscalation"], false, "{pod}");
        assert_eq!(c["capabilities"]["drop"][0], "ALL", "{pod}");
        assert_eq!(
            pod["spec"]["securityContext"]["runAsNonRoot"], true,
            "{pod}"
        );
        assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], PULL_SECRET);
    }
    let pids = predictor_pids();
    assert_eq!(pids.len(), 2, "two predictor processes on the node");
    for pid in pids {
        let (uid, caps, root_ro) = process_facts(pid);
        assert_eq!(uid, "65532", "pid {pid} uid");
        assert_eq!(caps, "0000000000000000", "pid {pid} has capabilities");
        assert!(root_ro, "pid {pid}: root filesystem is writable");
    }
    // Issue 26, `/drain` off the network: inside each pod's own network namespace, a POST /drain from
    // 127.0.0.6 (where a mesh's sidecar proxy connects from) and from 127.0.0.1 both get the unknown
    // route's 404 and the pod stays ready; the drain socket is in the pod's emptyDir, its user's only.
    let port = pods(node)[0]["spec"]["containers"][0]["ports"][0]["containerPort"]
        .as_i64()
        .unwrap();
    for pid in predictor_pids() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let socket =
            std::fs::symlink_metadata(format!("/proc/{pid}/root/run/predictor/drain.sock"))
                .unwrap_or_else(|e| panic!("pid {pid}: no drain socket: {e}"));
        assert!(socket.file_type().is_socket(), "pid {pid}");
        assert_eq!(
            (socket.mode() & 0o777, socket.uid()),
            (0o600, 65532),
            "pid {pid}"
        );
        let status_in_pod = |args: &[&str]| {
            let out = Command::new("nsenter")
                .args(["--target", &pid.to_string(), "--net", "curl", "-s"])
                .args(["-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
                .args(args)
                .output()
                .expect("run nsenter curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for source in ["127.0.0.6", "127.0.0.1"] {
            let drain = format!("http://127.0.0.1:{port}/drain");
            let status = status_in_pod(&["--interface", source, "-X", "POST", &drain]);
            assert_eq!(status, "404", "pid {pid}: POST /drain from {source}");
        }
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        assert_eq!(status_in_pod(&[&readyz]), "200", "pid {pid} still ready");
    }
    // The namespace really enforces: a root pod is refused at admission.
    let refused = run_kubectl(
        &node.bin,
        &node.kubeconfig,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: root, namespace: {NS}}}\nspec:\n  containers:\n  \
         - {{name: c, image: {IMAGE}:0.1, securityContext: {{runAsUser: 0}}}}\n"
        )),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("violates PodSecurity"),
        "{stderr}"
    );
}

/// Section 7: Image sizes: the predictor's under 10 MB.
pub(crate) fn image_sizes(setup: &Setup) {
    let node = &setup.node;
    let sizes: Vec<(String, u64)> = std::fs::read_dir(node.state.join("images"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_str()?.strip_suffix(".tar")?.to_string();
            Some((name, e.metadata().ok()?.len()))
        })
        .collect();
    for (name, bytes) in &sizes {
        eprintln!(
            "[node test] image {name}: {:.2} MB ({bytes} bytes, docker-archive)",
            *bytes as f64 / 1e6
        );
    }
    let predictor_image = sizes
        .iter()
        .find(|(n, _)| n.starts_with("american-predictor"))
        .expect("predictor image");
    assert!(
        predictor_image.1 < 10_000_000,
        "predictor image {} bytes",
        predictor_image.1
    );
    assert!(
        sizes
            .iter()
            .any(|(n, _)| n.starts_with("predictor-operator")),
        "operator image built"
    );
}

/// No operator pod restarted along the way (the deleted leader was replaced, not restarted).
pub(crate) fn no_operator_restarts(setup: &Setup) {
    let node = &setup.node;
    for pod in operator_pods(node) {
        assert_eq!(
            pod["status"]["containerStatuses"][0]["restartCount"], 0,
            "operator pod restarted: {pod}"
        );
    }
}

/// `program args…` run inside the client netns on the pod network (`ip netns exec`: its resolv.conf
/// names the cluster DNS).
pub(crate) fn in_pod_network(program: &str, args: &[&str]) -> Output {
    let child = Command::new("ip")
        .args(["netns", "exec", CLIENT_NETNS, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ip netns exec");
    wait_output(child, Duration::from_secs(600), program)
}

/// The kernel's view of a container process: uid, effective capabilities, read-only root.
pub(crate) fn process_facts(pid: u32) -> (String, String, bool) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root_ro = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .is_some_and(|f| f[5].split(',').any(|o| o == "ro"));
    (field("Uid:"), field("CapEff:"), root_ro)
}

pub(crate) fn accuracy_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "eval failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.to_lowercase().contains("accuracy"))
        .unwrap_or_else(|| panic!("no accuracy in: {stdout}"))
        .trim()
        .to_string()
}

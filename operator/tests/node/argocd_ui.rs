//! ArgoCD as teams see it: the web UI in Chromium (issue 29). argocd-server serves the UI
//! `dev/argocd/build-ui.sh` built (from the same argo-cd source as the binaries) over TLS with its own
//! self-signed certificate, reached like the assignment's at NodePort 32535 of the node (a Service
//! whose endpoint is argocd-server on the node's address: kube-proxy's NodePort rules carry it).
//!
//! What a team does, in the browser only: team-a logs in with the first password the admin gave it
//! (the admin uses the CLI), changes it in User Info (the old one is refused after), creates the
//! `american-predictor` application in the New App form (repository, path, project
//! `team-a-project`, cluster, namespace, automatic sync), sees it Synced + Healthy in the list, and
//! opens its resource tree: the Predictor with the health our `health.lua` gives it, the
//! Deployment, ReplicaSets and pods under it. Then two commits to the team's repository, each
//! picked up with the app page's Refresh button: the switch to a Canary rollout (the Predictor
//! Progressing, then Healthy) and a worse model under that canary, rolled back by the operator's
//! online analysis under a probe (Degraded, with the measured values; 0 failed requests). team-b,
//! logged in, sees no application. A screenshot of each step goes to
//! `$CARGO_TARGET_TMPDIR/argocd-ui/` (the ones in docs/argocd-ui/ come from a run of this test).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use browser::{Browser, Settings};
use operator::crd::{AnalysisSpec, RolloutSpec, RolloutStrategy};
use serde_json::Value;

use crate::Setup;
use crate::cluster::*;
use crate::probe::*;
use crate::support::argocd::{self, ARGOCD_NS, ArgoCd, Components, TEAM_NS, https_get};
use crate::support::argocd_cli::{Cli, Transport};
use crate::support::git::GitRepo;
use crate::support::manifests::manifest;

/// The node's address (dev/node/lib.sh NODE_IP): where NodePorts answer.
const NODE_IP: &str = "10.77.0.1";
/// The assignment's port for ArgoCD's web service.
const NODE_PORT: u16 = 32535;
/// The application team-a creates in the UI.
const UI_APP: &str = "american-predictor";
const TEAM_B_NS: &str = "team-b";
/// How long the UI may take to show what the cluster already has (its watch stream, a poll).
const UI_TIMEOUT: Duration = Duration::from_secs(120);

/// One Predictor node of the resource tree as the page shows it.
#[derive(Debug)]
struct TreeNode {
    kind: String,
    name: String,
    /// What the node's health icon says: `Healthy`, `Progressing` (the spinner), `Degraded`…; empty if
    /// it has none.
    health: String,
    /// The icon's title: the status and the health check's message.
    message: String,
}

/// The resource tree on the application page: every node's kind, name and health, read from the DOM
/// (the node's title names kind and name; its health icon is an `<i>` titled "Status: message", or the
/// spinner `<svg>` while Progressing).
fn tree(browser: &Browser) -> Vec<TreeNode> {
    let nodes = browser.execute(
        r#"return Array.from(document.querySelectorAll('.application-resource-tree__node')).map(n => {
             const t = n.getAttribute('title') || '';
             const pick = re => ((t.match(re) || [])[1] || '').trim();
             const h = n.querySelector('.application-resource-tree__node-status-icon [qe-id="utils-health-status-title"]');
             let health = '', message = '';
             if (h && h.tagName.toLowerCase() === 'svg') { health = 'Progressing'; }
             else if (h) { message = h.getAttribute('title') || ''; health = message.split(':')[0]; }
             return {kind: pick(/^Kind: (.*)$/m), name: pick(/^Name: (.*)$/m), health, message};
           });"#,
        vec![],
    );
    nodes
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| TreeNode {
                    kind: text(&n["kind"]),
                    name: text(&n["name"]),
                    health: text(&n["health"]),
                    message: text(&n["message"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The Predictor's node of the tree, once it is there.
fn predictor_node(browser: &Browser) -> Option<TreeNode> {
    tree(browser)
        .into_iter()
        .find(|n| n.kind == "Predictor" && n.name == NAME)
}

/// Screenshots of this run, numbered in order.
struct Shots {
    dir: PathBuf,
    n: u32,
}

impl Shots {
    fn new() -> Shots {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-ui");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the screenshot dir");
        Shots { dir, n: 0 }
    }

    fn take(&mut self, browser: &Browser, what: &str) {
        self.n += 1;
        let path = self.dir.join(format!("{:02}-{what}.png", self.n));
        browser.screenshot(&path);
        eprintln!("[argocd ui] screenshot {}", path.display());
    }
}

/// Logs `user` in on the login page; `Ok` once the applications list shows, `Err(what the page
/// said)` if the login was refused.
fn log_in(browser: &Browser, url: &str, user: &str, password: &str) -> Result<(), String> {
    browser.delete_cookies();
    browser.open(&format!("{url}/login"));
    let name = browser.wait_for("input[name=username]", UI_TIMEOUT);
    browser.type_into(&name, user);
    browser.type_into(
        &browser
            .find("input[name=password]")
            .expect("the password field"),
        password,
    );
    browser.click(
        &browser
            .find_xpath("//button[@type='submit' and contains(., 'Sign In')]")
            .expect("the Sign In button"),
    );
    browser.wait_until(UI_TIMEOUT, "the applications list or a login error", || {
        if browser
            .find("button[qe-id=applications-list-button-new-app]")
            .is_some()
        {
            return Some(Ok(()));
        }
        browser
            .find(".login .argo-form-row__error-msg")
            .map(|e| Err(browser.text(&e)))
            .filter(|e| e.as_ref().is_err_and(|m| !m.is_empty()))
    })
}

/// Types into the input the create form marks with `attribute=id` (`qeid` on text fields, `qe-id` on
/// autocompletes), then leaves it with Escape so no suggestion list covers the next field.
fn fill(browser: &Browser, attribute: &str, id: &str, value: &str) {
    let input = browser.wait_for(&format!("input[{attribute}=\"{id}\"]"), UI_TIMEOUT);
    browser.type_into(&input, value);
    browser.send_keys(&input, "\u{e00c}");
}

/// team-a's Predictor as its repository holds it: on the serving image, model `(url, sha)`, with a
/// Canary rollout when `canary` (the online analysis of the canary_online_gate scenario).
fn team_predictor(tag: &str, (url, sha): (&str, &str), canary: bool) -> String {
    let mut p = predictor_object(tag, url, sha);
    p.metadata.namespace = Some(TEAM_NS.into());
    if canary {
        p.spec.rollout = Some(RolloutSpec {
            strategy: RolloutStrategy::Canary,
            canary_percent: 50,
            shadow_percent: 50,
            analysis: Some(AnalysisSpec {
                min_samples: 300,
                max_disagreement: Some(0.25),
                max_error_rate: Some(0.01),
                max_p99_latency_ratio: None,
                deadline_seconds: 600,
            }),
        });
    }
    manifest(&[p])
}

/// Clicks the application page's Refresh: ArgoCD reads the repository now (the controller's periodic
/// resync is off in these tiers; a webhook or this button starts every sync).
fn refresh(browser: &Browser) {
    let button = browser
        .find_xpath("//button[contains(., 'Refresh')]")
        .expect("the Refresh button on the application page");
    browser.click(&button);
}

pub(crate) fn argocd_web_ui(setup: &Setup) {
    let node = &setup.node;
    let assets = argocd::ui_dir();
    let bin = argocd::bin_dir(&[
        "argocd-repo-server",
        "argocd-application-controller",
        "argocd-server",
    ]);
    let model = |key: &str| setup.model(key);
    let tag = crate::gates::serving_tag(node);
    let ((url_h, sha_h), (url_s, sha_s)) = (model("MODEL_H"), model("MODEL_S"));

    // What autoscaling_under_argocd left in team-a (its declarative Application and Predictor): team-a
    // starts from an empty namespace here.
    node.kubectl_ok(&[
        "delete",
        "application",
        argocd::APP,
        "-n",
        ARGOCD_NS,
        "--ignore-not-found",
        "--timeout=60s",
    ]);
    for ns in [TEAM_NS, TEAM_B_NS] {
        team_namespace(node, ns);
    }
    node.kubectl_ok(&[
        "delete",
        "predictors",
        "--all",
        "-n",
        TEAM_NS,
        "--timeout=60s",
    ]);
    let target = argocd::Target {
        dir: &node.state,
        kubeconfig: &node.kubeconfig,
        bin: &node.bin,
    };
    argocd::install_config(target, &bin);

    // Each team's repository; team-a's holds its Predictor (the older model, a plain rolling update).
    let repo_a = GitRepo::init(&node.state.join("git/ui-team-a"));
    let path = format!("{}/american.yaml", argocd::GIT_PATH);
    repo_a.commit(
        "american",
        &[(&path, Some(&team_predictor(&tag, (&url_h, sha_h), false)))],
    );
    let repo_b = GitRepo::init(&node.state.join("git/ui-team-b"));
    repo_b.commit("empty", &[("gitops/team-b/README", Some("team-b\n"))]);
    let overlay = argocd::teams_overlay(&node.state, &repo_a.url(), &repo_b.url());
    node.kubectl_ok(&["apply", "-k", &overlay.display().to_string()]);

    let mut argo = ArgoCd::start(
        target,
        &bin,
        Components::WithWebUi {
            address: NODE_IP,
            assets: &assets,
        },
    );
    let server = argo.server.clone().expect("argocd-server runs");
    let port = server.rsplit(':').next().expect("a port").to_string();
    // The NodePort: a Service without a selector whose one endpoint is argocd-server on the node.
    node.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: argocd-server, namespace: {ARGOCD_NS}}}\n\
         spec:\n  type: NodePort\n  ports: [{{name: https, port: 443, targetPort: {port}, nodePort: {NODE_PORT}}}]\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: argocd-server-node\n  namespace: {ARGOCD_NS}\n  labels: {{kubernetes.io/service-name: argocd-server}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [\"{NODE_IP}\"]}}]\n\
         ports: [{{name: https, port: {port}, protocol: TCP}}]\n"
    ));
    let url = format!("https://{NODE_IP}:{NODE_PORT}");
    let index = wait_for(UI_TIMEOUT, "the web UI at the NodePort", || {
        https_get(&format!("{url}/"))
            .filter(|(code, body)| *code == 200 && body.contains("<title>Argo CD</title>"))
    });
    eprintln!(
        "[argocd ui] {url}/ serves the UI ({} bytes of index.html)",
        index.1.len()
    );

    // The admin gives each team its first password (the CLI, through the same NodePort).
    let nodeport = format!("{NODE_IP}:{NODE_PORT}");
    let admin = Cli::new(
        &bin,
        &node.state,
        "admin",
        Some(&node.kubeconfig),
        Transport::TlsUnverified,
    );
    let initial = admin.login_with_initial_password(&nodeport);
    for team in ["team-a", "team-b"] {
        admin.set_password(team, &initial, &format!("{team}-first"));
    }

    let browser = Browser::start(&Settings {
        window: (1440, 900),
        accept_insecure_certs: true,
    });
    let mut shots = Shots::new();

    // --- team-a: first login, then its own password in User Info --------------------------------------
    log_in(&browser, &url, "team-a", "team-a-first")
        .expect("team-a logs in with its first password");
    shots.take(&browser, "team-a-no-applications");
    browser.open(&format!("{url}/user-info"));
    browser.wait_until(UI_TIMEOUT, "User Info with team-a's name", || {
        browser
            .page_text()
            .contains("Username: team-a")
            .then_some(())
    });
    browser.click(
        &browser
            .find_xpath("//button[contains(., 'Update Password')]")
            .expect("User Info's Update Password"),
    );
    let fields = browser.wait_until(UI_TIMEOUT, "the password form", || {
        let f = browser.find_all(".change-password input[type=password]");
        (f.len() == 3).then_some(f)
    });
    for (field, value) in fields
        .iter()
        .zip(["team-a-first", "team-a-own", "team-a-own"])
    {
        browser.type_into(field, value);
    }
    shots.take(&browser, "team-a-update-password");
    browser.click(
        &browser
            .find_xpath("//button[contains(., 'Save New Password')]")
            .expect("Save New Password"),
    );
    browser.wait_until(UI_TIMEOUT, "the password changed", || {
        browser
            .page_text()
            .contains("Your password has been successfully updated")
            .then_some(())
    });
    let refused = log_in(&browser, &url, "team-a", "team-a-first")
        .expect_err("the first password no longer logs team-a in");
    assert!(
        refused.contains("Invalid username or password"),
        "{refused}"
    );
    log_in(&browser, &url, "team-a", "team-a-own").expect("team-a logs in with its own password");

    // --- team-a creates its application in the New App form ----------------------------------------------
    browser.click(&browser.wait_for("button[qe-id=applications-list-button-new-app]", UI_TIMEOUT));
    fill(
        &browser,
        "qeid",
        "application-create-field-app-name",
        UI_APP,
    );
    fill(
        &browser,
        "qe-id",
        "application-create-field-project",
        "team-a-project",
    );
    // Sync Policy: the select under the field, then "Automatic".
    browser.click(&browser.wait_for(
        "[qe-id=application-create-field-sync-policy] .select__value, .application-create-panel .select__value",
        UI_TIMEOUT,
    ));
    browser.click(
        &browser
            .find_xpath(
                "//div[contains(@class, 'select__option') and normalize-space(.)='Automatic']",
            )
            .expect("the Automatic sync option"),
    );
    fill(
        &browser,
        "qe-id",
        "application-create-field-repository-url",
        &repo_a.url(),
    );
    fill(
        &browser,
        "qe-id",
        "application-create-field-path",
        argocd::GIT_PATH,
    );
    fill(
        &browser,
        "qe-id",
        "application-create-field-cluster-url",
        "https://kubernetes.default.svc",
    );
    fill(
        &browser,
        "qeid",
        "application-create-field-namespace",
        TEAM_NS,
    );
    shots.take(&browser, "team-a-new-app-form");
    browser.click(&browser.wait_for("button[qe-id=applications-list-button-create]", UI_TIMEOUT));
    let t = Instant::now();
    let tile = format!(".qe-applications-list-{ARGOCD_NS}_{UI_APP}");
    browser.wait_until(UI_TIMEOUT, "the app's tile Synced + Healthy", || {
        let health = browser.find(&format!("{tile} i[qe-id=utils-health-status-title]"))?;
        let sync = browser.find(&format!("{tile} i[qe-id=utils-sync-status-title]"))?;
        let attr = |e: &browser::Element| browser.attribute(e, "title");
        (attr(&health).starts_with("Healthy") && attr(&sync).starts_with("Synced")).then_some(())
    });
    eprintln!(
        "[argocd ui] created in the form, Synced + Healthy in the list after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    shots.take(&browser, "app-list-synced-healthy");
    // What the form made is what the CLI would have: the project, destination and automated sync.
    let app = node.json(&["get", "application", UI_APP, "-n", ARGOCD_NS]);
    assert_eq!(app["spec"]["project"], "team-a-project", "{app:#}");
    assert_eq!(app["spec"]["destination"]["namespace"], TEAM_NS);
    assert_eq!(app["spec"]["source"]["path"], argocd::GIT_PATH);
    assert!(
        app["spec"]["syncPolicy"]["automated"].is_object(),
        "{app:#}"
    );

    // --- the resource tree: the Predictor, Healthy, and what the operator made under it ---------------------
    browser.open(&format!("{url}/applications/{ARGOCD_NS}/{UI_APP}"));
    let nodes = browser.wait_until(
        UI_TIMEOUT,
        "the tree: Predictor Healthy over Deployment, ReplicaSet, pods",
        || {
            let nodes = tree(&browser);
            let has = |kind: &str| nodes.iter().any(|n| n.kind == kind);
            let healthy = nodes
                .iter()
                .any(|n| n.kind == "Predictor" && n.name == NAME && n.health == "Healthy");
            (healthy && has("Deployment") && has("ReplicaSet") && has("Pod") && has("Service"))
                .then_some(nodes)
        },
    );
    eprintln!("[argocd ui] tree: {nodes:?}");
    shots.take(&browser, "resource-tree-healthy");

    // --- a commit: the switch to Canary (the stable pods restart with the shadow target) -------------------
    repo_a.commit(
        "canary rollout",
        &[(&path, Some(&team_predictor(&tag, (&url_h, sha_h), true)))],
    );
    refresh(&browser);
    let progressing = browser.wait_until(UI_TIMEOUT, "the Predictor Progressing", || {
        predictor_node(&browser).filter(|n| n.health == "Progressing")
    });
    eprintln!("[argocd ui] after the canary switch: {progressing:?}");
    shots.take(&browser, "resource-tree-progressing");
    browser.wait_until(UI_TIMEOUT, "the Predictor Healthy again", || {
        predictor_node(&browser).filter(|n| n.health == "Healthy")
    });

    // --- a worse model under the canary: rolled back by the analysis, Degraded ----------------------------
    let ip = node.kubectl_ok(&[
        "get",
        "service",
        NAME,
        "-n",
        TEAM_NS,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let base = format!("http://{ip}:5008");
    let watch = Watch::start(
        node,
        "argocd-ui-canary",
        &base,
        &["--max-duration", "45s", "--no-keep-alive"],
    );
    repo_a.commit(
        "model-s under the canary",
        &[(&path, Some(&team_predictor(&tag, (&url_s, sha_s), true)))],
    );
    refresh(&browser);
    let degraded = browser.wait_until(
        UI_TIMEOUT,
        "the Predictor Degraded after the rollback",
        || predictor_node(&browser).filter(|n| n.health == "Degraded"),
    );
    eprintln!("[argocd ui] after the worse model: {degraded:?}");
    assert!(
        degraded.message.contains("rolled back") || degraded.message.contains("RolledBack"),
        "the tree shows the operator's reason: {degraded:?}"
    );
    shots.take(&browser, "resource-tree-degraded-rollback");
    let p = node.json(&["get", "predictor", NAME, "-n", TEAM_NS]);
    assert_eq!(p["status"]["rollout"]["phase"], "RolledBack", "{p:#}");
    // The stable model and the canary's, both of the one release; none failed.
    let release = p["status"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_watch_clean(
        "canary rollback seen in the UI",
        watch,
        &[&release, &release],
    );
    argo.check_running();

    // --- team-b: logged in, it does not see team-a's application ----------------------------------------
    log_in(&browser, &url, "team-b", "team-b-first").expect("team-b logs in");
    browser.wait_until(UI_TIMEOUT, "team-b's empty list", || {
        browser
            .page_text()
            .contains("No applications available to you just yet")
            .then_some(())
    });
    assert!(
        !browser.page_text().contains(UI_APP),
        "team-b sees team-a's application"
    );
    shots.take(&browser, "team-b-no-applications");
    browser.open(&format!("{url}/applications/{ARGOCD_NS}/{UI_APP}"));
    browser.wait_until(
        UI_TIMEOUT,
        "a refusal of team-a's app page to team-b",
        || {
            let text = browser.page_text();
            (text.contains("permission denied")
                || text.contains("PermissionDenied")
                || text.contains("not found"))
            .then_some(())
        },
    );
    assert!(
        predictor_node(&browser).is_none(),
        "team-b sees team-a's resource tree"
    );
    shots.take(&browser, "team-b-app-page-refused");
}

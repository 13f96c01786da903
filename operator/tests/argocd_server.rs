//! ArgoCD as its users meet it: argocd-server and the real `argocd` CLI, with one local account per
//! team, on the gitops tier (real control plane with kwok nodes, real ArgoCD, the real operator).
//!
//! The assignment's commands run as a team would type them: the admin logs in with the initial
//! password argocd-server generated (`argocd admin initial-password`), changes it and sets each
//! team's password (`argocd account update-password`); team A logs in and runs `argocd app create
//! american-predictor … --project team-a-project --dest-namespace team-a --sync-policy auto`,
//! `argocd app get` (until Synced + Healthy: the operator rolled the Predictor out) and `argocd app
//! sync`. Then team B proves the multi-tenancy of the committed `argocd/` files (AppProjects,
//! `argocd-rbac-cm`, the accounts in `argocd-cm-patch.yaml`): it cannot create an app in team A's
//! project, cannot aim its own project at team A's namespace, cannot see or sync team A's app, and
//! can create an app of its own (so the refusals are RBAC and destinations, not a broken login). An
//! Application aimed at team A's namespace that bypasses argocd-server (kubectl) is never synced by
//! the controller either.
//!
//! Only the Git URLs are swapped for repositories on local disk (a kustomize overlay). Every CLI run
//! has its own `--config` and `HOME` under the test's dir and a bounded wait; argocd-server listens
//! on 127.0.0.1 only, without TLS (`--plaintext`). Ignored by a plain `cargo test`; `./dev/test`
//! runs it, and when selected it fails at once if a program is missing.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestCluster;
use support::argocd::{self, ARGOCD_NS, ArgoCd, Components};
use support::argocd_cli::{Cli, Transport, field};
use support::git::GitRepo;
use support::manifests::{manifest, predictor};
use support::wait::poll;

const APP: &str = "american-predictor";
const IMAGE: &str = "registry.local/american-predictor:0.1";
const IN_CLUSTER: &str = "https://kubernetes.default.svc";
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// Runs [`app_create`] with these arguments, which RBAC must deny `cli`'s user.
fn assert_create_denied(
    cli: &Cli,
    name: &str,
    repo: &str,
    path: &str,
    project: &str,
    namespace: &str,
) {
    let denied = cli.refused(&app_create(name, repo, path, project, namespace));
    assert!(
        denied.contains("PermissionDenied")
            && denied.contains(&format!("applications, create, {project}/{name}")),
        "{denied}"
    );
}

/// `argocd app create` of `name` with the assignment's flags.
fn app_create<'a>(
    name: &'a str,
    repo: &'a str,
    path: &'a str,
    project: &'a str,
    namespace: &'a str,
) -> Vec<&'a str> {
    vec![
        "app",
        "create",
        name,
        "--repo",
        repo,
        "--path",
        path,
        "--project",
        project,
        "--dest-namespace",
        namespace,
        "--dest-server",
        IN_CLUSTER,
    ]
}

/// The Application `name` as the cluster holds it.
fn application(cluster: &TestCluster, name: &str) -> Value {
    let json = cluster.kubectl_ok(&["get", "application", name, "-n", ARGOCD_NS, "-o", "json"]);
    serde_json::from_str(&json).expect("Application JSON")
}

#[test]
#[ignore = "needs etcd, kube-*, kwok, kubectl, argocd, argocd-server, redis-server, git: ./dev/test runs it"]
fn teams_use_argocd_server_through_the_cli_each_in_its_own_project() {
    let bin = argocd::bin_dir(&[
        "argocd-application-controller",
        "argocd-repo-server",
        "argocd-server",
    ]);
    let cluster = TestCluster::start(2);
    let operator_kubeconfig = cluster.install_operator_prerequisites();
    argocd::install_config(&cluster, &bin);
    for team in ["team-a", "team-b"] {
        cluster.create_namespace(team);
    }
    let (_files, model, _operator) =
        argocd::model_and_operator(&cluster, &operator_kubeconfig, "operator-argocd-server");

    // Each team's repository holds one Predictor.
    let team_a_repo = GitRepo::init(&cluster.dir.join("git/team-a"));
    let first = team_a_repo.commit(
        "american",
        &[(
            "gitops/team-a/american.yaml",
            Some(&manifest(&[predictor("american", IMAGE, &model, 2)])),
        )],
    );
    let team_b_repo = GitRepo::init(&cluster.dir.join("git/team-b"));
    team_b_repo.commit(
        "british",
        &[(
            "gitops/team-b/british.yaml",
            Some(&manifest(&[predictor("british", IMAGE, &model, 1)])),
        )],
    );
    let (repo_a, repo_b) = (team_a_repo.url(), team_b_repo.url());
    let applied = cluster.kubectl_ok(&[
        "apply",
        "-k",
        &argocd::teams_overlay(&cluster.dir, &repo_a, &repo_b)
            .display()
            .to_string(),
    ]);
    assert!(
        !applied.contains("team-a-predictors"),
        "the overlay leaves the declarative Application out: {applied}"
    );

    let mut argocd = ArgoCd::start(&cluster, &bin, Components::WithServer);
    let server = argocd.server.clone().expect("argocd-server runs");
    let admin = Cli::new(
        &bin,
        &cluster.dir,
        "admin",
        Some(&cluster.kubeconfig),
        Transport::Plaintext,
    );
    let (team_a, team_b) = (
        Cli::new(&bin, &cluster.dir, "team-a", None, Transport::Plaintext),
        Cli::new(&bin, &cluster.dir, "team-b", None, Transport::Plaintext),
    );

    // The admin: first login with the generated password, then a password of their own.
    let initial = admin.login_with_initial_password(&server);
    let admin_password = "admin-password-1";
    admin.ok(&[
        "account",
        "update-password",
        "--current-password",
        &initial,
        "--new-password",
        admin_password,
    ]);
    let old = admin.refused(&admin.login_args(&server, "admin", &initial));
    assert!(old.contains("Invalid username or password"), "{old}");
    admin.login(&server, admin_password);
    // The teams' accounts (argocd-cm) exist, may log in, and get their passwords from the admin.
    let accounts = admin.ok(&["account", "list"]);
    for team in ["team-a", "team-b"] {
        assert!(
            accounts
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [team, "true", "login"]),
            "{accounts}"
        );
        admin.set_password(team, admin_password, &format!("{team}-password"));
    }
    team_a.login(&server, "team-a-password");
    team_b.login(&server, "team-b-password");

    // Team A: the assignment's commands.
    let mut create = app_create(APP, &repo_a, "gitops/team-a", "team-a-project", "team-a");
    create.extend(["--sync-policy", "auto"]);
    let said = team_a.ok(&create);
    assert!(
        said.contains(&format!("application '{APP}' created")),
        "{said}"
    );
    let started = Instant::now();
    let shown = poll(SYNC_TIMEOUT, "argocd app get: Synced + Healthy", || {
        let out = team_a.ok(&["app", "get", APP]);
        let synced = field(&out, "Sync Status").is_some_and(|s| s.starts_with("Synced"));
        (synced && field(&out, "Health Status") == Some("Healthy")).then_some(out)
    })
    .unwrap_or_else(|e| {
        argocd.check_running();
        panic!(
            "{e}: {}\n{}",
            team_a.ok(&["app", "get", APP]),
            argocd.logs()
        )
    });
    eprintln!(
        "[argocd-server] app create -> Synced + Healthy in {:.1}s:\n{shown}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(field(&shown, "Project"), Some("team-a-project"));
    assert_eq!(field(&shown, "Namespace"), Some("team-a"));
    assert_eq!(field(&shown, "Sync Policy"), Some("Automated"));
    assert!(
        field(&shown, "Sync Status").is_some_and(|s| s.contains(&first[..7])),
        "{shown}"
    );
    // What ArgoCD deployed is the Predictor, and the operator rolled it out.
    let image = cluster.kubectl_ok(&[
        "get",
        "deployment",
        "american",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, IMAGE);
    let app = application(&cluster, APP);
    // `--sync-policy auto`: automated sync, not switched off (`enabled` is left out when on).
    let automated = &app["spec"]["syncPolicy"]["automated"];
    assert!(
        automated.is_object() && automated["enabled"] != false,
        "{automated}"
    );
    assert_eq!(
        app["spec"]["source"]["repoURL"],
        Value::from(repo_a.as_str())
    );

    let said = team_a.ok(&["app", "sync", APP, "--timeout", "100"]);
    assert_eq!(field(&said, "Phase"), Some("Succeeded"), "{said}");
    let operation = &application(&cluster, APP)["status"]["operationState"];
    assert_eq!(operation["phase"], "Succeeded", "{operation:#}");
    // This sync is the CLI's, on behalf of team-a (the automated ones say automated: true).
    assert_eq!(
        operation["operation"]["initiatedBy"]["username"], "team-a",
        "{operation:#}"
    );
    assert_eq!(
        operation["syncResult"]["revision"],
        Value::from(first.as_str())
    );

    // Team B: RBAC keeps it out of team A's project, whatever it names.
    assert_create_denied(
        &team_b,
        "stolen",
        &repo_a,
        "gitops/team-a",
        "team-a-project",
        "team-a",
    );
    for args in [vec!["app", "get", APP], vec!["app", "sync", APP]] {
        let denied = team_b.refused(&args);
        assert!(denied.contains("PermissionDenied"), "{args:?}: {denied}");
    }
    // … and team A out of team B's.
    assert_create_denied(
        &team_a,
        "intruder",
        &repo_a,
        "gitops/team-a",
        "team-b-project",
        "team-b",
    );
    // Team B's own project may not aim at team A's namespace: the AppProject's destinations.
    let refused = team_b.refused(&app_create(
        "british",
        &repo_b,
        "gitops/team-b",
        "team-b-project",
        "team-a",
    ));
    assert!(
        refused.contains(&format!(
            "application destination server '{IN_CLUSTER}' and namespace 'team-a' do not match \
             any of the allowed destinations in project 'team-b-project'"
        )),
        "{refused}"
    );
    // The controller holds the same line for an Application that never went through argocd-server
    // (written with kubectl by someone who may write Applications): it never syncs it.
    let sneaky = "british-into-team-a";
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": sneaky, "namespace": ARGOCD_NS},
            "spec": {
                "project": "team-b-project",
                "source": {"repoURL": repo_b, "path": "gitops/team-b", "targetRevision": "main"},
                "destination": {"server": IN_CLUSTER, "namespace": "team-a"},
                "syncPolicy": {"automated": {}},
            },
        })
        .to_string(),
    );
    let condition = poll(SYNC_TIMEOUT, "the controller's InvalidSpecError", || {
        let app = application(&cluster, sneaky);
        app["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "InvalidSpecError")
            .cloned()
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:#}\n{}",
            application(&cluster, sneaky),
            argocd.logs()
        )
    });
    assert!(
        condition["message"].as_str().is_some_and(|m| m.contains(
            "namespace 'team-a' do not match any of the allowed destinations in project 'team-b-project'"
        )),
        "{condition:#}"
    );
    let app = application(&cluster, sneaky);
    assert!(app["status"]["operationState"].is_null(), "{app:#}");
    let predictors = cluster.kubectl_ok(&["get", "predictors", "-n", "team-a", "-o", "name"]);
    assert_eq!(predictors.trim(), "predictor.mlops.dev/american");
    cluster.kubectl_ok(&["delete", "application", sneaky, "-n", ARGOCD_NS]);

    // The same app into team B's own namespace is created: the refusals above were the rules.
    let said = team_b.ok(&app_create(
        "british",
        &repo_b,
        "gitops/team-b",
        "team-b-project",
        "team-b",
    ));
    assert!(said.contains("application 'british' created"), "{said}");
    // Each team lists only its own Applications; the cluster holds exactly these two.
    assert_eq!(
        team_a.ok(&["app", "list", "-o", "name"]).trim(),
        format!("{ARGOCD_NS}/{APP}")
    );
    assert_eq!(
        team_b.ok(&["app", "list", "-o", "name"]).trim(),
        format!("{ARGOCD_NS}/british")
    );
    let names = cluster.kubectl_ok(&["get", "applications", "-n", ARGOCD_NS, "-o", "name"]);
    let mut names: Vec<_> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("application.argoproj.io/{APP}"),
            "application.argoproj.io/british".into()
        ]
    );
    argocd.check_running();
}

use super::*;
use crate::probe::RampReport;

/// A GitOps run as the committed report of 2026-11-26 has it (docs/delivery-report/gitops/summary.json):
/// the stage times, then the probe's figures.
fn gitops_run(
    run: u32,
    (old, new): (&str, &str),
    times: [f64; 7],
    probe: (u64, f64, f64, f64),
) -> DeliveryRun {
    let [
        gitops,
        synced,
        rolled_out,
        ready,
        healthy,
        first_new,
        last_old,
    ] = times;
    let (requests, longest_gap_ms, p50, p99) = probe;
    let mut stages = Stages::default();
    stages.set("gitops", gitops);
    DeliveryRun {
        run,
        old: old.into(),
        new: new.into(),
        gitops_commit: "3698559e2b4915ce34cbf94b904f09deb99733a3".into(),
        page: String::new(),
        load_average: [0.83, 1.03, 1.32][run as usize - 1],
        stages,
        synced,
        rolled_out,
        ready,
        healthy,
        first_new_answer: Some(first_new),
        last_old_answer: Some(last_old),
        requests,
        failed: 0,
        failures: BTreeMap::new(),
        longest_gap_ms,
        latency_ms: Percentiles {
            p50,
            p90: 2.0,
            p99,
            max: 40.0,
        },
        interval_ms: 10.0,
        duration_s: 11.0,
        versions: vec![],
    }
}

fn gitops_report() -> DeliveryReport {
    let runs = vec![
        gitops_run(
            3,
            ("0.1", "0.2"),
            [0.379, 1.257, 3.198, 3.632, 3.83, 3.185, 3.175],
            (1116, 42.11, 1.069, 6.672),
        ),
        gitops_run(
            1,
            ("0.1", "0.2"),
            [0.375, 1.094, 2.994, 3.099, 3.31, 3.315, 3.304],
            (1127, 40.399, 1.091, 8.191),
        ),
        gitops_run(
            2,
            ("0.2", "0.1"),
            [0.321, 0.886, 2.682, 2.801, 2.996, 2.975, 2.965],
            (1091, 38.073, 1.0797, 8.452),
        ),
    ];
    DeliveryReport::new(Mode::Gitops, runs)
}

/// The report of runs whose probes wrote a line each, as `dev/delivery-report` asks for it.
fn rendered(report: &DeliveryReport) -> String {
    let probe = |r: &DeliveryRun| format!("## Rollout probe of run {}\n", r.run);
    let probe_markdown: Vec<String> = report.runs.iter().map(probe).collect();
    report.to_markdown("http://american.team-a.svc:5008", "10ms", &probe_markdown)
}

const INTRO: &str = "Real node (kubelet + containerd + kube-proxy, CoreDNS, a private registry), the operator installed with `kubectl apply -k` (2 pods), ArgoCD application-controller + repo-server + argocd-server (the team's app made with `argocd app create ... --sync-policy auto`), `predictor probe` sending a request every 10ms to http://american.team-a.svc:5008 (the Service's DNS name) from the pod network throughout.";

const CLOSING: &str = "\"How long the application stays offline\": never — 0 failed requests is the bar, and the longest gap between two answers is in the table (the probe's own interval is the floor). Times are wall-clock on this 2-core machine; stages are polled every ~0.1 s. Probe times are placed on the same clock by the probe's start time (±0.05 s).

Clients switch with the rollout: a pod being replaced runs its preStop (`predictor drain`), after which it answers every kept-alive request with `Connection: close` while it still serves, so each client reconnects (kube-proxy sends it to a new pod) instead of staying on the old pod until it exits.
";

/// The whole report of the GitOps runs, as the Python renderer of `dev/delivery-report` wrote it.
#[test]
fn the_gitops_report_reads_as_before() {
    let report = gitops_report();
    let markdown = rendered(&report);
    let expected = format!(
        "# Delivery report: a GitOps commit to every client

`dev/release --promote <tag>` points the team's kustomization at the other image tag (0.1 <-> 0.2), commits and pushes to the Git host; its post-receive hook calls argocd-server's webhook; ArgoCD syncs; the operator resolves the tag to a digest and rolls the 2 pods; kubelet pulls.

{INTRO} Seconds after the `dev/release --promote` started:

| stage | run 1 | run 2 | run 3 | median |
|---|---:|---:|---:|---:|
| GitOps commit pushed (kustomize edit set image) | 0.38 | 0.32 | 0.38 | 0.38 |
| ArgoCD: Application Synced to it | 1.09 | 0.89 | 1.26 | 1.09 |
| first answer from the new version | 3.31 | 2.98 | 3.19 | 3.19 |
| operator: Deployment rolled out (2/2 updated + available) | 2.99 | 2.68 | 3.20 | 2.99 |
| operator: Predictor Ready at the new version | 3.10 | 2.80 | 3.63 | 3.10 |
| ArgoCD: Application Synced + Healthy | 3.31 | 3.00 | 3.83 | 3.31 |
| last answer from the old version: every client on the new one | 3.30 | 2.96 | 3.17 | 3.17 |
| failed requests | 0 of 1127 | 0 of 1091 | 0 of 1116 | |
| longest gap between answers (ms) | 40 | 38 | 42 | |
| load average (1 min) at the commit, 2 cores | 0.83 | 1.03 | 1.32 | |
| latency p50 / p99 (ms) | 1.1 / 8.2 | 1.1 / 8.5 | 1.1 / 6.7 | |

{CLOSING}
## Run 1: 0.1 → 0.2

![timeline of run 1](timeline-1.png)

## Rollout probe of run 1

## Run 2: 0.2 → 0.1

![timeline of run 2](timeline-2.png)

## Rollout probe of run 2

## Run 3: 0.1 → 0.2

![timeline of run 3](timeline-3.png)

## Rollout probe of run 3

"
    );
    assert_eq!(markdown, expected);
    assert!(report.undelivered().is_empty());
}

/// A code run as docs/delivery-report/code/summary.json has it (run 2, and two made up around it): the
/// release's four stages, the page, the build's share paragraph; an even count of known values takes the
/// mean of the middle two, an unknown one is `-`.
#[test]
fn the_code_report_adds_the_release_stages_the_page_and_the_build_share() {
    let code_run = |run: u32, last_old: Option<f64>| {
        let times = [37.529, 37.741, 40.062, 40.355, 40.529, 0.0, 0.0];
        let mut r = gitops_run(
            run,
            ("62035b49fb0e", "5fe611c1fa53"),
            times,
            (4781, 37.2, 0.84, 6.17),
        );
        for (name, at) in [
            ("build", 36.164),
            ("image", 36.777),
            ("push", 37.215),
            ("gitops", 37.529),
        ] {
            r.stages.set(name, at);
        }
        (r.first_new_answer, r.last_old_answer) = (last_old.map(|t| t + 0.01), last_old);
        r.page = format!("<h1>Is this tweet from the US? (release {run})</h1>");
        r
    };
    let report = DeliveryReport::new(
        Mode::Code,
        vec![code_run(1, Some(39.976)), code_run(2, None)],
    );
    let markdown = rendered(&report);
    let expected = format!(
        "# Delivery report: a code commit to every client

A one-line change to the predictor (the web page's heading) is committed and pushed to the code repository on the Git host; its post-receive hook runs that commit's `dev/release`: static build (cargo profile `pipeline`, warm build cache), image (buildah, `Dockerfile.predictor`'s runtime stage) tagged with the short commit hash, push to the node's registry, `kustomize edit set image` in the GitOps repository, commit, push. The GitOps repository's hook calls argocd-server's webhook; ArgoCD syncs; the operator resolves the tag to a digest and rolls the 2 pods; kubelet pulls.

{INTRO} Seconds after the code commit pushed:

| stage | run 1 | run 2 | median |
|---|---:|---:|---:|
| build done (cargo, profile pipeline) | 36.16 | 36.16 | 36.16 |
| image built (buildah, Dockerfile runtime stage) | 36.78 | 36.78 | 36.78 |
| image pushed to the registry | 37.22 | 37.22 | 37.22 |
| GitOps commit pushed (kustomize edit set image) | 37.53 | 37.53 | 37.53 |
| ArgoCD: Application Synced to it | 37.74 | 37.74 | 37.74 |
| first answer from the new version | 39.99 | - | 39.99 |
| operator: Deployment rolled out (2/2 updated + available) | 40.06 | 40.06 | 40.06 |
| operator: Predictor Ready at the new version | 40.35 | 40.35 | 40.35 |
| ArgoCD: Application Synced + Healthy | 40.53 | 40.53 | 40.53 |
| last answer from the old version: every client on the new one | 39.98 | - | 39.98 |
| failed requests | 0 of 4781 | 0 of 4781 | |
| longest gap between answers (ms) | 37 | 37 | |
| load average (1 min) at the commit, 2 cores | 0.83 | 1.03 | |
| latency p50 / p99 (ms) | 0.8 / 6.2 | 0.8 / 6.2 | |

The build's share of commit-to-every-client: 90%–90% (the rest: image 0.61 s, push 0.44 s, GitOps commit 0.31 s, GitOps commit to every client 2.45 s; medians).

{CLOSING}
## Run 1: 62035b49fb0e → 5fe611c1fa53

The new page through the Service: `<h1>Is this tweet from the US? (release 1)</h1>`

![timeline of run 1](timeline-1.png)

## Rollout probe of run 1

## Run 2: 62035b49fb0e → 5fe611c1fa53

The new page through the Service: `<h1>Is this tweet from the US? (release 2)</h1>`

![timeline of run 2](timeline-2.png)

## Rollout probe of run 2

"
    );
    assert_eq!(markdown, expected);
    // Run 2 never saw the old version's last answer nor the new one's first: not delivered.
    assert_eq!(report.undelivered(), [2]);
}

/// The committed reports (made by the Python renderer before this one) come out byte for byte from their
/// own summary.json and probe reports, and summary.json reads back as the same JSON.
#[test]
fn the_committed_reports_render_byte_for_byte() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/delivery-report");
    for mode in ["gitops", "code"] {
        let read = |name: &str| std::fs::read_to_string(docs.join(mode).join(name)).unwrap();
        let summary = read("summary.json");
        let report: DeliveryReport = serde_json::from_str(&summary).unwrap();
        let probes: Vec<String> = report
            .runs
            .iter()
            .map(|r| read(&format!("probe-{}.md", r.run)))
            .collect();
        let markdown = report.to_markdown("http://american.team-a.svc:5008", "10ms", &probes);
        assert_eq!(markdown, read("report.md"), "{mode}");
        let again: serde_json::Value =
            serde_json::from_str(&report.summary_json().unwrap()).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(&summary).unwrap(),
            "{mode}"
        );
    }
}

fn probe_report(versions: &[(&str, f64, f64)]) -> ProbeReport {
    ProbeReport {
        started_at: "2026-11-26T13:44:13Z".into(),
        requests: 1127,
        failed: 0,
        failures: BTreeMap::new(),
        versions: versions
            .iter()
            .map(|&(version, first_ms, last_ms)| VersionSpan {
                version: version.into(),
                first_ms,
                last_ms,
                answers: 10,
            })
            .collect(),
        switch_over_ms: Some(0.0),
        longest_gap_ms: 40.399,
        latency_ms: Percentiles {
            p50: 1.09,
            p90: 2.31,
            p99: 8.19,
            max: 23.77,
        },
        duration_ms: 11322.0,
        interval_ms: 10.0,
        ramp: None::<RampReport>,
        peak_requests_per_second: 101,
    }
}

const MARKS: &str = "run 1
old 0.1
new 0.2
page 
load 0.83
gitops_commit 3698559e2b4915ce34cbf94b904f09deb99733a3
probe_started 1000.25
committed 1003.5
synced 1004.594
rolled 1006.494
ready 1006.599
healthy 1006.81
probe_json /tmp/work/probe-1.json
probe_report /tmp/work/probe-1.md
stage build 1045.3614
stage gitops 1003.875
stage gitops 1003.8751
";

/// The record of a run, as the Python of `dev/delivery-report` computed it: stages after the commit
/// rounded as `round(x, 3)`, answers placed on the commit's clock by the probe's start.
#[test]
fn a_run_record_from_its_marks_and_probe_report() {
    let marks = Marks::parse(MARKS, "run-1.marks").unwrap();
    assert_eq!(
        (marks.page.as_str(), marks.probe_json.as_str()),
        ("", "/tmp/work/probe-1.json")
    );
    // The new version's labels carry the model; an old answer of another model counts too.
    let report = probe_report(&[
        ("0.1 · model 297c07721e63", 0.42, 6310.734),
        ("0.2 · model 297c07721e63", 6321.373, 11321.225),
        ("0.1 · model aaaaaaaaaaaa", 100.0, 6315.0),
    ]);
    let record = serde_json::to_value(DeliveryRun::new(&marks, &report)).unwrap();
    assert_eq!(
        record,
        serde_json::json!({
            "run": 1, "old": "0.1", "new": "0.2",
            "gitops_commit": "3698559e2b4915ce34cbf94b904f09deb99733a3", "page": "",
            "load_average": 0.83,
            // In the order written; a stage written twice keeps its place and takes the later time.
            "stages": {"build": 41.861, "gitops": 0.375},
            "synced": 1.094, "rolled_out": 2.994, "ready": 3.099, "healthy": 3.31,
            "first_new_answer": 3.071, "last_old_answer": 3.065,
            "requests": 1127, "failed": 0, "failures": {},
            "longest_gap_ms": 40.399,
            "latency_ms": {"p50": 1.09, "p90": 2.31, "p99": 8.19, "max": 23.77},
            "interval_ms": 10.0, "duration_s": 11.322,
            "versions": serde_json::to_value(&report.versions).unwrap(),
        })
    );
    let labels: Vec<(String, f64)> = stage_markers(&marks, &report)
        .into_iter()
        .map(|m| (m.label, (m.at_s * 1e3).round() / 1e3))
        .collect();
    let expected = [
        ("commit pushed", 3.25),
        ("build done", 45.111),
        ("GitOps commit", 3.625),
        ("Synced", 4.344),
        ("first new answer", 6.321),
        ("last old answer", 6.315),
    ];
    assert_eq!(labels, expected.map(|(l, t)| (l.to_string(), t)));
    // A release that was never seen answering: no first new answer, not delivered.
    let record = DeliveryRun::new(&marks, &probe_report(&[("0.1", 0.0, 11000.0)]));
    assert_eq!(
        (record.first_new_answer, record.last_old_answer),
        (None, Some(7.75))
    );
    assert!(!record.delivered());
}

#[test]
fn python_rounding_is_to_the_nearest_decimal_of_the_exact_value() {
    // Python: round(41.8605, 3) == 41.861, round(0.1235, 3) == 0.123; (x * 1000).round() says otherwise.
    assert_eq!(
        (round3(41.8605), round3(0.1235), round3(2.0015)),
        (41.861, 0.123, 2.002)
    );
}

#[test]
fn a_marks_file_says_which_line_or_key_is_wrong() {
    let error = |text: &str| Marks::parse(text, "run-1.marks").unwrap_err().to_string();
    let unknown = error(&format!("{MARKS}colour blue\n"));
    assert!(
        unknown.starts_with(
            "cannot use run-1.marks for the delivery report: line 18: unknown key `colour`"
        ),
        "{unknown}"
    );
    let missing = error(&MARKS.replace("synced 1004.594\n", ""));
    assert!(missing.ends_with(": no `synced` line"), "{missing}");
    let empty = error(&MARKS.replace("synced 1004.594", "synced "));
    assert!(empty.ends_with("synced: \"\" is not a number"), "{empty}");
    let stage = error(&format!("{MARKS}stage push soon\n"));
    assert!(
        stage.ends_with("line 18: stage push: \"soon\" is not a number"),
        "{stage}"
    );
}

#[test]
fn medians_are_those_of_the_known_values() {
    assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(median([]), None);
}

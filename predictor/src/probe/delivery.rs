//! The delivery report (`dev/delivery-report`, `predictor delivery-report`): how long a commit took to reach
//! every client, run by run. Pure: a run's record ([`DeliveryRun`]) from what the script noted while it
//! polled ([`Marks`]) and what the probe saw ([`ProbeReport`]); the stages to mark on its timeline; the
//! report as markdown and as `summary.json` ([`DeliveryReport`]).
//!
//! Every time is in seconds after the commit was pushed (`committed`); the probe's times (ms since it
//! started) are placed on that clock by the probe's start time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{ProbeReport, Sample, StageMarker, VersionSpan};
use crate::client::Percentiles;
use crate::error::{Error, Result};

mod stages;
#[cfg(test)]
mod tests;

pub use stages::Stages;

/// What `predictor probe --json` writes: the report and every sample.
#[derive(Clone, Debug, Deserialize)]
pub struct ProbeFile {
    pub report: ProbeReport,
    pub samples: Vec<Sample>,
}

/// Which pipeline the runs measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `dev/release --promote <tag>`: a GitOps commit.
    Gitops,
    /// A code commit, released by the Git host's hook (build, image, push, GitOps commit).
    Code,
}

/// What the script noted during one run: a marks file of `key value` lines (the value is the rest of the
/// line). Times are Unix epoch seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marks {
    pub run: u32,
    /// The version that answered before, and the one delivered.
    pub old: String,
    pub new: String,
    /// The new web page's heading through the Service (code commits), else empty.
    pub page: String,
    /// The 1-minute load average at the commit.
    pub load_average: f64,
    /// The GitOps repository's commit ArgoCD synced to.
    pub gitops_commit: String,
    pub probe_started: f64,
    pub committed: f64,
    pub synced: f64,
    pub rolled: f64,
    pub ready: f64,
    pub healthy: f64,
    /// The release's stages (`stage <name> <time>` lines, as the release wrote them), in order.
    pub stages: Stages,
    /// The probe's `--json` (report and samples) and `--report` (markdown) files.
    pub probe_json: String,
    pub probe_report: String,
}

impl Marks {
    /// Reads a marks file's text; `path` names it in errors. Every key but `page` and `stage` is required.
    pub fn parse(text: &str, path: &str) -> Result<Self> {
        let bad = |reason: String| Error::DeliveryInput {
            path: path.to_string(),
            reason,
        };
        let mut values = BTreeMap::new();
        let mut marks = Marks::default();
        for (number, line) in text.lines().enumerate() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "" => {}
                "stage" => {
                    // NB: the release writes nothing more than `name time` lines; a blank one is skipped.
                    if value.trim().is_empty() {
                        continue;
                    }
                    let (name, at) = value.split_once(' ').unwrap_or((value, ""));
                    let at = number_of(at.trim())
                        .map_err(|e| bad(format!("line {}: stage {name}: {e}", number + 1)))?;
                    marks.stages.set(name, at);
                }
                _ if KEYS.contains(&key) => {
                    values.insert(key, value.to_string());
                }
                _ => {
                    return Err(bad(format!(
                        "line {}: unknown key `{key}` (known: {}, stage)",
                        number + 1,
                        KEYS.join(", ")
                    )));
                }
            }
        }
        let text = |key: &str| match values.get(key) {
            Some(value) => Ok(value.clone()),
            None if key == "page" => Ok(String::new()),
            None => Err(bad(format!("no `{key}` line"))),
        };
        let time = |key: &str| number_of(&text(key)?).map_err(|e| bad(format!("{key}: {e}")));
        marks.run = text("run")?.parse().map_err(|e| bad(format!("run: {e}")))?;
        (marks.old, marks.new, marks.page) = (text("old")?, text("new")?, text("page")?);
        marks.gitops_commit = text("gitops_commit")?;
        marks.load_average = time("load")?;
        (marks.probe_started, marks.committed) = (time("probe_started")?, time("committed")?);
        (marks.synced, marks.rolled) = (time("synced")?, time("rolled")?);
        (marks.ready, marks.healthy) = (time("ready")?, time("healthy")?);
        (marks.probe_json, marks.probe_report) = (text("probe_json")?, text("probe_report")?);
        Ok(marks)
    }

    /// Seconds after the commit, rounded to the millisecond.
    fn since_commit(&self, at: f64) -> f64 {
        round3(at - self.committed)
    }
}

/// The keys of a marks file besides `stage`.
const KEYS: [&str; 14] = [
    "run",
    "old",
    "new",
    "page",
    "load",
    "gitops_commit",
    "probe_started",
    "committed",
    "synced",
    "rolled",
    "ready",
    "healthy",
    "probe_json",
    "probe_report",
];

fn number_of(text: &str) -> Result<f64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// `x` rounded to 3 decimals as Python's `round(x, 3)` does (the nearest decimal to the exact binary
/// value, ties to even): through the correctly rounded decimal text, not `(x * 1000).round()`.
fn round3(x: f64) -> f64 {
    format!("{x:.3}").parse().unwrap_or(x)
}

/// One run's record, as `summary.json` lists it: the stages and the probe's figures. Seconds after the
/// commit; `None`: that version never answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRun {
    pub run: u32,
    pub old: String,
    pub new: String,
    pub gitops_commit: String,
    pub page: String,
    pub load_average: f64,
    pub stages: Stages,
    pub synced: f64,
    pub rolled_out: f64,
    pub ready: f64,
    pub healthy: f64,
    pub first_new_answer: Option<f64>,
    pub last_old_answer: Option<f64>,
    pub requests: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub longest_gap_ms: f64,
    pub latency_ms: Percentiles,
    pub interval_ms: f64,
    pub duration_s: f64,
    pub versions: Vec<VersionSpan>,
}

/// When `version` (a release label's first word: `0.2` of `0.2 · model 1a2b…`) first and last answered,
/// in ms since the probe started.
fn span(report: &ProbeReport, version: &str) -> Option<(f64, f64)> {
    let mine = report
        .versions
        .iter()
        .filter(|v| v.version.split(' ').next() == Some(version));
    mine.fold(None, |span, v| match span {
        None => Some((v.first_ms, v.last_ms)),
        Some((first, last)) => Some((v.first_ms.min(first), v.last_ms.max(last))),
    })
}

impl DeliveryRun {
    /// The record of a run from its marks and its probe's report.
    pub fn new(marks: &Marks, report: &ProbeReport) -> Self {
        let on_commit_clock = |ms: f64| round3(marks.probe_started + ms / 1e3 - marks.committed);
        Self {
            run: marks.run,
            old: marks.old.clone(),
            new: marks.new.clone(),
            gitops_commit: marks.gitops_commit.clone(),
            page: marks.page.clone(),
            load_average: marks.load_average,
            stages: marks.stages.map(|at| marks.since_commit(at)),
            synced: marks.since_commit(marks.synced),
            rolled_out: marks.since_commit(marks.rolled),
            ready: marks.since_commit(marks.ready),
            healthy: marks.since_commit(marks.healthy),
            first_new_answer: span(report, &marks.new).map(|(first, _)| on_commit_clock(first)),
            last_old_answer: span(report, &marks.old).map(|(_, last)| on_commit_clock(last)),
            requests: report.requests,
            failed: report.failed,
            failures: report.failures.clone(),
            longest_gap_ms: report.longest_gap_ms,
            latency_ms: report.latency_ms.clone(),
            interval_ms: report.interval_ms,
            duration_s: report.duration_ms / 1e3,
            versions: report.versions.clone(),
        }
    }

    /// Whether this run delivered: no failed request, and both the new version's first and the old one's
    /// last answer seen.
    pub fn delivered(&self) -> bool {
        self.failed == 0 && self.first_new_answer.is_some() && self.last_old_answer.is_some()
    }
}

/// The stages to mark on a run's timeline, in seconds since the probe started: the commit pushed, the
/// release's build, image push and GitOps commit (those it wrote), Synced, and the first new and last old
/// answer (when seen).
pub fn stage_markers(marks: &Marks, report: &ProbeReport) -> Vec<StageMarker> {
    let on_probe_clock = |at: f64| at - marks.probe_started;
    let mut markers = vec![StageMarker::new(
        "commit pushed",
        on_probe_clock(marks.committed),
    )];
    for (stage, label) in [
        ("build", "build done"),
        ("push", "image pushed"),
        ("gitops", "GitOps commit"),
    ] {
        if let Some(at) = marks.stages.get(stage) {
            markers.push(StageMarker::new(label, on_probe_clock(at)));
        }
    }
    markers.push(StageMarker::new("Synced", on_probe_clock(marks.synced)));
    if let Some((first, _)) = span(report, &marks.new) {
        markers.push(StageMarker::new("first new answer", first / 1e3));
    }
    if let Some((_, last)) = span(report, &marks.old) {
        markers.push(StageMarker::new("last old answer", last / 1e3));
    }
    markers
}

/// The delivery report: every run, in run order. Serialized, it is `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub mode: Mode,
    pub runs: Vec<DeliveryRun>,
}

/// A row of the stage table: its name and the run's value.
type Row = (&'static str, fn(&DeliveryRun) -> Option<f64>);

/// The rows a code commit adds before the GitOps ones.
const CODE_ROWS: [Row; 3] = [
    ("build done (cargo, profile pipeline)", |r| {
        r.stages.get("build")
    }),
    ("image built (buildah, Dockerfile runtime stage)", |r| {
        r.stages.get("image")
    }),
    ("image pushed to the registry", |r| r.stages.get("push")),
];

const ROWS: [Row; 7] = [
    ("GitOps commit pushed (kustomize edit set image)", |r| {
        r.stages.get("gitops")
    }),
    ("ArgoCD: Application Synced to it", |r| Some(r.synced)),
    ("first answer from the new version", |r| r.first_new_answer),
    (
        "operator: Deployment rolled out (2/2 updated + available)",
        |r| Some(r.rolled_out),
    ),
    ("operator: Predictor Ready at the new version", |r| {
        Some(r.ready)
    }),
    ("ArgoCD: Application Synced + Healthy", |r| Some(r.healthy)),
    (
        "last answer from the old version: every client on the new one",
        |r| r.last_old_answer,
    ),
];

/// A row of the probe's figures: its name and the run's cell.
type Figure = (&'static str, fn(&DeliveryRun) -> String);

const CODE_PIPELINE: &str = "A one-line change to the predictor (the web page's heading) is committed and pushed \
to the code repository on the Git host; its post-receive hook runs that commit's `dev/release`: static build \
(cargo profile `pipeline`, warm build cache), image (buildah, `Dockerfile.predictor`'s runtime stage) tagged \
with the short commit hash, push to the node's registry, `kustomize edit set image` in the GitOps repository, \
commit, push. The GitOps repository's hook calls argocd-server's webhook; ArgoCD syncs; the operator resolves \
the tag to a digest and rolls the 2 pods; kubelet pulls.";

const GITOPS_PIPELINE: &str = "`dev/release --promote <tag>` points the team's kustomization at the other \
image tag (0.1 <-> 0.2), commits and pushes to the Git host; its post-receive hook calls argocd-server's \
webhook; ArgoCD syncs; the operator resolves the tag to a digest and rolls the 2 pods; kubelet pulls.";

const OFFLINE: &str = "\"How long the application stays offline\": never — 0 failed requests is the bar, and \
the longest gap between two answers is in the table (the probe's own interval is the floor). Times are \
wall-clock on this 2-core machine; stages are polled every ~0.1 s. Probe times are placed on the same clock \
by the probe's start time (±0.05 s).";

const SWITCH: &str = "Clients switch with the rollout: a pod being replaced runs its preStop (`predictor \
drain`), after which it answers every kept-alive request with `Connection: close` while it still serves, so \
each client reconnects (kube-proxy sends it to a new pod) instead of staying on the old pod until it exits.";

/// The median of the known values (the mean of the middle two for an even count), as Python's
/// `statistics.median`.
fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Seconds in the stage table: two decimals, `-` when unknown.
fn seconds(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}"))
}

impl DeliveryReport {
    /// The report of `runs`, put in run order.
    pub fn new(mode: Mode, mut runs: Vec<DeliveryRun>) -> Self {
        runs.sort_by_key(|r| r.run);
        Self { mode, runs }
    }

    /// `summary.json`: the runs' records, one-space indented.
    pub fn summary_json(&self) -> Result<String> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.serialize(&mut serializer)
            .map_err(|e| Error::Data(format!("cannot write JSON: {e}")))?;
        String::from_utf8(out).map_err(|e| Error::Data(format!("cannot write JSON: {e}")))
    }

    /// The runs that failed requests or never saw the new version (or the old one) answer.
    pub fn undelivered(&self) -> Vec<u32> {
        let bad = self.runs.iter().filter(|r| !r.delivered());
        bad.map(|r| r.run).collect()
    }

    /// `report.md`: the pipeline, a table of stages per run with medians and the probe's figures, then per
    /// run its timeline (`timeline-<run>.png`) and its probe's report (`probe_markdown`, by run, as the
    /// probe wrote it). `interval` is how the probe's interval was given (`10ms`).
    pub fn to_markdown(&self, url: &str, interval: &str, probe_markdown: &[String]) -> String {
        let code = self.mode == Mode::Code;
        let (title, pipeline, start) = if code {
            ("a code commit", CODE_PIPELINE, "code commit pushed")
        } else {
            (
                "a GitOps commit",
                GITOPS_PIPELINE,
                "`dev/release --promote` started",
            )
        };
        let mut out = format!("# Delivery report: {title} to every client\n\n{pipeline}\n\n");
        let _ = write!(
            out,
            "Real node (kubelet + containerd + kube-proxy, CoreDNS, a private registry), the operator \
             installed with `kubectl apply -k` (2 pods), ArgoCD application-controller + repo-server + \
             argocd-server (the team's app made with `argocd app create ... --sync-policy auto`), `predictor \
             probe` sending a request every {interval} to {url} (the Service's DNS name) from the pod network \
             throughout. Seconds after the {start}:\n\n"
        );
        self.write_table(&mut out, code);
        if code {
            self.write_build_share(&mut out);
        }
        let _ = write!(out, "\n{OFFLINE}\n\n{SWITCH}\n\n");
        for (i, r) in self.runs.iter().enumerate() {
            let _ = write!(out, "## Run {}: {} → {}\n\n", r.run, r.old, r.new);
            if !r.page.is_empty() {
                let _ = write!(out, "The new page through the Service: `{}`\n\n", r.page);
            }
            let _ = write!(
                out,
                "![timeline of run {0}](timeline-{0}.png)\n\n{1}\n",
                r.run,
                probe_markdown.get(i).map_or("", String::as_str)
            );
        }
        out
    }

    /// The table: a row per stage (and its median), then the probe's figures per run.
    fn write_table(&self, out: &mut String, code: bool) {
        // NB: the figure rows have an empty median cell.
        let row = |name: &str, cells: Vec<String>, median: Option<String>| {
            let last = median.map_or(String::new(), |m| format!(" {m}"));
            format!("| {name} | {} |{last} |\n", cells.join(" | "))
        };
        let runs: Vec<String> = self.runs.iter().map(|r| format!("run {}", r.run)).collect();
        out.push_str(&row("stage", runs, Some("median".into())));
        out.push_str(&format!("|---|{}\n", "---:|".repeat(self.runs.len() + 1)));
        let rows = if code { &CODE_ROWS[..] } else { &[] };
        for (name, get) in rows.iter().chain(&ROWS) {
            let values: Vec<Option<f64>> = self.runs.iter().map(get).collect();
            let median = seconds(median(values.iter().flatten().copied()));
            let cells = values.into_iter().map(seconds).collect();
            out.push_str(&row(name, cells, Some(median)));
        }
        let figures: [Figure; 4] = [
            ("failed requests", |r| {
                format!("{} of {}", r.failed, r.requests)
            }),
            ("longest gap between answers (ms)", |r| {
                format!("{:.0}", r.longest_gap_ms)
            }),
            ("load average (1 min) at the commit, 2 cores", |r| {
                format!("{:.2}", r.load_average)
            }),
            ("latency p50 / p99 (ms)", |r| {
                format!("{:.1} / {:.1}", r.latency_ms.p50, r.latency_ms.p99)
            }),
        ];
        for (name, cell) in figures {
            out.push_str(&row(name, self.runs.iter().map(cell).collect(), None));
        }
    }

    /// A code commit's paragraph: the build's share of commit-to-every-client, and the medians of the
    /// steps after it.
    fn write_build_share(&self, out: &mut String) {
        let share = self.runs.iter().filter_map(|r| {
            let (build, last) = (r.stages.get("build")?, r.last_old_answer?);
            (build != 0.0 && last != 0.0).then_some(build / last)
        });
        let (low, high) = share.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
        if low > high {
            return;
        }
        let step = |from: &str, to: &str| {
            let between = self.runs.iter().filter_map(|r| {
                let end = match to {
                    "every client" => r.last_old_answer?,
                    stage => r.stages.get(stage)?,
                };
                Some(end - r.stages.get(from)?)
            });
            // NB: a stage the release did not write leaves its step unknown (Python stopped there).
            median(between).map_or("-".into(), |m| format!("{m:.2}"))
        };
        let _ = writeln!(
            out,
            "\nThe build's share of commit-to-every-client: {:.0}%–{:.0}% (the rest: image {} s, push {} s, \
             GitOps commit {} s, GitOps commit to every client {} s; medians).",
            low * 100.0,
            high * 100.0,
            step("build", "image"),
            step("image", "push"),
            step("push", "gitops"),
            step("gitops", "every client"),
        );
    }
}

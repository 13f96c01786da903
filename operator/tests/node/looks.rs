//! What a user saw of a Predictor while something happened: its status (READY, the nodes, the Ready and
//! Drift conditions) and its ArgoCD Application's, every second, each change kept.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::*;
use crate::support::argocd::ARGOCD_NS;

/// One look at the Predictor's status, as `kubectl get predictors` and its conditions show it.
#[derive(Debug, PartialEq)]
pub(crate) struct Look {
    /// Seconds after the watch began.
    pub(crate) t: f64,
    /// READY (`status.ready`) and the nodes its ready pods run on (`status.nodes`).
    pub(crate) ready: String,
    pub(crate) nodes: Option<u64>,
    /// The Ready condition: status, reason, message.
    pub(crate) condition: (String, String, String),
    /// The Drift condition (empty when there is none).
    pub(crate) drift: (String, String, String),
    /// Its ArgoCD Application's sync and health status, when it is delivered by ArgoCD.
    pub(crate) app: Option<(String, String)>,
}

impl Look {
    pub(crate) fn ready_pods(&self) -> u32 {
        self.ready
            .split_once('/')
            .and_then(|(r, _)| r.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.condition.0 == "True"
    }

    pub(crate) fn synced_and_healthy(&self) -> bool {
        self.app
            .as_ref()
            .is_some_and(|(sync, health)| sync == "Synced" && health == "Healthy")
    }
}

/// The status of the Predictor in `ns` (and, with `app`, its ArgoCD Application's) every second while
/// `busy` runs, each change kept: what a user saw.
pub(crate) fn watch_status<T: Send>(
    node: &Node,
    ns: &str,
    app: Option<&str>,
    busy: impl FnOnce() -> T + Send,
) -> (T, Vec<Look>) {
    let done = std::sync::atomic::AtomicBool::new(false);
    let t0 = Instant::now();
    thread::scope(|s| {
        let looks = s.spawn(|| {
            let mut looks: Vec<Look> = Vec::new();
            // Bounded by `busy`, which is bounded itself; 600 looks at most.
            for _ in 0..600 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let p = node.json(&["get", "predictor", NAME, "-n", ns]);
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let c = condition(&p, "Ready").cloned().unwrap_or_default();
                let d = condition(&p, "Drift").cloned().unwrap_or_default();
                let app = app.map(|app| {
                    let a = node.json(&["get", "application", app, "-n", ARGOCD_NS]);
                    (
                        text(&a["status"]["sync"]["status"]),
                        text(&a["status"]["health"]["status"]),
                    )
                });
                let look = Look {
                    t: t0.elapsed().as_secs_f64(),
                    ready: text(&p["status"]["ready"]),
                    nodes: p["status"]["nodes"].as_u64(),
                    condition: (text(&c["status"]), text(&c["reason"]), text(&c["message"])),
                    drift: (text(&d["status"]), text(&d["reason"]), text(&d["message"])),
                    app,
                };
                let changed = looks.last().is_none_or(|l| {
                    (&l.ready, l.nodes, &l.condition, &l.drift, &l.app)
                        != (
                            &look.ready,
                            look.nodes,
                            &look.condition,
                            &look.drift,
                            &look.app,
                        )
                });
                if changed {
                    looks.push(look);
                }
                thread::sleep(Duration::from_secs(1));
            }
            looks
        });
        let result = busy();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (result, looks.join().expect("the status watch"))
    })
}

pub(crate) fn print_looks(what: &str, looks: &[Look]) {
    for l in looks {
        let (status, reason, message) = &l.condition;
        let app = l.app.as_ref().map_or(String::new(), |(sync, health)| {
            format!(", app {sync} + {health}")
        });
        let drift = match &l.drift {
            (status, _, _) if status.is_empty() => String::new(),
            (status, reason, message) => format!(", Drift {status} {reason}: {message}"),
        };
        eprintln!(
            "[node test] {what} t={:5.1}s READY {:5} on {:?} nodes, Ready {status} {reason}: {message}{drift}{app}",
            l.t, l.ready, l.nodes
        );
    }
}

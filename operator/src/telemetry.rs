//! Logging set-up: `tracing` to stderr, `RUST_LOG` overrides the default filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Default filter: our own info logs, only warnings from the kube machinery. NB: none from the HDFS
/// client: its warnings quote what a NameNode or DataNode sent (`{:?}` of its errors), and the
/// operator reads hdfs:// URLs a team names; nothing a URL answers goes into the operator's log.
pub const DEFAULT_FILTER: &str = "info,kube=warn,hyper=warn,tower=warn,hdfs_native=off";

/// Installs the global subscriber (call once, from the binary).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a pod's log is read by kubectl, collectors and greps.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

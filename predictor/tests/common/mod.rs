//! Shared test helpers: paths to the shared data, the CLI, and (in `server`) the predictor server run
//! in-process. The loopback file server is `predictor::testing`'s, re-exported here.
#![allow(dead_code)]

pub mod server;

use std::path::PathBuf;
use std::process::{Command, Output};

pub use model_store::testing::FileServer;

/// `../shared/data/tweets/NAME` from the workspace root.
pub fn tweets(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/tweets")
        .join(name)
}

/// Runs the real `predictor` binary with `args`.
pub fn predictor(args: &[&str]) -> Output {
    predictor_with_env(args, &[])
}

/// Runs the real `predictor` binary with `args` and these environment variables set.
pub fn predictor_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_predictor"))
        .args(args)
        // A host outside loopback fails at once, saying so (model_store::egress).
        .env(model_store::egress::ENV, model_store::egress::LOOPBACK)
        .envs(env.iter().copied())
        .output()
        .expect("run predictor")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

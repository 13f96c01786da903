//! Where a tier finds a built helper: the directory its variable names (what `./dev/test` exports), else the
//! cache. A missing program fails the test with the command that builds it; it never skips the test.
//! Small on purpose: the light tiers (helm chart, kstatus) include this file alone, not all of `support`.

use std::path::PathBuf;

/// Where the built helpers are unless the environment says otherwise.
pub const DEFAULT_BIN_DIR: &str = "/var/cache/mlops-predictor/bin";

/// `program` in the first directory the variables `vars` name, else [`DEFAULT_BIN_DIR`]; a panic that
/// says how to build it (`build`) when it is missing.
pub fn program(program: &str, vars: &[&str], build: &str) -> PathBuf {
    let dir = vars
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_BIN_DIR.into());
    let path = dir.join(program);
    assert!(
        path.is_file(),
        "{program} not found in {} ({}): build it with `{build}` and set {} to the directory it prints",
        dir.display(),
        vars.join(", "),
        vars[0]
    );
    path
}

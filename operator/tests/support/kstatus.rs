//! kstatus' verdicts: `dev/kstatus` (the `sigs.k8s.io/cli-utils` library Flux and kpt judge objects with)
//! run over objects. Included alone by the light kstatus tier (`argocd_health.rs`), beside `program`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::program::program;

/// What kstatus says of each of `objects`: `{"status": "Current" | "InProgress" | "Failed" | …,
/// "message": …}`, in order. Panics, with what it printed, if kstatus fails or cannot judge one.
pub fn kstatus(objects: &[Value]) -> Vec<Value> {
    let kstatus = program("kstatus", &["MLOPS_KSTATUS_BIN"], "./dev/kstatus/build.sh");
    let input: String = objects.iter().map(|o| format!("{o}\n")).collect();
    let mut child = Command::new(&kstatus)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", kstatus.display()));
    // Small inputs (a few KiB): written whole before the output is read.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kstatus failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON verdict"))
        .collect();
    assert_eq!(verdicts.len(), objects.len(), "one verdict per object");
    verdicts
}

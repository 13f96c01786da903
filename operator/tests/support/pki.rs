//! The throwaway PKI of a test control plane, made by `dev/pki.sh`: the one implementation the dev
//! scripts source too.

use std::path::Path;
use std::process::Command;

use super::files::repo_root;
use super::process::run_ok;

/// Writes to `dir`: the CA (`ca.{key,crt}`), the apiserver's serving certificate
/// (`apiserver.{key,crt}`, for 127.0.0.1 and the in-cluster names), a `system:masters` client
/// certificate (`admin.{key,crt}`) and the service-account signing pair (`sa.{key,pub}`).
pub fn make_pki(dir: &Path) {
    // NB: the paths go in as positional parameters, never spliced into the script text.
    let script = r#"set -euo pipefail
P=$1
source "$2"
pki_ca mlops-test-ca
pki_sign apiserver /CN=kube-apiserver \
  'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth'
pki_sign admin /O=system:masters/CN=admin extendedKeyUsage=clientAuth
pki_sa_keys
"#;
    run_ok(
        Command::new("bash")
            .args(["-c", script, "make_pki"])
            .arg(dir)
            .arg(repo_root().join("dev/pki.sh")),
    );
}

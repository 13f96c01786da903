# shellcheck shell=bash
# The one launcher of the private registry: Debian's docker-registry (CNCF distribution 2.8), filesystem storage,
# htpasswd (bcrypt) Basic auth for one user, TLS when given a certificate. dev/node (registry_start in
# dev/node/lib.sh) and the Rust test support (operator/tests/support/registry.rs) both start theirs with it.
# Source it, or run `bash dev/registry.sh <function> <args>…`:
#   registry_serve <dir> <host:port> <user> <password> [<tls cert> <tls key>]
#     writes <dir>/htpasswd and <dir>/config.yml (0600; storage in <dir>/data, a fresh HTTP secret) and execs
#     `docker-registry serve`: the caller's process becomes the registry (log on stdout and stderr), so whoever
#     started it owns its lifetime. Served again from the same <dir>, it keeps its images.
registry_serve() {
  local dir=$1 addr=$2 user=$3 password=$4 cert=${5:-} key=${6:-} tls=''
  [[ -z $cert ]] || tls="  tls: {certificate: $cert, key: $key}"
  mkdir -p "$dir/data"
  (umask 077 && htpasswd -Bbn "$user" "$password" >"$dir/htpasswd")
  # No access log: every pull of every layer would be a line.
  (umask 077 && cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http:
  addr: $addr
  secret: $(openssl rand -hex 16)
$tls
auth:
  htpasswd: {realm: mlops, path: $dir/htpasswd}
EOF
  )
  exec docker-registry serve "$dir/config.yml"
}

# Run, not sourced: the function named.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  declare -F "${1:-}" >/dev/null || { echo "usage: bash dev/registry.sh <function> <args>…" >&2; exit 2; }
  "$@"
fi

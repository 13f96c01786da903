#!/usr/bin/env bash
# Install the node-tier packages from Debian (idempotent): containerd 1.6, runc, CNI plugins, buildah,
# docker-registry (CNCF distribution 2.8, the node's private registry) + apache2-utils (htpasswd), iptables, conntrack, plus the tools the scripts use (gcc for the pause image, openssl, curl, iproute2).
# Run as root. Does nothing but a dpkg query when everything is present.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins buildah docker-registry apache2-utils iptables conntrack gcc
      libc6-dev openssl curl iproute2 python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[node install] apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # No systemd here: package scripts must not try to start containerd as a service.
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi
for b in containerd ctr runc buildah docker-registry htpasswd iptables conntrack gcc; do
  command -v "$b" >/dev/null || { echo "[node install] $b not on PATH after install" >&2; exit 1; }
done
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
  { echo "[node install] CNI plugins missing in /usr/lib/cni" >&2; exit 1; }
echo "[node install] ok: containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), buildah $(buildah --version | awk '{print $3}')" >&2

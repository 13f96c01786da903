# shellcheck shell=bash
# The one throwaway test PKI (openssl, 1-day certificates): dev/node/up.sh and the Rust test harness
# (operator/tests) both make theirs with it.
# Source it, set P to the PKI directory, then:
#   pki_ca <common name> [<ca>]                   → $P/<ca>.{key,crt} (<ca> defaults to "ca")
#   pki_sign <name> <subject> <extensions> [<ca>] → $P/<name>.{key,crt}, signed by $P/<ca> (default "ca";
#                                                   extensions: printf %b text)
#   pki_sa_keys                                   → $P/sa.{key,pub}, the service-account signing pair
# A second CA (e.g. the aggregation layer's front-proxy CA, dev/node/up.sh) is just another <ca> name.
ossl() { openssl "$@" 2>/dev/null; }
pki_ca() {
  local ca=${2:-ca}
  ossl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$1" -keyout "$P/$ca.key" -out "$P/$ca.crt"
}
pki_sign() {
  local ca=${4:-ca}
  ossl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$P/$1.key" -out "$P/$1.csr"
  printf '%b\n' "$3" >"$P/$1.ext"
  ossl x509 -req -in "$P/$1.csr" -CA "$P/$ca.crt" -CAkey "$P/$ca.key" -CAcreateserial -days 1 \
    -extfile "$P/$1.ext" -out "$P/$1.crt"
}
pki_sa_keys() {
  ossl genrsa -out "$P/sa.key" 2048
  ossl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"
}

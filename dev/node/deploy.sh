#!/usr/bin/env bash
# On a node started by dev/node/up.sh: deploy the model store (fileserver pod with the model files baked
# into its image, Service at a fixed ClusterIP - there is no cluster DNS) and the predictor (Deployment,
# 2 replicas, MODEL_URL = http://<model-store ClusterIP>:8080/model-a.bin) with a Service, in a namespace
# that enforces Pod Security "restricted"; then POST a tweet through the predictor Service's ClusterIP
# from the host and print the JSON answer. Bounded waits; prints timings.
#
# Usage (root): dev/node/deploy.sh [namespace] [--store-only]   (default namespace: mlops-node-test)
#   --store-only: the namespace and the model store only (the node tests and the demo let the operator
#   deploy the predictor from a Predictor object); prints the model store's base URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
[[ -f $N/env ]] || die "no node: run dev/node/up.sh first"
# shellcheck source=/dev/null
source "$N/env"
B=$MLOPS_K8S_BIN
# shellcheck source=/dev/null
source <(sed 's/ /\n/g' "$N/images/models.env")
NS=${1:-mlops-node-test}
STORE_ONLY=$([[ ${2:-} == --store-only ]] && echo 1 || echo 0)
python_ip() { python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[int(sys.argv[2])])" "$@"; }
STORE_IP=$(python_ip "$SVC_CIDR" 50)
PRED_IP=$(python_ip "$SVC_CIDR" 51)

# Shared by both pods: what Pod Security "restricted" asks for.
pod_sc='securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}'
ctr_sc='securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}'

t0=$SECONDS
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: model-store, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: model-store}}
  template:
    metadata: {labels: {app: model-store}}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      $pod_sc
      containers:
      - name: fileserver
        image: $STORE_IMAGE
        imagePullPolicy: Never
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}
        $ctr_sc
---
apiVersion: v1
kind: Service
metadata: {name: model-store, namespace: $NS}
spec:
  clusterIP: $STORE_IP
  selector: {app: model-store}
  ports: [{port: 8080, targetPort: http, name: http}]
EOF
wait_for 90 "model-store available" kc -n "$NS" wait deploy/model-store --for condition=Available --timeout=1s ||
  { kc -n "$NS" get pods -o wide >&2; kc -n "$NS" describe pods -l app=model-store | tail -20 >&2; exit 1; }
log "model-store Available in $((SECONDS - t0))s"
if ((STORE_ONLY)); then echo "http://$STORE_IP:8080"; exit 0; fi

t1=$SECONDS
kc apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: predictor, namespace: $NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: predictor}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  template:
    metadata: {labels: {app: predictor}}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      $pod_sc
      containers:
      - name: predictor
        image: $PREDICTOR_IMAGE
        imagePullPolicy: Never
        args: [serve]
        env:
        - {name: MODEL_URL, value: "http://$STORE_IP:8080/$MODEL_A"}
        - {name: MODEL_SHA256, value: "$MODEL_A_SHA256"}
        - {name: PORT, value: "5008"}
        ports: [{containerPort: 5008, name: http}]
        readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1}
        livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
        resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 512Mi}}
        $ctr_sc
---
apiVersion: v1
kind: Service
metadata: {name: predictor, namespace: $NS}
spec:
  clusterIP: $PRED_IP
  selector: {app: predictor}
  ports: [{port: 80, targetPort: http, name: http}]
EOF
# shellcheck disable=SC2016  # expanded by the inner bash
wait_for 120 "predictor 2/2 available" bash -c \
  '[[ $("$0" --kubeconfig "$1" -n "$2" get deploy predictor -o jsonpath={.status.availableReplicas}) == 2 ]]' \
  "$B/kubectl" "$KUBECONFIG_ADMIN" "$NS" ||
  { kc -n "$NS" get pods -o wide >&2; kc -n "$NS" describe pods -l app=predictor | tail -30 >&2
    kc -n "$NS" logs -l app=predictor --tail 20 >&2 || true; exit 1; }
log "predictor 2/2 Available in $((SECONDS - t1))s"
kc -n "$NS" get pods -o wide >&2

# Per pod: created -> container started -> Ready, from the pod's own timestamps.
kc -n "$NS" get pods -l app=predictor -o json | python3 -c '
import json, sys
from datetime import datetime
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
for p in json.load(sys.stdin)["items"]:
    c = ts(p["metadata"]["creationTimestamp"])
    started = ts(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    ready = next(ts(x["lastTransitionTime"]) for x in p["status"]["conditions"] if x["type"] == "Ready")
    name = p["metadata"]["name"]
    print(f"[node] pod {name}: container started {(started-c).total_seconds():.0f}s, "
          f"Ready {(ready-c).total_seconds():.0f}s after creation (1 s timestamp resolution)", file=sys.stderr)'

# The answer through the Service ClusterIP (kube-proxy iptables DNAT), from the host.
wait_for 20 "predictor Service answers" curl -sf --max-time 2 "http://$PRED_IP/readyz" ||
  die "no answer from http://$PRED_IP/readyz"
log "POST http://$PRED_IP/api/american"
curl -sS --fail-with-body --max-time 5 -H 'content-type: application/json' \
  -d '{"text": "Traffic on I-95 is a nightmare this morning, go Yankees"}' "http://$PRED_IP/api/american"
echo

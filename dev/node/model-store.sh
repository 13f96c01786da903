#!/usr/bin/env bash
# On a node started by dev/node/up.sh: a namespace that enforces Pod Security "restricted", the registry's
# pull Secret ($PULL_SECRET) in it, and the model store (a fileserver pod with the model files baked into
# its image, pulled from the node's registry; Service model-store at a fixed ClusterIP, 10.97.0.11). Prints the store's
# base URL by its cluster DNS name (http://model-store.<namespace>.svc:8080). Predictors are deployed by the operator from Predictor objects (the node
# test, dev/demo, dev/delivery-report); this script writes no predictor Deployment of its own.
#
# Usage (root): dev/node/model-store.sh [namespace]   (default namespace: mlops-node-test)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
use_running_node
NS=${1:-mlops-node-test}
# Also a fixed ClusterIP, for host processes outside the cluster DNS (a developer's curl, an operator run on the host),
# from the range's static band (its first 16 addresses in a /24: the apiserver gives them only to a Service that
# asks for one, so no other Service can have taken it first; .1 is `kubernetes`, .10 CoreDNS).
STORE_IP=$(python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[11])" "$SVC_CIDR")

# What Pod Security "restricted" asks for.
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
EOF
pull_secret "$NS"
kc apply -f - >/dev/null <<EOF
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
      imagePullSecrets: [{name: $PULL_SECRET}]
      $pod_sc
      containers:
      - name: fileserver
        image: $STORE_IMAGE
        imagePullPolicy: IfNotPresent
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
echo "http://model-store.$NS.svc:8080"

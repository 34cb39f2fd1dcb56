#!/usr/bin/env bash
# The walkthrough a newcomer runs first (make demo): a standalone control plane on loopback,
# driven by the real kubectl.
set -euo pipefail
DEMO_DIR="$(mktemp -d -t vkube-demo-XXXX)"
export KUBECONFIG="$DEMO_DIR/kubeconfig"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

vkube serve --name demo --data-dir "$DEMO_DIR" >"$DEMO_DIR/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DEMO_DIR"' EXIT
for _ in $(seq 100); do [ -f "$DEMO_DIR/ready" ] && break; sleep 0.1; done
[ -f "$DEMO_DIR/ready" ] || { cat "$DEMO_DIR/serve.log"; exit 1; }
echo "control plane ready at $(cat "$DEMO_DIR/ready") (kubeconfig: $KUBECONFIG)"

step kubectl get ns
step kubectl create namespace demo-nginx
step kubectl create deployment nginx-deployment -n demo-nginx --image=nginx --replicas=2
step kubectl get deploy,rs,pods -n demo-nginx
step kubectl create configmap settings -n demo-nginx --from-literal=color=blue
step kubectl get cm settings -n demo-nginx -o yaml
step kubectl api-resources --api-group=apps
step kubectl delete namespace demo-nginx

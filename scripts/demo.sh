#!/usr/bin/env bash
# The walkthrough a newcomer runs first (`make demo`): the embedded host, a virtual cluster, a
# namespace and an nginx deployment applied with the real kubectl, and the virtual and host
# views side by side. Everything lives in a throwaway VKUBE_HOME and kubeconfig.
set -euo pipefail
DEMO="$(mktemp -d -t vkube-demo-XXXX)"
export VKUBE_HOME="$DEMO/home" KUBECONFIG="$DEMO/kubeconfig"
HOSTCFG="$VKUBE_HOME/host/kubeconfig"
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;36m$ %s\033[0m\n' "$*"; "$@"; }
cleanup() {
  vkube delete demo >/dev/null 2>&1 || true
  vkube host stop >/dev/null 2>&1 || true
  rm -rf "$DEMO"
}
trap cleanup EXIT

bold "1. Create a virtual cluster (no cluster around: the embedded host starts by itself)"
step vkube create demo
step kubectl get namespaces

bold "2. Use it like any cluster"
step kubectl create namespace demo-nginx
step kubectl create deployment nginx-deployment -n demo-nginx --image=nginx --replicas=2
step kubectl rollout status deployment/nginx-deployment -n demo-nginx --timeout=60s
step kubectl get pods -n demo-nginx -o wide
step kubectl logs -n demo-nginx deployment/nginx-deployment --tail=3

bold "3. The host's view: no namespace demo-nginx, no Deployment — only translated pods"
step kubectl --kubeconfig "$HOSTCFG" get namespaces
step kubectl --kubeconfig "$HOSTCFG" get deployments -A
step kubectl --kubeconfig "$HOSTCFG" get pods -n vkube-demo -o wide

bold "4. Manage it"
step vkube list
step vkube pause demo
step kubectl --kubeconfig "$HOSTCFG" get pods -n vkube-demo
step vkube resume demo
step kubectl rollout status deployment/nginx-deployment -n demo-nginx --timeout=60s
step vkube disconnect
bold "Connect again any time with: vkube connect demo   (or: vkube connect demo --print > demo.kubeconfig)"
step vkube delete demo

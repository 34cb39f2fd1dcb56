"""NetworkPolicies of a virtual cluster enforced on the host: the host policy's selectors,
evaluated by the host API itself (kubectl -l), select exactly the translated pods they select in
the virtual cluster, never a pod of another virtual cluster (the same selectors evaluated in its
host namespace select nothing) nor a host pod vkube did not make; ipBlocks are kept."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {role: client}}
    - namespaceSelector: {matchLabels: {team: ops}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
  egress:
  - to: [{namespaceSelector: {}}]
"""


def selector_arg(sel: dict) -> str:
    """A LabelSelector as kubectl's -l syntax, so the host API evaluates it."""
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e["operator"], e["key"], ",".join(e.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    assert parts, "an empty selector would select every pod of the host namespace"
    return ",".join(parts)


def host_selected(u: User, ns: str, sel: dict) -> set[str]:
    out = kubectl(u.home / "host" / "kubeconfig", "get", "pods", "-n", ns, "-l", selector_arg(sel),
                  "-o", "json").stdout
    return {p["metadata"]["name"] for p in json.loads(out)["items"]}


def run_pods(u: User, kubeconfig, ns: str, pods: dict[str, str]) -> None:
    kubectl(kubeconfig, "create", "namespace", ns)
    for name, labels in pods.items():
        kubectl(kubeconfig, "run", name, "-n", ns, "--image=nginx", f"--labels={labels}")


def test_host_policy_selects_exactly_the_tenants_pods(user: User, tmp_path) -> None:
    user.vkube("create", "a")
    a_kc = tmp_path / "a.kubeconfig"
    a_kc.write_text(user.kubeconfig.read_text())
    user.vkube("create", "b")
    b_kc = user.kubeconfig
    run_pods(user, a_kc, "shop", {"web1": "app=web", "web2": "app=web,tier=x", "db": "app=db",
                                  "client": "role=client"})
    kubectl(a_kc, "create", "namespace", "ops")
    kubectl(a_kc, "label", "namespace", "ops", "team=ops")
    kubectl(a_kc, "run", "opsbox", "-n", "ops", "--image=nginx")
    # a host pod nobody synced, with the labels a tenant's pod has on the host minus the owner
    kubectl(user.home / "host" / "kubeconfig", "run", "foreign", "-n", "vkube-a", "--image=nginx",
            "--labels=app=web,role=client")
    # the other tenant has the same names and labels
    run_pods(user, b_kc, "shop", {"web1": "app=web", "client": "role=client"})
    kubectl(b_kc, "create", "namespace", "ops")
    kubectl(b_kc, "label", "namespace", "ops", "team=ops")
    kubectl(b_kc, "run", "opsbox", "-n", "ops", "--image=nginx")
    kubectl(a_kc, "apply", "-f", "-", input=POLICY)

    def host_policy() -> dict:
        out = kubectl(user.home / "host" / "kubeconfig", "get", "networkpolicy",
                      "web-x-shop-x-a", "-n", "vkube-a", "-o", "json", check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    pol = eventually(host_policy, timeout=60)
    eventually(lambda: _count(user, "vkube-a", 6), timeout=90)  # every pod is on the host
    eventually(lambda: _count(user, "vkube-b", 3), timeout=90)
    selectors = [spec_sel for spec_sel in _selectors(pol["spec"])]
    for sel in selectors:  # nothing of the other tenant, whose labels are the same
        assert host_selected(user, "vkube-b", sel) == set(), sel
    spec = pol["spec"]
    assert host_selected(user, "vkube-a", spec["podSelector"]) == {"web1-x-shop-x-a", "web2-x-shop-x-a"}
    peers = spec["ingress"][0]["from"]
    assert host_selected(user, "vkube-a", peers[0]["podSelector"]) == {"client-x-shop-x-a"}
    assert host_selected(user, "vkube-a", peers[1]["podSelector"]) == {"opsbox-x-ops-x-a"}
    assert "namespaceSelector" not in peers[1]  # never a host namespace selector
    assert peers[2] == {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
    egress_all = spec["egress"][0]["to"][0]
    assert host_selected(user, "vkube-a", egress_all["podSelector"]) == {
        "web1-x-shop-x-a", "web2-x-shop-x-a", "db-x-shop-x-a", "client-x-shop-x-a",
        "opsbox-x-ops-x-a"}
    assert spec["policyTypes"] == ["Ingress", "Egress"]

    # a label change in the virtual cluster moves a pod out of the host policy's selection
    kubectl(a_kc, "label", "pod", "web2", "-n", "shop", "app=api", "--overwrite")
    eventually(lambda: _selected_is(user, spec["podSelector"], {"web1-x-shop-x-a"}), timeout=60)


def _selectors(spec: dict) -> list[dict]:
    out = [spec["podSelector"]]
    for rule in spec.get("ingress") or []:
        out += [p["podSelector"] for p in rule.get("from") or [] if "podSelector" in p]
    for rule in spec.get("egress") or []:
        out += [p["podSelector"] for p in rule.get("to") or [] if "podSelector" in p]
    return out


def _count(u: User, ns: str, n: int) -> None:
    out = kubectl(u.home / "host" / "kubeconfig", "get", "pods", "-n", ns, "-o", "name").stdout
    assert len(out.split()) == n, out


def _selected_is(u: User, sel: dict, want: set[str]) -> None:
    assert host_selected(u, "vkube-a", sel) == want

"""Issue 15, DNS and the in-cluster API, as a user meets them: ``vkube create``, kubectl applies
workloads, dnspython asks the address ``vkube describe`` reports, and the official Python
client talks to the API with what a synced pod is given (its env and its token)."""

from __future__ import annotations

import base64
import json

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import kubernetes

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

WORKLOAD = """
apiVersion: v1
kind: Namespace
metadata: {name: demo-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: demo-nginx}
spec:
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec: {containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: demo-nginx}
spec: {selector: {app: nginx}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx-headless, namespace: demo-nginx}
spec: {clusterIP: None, selector: {app: nginx}, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo-nginx}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432, name: pg}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo-nginx}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: pg, image: postgres}]}
---
apiVersion: v1
kind: Pod
metadata: {name: custom-dns, namespace: demo-nginx}
spec:
  dnsPolicy: ClusterFirst
  dnsConfig: {searches: [corp.example], options: [{name: ndots, value: "2"}, {name: edns0}]}
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: own-dns, namespace: demo-nginx}
spec:
  dnsPolicy: None
  dnsConfig: {nameservers: [192.0.2.53]}
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: node-dns, namespace: demo-nginx}
spec:
  dnsPolicy: Default
  containers: [{name: c, image: busybox}]
"""


def ask(addr: str, name: str, rtype: str = "A", tcp: bool = False) -> dns.message.Message:
    host, port = addr.rsplit(":", 1)
    q = dns.message.make_query(name, rtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, host, port=int(port), timeout=5)


def addresses(resp: dns.message.Message) -> set[str]:
    return {r.address for rrset in resp.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            for r in rrset}


def vget(u: User, *args: str) -> dict:
    return json.loads(u.kubectl("get", *args, "-o", "json").stdout)


def host_get(u: User, *args: str) -> dict:
    return json.loads(kubectl(u.home / "host" / "kubeconfig", "get", *args, "-o", "json").stdout)


def test_dns_answers_from_the_virtual_cluster(user: User) -> None:
    user.vkube("create", "net")
    described = user.describe("net")
    addr = described["dns"]
    assert addr.startswith("127.0.0.1:") and int(addr.rsplit(":", 1)[1]) > 0
    user.kubectl("apply", "-f", "-", input=WORKLOAD)

    def nginx_ip() -> str:
        ip = vget(user, "svc", "nginx", "-n", "demo-nginx")["spec"].get("clusterIP")
        assert ip
        return ip

    ip = eventually(nginx_ip, timeout=60)
    resp = eventually(lambda: _answered(addr, "nginx.demo-nginx.svc.cluster.local", {ip}), timeout=30)
    assert resp.rcode() == dns.rcode.NOERROR
    assert addresses(ask(addr, "nginx.demo-nginx.svc.cluster.local", tcp=True)) == {ip}  # TCP too

    def ready_pod_ips() -> set[str]:
        pods = vget(user, "pods", "-n", "demo-nginx", "-l", "app=nginx")["items"]
        ips = {p["status"].get("podIP") for p in pods if any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])}
        assert len(ips) == 2 and None not in ips, ips
        return ips

    pod_ips = eventually(ready_pod_ips, timeout=90)
    eventually(lambda: _answered(addr, "nginx-headless.demo-nginx.svc.cluster.local", pod_ips), timeout=30)

    def db_ip() -> str:
        pod = vget(user, "pod", "db-0", "-n", "demo-nginx")
        assert pod["status"].get("podIP")
        return pod["status"]["podIP"]

    eventually(lambda: _answered(addr, "db-0.db.demo-nginx.svc.cluster.local", {db_ip()}), timeout=90)
    assert ask(addr, "nope.demo-nginx.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(addr, "nginx.nowhere.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN

    # an answer follows a service change: a new service appears, a deleted one goes
    user.kubectl("create", "service", "clusterip", "later", "-n", "demo-nginx", "--tcp=8080:8080")
    later = eventually(lambda: vget(user, "svc", "later", "-n", "demo-nginx")["spec"]["clusterIP"] or _no(),
                       timeout=60)
    eventually(lambda: _answered(addr, "later.demo-nginx.svc.cluster.local", {later}), timeout=10)
    user.kubectl("delete", "svc", "later", "-n", "demo-nginx")
    eventually(lambda: _rcode(addr, "later.demo-nginx.svc.cluster.local", dns.rcode.NXDOMAIN), timeout=10)

    # kube-dns in kube-system fronts it; its ClusterIP resolves itself
    kube_dns = vget(user, "svc", "kube-dns", "-n", "kube-system")
    dns_ip = kube_dns["spec"]["clusterIP"]
    assert dns_ip and {p["port"] for p in kube_dns["spec"]["ports"]} == {53}
    assert addresses(ask(addr, "kube-dns.kube-system.svc.cluster.local")) == {dns_ip}
    ep = vget(user, "endpoints", "kube-dns", "-n", "kube-system")
    assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    assert {p["port"] for p in ep["subsets"][0]["ports"]} == {int(addr.rsplit(":", 1)[1])}

    # synced pods: ClusterFirst → the cluster DNS (+ the pod's own settings); None and Default kept
    hns = "vkube-net"

    def host_pod(name: str) -> dict:
        return host_get(user, "pod", f"{name}-x-demo-nginx-x-net", "-n", hns)

    web = host_get(user, "pods", "-n", hns, "-l", "vkube.io/namespace=demo-nginx")["items"]
    a_web = next(p for p in web if p["metadata"]["name"].startswith("nginx-"))
    assert a_web["spec"]["dnsPolicy"] == "None"
    assert a_web["spec"]["dnsConfig"] == {
        "nameservers": [dns_ip],
        "searches": ["demo-nginx.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": [{"name": "ndots", "value": "5"}]}
    # inside the pod (kubectl exec through the virtual cluster), resolv.conf names the cluster DNS
    resolv = user.kubectl("exec", "-n", "demo-nginx", a_web["metadata"]["annotations"]["vkube.io/object-name"],
                          "--", "cat", "/etc/resolv.conf").stdout
    assert resolv == (f"search demo-nginx.svc.cluster.local svc.cluster.local cluster.local\n"
                      f"nameserver {dns_ip}\noptions ndots:5\n")
    custom = eventually(lambda: host_pod("custom-dns"), timeout=30)["spec"]
    assert custom["dnsPolicy"] == "None"
    assert custom["dnsConfig"]["nameservers"] == [dns_ip]
    assert custom["dnsConfig"]["searches"][-1] == "corp.example"
    assert custom["dnsConfig"]["options"] == [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
    own = eventually(lambda: host_pod("own-dns"), timeout=30)["spec"]
    assert own["dnsPolicy"] == "None" and own["dnsConfig"] == {"nameservers": ["192.0.2.53"]}
    node = eventually(lambda: host_pod("node-dns"), timeout=30)["spec"]
    assert node["dnsPolicy"] == "Default" and "dnsConfig" not in node


def test_pod_reaches_its_api_with_its_env_and_token(user: User, tmp_path) -> None:
    user.vkube("create", "api")
    kube = vget(user, "svc", "kubernetes", "-n", "default")
    assert kube["spec"]["ports"][0]["port"] == 443
    api_url = user.describe("api")["apiServer"]
    api_port = int(api_url.rsplit(":", 1)[1])
    ep = vget(user, "endpoints", "kubernetes", "-n", "default")
    assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    assert ep["subsets"][0]["ports"][0]["port"] == api_port
    # the host Service fronting the control plane has the ClusterIP the tenant sees
    eventually(lambda: vget(user, "svc", "kubernetes", "-n", "default")["spec"]["clusterIP"] or _no(),
               timeout=60)
    host_svc = host_get(user, "svc", "kubernetes-x-default-x-api", "-n", "vkube-api")
    assert host_svc["spec"]["clusterIP"] == vget(user, "svc", "kubernetes")["spec"]["clusterIP"]

    user.kubectl("create", "namespace", "team")
    user.kubectl("create", "rolebinding", "reader", "-n", "team", "--clusterrole=view",
                 "--serviceaccount=team:default")
    eventually(lambda: vget(user, "sa", "default", "-n", "team"), timeout=30)
    user.kubectl("run", "op", "-n", "team", "--image=nginx", "--restart=Never")

    def synced() -> dict:
        return host_get(user, "pod", "op-x-team-x-api", "-n", "vkube-api")

    hpod = eventually(synced, timeout=60)
    env = {e["name"]: e.get("value") for e in hpod["spec"]["containers"][0].get("env") or []}
    # the embedded host routes no ClusterIPs: the env names the control plane on loopback
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == str(api_port)
    mount = next(m for m in hpod["spec"]["containers"][0]["volumeMounts"]
                 if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
    vol = next(v for v in hpod["spec"]["volumes"] if v["name"] == mount["name"])
    secret = host_get(user, "secret", vol["secret"]["secretName"], "-n", "vkube-api")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert base64.b64decode(secret["data"]["namespace"]).decode() == "team"

    # what the pod's own processes see (kubectl exec through the virtual cluster)
    eventually(lambda: user.kubectl("get", "pod", "op", "-n", "team", "-o", "jsonpath={.status.phase}")
               .stdout == "Running" or _no(), timeout=60)
    printed = user.kubectl("exec", "op", "-n", "team", "--", "env").stdout
    assert f"KUBERNETES_SERVICE_HOST={env['KUBERNETES_SERVICE_HOST']}" in printed.splitlines()
    cfg = kubernetes.client.Configuration()
    scheme = api_url.split("://", 1)[0]
    cfg.host = f"{scheme}://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}"
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    if scheme == "https":  # the pod verifies the server with the ca.crt it was given
        ca_file = tmp_path / "ca.crt"
        ca_file.write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
        cfg.ssl_ca_cert = str(ca_file)
    with kubernetes.client.ApiClient(cfg) as api:
        pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod("team")
    assert [p.metadata.name for p in pods.items] == ["op"]


def _no() -> None:
    raise AssertionError("not yet")


def _answered(addr: str, name: str, want: set[str]) -> dns.message.Message:
    resp = ask(addr, name)
    assert addresses(resp) == want, (name, resp.to_text())
    return resp


def _rcode(addr: str, name: str, rcode: int) -> None:
    assert ask(addr, name).rcode() == rcode

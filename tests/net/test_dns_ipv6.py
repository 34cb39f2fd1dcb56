"""IPv6 and dual-stack Services in a virtual cluster on the (dual-stack) embedded host: the
families the tenant asks for reach the host, the host's addresses come back, and the cluster
DNS answers AAAA (and A) for them — asked with dnspython at the address `vkube describe`
reports, and from a pod with `kubectl exec … nslookup`. A family the host cannot give is
refused, naming the field."""

from __future__ import annotations

import ipaddress
import json

import dns.rcode
import dns.rdatatype
import dns.reversename

from tests.cli.conftest import User, eventually, user  # noqa: F401  (the fixture)
from tests.conftest import kubectl
from tests.net.test_dns_incluster import addresses, ask

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: default}
spec:
  ipFamilyPolicy: RequireDualStack
  selector: {app: dual}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: six, namespace: default}
spec:
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  selector: {app: six}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""


def test_aaaa_for_ipv6_and_dual_stack_services(user: User) -> None:
    user.vkube("create", "six")
    user.kubectl("apply", "-f", "-", input=SERVICES)

    def allocated() -> tuple[list[str], list[str]]:
        dual = json.loads(user.kubectl("get", "svc", "dual", "-o", "json").stdout)["spec"]
        six = json.loads(user.kubectl("get", "svc", "six", "-o", "json").stdout)["spec"]
        assert len(dual.get("clusterIPs") or []) == 2, dual
        assert six.get("clusterIP"), six
        return dual["clusterIPs"], six["clusterIPs"]
    dual_ips, six_ips = eventually(allocated, timeout=60, delay=0.5)
    v4, v6 = dual_ips
    assert ipaddress.ip_address(v4).version == 4 and ipaddress.ip_address(v6).version == 6
    assert len(six_ips) == 1 and ipaddress.ip_address(six_ips[0]).version == 6
    host = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "svc", "-n", "vkube-six",
                              "dual-x-default-x-six", "-o", "json").stdout)["spec"]
    assert host["clusterIPs"] == dual_ips and host["ipFamilyPolicy"] == "RequireDualStack"
    assert json.loads(user.kubectl("get", "svc", "six", "-o", "json").stdout)["spec"][
        "ipFamilies"] == ["IPv6"]

    addr = user.describe("six")["dns"]
    assert addresses(ask(addr, "dual.default.svc.cluster.local", "AAAA")) == {v6}
    assert addresses(ask(addr, "dual.default.svc.cluster.local", "A")) == {v4}
    assert addresses(ask(addr, "six.default.svc.cluster.local", "AAAA")) == set(six_ips)
    assert addresses(ask(addr, "six.default.svc.cluster.local", "AAAA", tcp=True)) == set(six_ips)
    nodata = ask(addr, "six.default.svc.cluster.local", "A")  # the name exists: NODATA
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    ptr = ask(addr, dns.reversename.from_address(six_ips[0]).to_text(), "PTR")
    assert any(rr.rdtype == dns.rdatatype.PTR for rr in ptr.answer), ptr

    user.kubectl("wait", "pod/client", "--for=condition=Ready", "--timeout=120s", timeout=150)
    r = user.kubectl("exec", "client", "--", "nslookup", "dual", check=False, timeout=90)
    assert r.returncode == 0 and f"Address: {v4}" in r.stdout and f"Address: {v6}" in r.stdout, r

    # a family the cluster has no range for is refused by the host, naming the field
    bad = kubectl(user.home / "host" / "kubeconfig", "create", "-f", "-", check=False, input=(
        "{apiVersion: v1, kind: Service, metadata: {name: bad, namespace: default}, spec: {"
        "ipFamilyPolicy: SingleStack, ipFamilies: [IPv7], ports: [{port: 80}]}}"))
    assert bad.returncode != 0 and "spec.ipFamilies[0]" in bad.stderr, bad

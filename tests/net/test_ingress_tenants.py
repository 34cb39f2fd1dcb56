"""Two tenants' Ingresses on one embedded host, through ``vkube create`` and kubectl: the first
tenant's host names and catch-all stay its own — a second tenant's spelling variants are
refused by the API server as kube-apiserver refuses them (422), and its wildcard, host-less
rule and ``server-alias`` are refused by the syncer (HostRefused) — and ingress-nginx
annotations reach the host only when safe: a URL is refused (SyncRejected naming it), the
tenant's own Secret and Service are translated to their host copies."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

NGINX = "nginx.ingress.kubernetes.io/"


def ingress(name: str, *hosts: str | None, default_backend: bool = False,
            **annotations: str) -> dict:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    spec: dict = {"rules": [{**({"host": h} if h else {}), "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend}]}} for h in hosts]}
    if default_backend:
        spec = {"defaultBackend": backend}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
            "spec": spec}


def docs(*objs: dict) -> str:
    return "\n---\n".join(json.dumps(o) for o in objs)


BASE = docs(
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "basic", "namespace": "shop"},
     "stringData": {"auth": "user:$apr1$x$y"}})


def test_second_tenant_cannot_take_the_first_ones_hosts(user: User, tmp_path) -> None:
    kcs = {}
    for name in ("alpha", "beta"):
        user.vkube("create", name)
        kcs[name] = tmp_path / f"{name}.kubeconfig"
        kcs[name].write_text(user.kubeconfig.read_text())
    host_kc = user.home / "host" / "kubeconfig"

    def k(tenant: str, *args: str, **kw):  # noqa: ANN202
        return kubectl(kcs[tenant], *args, **kw)

    def host_ingresses(tenant: str) -> dict[str, dict]:
        out = kubectl(host_kc, "get", "ingress", "-n", f"vkube-{tenant}", "-o", "json")
        return {i["metadata"]["annotations"]["vkube.io/object-name"]: i
                for i in json.loads(out.stdout)["items"]}

    k("alpha", "apply", "-f", "-", input=BASE)
    k("alpha", "apply", "-f", "-", input=docs(
        ingress("shop", "shop.example.com"), ingress("catch", default_backend=True),
        ingress("auth", "auth.example.com", **{
            NGINX + "auth-type": "basic", NGINX + "auth-secret": "basic",
            NGINX + "default-backend": "web", NGINX + "proxy-body-size": "8m"})))

    def alpha_synced() -> dict[str, dict]:
        got = host_ingresses("alpha")
        assert set(got) == {"shop", "catch", "auth"}, set(got)
        return got
    auth = eventually(alpha_synced, timeout=90, delay=0.5)["auth"]["metadata"]["annotations"]
    assert auth[NGINX + "auth-secret"] == "vkube-alpha/basic-x-shop-x-alpha"
    assert auth[NGINX + "default-backend"] == "web-x-shop-x-alpha"
    assert auth[NGINX + "proxy-body-size"] == "8m"
    # the Secret the annotation names is copied down with the Ingress
    eventually(lambda: kubectl(host_kc, "get", "secret", "basic-x-shop-x-alpha", "-n",
                               "vkube-alpha"), timeout=60, delay=0.5)

    # spelling variants of a host never reach the store: kube-apiserver's 422
    k("beta", "apply", "-f", "-", input=BASE)
    for bad in ("SHOP.example.com", "shop.example.com."):
        r = k("beta", "apply", "-f", "-", input=docs(ingress("variant", bad)), check=False)
        assert r.returncode != 0, r
        assert (f'The Ingress "variant" is invalid: spec.rules[0].host: Invalid value: "{bad}": '
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters") in r.stderr, r.stderr

    k("beta", "apply", "-f", "-", input=docs(
        ingress("wild", "*.example.com"), ingress("nohost", None),
        ingress("alias", "beta.example.org", **{NGINX + "server-alias": "shop.example.com"}),
        ingress("url", "url.example.org", **{NGINX + "auth-url": "http://169.254.169.254/"}),
        ingress("mine", "mine.example.org")))

    def said(name: str) -> tuple[str, str]:
        out = k("beta", "get", "events", "-n", "shop", "--field-selector",
                f"involvedObject.name={name}", "-o", "json").stdout
        warn = [e for e in json.loads(out)["items"] if e["type"] == "Warning"]
        assert warn, f"no warning for {name} yet"
        return warn[-1]["reason"], warn[-1]["message"]

    reason, msg = eventually(lambda: said("wild"), timeout=90, delay=0.5)
    refused = "the host refused the Ingress: "
    assert reason == "HostRefused" and msg.startswith(refused +
        'spec.rules[0].host: host "*.example.com" is already claimed by another Ingress on the '
        'host (it overlaps host "'), msg  # alpha's auth. or shop.example.com
    reason, msg = eventually(lambda: said("nohost"), timeout=60, delay=0.5)
    assert reason == "HostRefused" and msg.startswith(refused +
        "spec.rules[0]: every host no other Ingress names (a rule without host, or "
        "spec.defaultBackend) is already claimed by another Ingress on the host"), msg
    reason, msg = eventually(lambda: said("alias"), timeout=60, delay=0.5)
    assert reason == "HostRefused" and msg.startswith(refused +
        f'metadata.annotations[{NGINX}server-alias]: host "shop.example.com" is already claimed'), msg
    reason, msg = eventually(lambda: said("url"), timeout=60, delay=0.5)
    assert reason == "SyncRejected" and msg.startswith(
        f"metadata.annotations[{NGINX}auth-url]: the shared controller would fetch this URL "
        "from inside the host network"), msg
    eventually(lambda: "mine" in host_ingresses("beta") or _no(), timeout=60, delay=0.5)
    assert set(host_ingresses("beta")) == {"mine"}
    assert set(host_ingresses("alpha")) == {"shop", "catch", "auth"}

    # a pod of alpha reaches alpha's control plane at the loopback port its own Endpoints
    # publish, never beta's (another namespace's published ports are another tenant's)
    k("alpha", "run", "probe", "-n", "shop", "--image=busybox", "--", "sleep", "3600")
    k("alpha", "wait", "-n", "shop", "--for=condition=Ready", "pod/probe", "--timeout=120s")
    beta_port = yaml_server_port(kcs["beta"])
    alpha_port = yaml_server_port(kcs["alpha"])

    def nc(port: int):  # noqa: ANN202
        return k("alpha", "exec", "-n", "shop", "probe", "--", "nc", "-z", "-w", "2",
                 "127.0.0.1", str(port), check=False, timeout=90)
    r = nc(beta_port)
    assert r.returncode == 1 and "Connection refused" in r.stderr, r
    assert nc(alpha_port).returncode == 0


def yaml_server_port(kubeconfig) -> int:  # noqa: ANN001
    import yaml
    from urllib.parse import urlsplit

    doc = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    server = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])["cluster"]["server"]
    return int(urlsplit(server).port or 443)


def _no() -> None:
    raise AssertionError("not yet")

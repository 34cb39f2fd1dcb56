"""The Ingress host-claim matcher and the annotation policy, as pure functions: which names an
Ingress claims on a shared ingress controller, which claims collide, and which annotations
reach the host (and translated how)."""

from __future__ import annotations

import pytest

from vkube.api import ingressannotations as ia
from vkube.api import ingresshosts as ih

BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


def ing(*hosts: str | None, default: bool = False, **ann: str) -> dict:
    spec: dict = {"rules": [({"host": h} if h else {}) | {"http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": BACKEND}]}} for h in hosts]}
    if default:
        spec["defaultBackend"] = BACKEND
    return {"metadata": {"name": "x", "namespace": "shop", "annotations": ann}, "spec": spec}


@pytest.mark.parametrize("a,b", [
    ("shop.example.com", "shop.example.com"),
    ("shop.example.com", "SHOP.Example.COM"),          # DNS names ignore case
    ("shop.example.com", "shop.example.com."),         # and the root's trailing dot
    ("*.example.com", "shop.example.com"),             # a wildcard covers exact names…
    ("shop.example.com", "*.example.com"),             # …both ways
    ("*.example.com", "a.b.example.com"),              # at any depth, as nginx matches
    ("*.example.com", "*.shop.example.com"),           # nested wildcards
    ("*.Example.com.", "*.example.com"),
    (ih.CATCH_ALL, ih.CATCH_ALL),                      # one catch-all per controller
])
def test_overlapping_claims(a: str, b: str) -> None:
    assert ih.overlaps(a, b) and ih.overlaps(b, a)


@pytest.mark.parametrize("a,b", [
    ("shop.example.com", "shop.example.org"),
    ("*.example.com", "example.com"),                  # the wildcard's own domain is not under it
    ("*.example.com", "badexample.com"),
    ("*.example.com", "*.example.org"),
    (ih.CATCH_ALL, "shop.example.com"),                # named hosts win over the catch-all
    (ih.CATCH_ALL, "*.example.com"),
])
def test_disjoint_claims(a: str, b: str) -> None:
    assert not ih.overlaps(a, b) and not ih.overlaps(b, a)


def test_claims_name_the_field_and_the_catch_all() -> None:
    assert ih.claims(ing("Shop.Example.com.")) == {"shop.example.com": "spec.rules[0].host"}
    assert ih.claims(ing("a.example.com", None)) == {
        "a.example.com": "spec.rules[0].host", ih.CATCH_ALL: "spec.rules[1]"}
    only_default = {"metadata": {"name": "x"}, "spec": {"defaultBackend": BACKEND}}
    assert ih.claims(only_default) == {ih.CATCH_ALL: "spec.defaultBackend"}
    alias = ing("a.example.com", **{ih.NGINX + "server-alias": "b.example.com, *.c.example.com"})
    assert set(ih.claims(alias)) == {"a.example.com", "b.example.com", "*.c.example.com"}
    assert ih.claims(alias)["b.example.com"] == f"metadata.annotations[{ih.NGINX}server-alias]"
    www = ing("example.com", "www.shop.example.com", **{ih.NGINX + "from-to-www-redirect": "true"})
    assert set(ih.claims(www)) == {"example.com", "www.example.com", "www.shop.example.com",
                                   "shop.example.com"}


def test_collision_reports_mine_and_theirs() -> None:
    theirs = ih.claims(ing("shop.example.com"))
    assert ih.collision(ih.claims(ing("*.example.com")), theirs) == (
        "*.example.com", "spec.rules[0].host", "shop.example.com")
    assert ih.collision(ih.claims(ing("other.example.org")), theirs) is None
    assert ih.collision(ih.claims(ing(None)), ih.claims(ing(None, "z.example"))) == (
        ih.CATCH_ALL, "spec.rules[0]", ih.CATCH_ALL)


def judge(**ann: str) -> ia.Judgement:
    return ia.judge(ann, "shop", host_namespace="vkube-t",
                    secret_name=lambda n: f"{n}-x-shop-x-t", service_name=lambda n: f"{n}-x-shop-x-t")


def test_safe_nginx_annotations_pass_as_written() -> None:
    ann = {ia.NGINX + "rewrite-target": "/$2", ia.NGINX + "ssl-redirect": "false",
           ia.NGINX + "proxy-body-size": "8m", ia.NGINX + "proxy-read-timeout": "120",
           ia.NGINX + "enable-cors": "true", ia.NGINX + "cors-allow-origin": "https://a.example",
           ia.NGINX + "whitelist-source-range": "10.0.0.0/8, 192.168.0.0/16",
           "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
           "cert-manager.io/cluster-issuer": "letsencrypt", "example.com/team": "a",
           ia.CLASS: "nginx"}
    out = judge(**ann)
    assert out.refused == [] and out.annotations == ann


@pytest.mark.parametrize("key,value,why", [
    ("auth-url", "http://169.254.169.254/", "fetch this URL from inside the host network"),
    ("auth-signin", "https://evil.example/", "a URL"),
    ("mirror-target", "http://10.0.0.1/", "copies of requests"),
    ("permanent-redirect", "https://evil.example", "a URL"),
    ("custom-headers", "kube-system/cm", "names a ConfigMap"),
    ("global-rate-limit", "10", "not on vkube's allow-list of ingress-nginx annotations"),
    ("enable-global-auth", "false", "global authentication"),
    ("auth-tls-secret", "kube-system/ca", "in another namespace"),
    ("proxy-ssl-secret", "other/cert", "in another namespace"),
    ("default-backend", "other/web", "in another namespace"),
    ("proxy-body-size", "8m; location / {}", "invalid value"),   # config injection
    ("rewrite-target", "/\"\n}", "invalid value"),
    ("server-alias", "*", "invalid value"),
    ("server-alias", "Evil.Example", "invalid value"),
    # a pattern must match the whole value: Python's `$` also matches before a final newline
    ("proxy-ssl-name", "foo.com\n", "invalid value"),
    ("auth-realm", "x\n", "invalid value"),
])
def test_dangerous_nginx_annotations_are_refused_by_name(key: str, value: str, why: str) -> None:
    out = judge(**{ia.NGINX + key: value})
    assert [k for k, _ in out.refused] == [ia.NGINX + key]
    assert why in out.refused[0][1], out.refused
    assert out.message().startswith(f"metadata.annotations[{ia.NGINX}{key}]: ")


@pytest.mark.parametrize("key", [
    "traefik.ingress.kubernetes.io/router.middlewares",
    "traefik.ingress.kubernetes.io/router.tls.certresolver",
    "alb.ingress.kubernetes.io/group.name",
    "ingress.kubernetes.io/whatever",
    "kubernetes.io/ingress.global-static-ip-name",
    "ingress.gcp.kubernetes.io/pre-shared-cert",
    "nginx.org/server-snippets",
    "haproxy.org/backend-config-snippet",
    "haproxy.org/auth-secret",
    "nginx.org/rewrites",
    "konghq.com/plugins",
    "projectcontour.io/upstream-protocol.tls",
    ia.NGINX + "configuration-snippet",
])
def test_unknown_controller_keys_and_snippets_are_refused(key: str) -> None:
    out = judge(**{key: "x"})
    assert [k for k, _ in out.refused] == [key]


def test_own_secrets_and_services_are_translated_to_their_host_copies() -> None:
    out = judge(**{ia.NGINX + "auth-secret": "basic", ia.NGINX + "auth-type": "basic",
                   ia.NGINX + "auth-tls-secret": "shop/ca", ia.NGINX + "default-backend": "web"})
    assert out.refused == []
    assert out.annotations[ia.NGINX + "auth-secret"] == "vkube-t/basic-x-shop-x-t"
    assert out.annotations[ia.NGINX + "auth-tls-secret"] == "vkube-t/ca-x-shop-x-t"
    assert out.annotations[ia.NGINX + "default-backend"] == "web-x-shop-x-t"
    assert out.annotations[ia.NGINX + "auth-type"] == "basic"
    assert ia.secret_refs({ia.NGINX + "auth-secret": "basic", ia.NGINX + "auth-tls-secret": "shop/ca",
                           ia.NGINX + "proxy-ssl-secret": "other/x"}, "shop") == ["basic", "ca"]


def test_every_refused_key_is_named_once() -> None:
    out = judge(**{ia.NGINX + "auth-url": "http://x/", ia.NGINX + "server-snippet": "x",
                   ia.NGINX + "ssl-redirect": "true"})
    assert sorted(k for k, _ in out.refused) == [ia.NGINX + "auth-url", ia.NGINX + "server-snippet"]
    assert "(also refused: " in out.message() and out.message().endswith("; not synced to the host")


def test_keys_are_judged_whatever_their_case() -> None:
    """The API accepts an annotation prefix in any case (upstream lowercases before checking)."""
    out = judge(**{"NGINX.Ingress.Kubernetes.IO/Auth-URL": "http://x/",
                   "Traefik.Ingress.Kubernetes.io/router.middlewares": "kube-system-x@kubernetescrd",
                   "nginx.ingress.kubernetes.io/SSL-Redirect": "true"})
    assert sorted(k for k, _ in out.refused) == ["NGINX.Ingress.Kubernetes.IO/Auth-URL",
                                                 "Traefik.Ingress.Kubernetes.io/router.middlewares"]
    assert out.annotations == {"nginx.ingress.kubernetes.io/SSL-Redirect": "true"}


@pytest.mark.parametrize("name,broad", [
    ("*.org", True), ("*.IO.", True), ("*.example.com", False), ("shop.example.com", False),
    ("*.a.b", False), (ih.CATCH_ALL, False),
])
def test_a_wildcard_over_a_top_level_domain_is_too_broad(name: str, broad: bool) -> None:
    assert bool(ih.too_broad(name)) is broad
    if broad:
        assert "whole top-level domain" in ih.too_broad(name)

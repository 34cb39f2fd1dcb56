"""Ingress specs are validated as kube-apiserver's ``ValidateIngressSpec`` does, with its
messages byte for byte (the syncer's host claims rely on hosts being lowercase DNS names)."""

from __future__ import annotations

import pytest

from vkube.api.kinds_other import IngressStrategy

SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
             "'-' or '.', and must start and end with an alphanumeric character (e.g. "
             "'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
WILDCARD = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
            "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and "
            "end with an alphanumeric character (e.g. '*.example.com', regex used for validation "
            "is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


def ingress(host: str | None = None, **spec: object) -> dict:
    rule: dict = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": BACKEND}]}}
    if host is not None:
        rule["host"] = host
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"rules": [rule], **spec}}


def messages(obj: dict) -> list[str]:
    return [f"{c['field']}: {c['message']}" for c in IngressStrategy().validate(obj)]


@pytest.mark.parametrize("host,expected", [
    ("FOO.example.com", [f'Invalid value: "FOO.example.com": {SUBDOMAIN}']),
    ("shop.example.com.", [f'Invalid value: "shop.example.com.": {SUBDOMAIN}']),
    ("*", [f'Invalid value: "*": {WILDCARD}']),
    ("*.*.example.com", [f'Invalid value: "*.*.example.com": {WILDCARD}']),
    ("f*.example.com", [f'Invalid value: "f*.example.com": {WILDCARD}']),
    ("*.Example.com", [f'Invalid value: "*.Example.com": {WILDCARD}']),
    ("10.0.0.1", ['Invalid value: "10.0.0.1": must be a DNS name, not an IP address']),
    ("::1", ['Invalid value: "::1": must be a DNS name, not an IP address',
             f'Invalid value: "::1": {SUBDOMAIN}']),
    ("a" * 254, ["Invalid value: \"" + "a" * 254 + "\": must be no more than 253 characters"]),
])
def test_bad_hosts_get_upstreams_messages(host: str, expected: list[str]) -> None:
    assert messages(ingress(host)) == [f"spec.rules[0].host: {m}" for m in expected]


@pytest.mark.parametrize("host", ["shop.example.com", "*.example.com", "a-1.b", None])
def test_good_hosts_and_no_host_pass(host: str | None) -> None:
    assert messages(ingress(host)) == []


def test_other_spec_fields_as_upstream() -> None:
    assert messages({"metadata": {"name": "w", "namespace": "d"}, "spec": {}}) == [
        "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` "
        "must be specified"]
    bad = ingress("a.example", tls=[{"hosts": ["A.example"], "secretName": "Bad_Name"}],
                  defaultBackend={"service": {"name": "Web", "port": {"number": 0}}},
                  ingressClassName="Nginx")
    bad["spec"]["rules"][0]["http"]["paths"][0].update(path="/a/../b", backend={})
    assert messages(bad) == [
        'spec.defaultBackend.service.name: Invalid value: "Web": a DNS-1035 label must consist '
        "of lower case alphanumeric characters or '-', start with an alphabetic character, and "
        "end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        "spec.defaultBackend: Required value: port name or number is required",
        "spec.rules[0].http.paths[0].path: Invalid value: \"/a/../b\": must not contain '/../'",
        'spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend '
        "is required",
        f'spec.tls[0].hosts[0]: Invalid value: "A.example": {SUBDOMAIN}',
        f'spec.tls[0].secretName: Invalid value: "Bad_Name": {SUBDOMAIN}',
        f'spec.ingressClassName: Invalid value: "Nginx": {SUBDOMAIN}',
    ]
    both = ingress("a.example", ingressClassName="nginx")
    both["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    assert messages(both) == ['annotations.kubernetes.io/ingress.class: Invalid value: "nginx": '
                              "can not be set when the class field is also set"]


def test_an_unchanged_stored_spec_is_not_judged_again() -> None:
    """/status and metadata updates of an Ingress stored before hosts were validated work."""
    strategy = IngressStrategy()
    old = ingress("Legacy.Example")
    new = {**old, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}
    assert strategy.validate_with_old(new, old) == []
    changed = ingress("Legacy.Example", ingressClassName="nginx")
    assert [c["field"] for c in strategy.validate_with_old(changed, old)] == ["spec.rules[0].host"]
    # as upstream: names already stored invalid stay accepted when the spec changes
    old_tls = ingress("a.example", tls=[{"secretName": "Old_Name"}])
    new_tls = ingress("b.example", tls=[{"secretName": "Old_Name"}])
    assert strategy.validate_with_old(new_tls, old_tls) == []
    assert [c["field"] for c in strategy.validate_with_old(new_tls, ingress("a.example"))] == [
        "spec.tls[0].secretName"]

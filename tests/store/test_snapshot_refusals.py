"""``vkube snapshot restore`` never trusts a file: crafted files (an attacker's, a damaged
disk's) are refused through the CLI with one line naming the first bad entry, and the target
store is left exactly as it was — ``kubectl get`` still works and shows the old objects. A
database failing in the middle of the restore's writes leaves it as it was too (one
transaction), on SQLite (a cluster's own store) and on PostgreSQL (``--store``)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, make_user

from .conftest import fresh_postgres_database

Line = dict  # one key line of a snapshot file: {"k", "v" (base64), "c", "m"}


def _line(key: str, value: bytes, rev: int = 5) -> Line:
    return {"k": key, "v": base64.b64encode(value).decode(), "c": rev, "m": rev}


def _meta(name: str, namespace: str | None) -> dict[str, str]:
    """An object's metadata as a saved one holds it (a uid and a creationTimestamp)."""
    return {"name": name, **({"namespace": namespace} if namespace else {}),
            "uid": str(uuid.uuid4()), "creationTimestamp": "2026-01-01T00:00:00Z"}


def _obj(kind: str, name: str, namespace: str | None = "default", **extra: object) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": kind, "metadata": _meta(name, namespace),
                       **extra}).encode()


def _craft(good: Path, out: Path, edit: Callable[[list[Line]], None]) -> Path:
    """``good`` with its key lines edited and a correct trailer (so that only the content
    checks can find what is wrong)."""
    lines = good.read_bytes().splitlines(keepends=True)
    entries = [json.loads(line) for line in lines[1:-1]]
    edit(entries)
    body = [json.dumps(e).encode() + b"\n" for e in entries]
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    out.write_bytes(lines[0] + b"".join(body) + json.dumps(end).encode() + b"\n")
    return out


_RBAC = "rbac.authorization.k8s.io"
_ALL = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}


def _doc(api_version: str, kind: str, name: str, namespace: str | None = None,
         **body: object) -> bytes:
    return json.dumps({"apiVersion": api_version, "kind": kind, "metadata": _meta(name, namespace),
                       **body}).encode()


def _widget(name: str, **spec: object) -> Line:
    return _line(f"/stable.example.com/widgets/app/{name}",
                 _doc("stable.example.com/v1", "Widget", name, "app", spec=spec))


def _binding(kind: str, name: str, role: str, subject: tuple[str, str],
             namespace: str | None = None) -> Line:
    plural = kind.lower() + "s"
    key = f"/{_RBAC}/{plural}/{namespace + '/' if namespace else ''}{name}"
    return _line(key, _doc(f"{_RBAC}/v1", kind, name, namespace,
                           roleRef={"apiGroup": _RBAC, "kind": "ClusterRole", "name": role},
                           subjects=[{"kind": subject[0], "apiGroup": _RBAC, "name": subject[1]}]))


def _replace(entries: list[Line], line: Line) -> None:
    """``line`` instead of the entry with its key (the file keeps its order)."""
    at = next(i for i, e in enumerate(entries) if e["k"] == line["k"])
    entries[at] = line


#: what a file may grant beyond a new cluster's defaults: (grant's flag, key lines, what the
#: refusal says); each is restored once its flag is passed
GRANTS: list[tuple[str, list[Line], str]] = [
    ("--allow-anonymous-access",
     [_binding("ClusterRoleBinding", "open", "cluster-admin", ("Group", "system:unauthenticated"))],
     "ClusterRoleBinding 'open' grants ClusterRole 'cluster-admin' to Group "
     "'system:unauthenticated' (anyone who reaches the API, without credentials)"),
    ("--allow-anonymous-access",
     [_binding("RoleBinding", "anon", "view", ("User", "system:anonymous"), "app")],
     "RoleBinding 'app/anon' grants ClusterRole 'view' to User 'system:anonymous' (anyone "
     "who reaches the API, without credentials)"),
    ("--allow-authenticated-access",
     [_binding("RoleBinding", "everyone", "edit", ("Group", "system:authenticated"), "app")],
     "RoleBinding 'app/everyone' grants ClusterRole 'edit' to Group 'system:authenticated' "
     "(every user and every pod's service account)"),
    ("--allow-service-account-access",
     [_binding("ClusterRoleBinding", "all-sa", "cluster-admin", ("Group", "system:serviceaccounts"))],
     "ClusterRoleBinding 'all-sa' grants ClusterRole 'cluster-admin' to Group "
     "'system:serviceaccounts' (every pod's service account token, in every namespace)"),
    ("--allow-service-account-access",
     [_binding("RoleBinding", "app-sa", "edit", ("Group", "system:serviceaccounts:app"), "app")],
     "RoleBinding 'app/app-sa' grants ClusterRole 'edit' to Group 'system:serviceaccounts:app' "
     "(every service account token of that namespace)"),
    ("--allow-bootstrapper-access",
     [_binding("ClusterRoleBinding", "bs-admin", "cluster-admin", ("Group", "system:bootstrappers"))],
     "ClusterRoleBinding 'bs-admin' grants ClusterRole 'cluster-admin' to Group "
     "'system:bootstrappers' (whoever holds a bootstrap token)"),
    ("--allow-bootstrapper-access",
     [_binding("ClusterRoleBinding", "bs-extra", "view", ("Group", "system:bootstrappers:extra"))],
     "ClusterRoleBinding 'bs-extra' grants ClusterRole 'view' to Group "
     "'system:bootstrappers:extra' (whoever holds a bootstrap token with that extra group)"),
    ("--allow-node-access",
     [_binding("ClusterRoleBinding", "node-admin", "cluster-admin", ("User", "system:node:n1"))],
     "ClusterRoleBinding 'node-admin' grants ClusterRole 'cluster-admin' to User "
     "'system:node:n1' (that node's kubelet)"),
    ("--allow-node-access",
     [_binding("RoleBinding", "nodes", "edit", ("Group", "system:nodes"), "app")],
     "RoleBinding 'app/nodes' grants ClusterRole 'edit' to Group 'system:nodes' (every "
     "node's kubelet)"),
    ("--allow-component-access",
     [_binding("ClusterRoleBinding", "proxy-admin", "cluster-admin", ("User", "system:kube-proxy"))],
     "ClusterRoleBinding 'proxy-admin' grants ClusterRole 'cluster-admin' to User "
     "'system:kube-proxy' (a control-plane component's name: whoever is issued a credential "
     "with it)"),
    ("--allow-component-access",
     [_binding("ClusterRoleBinding", "cm-admin", "cluster-admin",
               ("User", "system:kube-controller-manager"))],
     "ClusterRoleBinding 'cm-admin' grants ClusterRole 'cluster-admin' to User "
     "'system:kube-controller-manager' (a control-plane component's name: whoever is issued "
     "a credential with it)"),
    ("--allow-component-access",
     [_binding("RoleBinding", "dns", "edit", ("User", "system:vkube-dns"), "app")],
     "RoleBinding 'app/dns' grants ClusterRole 'edit' to User 'system:vkube-dns' (a "
     "control-plane component's name: whoever is issued a credential with it)"),
    ("--allow-admission-policies",
     [_line("/admissionregistration.k8s.io/validatingadmissionpolicies/lock", _doc(
         "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "lock", spec={
             "failurePolicy": "Fail", "matchConstraints": {"resourceRules": [{
                 "apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"],
                 "resources": ["*"]}]},
             "validations": [{"expression": "false", "message": "locked"}]}))],
     "ValidatingAdmissionPolicy 'lock' has the API server evaluate its CEL validations on "
     "every write it matches and refuse what they reject"),
    ("--allow-admission-policies",
     [_line("/admissionregistration.k8s.io/validatingadmissionpolicybindings/lock", _doc(
         "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "lock",
         spec={"policyName": "lock", "validationActions": ["Deny"]}))],
     "ValidatingAdmissionPolicyBinding 'lock' puts ValidatingAdmissionPolicy 'lock' in force"),
    # adds system:anonymous to every RoleBinding and ClusterRoleBinding written later
    ("--allow-admission-policies",
     [_line("/admissionregistration.k8s.io/mutatingadmissionpolicies/anon", _doc(
         "admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy", "anon", spec={
             "failurePolicy": "Ignore", "reinvocationPolicy": "Never",
             "matchConstraints": {"resourceRules": [{
                 "apiGroups": [_RBAC], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["rolebindings", "clusterrolebindings"]}]},
             "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
                 "[JSONPatch{op: 'add', path: '/subjects/-', value: {'kind': 'User', "
                 "'apiGroup': 'rbac.authorization.k8s.io', 'name': 'system:anonymous'}}]"}}]}))],
     "MutatingAdmissionPolicy 'anon' has the API server apply its CEL mutations to every "
     "write it matches"),
    ("--allow-admission-policies",
     [_line("/admissionregistration.k8s.io/mutatingadmissionpolicybindings/anon", _doc(
         "admissionregistration.k8s.io/v1", "MutatingAdmissionPolicyBinding", "anon",
         spec={"policyName": "anon"}))],
     "MutatingAdmissionPolicyBinding 'anon' puts MutatingAdmissionPolicy 'anon' in force"),
    ("--allow-webhooks",
     [_line("/admissionregistration.k8s.io/validatingwebhookconfigurations/spy", _doc(
         "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "spy", webhooks=[{
             "name": "spy.example.com", "sideEffects": "None",
             "admissionReviewVersions": ["v1"], "failurePolicy": "Ignore",
             "clientConfig": {"url": "https://spy.example.com/review"},
             "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
                        "resources": ["secrets"]}]}]))],
     "ValidatingWebhookConfiguration 'spy' has the API server send objects to webhook "
     "'https://spy.example.com/review' and obey its answers"),
    ("--allow-apiservices",
     [_line("/apiregistration.k8s.io/apiservices/v1.evil.example.com", _doc(
         "apiregistration.k8s.io/v1", "APIService", "v1.evil.example.com", spec={
             "group": "evil.example.com", "version": "v1", "groupPriorityMinimum": 1000,
             "versionPriority": 15, "insecureSkipTLSVerify": True,
             "service": {"namespace": "app", "name": "web", "port": 443}}))],
     "APIService 'v1.evil.example.com' hands API group 'evil.example.com' version 'v1' to "
     "Service app/web: its answers are served as this cluster's API"),
    ("--allow-bootstrap-tokens",
     [_line("/core/secrets/kube-system/bootstrap-token-abcdef", _doc(
         "v1", "Secret", "bootstrap-token-abcdef", "kube-system",
         type="bootstrap.kubernetes.io/token", data={
             k: base64.b64encode(v.encode()).decode() for k, v in (
                 ("token-id", "abcdef"), ("token-secret", "0123456789abcdef"),
                 ("usage-bootstrap-authentication", "true"))}))],
     "Secret kube-system/bootstrap-token-abcdef is a bootstrap token: whoever holds the file "
     "can authenticate as system:bootstrap:abcdef (group system:bootstrappers)"),
]


def _grant_cases(tmp: Path, good: Path) -> list[tuple[Path, str]]:
    """One crafted file per grant, and a default role the file widens (a new cluster binds
    system:public-info-viewer to anonymous users: its rules must stay the default's)."""
    out = []
    for i, (flag, lines, message) in enumerate(GRANTS):
        path = _craft(good, tmp / f"grant-{i}.jsonl", lambda e, ls=lines: e.extend(ls))
        out.append((path, f"{message} — beyond what a new cluster grants; pass {flag} to "
                          "restore it"))
    widened = _line(f"/{_RBAC}/clusterroles/system:public-info-viewer", _doc(
        f"{_RBAC}/v1", "ClusterRole", "system:public-info-viewer", rules=[_ALL]))
    out.append((_craft(good, tmp / "widened.jsonl", lambda e: _replace(e, widened)),
                 "ClusterRole 'system:public-info-viewer' has rules beyond its default, and "
                 "every cluster binds it to Group 'system:unauthenticated' (anyone who reaches "
                 "the API, without credentials) — beyond what a new cluster grants; pass "
                 "--allow-anonymous-access"))
    discovery = _line(f"/{_RBAC}/clusterroles/system:service-account-issuer-discovery", _doc(
        f"{_RBAC}/v1", "ClusterRole", "system:service-account-issuer-discovery", rules=[_ALL]))
    out.append((_craft(good, tmp / "widened-sa.jsonl", lambda e: _replace(e, discovery)),
                "ClusterRole 'system:service-account-issuer-discovery' has rules beyond its "
                "default, and every cluster binds it to Group 'system:serviceaccounts' (every "
                "pod's service account token, in every namespace) — beyond what a new cluster "
                "grants; pass --allow-service-account-access"))
    return out


def _cases(tmp: Path, good: Path) -> list[tuple[Path, str]]:
    """(crafted file, what the refusal must say) for each kind of fault."""
    cm = "/core/configmaps/default/evil"
    cases: list[tuple[str, Callable[[list[Line]], None], str]] = [
        ("undecodable", lambda e: e.append(_line(cm, b"{not json")),
         f"'{cm}' (line {{n}}): the value is not JSON"),
        ("array", lambda e: e.append(_line(cm, b"[1, 2]")), "the value is JSON list, not an object"),
        ("name", lambda e: e.append(_line(cm, _obj("ConfigMap", "other"))),
         "metadata.name 'other' is not the key's name 'evil'"),
        ("namespace", lambda e: e.append(_line(cm, _obj("ConfigMap", "evil", "kube-system"))),
         "metadata.namespace 'kube-system' is not the key's namespace 'default'"),
        ("kind", lambda e: e.append(_line("/core/secrets/default/evil", _obj("ConfigMap", "evil"))),
         "kind 'ConfigMap' does not belong under this key ('Secret')"),
        ("scope", lambda e: e.append(_line("/core/namespaces/default/evil", _obj("Namespace", "evil"))),
         "namespaces are cluster-scoped"),
        ("surrogate", lambda e: e.insert(0, _line("/core/configmaps/default/\ud800", b"{}")),
         "'/core/configmaps/default/\\ud800' (line 2): the key holds the character U+D800"),
        ("unknown", lambda e: e.append(_line("/evil.example.com/things/default/x", b"{}")),
         "no resource 'things' in group 'evil.example.com'"),
        ("no-crd", lambda e: e.append(_line("/stable.example.com/gadgets/default/w", json.dumps(
            {"apiVersion": "stable.example.com/v1", "kind": "Gadget",
             "metadata": {"name": "w", "namespace": "default"}}).encode())),
         "neither built in nor defined by a CustomResourceDefinition in this file"),
        ("typed", lambda e: e.append(_line(cm, _obj("ConfigMap", "evil", data="not a map"))),
         "the object does not decode as a ConfigMap: data:"),
        ("big", lambda e: e.append(_line(cm, _obj("ConfigMap", "evil", data={"x": "y" * (3 << 20)}))),
         "over the API's limit of 3145728"),
        ("twice", lambda e: e.append(dict(e[-1])), "the key appears twice"),
        ("foreign-key", lambda e: e.append(_line("/core/secrets/default/evil",
                                                 b"k8s:enc:aesgcm:v1:key1:" + os.urandom(64))),
         "encrypted with a key the target cluster does not have"),
        # valid as the API validates a create (built-in strategies, a CRD's schema and rules)
        ("bad-name", lambda e: e.append(_line("/core/configmaps/default/Evil_Name",
                                              _obj("ConfigMap", "Evil_Name"))),
         'ConfigMap "Evil_Name" is invalid: metadata.name: Invalid value: "Evil_Name": a '
         "lowercase RFC 1123 subdomain must consist of"),
        ("no-namespace", lambda e: e.append(_line("/core/configmaps/ghost/evil",
                                                  _obj("ConfigMap", "evil", "ghost"))),
         "namespace 'ghost' is not in this file: a namespaced object is restored with its "
         "Namespace (/core/namespaces/ghost)"),
        ("no-containers", lambda e: e.append(_line("/core/pods/default/evil", _obj(
            "Pod", "evil", spec={"restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}))),
         'Pod "evil" is invalid: spec.containers: Required value'),
        ("bad-service", lambda e: e.append(_line("/core/services/default/evil", _obj(
            "Service", "evil", spec={"type": "ClusterIP", "ports": [{"port": 0}]}))),
         'Service "evil" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 '
         "and 65535, inclusive"),
        ("bad-rbac", lambda e: e.append(_line(f"/{_RBAC}/rolebindings/app/evil", _doc(
            f"{_RBAC}/v1", "RoleBinding", "evil", "app",
            roleRef={"apiGroup": _RBAC, "kind": "Pod", "name": "x"}, subjects=[]))),
         'RoleBinding.rbac.authorization.k8s.io "evil" is invalid: roleRef.kind: Unsupported '
         'value: "Pod": supported values: "ClusterRole", "Role"'),
        ("cr-schema", lambda e: e.append(_widget("evil", size=2, color="green")),
         'Widget.stable.example.com "evil" is invalid: spec.color: Unsupported value: "green"'),
        ("cr-rule", lambda e: e.append(_widget("evil", size=20)),
         'Widget.stable.example.com "evil" is invalid: spec: Invalid value: "object": size '
         "must be at most 10"),
        ("cr-unknown", lambda e: e.append(_widget("evil", size=2, hidden="x")),
         "spec.hidden: field not declared in schema"),
        ("string-data", lambda e: e.append(_line("/core/secrets/default/evil", _obj(
            "Secret", "evil", type="Opaque", stringData={"token": "x"}))),
         "stringData: write-only field (the API server folds it into the object on write; a "
         "stored Secret never holds it)"),
    ]
    out = []
    for name, edit, message in cases:
        path = _craft(good, tmp / f"{name}.jsonl", edit)
        n = len(path.read_bytes().splitlines()) - 1  # appended entries: the last key line
        out.append((path, message.replace("{n}", str(n))))
    raw = good.read_bytes()
    header = json.loads(raw.splitlines()[0])
    (tmp / "truncated.jsonl").write_bytes(raw[: len(raw) // 2])
    (tmp / "foreign.jsonl").write_text("apiVersion: v1\nkind: Config\n")
    (tmp / "newer.jsonl").write_bytes(json.dumps({**header, "version": 3}).encode() + b"\n"
                                      + b"\n".join(raw.splitlines()[1:]) + b"\n")
    out += [(tmp / "truncated.jsonl", "is truncated"),
            (tmp / "foreign.jsonl", "is not a vkube snapshot"),
            (tmp / "newer.jsonl", "is snapshot format 3, written by a newer vkube")]
    uid = json.loads(base64.b64decode(json.loads(good.read_bytes().splitlines()[1])["v"]))[
        "metadata"]["uid"]  # the first object's
    bare = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evil",
                                                                  "namespace": "default"}}
    server_set = [
        ("no-uid", lambda e: e.append(_line(cm, json.dumps({**bare, "metadata": {
            **bare["metadata"], "creationTimestamp": "2026-01-01T00:00:00Z"}}).encode())),
         "metadata.uid is missing: the API server gives every object one on create"),
        ("no-created", lambda e: e.append(_line(cm, json.dumps({**bare, "metadata": {
            **bare["metadata"], "uid": str(uuid.uuid4())}}).encode())),
         "metadata.creationTimestamp None is not an RFC 3339 time"),
        ("bad-created", lambda e: e.append(_line(cm, json.dumps({**bare, "metadata": {
            **bare["metadata"], "uid": str(uuid.uuid4()), "creationTimestamp": "yesterday"}
        }).encode())), 'the object does not decode as a ConfigMap: parsing time "yesterday"'),
        ("same-uid", lambda e: e.append(_line(cm, json.dumps({**bare, "metadata": {
            **bare["metadata"], "uid": uid, "creationTimestamp": "2026-01-01T00:00:00Z"}
        }).encode())), f"metadata.uid {uid!r} is also the uid of "),
    ]
    out += [(_craft(good, tmp / f"{name}.jsonl", edit), message)
            for name, edit, message in server_set]
    return out + _grant_cases(tmp, good)


#: a small real cluster's objects: a CRD with a schema and a rule, a Deployment, a Service,
#: a ServiceAccount with a Role and RoleBinding (the custom resource is created once the CRD
#: is established)
REALISTIC = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations: [{rule: "self.size <= 10", message: size must be at most 10}]
            properties:
              size: {type: integer, minimum: 1, default: 1}
              color: {type: string, enum: [red, blue]}
---
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 80}]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: app}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: app}
rules: [{apiGroups: [""], resources: [pods, services], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: reader, namespace: app}]
"""
WIDGET = """
apiVersion: stable.example.com/v1
kind: Widget
metadata: {name: w1, namespace: app}
spec: {size: 3, color: red}
"""


def _realistic(user: User, tmp: Path) -> None:
    """REALISTIC and WIDGET applied, the Deployment's pods scheduled and running."""
    (tmp / "realistic.yaml").write_text(REALISTIC)
    (tmp / "widget.yaml").write_text(WIDGET)
    user.kubectl("apply", "-f", str(tmp / "realistic.yaml"))
    user.kubectl("wait", "--for=condition=established", "--timeout=120s",
                 "crd/widgets.stable.example.com")
    user.kubectl("apply", "-f", str(tmp / "widget.yaml"))
    user.kubectl("rollout", "status", "-n", "app", "deployment/web", "--timeout=300s")


def _refused(proc: object, message: str, name: str) -> None:
    rc, err = proc.returncode, proc.stderr  # type: ignore[attr-defined]
    assert rc == 1, (rc, err)
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and message in err, err
    assert f"nothing was restored into {name}" in err, err


def _in_process(user: User, capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    """``vkube ARGV`` run by the CLI's own parser and command function in this process
    (VKUBE_HOME and KUBECONFIG are the user's): its exit code and what it printed."""
    import types

    from vkube.cli.main import build_parser

    capsys.readouterr()
    args = build_parser().parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)


def _rows(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT max(revision), count(*) FROM kv").fetchone()
    finally:
        conn.close()


@pytest.fixture
def user(tmp_path: Path) -> User:
    u = make_user(tmp_path / "user")
    yield u  # type: ignore[misc]
    cleanup(u)


@pytest.mark.timeout(900)
def test_crafted_files_are_refused_and_the_cluster_is_unchanged(
        user: User, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKUBE_HOME", str(user.home))
    monkeypatch.setenv("KUBECONFIG", str(user.kubeconfig))
    user.vkube("create", "vc")
    user.kubectl("create", "configmap", "keep", "--from-literal=a=b")
    user.kubectl("create", "secret", "generic", "s", "--from-literal=p=q")
    _realistic(user, tmp_path)
    good = tmp_path / "good.jsonl"
    user.vkube("snapshot", "save", "vc", str(good))
    user.kubectl("create", "configmap", "after", "--from-literal=c=d")  # a restore would drop it
    user.vkube("pause", "vc")
    db = user.home / "clusters" / "vc" / "data" / "state.db"
    before = _rows(db)
    cases = _cases(tmp_path, good)
    # the first through a process of its own, as a user runs it; the others through the same
    # parser and command in this process (a second each of imports saved, same code path)
    path, message = cases[0]
    _refused(user.vkube("snapshot", "restore", "vc", str(path), check=False), message, "vc")
    for path, message in cases[1:]:
        _refused(_in_process(user, capsys, "snapshot", "restore", "vc", str(path)), message, "vc")
        assert _rows(db) == before, path

    # the store failing in the middle of the writes: one transaction, nothing written
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER boom BEFORE INSERT ON kv WHEN NEW.key = "
                 "'/core/secrets/default/s' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    conn.commit()
    conn.close()
    out = user.vkube("snapshot", "restore", "vc", str(good), check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "disk on fire" in out.stderr and "the restore wrote nothing" in out.stderr
    assert "`vkube snapshot restore vc " in out.stderr and "Traceback" not in out.stderr
    assert _rows(db) == before
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER boom")
    conn.commit()
    conn.close()

    user.vkube("resume", "vc")
    names = set(user.kubectl("get", "configmaps", "-o", "name").stdout.split())
    assert {"configmap/keep", "configmap/after"} <= names and "configmap/evil" not in names
    secret = json.loads(user.kubectl("get", "secret", "s", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["p"]) == b"q"
    assert user.kubectl("get", "secrets", "-A").returncode == 0

    # a grant named by its flag restores (here into a store of its own, `--store`): the
    # realistic file with every grant, then the same with one flag missing
    grants = _craft(good, tmp_path / "grants.jsonl",
                    lambda e: e.extend(line for _, lines, _ in GRANTS for line in lines))
    flags = sorted({flag for flag, _, _ in GRANTS})
    for missing in flags:
        out = _in_process(user, capsys, "snapshot", "restore", "vc", str(grants), "--store",
                          f"sqlite:///{tmp_path}/missing.db", *(f for f in flags if f != missing))
        _refused(out, f"pass {missing} to restore it", "vc")
    out = _in_process(user, capsys, "snapshot", "restore", "vc", str(grants), "--store",
                      f"sqlite:///{tmp_path}/granted.db", *flags)
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    keys = len(grants.read_bytes().splitlines()) - 2
    assert f"restored {keys} keys" in out.stdout, out.stdout  # type: ignore[attr-defined]
    assert not (tmp_path / "missing.db").exists() or _rows(tmp_path / "missing.db")[1] == 0

    # a file this installation wrote restores what it grants without flags: its trailer's
    # HMAC, keyed with VKUBE_HOME/snapshot.key, checks. Edited (checksum recomputed, HMAC
    # kept), or under another installation, it is checked like any file
    user.kubectl("create", "clusterrolebinding", "everyone", "--clusterrole=view",
                 "--group=system:authenticated")
    own = tmp_path / "own.jsonl"
    user.vkube("snapshot", "save", "vc", str(own))
    assert (user.home / "snapshot.key").stat().st_mode & 0o777 == 0o600
    out = _in_process(user, capsys, "snapshot", "restore", "vc", str(own), "--store",
                      f"sqlite:///{tmp_path}/own.db")
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    assert "written by this vkube installation from vc (its HMAC checks)" in out.stdout  # type: ignore[attr-defined]
    everyone = ("ClusterRoleBinding 'everyone' grants ClusterRole 'view' to Group "
                "'system:authenticated' (every user and every pod's service account) — beyond "
                "what a new cluster grants; pass --allow-authenticated-access to restore it (the "
                "file was not written by this vkube installation from vc)")
    lines = own.read_bytes().splitlines(keepends=True)
    keep = next(i for i, line in enumerate(lines) if b'"/core/configmaps/default/keep"' in line)
    entry = json.loads(lines[keep])
    entry["v"] = base64.b64encode(_obj("ConfigMap", "keep", data={"a": "changed"})).decode()
    lines[keep] = json.dumps(entry).encode() + b"\n"
    end = json.loads(lines[-1])
    end["sha256"] = hashlib.sha256(b"".join(lines[1:-1])).hexdigest()
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines[:-1]) + json.dumps(end).encode() + b"\n")
    _refused(_in_process(user, capsys, "snapshot", "restore", "vc", str(edited), "--store",
                         f"sqlite:///{tmp_path}/edited.db"), everyone, "vc")

    # the HMAC proves origin, not that the file is safe elsewhere: it is bound to the cluster
    # it was saved from (name and CA). Another cluster of this installation checks the file's
    # grants; restored there with the flag and saved again, the file is that cluster's own —
    # trusted there, and still checked everywhere else
    user.vkube("create", "vc2", "--connect=false")
    user.vkube("pause", "vc2")
    from_vc = everyone.replace("(the file was not written by this vkube installation from vc)",
                               "(the file was saved from another cluster ('vc', CA sha256:")
    _refused(_in_process(user, capsys, "snapshot", "restore", "vc2", str(own)),
             from_vc, "vc2")
    out = _in_process(user, capsys, "snapshot", "restore", "vc2", str(own),
                      "--allow-authenticated-access")
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    assert "saved from another cluster ('vc'" in out.stdout, out.stdout  # type: ignore[attr-defined]
    again = tmp_path / "vc2.jsonl"
    user.vkube("snapshot", "save", "vc2", str(again))
    _refused(_in_process(user, capsys, "snapshot", "restore", "vc", str(again), "--store",
                         f"sqlite:///{tmp_path}/back.db"),
             from_vc.replace("('vc', CA", "('vc2', CA"), "vc")
    out = _in_process(user, capsys, "snapshot", "restore", "vc2", str(again))
    assert out.returncode == 0, out.stderr  # type: ignore[attr-defined]
    assert "written by this vkube installation from vc2 (its HMAC checks)" in out.stdout, \
        out.stdout  # type: ignore[attr-defined]
    # a file saved from a store named by --store is no cluster's own: trusted nowhere
    loose = tmp_path / "loose.jsonl"
    user.vkube("snapshot", "save", "vc", str(loose), "--store", f"sqlite:///{tmp_path}/own.db")
    _refused(_in_process(user, capsys, "snapshot", "restore", "vc", str(loose), "--store",
                         f"sqlite:///{tmp_path}/loose.db"), everyone, "vc")
    monkeypatch.setenv("VKUBE_HOME", str(tmp_path / "another-installation"))
    _refused(_in_process(user, capsys, "snapshot", "restore", "vc", str(own), "--store",
                         f"sqlite:///{tmp_path}/elsewhere.db"), from_vc, "vc")
    out = _in_process(user, capsys, "snapshot", "restore", "vc", str(own), "--store",
                      f"sqlite:///{tmp_path}/elsewhere.db", "--allow-authenticated-access")
    assert out.returncode == 0 and "beyond a new cluster was checked" in out.stdout, \
        out.stderr  # type: ignore[attr-defined]


@pytest.fixture
async def postgres_db(postgres_server: str) -> AsyncIterator[str]:
    async for url in fresh_postgres_database(postgres_server):
        yield url


async def _pg(url: str, *statements: str) -> object:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        result = None
        for statement in statements:
            result = await conn.fetch(statement)
        return [tuple(r) for r in result or []]
    finally:
        await conn.close()


@pytest.mark.timeout(600)
async def test_postgres_store_refuses_crafted_files_and_survives_a_failing_restore(
        tmp_path: Path, postgres_db: str) -> None:
    """``--store postgres://…``: a file restores; a crafted one is refused with the store
    untouched; a restore the database fails midway leaves the store as it was."""
    import asyncio
    import subprocess
    import sys

    u = make_user(tmp_path / "user")

    def vkube(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vkube", *args], env=u.env,
                              capture_output=True, text=True, timeout=120)

    good = _craft_fresh(tmp_path / "good.jsonl", [
        _line("/core/configmaps/default/one", _obj("ConfigMap", "one", data={"a": "b"}), 2),
        _line("/core/namespaces/default", _doc("v1", "Namespace", "default"), 1)])
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(good), "--store",
                                  postgres_db)
    assert out.returncode == 0 and "restored 2 keys" in out.stdout, out.stderr
    count = "SELECT count(*), max(revision) FROM kv"
    before = await _pg(postgres_db, count)
    bad = _craft(good, tmp_path / "bad.jsonl", lambda e: e.append(
        _line("/core/configmaps/default/two", _obj("ConfigMap", "three"))))
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(bad), "--store",
                                  postgres_db)
    _refused(out, "metadata.name 'three' is not the key's name 'two'", "pgvc")
    assert await _pg(postgres_db, count) == before

    grown = _craft(good, tmp_path / "grown.jsonl", lambda e: e.extend(
        _line(f"/core/configmaps/default/n{i}", _obj("ConfigMap", f"n{i}")) for i in range(50)))
    await _pg(postgres_db, "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.key = "
              "'/core/configmaps/default/n7' THEN RAISE EXCEPTION 'disk on fire'; END IF; "
              "RETURN NEW; END $$ LANGUAGE plpgsql",
              "CREATE TRIGGER boom BEFORE INSERT ON kv FOR EACH ROW EXECUTE FUNCTION boom()")
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(grown), "--store",
                                  postgres_db)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "disk on fire" in out.stderr and "the restore wrote nothing" in out.stderr
    assert await _pg(postgres_db, count) == before
    await _pg(postgres_db, "DROP TRIGGER boom ON kv")
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(grown), "--store",
                                  postgres_db)
    assert out.returncode == 0 and "50 created" in out.stdout, out.stderr


def _craft_fresh(path: Path, entries: list[Line]) -> Path:
    header = {"format": "vkube-store-snapshot", "version": 2, "revision": 10,
              "source": "test", "values": "transformed"}
    body = [json.dumps(e).encode() + b"\n" for e in sorted(entries, key=lambda e: e["k"])]
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(body)
                     + json.dumps(end).encode() + b"\n")
    return path


@pytest.mark.timeout(600)
async def test_etcd_restore_failing_midway_says_what_it_left(tmp_path: Path,
                                                             etcd_server: str) -> None:
    """etcd takes at most 128 operations per transaction, so a bigger restore is several: one
    failing after others (here a value over etcd's default 1.5 MiB request limit, refused by
    etcd itself) is reported with how many changes were made and how to finish, in one
    line; the store holds exactly those; a restore run again makes it hold the file."""
    import asyncio
    import subprocess
    import sys
    import uuid

    from vkube.store import open_store

    u = make_user(tmp_path / "user")
    url = f"{etcd_server}/refusals-{uuid.uuid4().hex[:8]}"

    def vkube(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vkube", *args], env=u.env,
                              capture_output=True, text=True, timeout=120)

    ns = _line("/core/namespaces/default", _doc("v1", "Namespace", "default"))
    small = [_line(f"/core/configmaps/default/c{i:03d}", _obj("ConfigMap", f"c{i:03d}"))
             for i in range(200)]
    # valid (a ConfigMap's data is at most 1 MiB; a role's resourceNames have no bound) and
    # under the API's 3 MiB, but over etcd's request limit; it sorts last
    big = _line(f"/{_RBAC}/clusterroles/big", _doc(f"{_RBAC}/v1", "ClusterRole", "big", rules=[{
        "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
        "resourceNames": ["y" * (2 << 20)]}]))
    path = _craft_fresh(tmp_path / "big.jsonl", small + [ns, big])
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "etcdvc", str(path), "--store", url)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "stopped midway" in out.stderr and "holds 201 of the 202 changes" in out.stderr
    assert "`vkube snapshot restore etcdvc " in out.stderr and "again to finish" in out.stderr
    store = open_store(url)
    await store.start()
    try:
        assert (await store.range("/core/configmaps/")).count == 200
    finally:
        await store.close()
    fine = _craft_fresh(tmp_path / "fine.jsonl", small[:150] + [ns])
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "etcdvc", str(fine), "--store", url)
    assert out.returncode == 0 and "50 deleted" in out.stdout, out.stderr

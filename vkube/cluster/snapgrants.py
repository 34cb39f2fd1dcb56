"""What a snapshot file grants beyond what every cluster grants, refused unless the restore
names it (``vkube snapshot restore --allow-…``).

A restore writes straight into the store: no client's RBAC was asked whether it may create
what the file holds. Most of a file is the cluster's business (its workloads, its own
service accounts' roles). Some objects reach past it, to people and machines that hold no
credential of the cluster, and a file from elsewhere must not bring them silently:

- RBAC for subjects that stand for many holders or for credentials the cluster hands out
  itself, beyond upstream's bootstrap policy (whose bindings, and the roles they bind, the file
  may hold as they are, not widened): ``system:anonymous`` / ``system:unauthenticated``
  (anyone who reaches the API), ``system:authenticated`` (every user and every pod's service
  account), ``system:serviceaccounts[:NAMESPACE]`` (every pod's token), ``system:bootstrappers``
  and ``system:bootstrappers:…`` groups and ``system:bootstrap:…`` users (whoever holds a
  bootstrap token — a binding makes every later token that powerful), ``system:nodes`` and
  ``system:node:NAME`` (kubelets), and the control-plane components' users
  ``system:kube-proxy``, ``system:kube-scheduler``, ``system:kube-controller-manager`` (and
  vkube's ``system:vkube-dns``, ``system:vkube-network``, ``system:vkube-leader-election``);
- admission webhooks and CRD conversion webhooks (the API server sends objects to an endpoint
  and obeys its answers);
- ValidatingAdmissionPolicies, MutatingAdmissionPolicies and their bindings: no endpoint, but
  in-cluster CEL that may refuse every write (lock the cluster) or rewrite every object (add a
  subject to each RoleBinding written later) — a trust of its own, so a flag of its own: a user
  who allows a file's webhook endpoint has not read its CEL;
- APIServices backed by a Service (an API group answered by whoever runs that Service);
- bootstrap tokens usable for authentication (a password for ``system:bootstrappers`` in the
  file).

Each is named with its key and the flag that allows it; the first in file order is refused.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from vkube.api.rbac import bootstrap_policy
from vkube.pki.cluster import DNS, LEADER_ELECTION, NETWORK
from vkube.store.snapshot import Entry, SnapshotError, entry_error

__all__ = ["FLAGS", "Grants", "SnapshotGrant"]

#: a grant's name -> the flag of ``vkube snapshot restore`` that allows it
FLAGS = {"anonymous": "--allow-anonymous-access",
         "authenticated": "--allow-authenticated-access",
         "service-accounts": "--allow-service-account-access",
         "bootstrappers": "--allow-bootstrapper-access",
         "nodes": "--allow-node-access",
         "components": "--allow-component-access",
         "webhooks": "--allow-webhooks",
         "admission-policies": "--allow-admission-policies",
         "apiservices": "--allow-apiservices",
         "bootstrap-tokens": "--allow-bootstrap-tokens"}

_RBAC = "rbac.authorization.k8s.io"
_ANYONE = "anyone who reaches the API, without credentials"
_COMPONENT = "a control-plane component's name: whoever is issued a credential with it"
_WHO = {("User", "system:anonymous"): ("anonymous", _ANYONE),
        ("Group", "system:unauthenticated"): ("anonymous", _ANYONE),
        ("Group", "system:authenticated"): ("authenticated", "every user and every pod's "
                                                             "service account"),
        ("Group", "system:serviceaccounts"): ("service-accounts", "every pod's service account "
                                                                  "token, in every namespace"),
        ("Group", "system:bootstrappers"): ("bootstrappers", "whoever holds a bootstrap token"),
        ("Group", "system:nodes"): ("nodes", "every node's kubelet"),
        ("User", "system:kube-proxy"): ("components", _COMPONENT),
        ("User", "system:kube-scheduler"): ("components", _COMPONENT),
        ("User", "system:kube-controller-manager"): ("components", _COMPONENT),
        # vkube's own components' users (the cluster issues their credentials; those in
        # system:masters — the API server's loopback, the syncer — are allowed all already)
        **{("User", user): ("components", _COMPONENT) for user, _ in (DNS, NETWORK,
                                                                       LEADER_ELECTION)}}
#: (subject kind, name prefix) -> grant, who holds it
_WHO_PREFIX = {("Group", "system:serviceaccounts:"): ("service-accounts", "every service "
                                                      "account token of that namespace"),
               ("Group", "system:bootstrappers:"): ("bootstrappers", "whoever holds a bootstrap "
                                                    "token with that extra group"),
               ("User", "system:bootstrap:"): ("bootstrappers", "whoever holds that bootstrap "
                                                                "token"),
               ("User", "system:node:"): ("nodes", "that node's kubelet")}
_WEBHOOKS = ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")
_POLICIES = {"validatingadmissionpolicies": "evaluate its CEL validations on every write it "
                                            "matches and refuse what they reject",
             "mutatingadmissionpolicies": "apply its CEL mutations to every write it matches"}
_POLICY_BINDINGS = ("validatingadmissionpolicybindings", "mutatingadmissionpolicybindings")
_BOOTSTRAP_TYPE = "bootstrap.kubernetes.io/token"


class SnapshotGrant(SnapshotError):
    """A file refused for what it grants (allowed by naming the flag)."""


@dataclass(frozen=True)
class _Found:
    entry: Entry
    what: str
    grant: str  # a FLAGS key


def _rule_key(rule: Any) -> str:
    return json.dumps(rule, sort_keys=True)


class Grants:
    """Collects the file's objects that may grant (``see``, in file order, each already valid)
    and refuses the first grant not allowed (``check``)."""

    def __init__(self, path: str, allow: frozenset[str]) -> None:
        self.path = path
        self.allow = allow
        self.roles: dict[tuple[str, str, str], tuple[Entry, dict[str, Any]]] = {}
        self.bindings: list[tuple[Entry, dict[str, Any]]] = []
        self.found: list[_Found] = []

    def see(self, entry: Entry, group: str, plural: str, obj: dict[str, Any]) -> None:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        name = str(meta.get("name"))
        if group == _RBAC:
            if plural in ("roles", "clusterroles"):
                self.roles[(str(kind), str(meta.get("namespace") or ""), name)] = (entry, obj)
            elif plural in ("rolebindings", "clusterrolebindings"):
                self.bindings.append((entry, obj))
        elif group == "admissionregistration.k8s.io" and plural in _WEBHOOKS:
            hooks = [h for h in obj.get("webhooks") or () if isinstance(h, dict)]
            if hooks:
                self._add(entry, f"{kind} {name!r} has the API server send objects to "
                                 f"{_target(hooks[0].get('clientConfig'))} and obey its answers",
                          "webhooks")
        elif group == "admissionregistration.k8s.io" and plural in _POLICIES:
            self._add(entry, f"{kind} {name!r} has the API server {_POLICIES[plural]}",
                      "admission-policies")
        elif group == "admissionregistration.k8s.io" and plural in _POLICY_BINDINGS:
            policy = (obj.get("spec") or {}).get("policyName")
            self._add(entry, f"{kind} {name!r} puts {str(kind)[:-len('Binding')]} {policy!r} in "
                             "force", "admission-policies")
        elif group == "apiextensions.k8s.io" and plural == "customresourcedefinitions":
            conversion = (obj.get("spec") or {}).get("conversion") or {}
            if conversion.get("strategy") == "Webhook":
                config = (conversion.get("webhook") or {}).get("clientConfig")
                self._add(entry, f"CustomResourceDefinition {name!r} has the API server convert "
                                 f"its objects through {_target(config)}", "webhooks")
        elif group == "apiregistration.k8s.io" and plural == "apiservices":
            spec = obj.get("spec") or {}
            service = spec.get("service")
            if isinstance(service, dict):
                self._add(entry, f"APIService {name!r} hands API group {spec.get('group')!r} "
                                 f"version {spec.get('version')!r} to Service "
                                 f"{service.get('namespace')}/{service.get('name')}: its "
                                 "answers are served as this cluster's API", "apiservices")
        elif group == "" and plural == "secrets" and obj.get("type") == _BOOTSTRAP_TYPE:
            data = obj.get("data") or {}
            if meta.get("namespace") == "kube-system" and _decoded(
                    data.get("usage-bootstrap-authentication")) == "true":
                token_id = _decoded(data.get("token-id")) or "?"
                self._add(entry, f"Secret kube-system/{name} is a bootstrap token: whoever "
                                 f"holds the file can authenticate as system:bootstrap:{token_id} "
                                 "(group system:bootstrappers)", "bootstrap-tokens")

    def _add(self, entry: Entry, what: str, grant: str) -> None:
        self.found.append(_Found(entry, what, grant))

    def check(self) -> None:
        """Raise ``SnapshotGrant`` for the first grant (in file order) not allowed."""
        self._rbac()
        for found in sorted(self.found, key=lambda f: f.entry.line):
            if found.grant not in self.allow:
                flag = FLAGS[found.grant]
                raise SnapshotGrant(str(entry_error(
                    self.path, found.entry, f"{found.what} — beyond what a new cluster grants; "
                                            f"pass {flag} to restore it")))

    # -- RBAC ---------------------------------------------------------------------------------

    def _rbac(self) -> None:
        policy = bootstrap_policy()
        own = {(kind, b["metadata"].get("namespace") or "", b["metadata"]["name"]): b
               for section, kind in (("clusterRoleBindings", "ClusterRoleBinding"),
                                     ("roleBindings", "RoleBinding"))
               for b in policy[section]}
        for entry, binding in self.bindings:
            meta = binding.get("metadata") or {}
            ns = str(meta.get("namespace") or "")
            ref = binding.get("roleRef") or {}
            default = own.get((str(binding.get("kind")), ns, str(meta.get("name")))) or {}
            default_subjects = {(s.get("kind"), s.get("name")) for s in default.get("subjects") or ()}
            for subject in binding.get("subjects") or ():
                who = (subject.get("kind"), subject.get("name"))
                holders = _holders(who)
                if holders is None or (default.get("roleRef") == ref and who in default_subjects):
                    continue
                grant, people = holders
                self._add(entry, f"{binding.get('kind')} {_named(meta)} grants {ref.get('kind')} "
                                 f"{ref.get('name')!r} to {who[0]} {who[1]!r} ({people})", grant)
        # the roles the default bindings give these subjects (kept or re-created by the target
        # cluster's start) must be no wider in the file than their defaults
        defaults = {(kind, r["metadata"].get("namespace") or "", r["metadata"]["name"]): r
                    for section, kind in (("clusterRoles", "ClusterRole"), ("roles", "Role"))
                    for r in policy[section]}
        rank = list(FLAGS)  # the most open subject a role is given to names the grant
        given: dict[tuple[str, str, str], tuple[tuple[str, str], str, str]] = {}
        for (_, ns, _), binding in own.items():
            ref = binding["roleRef"]
            role = (ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"])
            for s in binding.get("subjects") or ():
                who = (s.get("kind"), s.get("name"))
                holders = _holders(who)
                if holders is not None and (role not in given or rank.index(holders[0])
                                            < rank.index(given[role][1])):
                    given[role] = (who, *holders)
        for role, (who, grant, people) in given.items():
            if role in self.roles and _wider(self.roles[role][1], defaults.get(role)):
                self._add(self.roles[role][0], f"{role[0]} {role[2]!r} has rules beyond its "
                                               f"default, and every cluster binds it to {who[0]} "
                                               f"{who[1]!r} ({people})", grant)


def _holders(who: tuple[Any, Any]) -> tuple[str, str] | None:
    """The grant (a FLAGS key) a binding to subject ``who`` (kind, name) is, and who holds
    it; None: a subject of the cluster's own (a ServiceAccount, a named user or group)."""
    if who in _WHO:
        return _WHO[who]
    kind, name = who
    if isinstance(name, str):
        for (prefix_kind, prefix), holders in _WHO_PREFIX.items():
            if kind == prefix_kind and name.startswith(prefix) and len(name) > len(prefix):
                return holders
    return None


def _wider(held: dict[str, Any], default: dict[str, Any] | None) -> bool:
    """Does the role as the file holds it grant more than its bootstrap default?"""
    if default is None:
        return True
    if held.get("aggregationRule") != default.get("aggregationRule"):
        return True
    allowed = {_rule_key(r) for r in default.get("rules") or ()}
    return any(_rule_key(r) not in allowed for r in held.get("rules") or ())


def _named(meta: dict[str, Any]) -> str:
    ns = meta.get("namespace")
    return repr(f"{ns}/{meta.get('name')}" if ns else str(meta.get("name")))


def _target(config: Any) -> str:
    """Where a webhook's clientConfig points, for the message."""
    if not isinstance(config, dict):
        return "a webhook"
    if isinstance(config.get("url"), str):
        return f"webhook {config['url']!r}"
    service = config.get("service")
    if isinstance(service, dict):
        return f"webhook Service {service.get('namespace')}/{service.get('name')}"
    return "a webhook"


def _decoded(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except ValueError:
        return None

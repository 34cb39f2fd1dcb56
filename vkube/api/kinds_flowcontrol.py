"""flowcontrol.apiserver.k8s.io/v1: PriorityLevelConfiguration and FlowSchema — defaulting and
validation as ``pkg/apis/flowcontrol`` has them, and the mandatory and suggested objects
kube-apiserver's APF bootstrap (``apis/flowcontrol/bootstrap``) keeps in every cluster."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.strategy import Strategy
from vkube.api.tables import NONE, age_column
from vkube.api.validation import (
    Causes, dns1123_label, forbidden, invalid_value, not_supported, required, validate_object_meta,
    validate_object_meta_update)

__all__ = ["STRATEGIES", "GROUP", "mandatory_objects", "suggested_objects", "dangling_condition"]

GROUP = "flowcontrol.apiserver.k8s.io"
AUTOUPDATE = "apf.kubernetes.io/autoupdate-spec"


def _spec(o: Obj) -> dict[str, Any]:
    return o.get("spec") or {}


def _limited(o: Obj) -> dict[str, Any]:
    return _spec(o).get("limited") or {}


def _queuing(o: Obj) -> dict[str, Any]:
    return ((_limited(o).get("limitResponse") or {}).get("queuing")) or {}


def _or_none(v: Any) -> Any:
    return NONE if v is None else v


PLC_COLUMNS = (
    Column("Type", lambda o: _spec(o).get("type", "")),
    Column("NominalConcurrencyShares", lambda o: _or_none(_limited(o).get("nominalConcurrencyShares"))),
    Column("Queues", lambda o: _or_none(_queuing(o).get("queues"))),
    Column("HandSize", lambda o: _or_none(_queuing(o).get("handSize"))),
    Column("QueueLengthLimit", lambda o: _or_none(_queuing(o).get("queueLengthLimit"))),
    age_column(),
)


def _missing_pl(o: Obj) -> str:
    for c in ((o.get("status") or {}).get("conditions")) or ():
        if c.get("type") == "Dangling":
            return c.get("status", "?")
    return "?"


FS_COLUMNS = (
    Column("PriorityLevel", lambda o: (_spec(o).get("priorityLevelConfiguration") or {}).get("name", "")),
    Column("MatchingPrecedence", lambda o: _spec(o).get("matchingPrecedence", "")),
    Column("DistinguisherMethod", lambda o: (_spec(o).get("distinguisherMethod") or {}).get("type") or NONE),
    age_column(),
    Column("MissingPL", _missing_pl),
)


class PriorityLevelStrategy(Strategy):
    has_generation = True
    status_subresource = True
    columns = PLC_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("type") == "Exempt" or isinstance(spec.get("exempt"), dict):
            exempt = spec.setdefault("exempt", {}) if spec.get("type") == "Exempt" else spec["exempt"]
            if isinstance(exempt, dict):
                exempt.setdefault("nominalConcurrencyShares", 0)
                exempt.setdefault("lendablePercent", 0)
        limited = spec.get("limited")
        if isinstance(limited, dict):
            limited.setdefault("nominalConcurrencyShares", 30)
            limited.setdefault("lendablePercent", 0)
            response = limited.get("limitResponse")
            if isinstance(response, dict) and response.get("type") == "Queue":
                queuing = response.setdefault("queuing", {})
                if isinstance(queuing, dict):
                    queuing.setdefault("queues", 64)
                    queuing.setdefault("handSize", 8)
                    queuing.setdefault("queueLengthLimit", 50)

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        name = (obj.get("metadata") or {}).get("name")
        spec = _spec(obj)
        ptype = spec.get("type")
        if ptype not in ("Exempt", "Limited"):
            causes.append(not_supported("spec.type", ptype or "", ("Exempt", "Limited")))
        elif (ptype == "Exempt") != (name == "exempt"):
            causes.append(invalid_value("spec.type", ptype, "type must be 'Exempt' if and only if name is 'exempt'"))
        if ptype == "Limited":
            if spec.get("exempt") is not None:
                causes.append(forbidden("spec.exempt", "must be nil if the type is Limited"))
            limited = spec.get("limited")
            if not isinstance(limited, dict):
                causes.append(required("spec.limited", "must not be empty when type is Limited"))
            else:
                causes += _validate_limited(limited, "spec.limited")
        elif ptype == "Exempt":
            if spec.get("limited") is not None:
                causes.append(forbidden("spec.limited", "must be nil if the type is not Limited"))
            exempt = spec.get("exempt") or {}
            causes += _nonneg(exempt.get("nominalConcurrencyShares"), "spec.exempt.nominalConcurrencyShares")
            causes += _percent(exempt.get("lendablePercent"), "spec.exempt.lendablePercent")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


def _nonneg(value: Any, path: str) -> Causes:
    if value is not None and (not isinstance(value, int) or value < 0):
        return [invalid_value(path, value, "must be a non-negative integer")]
    return []


def _percent(value: Any, path: str) -> Causes:
    if value is not None and (not isinstance(value, int) or not 0 <= value <= 100):
        return [invalid_value(path, value, "must be between 0 and 100, inclusive")]
    return []


def _validate_limited(limited: dict[str, Any], path: str) -> Causes:
    causes = _nonneg(limited.get("nominalConcurrencyShares"), f"{path}.nominalConcurrencyShares")
    causes += _percent(limited.get("lendablePercent"), f"{path}.lendablePercent")
    borrowing = limited.get("borrowingLimitPercent")
    if borrowing is not None and (not isinstance(borrowing, int) or borrowing < 0):
        causes.append(invalid_value(f"{path}.borrowingLimitPercent", borrowing, "if specified, must be a non-negative integer"))
    response = limited.get("limitResponse") or {}
    rtype = response.get("type")
    if rtype not in ("Queue", "Reject"):
        causes.append(not_supported(f"{path}.limitResponse.type", rtype or "", ("Queue", "Reject")))
    elif rtype == "Reject" and response.get("queuing") is not None:
        causes.append(forbidden(f"{path}.limitResponse.queuing", "must be nil if limited.limitResponse.type is not Limited"))
    elif rtype == "Queue":
        q = response.get("queuing")
        qp = f"{path}.limitResponse.queuing"
        if not isinstance(q, dict):
            causes.append(required(qp, "must not be empty if limited.limitResponse.type is Limited"))
        else:
            queues, hand, qlen = q.get("queues", 0), q.get("handSize", 0), q.get("queueLengthLimit", 0)
            if not isinstance(qlen, int) or qlen <= 0:
                causes.append(invalid_value(f"{qp}.queueLengthLimit", qlen, "must be positive"))
            if not isinstance(queues, int) or queues <= 0:
                causes.append(invalid_value(f"{qp}.queues", queues, "must be positive"))
            if not isinstance(hand, int) or hand <= 0:
                causes.append(invalid_value(f"{qp}.handSize", hand, "must be positive"))
            elif isinstance(queues, int) and hand > queues:
                causes.append(invalid_value(f"{qp}.handSize", hand,
                                            f"should not be greater than queues ({queues})"))
            elif isinstance(queues, int) and queues > 0 and _entropy_bits(queues, hand) > MAX_HASH_BITS:
                causes.append(invalid_value(f"{qp}.handSize", hand, f"required entropy bits of deckSize "
                                            f"{queues} and handSize {hand} should not be greater than {MAX_HASH_BITS}"))
    return causes


#: shuffle sharding draws a hand from a 64-bit hash; upstream keeps 4 bits in reserve
MAX_HASH_BITS = 60


def _entropy_bits(deck: int, hand: int) -> int:
    """``shufflesharding.RequiredEntropyBits``: ceil(log2(deck) * hand)."""
    return math.ceil(math.log2(deck) * hand)


_SUBJECT_KINDS = ("Group", "ServiceAccount", "User")


class FlowSchemaStrategy(Strategy):
    has_generation = True
    status_subresource = True
    columns = FS_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("matchingPrecedence", 1000)

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = _spec(obj)
        if not (spec.get("priorityLevelConfiguration") or {}).get("name"):
            causes.append(required("spec.priorityLevelConfiguration.name", "must reference a priority level"))
        prec = spec.get("matchingPrecedence")
        name = (obj.get("metadata") or {}).get("name")
        if not isinstance(prec, int) or prec <= 0:
            causes.append(invalid_value("spec.matchingPrecedence", prec, "must be a positive value"))
        elif prec > 10000:
            causes.append(invalid_value("spec.matchingPrecedence", prec, "must not be greater than 10000"))
        elif prec == 1 and name != "exempt":
            causes.append(invalid_value("spec.matchingPrecedence", prec,
                                        "only the schema named 'exempt' may have matchingPrecedence 1"))
        method = spec.get("distinguisherMethod")
        if method is not None and (method or {}).get("type") not in ("ByNamespace", "ByUser"):
            causes.append(not_supported("spec.distinguisherMethod.type", (method or {}).get("type", ""),
                                        ("ByNamespace", "ByUser")))
        for i, rule in enumerate(spec.get("rules") or ()):
            causes += _validate_rule(rule or {}, f"spec.rules[{i}]")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


def _validate_rule(rule: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    subjects = rule.get("subjects")
    if not subjects:
        causes.append(required(f"{path}.subjects", "subjects must contain at least one value"))
    for j, s in enumerate(subjects or ()):
        sp = f"{path}.subjects[{j}]"
        kind = (s or {}).get("kind")
        if kind not in _SUBJECT_KINDS:
            causes.append(not_supported(f"{sp}.kind", kind or "", _SUBJECT_KINDS))
            continue
        causes += _subject(s or {}, kind, sp)
    resources, non_resources = rule.get("resourceRules") or [], rule.get("nonResourceRules") or []
    if not resources and not non_resources:
        causes.append(required(f"{path}", "at least one of resourceRules and nonResourceRules has to be non-empty"))
    for j, r in enumerate(resources):
        causes += _resource_rule(r or {}, f"{path}.resourceRules[{j}]")
    for j, r in enumerate(non_resources):
        causes += _non_resource_rule(r or {}, f"{path}.nonResourceRules[{j}]")
    return causes


_MEMBERS = {"User": "user", "Group": "group", "ServiceAccount": "serviceAccount"}


def _subject(s: dict[str, Any], kind: str, sp: str) -> Causes:
    """``ValidateFlowSchemaSubject``: the kind's member with a name (a ServiceAccount also a
    namespace), and none of the others."""
    member = _MEMBERS[kind]
    body = s.get(member)
    causes: Causes = []
    if not isinstance(body, dict):
        causes.append(required(f"{sp}.{member}", f"{member} is required when subject kind is '{kind}'"))
    else:
        if not body.get("name"):
            causes.append(required(f"{sp}.{member}.name"))
        if kind == "ServiceAccount":
            if not body.get("namespace"):
                causes.append(required(f"{sp}.serviceAccount.namespace", "must specify namespace for service account"))
            else:
                causes += [invalid_value(f"{sp}.serviceAccount.namespace", body["namespace"], msg)
                           for msg in dns1123_label(str(body["namespace"]))]
    for other_kind, other in _MEMBERS.items():
        if other != member and s.get(other) is not None:
            causes.append(forbidden(f"{sp}.{other}", f"{other} is forbidden when subject kind is not '{other_kind}'"))
    return causes


_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch")
_NS_INTRO = "each member of this list must be '*' or a DNS-1123 label; "


def _verbs(verbs: list[Any], path: str) -> Causes:
    if not verbs:
        return [required(path, "verbs must contain at least one value")]
    if "*" in verbs:
        return [invalid_value(path, verbs, "if '*' is present, must not specify other verbs")] if len(verbs) > 1 else []
    if not set(verbs) <= set(_VERBS):
        return [not_supported(path, verbs, _VERBS)]
    return []


def _resource_rule(r: dict[str, Any], rp: str) -> Causes:
    """``ValidateFlowSchemaResourcePolicyRule``."""
    causes = _verbs(r.get("verbs") or [], f"{rp}.verbs")
    for key, detail, what in (("apiGroups", "resource rules must supply at least one api group", "api groups"),
                              ("resources", "resource rules must supply at least one resource", "resources")):
        values = r.get(key) or []
        if not values:
            causes.append(required(f"{rp}.{key}", detail))
        elif len(values) > 1 and "*" in values:
            causes.append(invalid_value(f"{rp}.{key}", values, f"if '*' is present, must not specify other {what}"))
    namespaces = r.get("namespaces") or []
    if not namespaces and not r.get("clusterScope"):
        causes.append(required(f"{rp}.namespaces",
                               "resource rules that are not cluster scoped must supply at least one namespace"))
    else:
        causes += _star_list(namespaces, f"{rp}.namespaces", "namespaces",
                             lambda ns: [_NS_INTRO + m for m in dns1123_label(ns)])
    return causes


def _star_list(values: list[Any], path: str, what: str, each: Callable[[str], list[str]]) -> Causes:
    """A list that is ``*`` alone, or members each checked by ``each`` (upstream's wildcard lists)."""
    if "*" in values:
        return [invalid_value(path, values, f"if '*' is present, must not specify other {what}")] if len(values) > 1 else []
    return [invalid_value(f"{path}[{k}]", v, msg) for k, v in enumerate(values) for msg in each(str(v))]


def _non_resource_rule(r: dict[str, Any], rp: str) -> Causes:
    """``ValidateFlowSchemaNonResourcePolicyRule`` and ``ValidateNonResourceURLPath``."""
    causes = _verbs(r.get("verbs") or [], f"{rp}.verbs")
    urls = r.get("nonResourceURLs") or []
    if not urls:
        causes.append(required(f"{rp}.nonResourceURLs", "nonResourceURLs must contain at least one value"))
    else:
        causes += _star_list(urls, f"{rp}.nonResourceURLs", "non-resource URLs",
                             lambda url: [p] if (p := _url_problem(url)) else [])
    return causes


def _url_problem(path: str) -> str:
    if not path:
        return "must not be empty"
    if path == "/":
        return ""
    if not path.startswith("/"):
        return "must start with slash"
    if " " in path:
        return "must not contain white-space"
    if "//" in path:
        return "must not contain double slash"
    stars = path.count("*")
    if stars > 1 or (stars == 1 and path[-2:] != "/*"):
        return "wildcard can only do suffix matching"
    return ""


def dangling_condition(fs: Obj, levels: set[str], now: str) -> dict[str, Any]:
    """The ``Dangling`` condition the APF configuration controller keeps on every FlowSchema."""
    name = (_spec(fs).get("priorityLevelConfiguration") or {}).get("name", "")
    if name in levels:
        return {"type": "Dangling", "status": "False", "reason": "Found", "lastTransitionTime": now,
                "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{name}" and it exists'}
    return {"type": "Dangling", "status": "True", "reason": "NotFound", "lastTransitionTime": now,
            "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{name}" but there is no such object'}


# --- the bootstrap configuration -----------------------------------------------------------

_ALL_RESOURCES = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}
_ALL_NON_RESOURCES = {"verbs": ["*"], "nonResourceURLs": ["*"]}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "annotations": {AUTOUPDATE: "true"}}


def _plc(name: str, shares: int, lendable: int, queues: int = 0, hand: int = 0, qlen: int = 0) -> Obj:
    response: dict[str, Any] = ({"type": "Queue", "queuing": {"queues": queues, "handSize": hand,
                                                              "queueLengthLimit": qlen}}
                                if queues else {"type": "Reject"})
    return {"apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration", "metadata": _meta(name),
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares, "lendablePercent": lendable,
                                                    "limitResponse": response}}}


def _group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "group": {"name": name}}


def _user(name: str) -> dict[str, Any]:
    return {"kind": "User", "user": {"name": name}}


def _sa(namespace: str, name: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "serviceAccount": {"namespace": namespace, "name": name}}


def _fs(name: str, level: str, precedence: int, distinguisher: str | None, subjects: list[dict[str, Any]],
        resource_rules: list[dict[str, Any]], non_resource_rules: list[dict[str, Any]] | None = None) -> Obj:
    rule: dict[str, Any] = {"subjects": subjects}
    if resource_rules:
        rule["resourceRules"] = resource_rules
    if non_resource_rules:
        rule["nonResourceRules"] = non_resource_rules
    spec: dict[str, Any] = {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence,
                            "rules": [rule]}
    if distinguisher:
        spec["distinguisherMethod"] = {"type": distinguisher}
    return {"apiVersion": f"{GROUP}/v1", "kind": "FlowSchema", "metadata": _meta(name), "spec": spec}


def _rr(verbs: list[str], group: str, resources: list[str], namespaces: list[str] | None = None,
        cluster: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs, "apiGroups": [group], "resources": resources}
    if cluster:
        out["clusterScope"] = True
    if namespaces:
        out["namespaces"] = namespaces
    return out


def mandatory_objects() -> list[Obj]:
    """``exempt`` and ``catch-all``: always present and always as the server defines them."""
    exempt_pl: Obj = {"apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration", "metadata": _meta("exempt"),
                      "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}}
    return [
        exempt_pl,
        _plc("catch-all", 5, 0),
        _fs("exempt", "exempt", 1, None, [_group("system:masters")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
        _fs("catch-all", "catch-all", 10000, "ByUser",
            [_group("system:unauthenticated"), _group("system:authenticated")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
    ]


def suggested_objects() -> list[Obj]:
    """The suggested priority levels and flow schemas (created when missing, updated while
    their ``apf.kubernetes.io/autoupdate-spec`` annotation is ``true``)."""
    leader_rules = [_rr(["get", "create", "update"], "", ["endpoints", "configmaps"], ["kube-system"]),
                    _rr(["get", "create", "update"], "coordination.k8s.io", ["leases"], ["kube-system"])]
    everyone = [_group("system:unauthenticated"), _group("system:authenticated")]
    return [
        _plc("node-high", 40, 25, 64, 6, 50),
        _plc("system", 30, 33, 64, 6, 50),
        _plc("leader-election", 10, 0, 16, 4, 50),
        _plc("workload-high", 40, 50, 128, 6, 50),
        _plc("workload-low", 100, 90, 128, 6, 50),
        _plc("global-default", 20, 50, 128, 6, 50),
        _fs("probes", "exempt", 2, None, everyone, [],
            [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]),
        _fs("system-leader-election", "leader-election", 100, "ByUser",
            [_user("system:kube-controller-manager"), _user("system:kube-scheduler")], leader_rules),
        _fs("endpoint-controller", "workload-high", 150, "ByUser",
            [_user("system:kube-controller-manager"), _sa("kube-system", "endpoint-controller")],
            [_rr(["get", "create", "update"], "", ["endpoints"], ["*"])]),
        _fs("workload-leader-election", "leader-election", 200, "ByUser", [_sa("kube-system", "*")], leader_rules),
        _fs("system-node-high", "node-high", 400, "ByUser", [_group("system:nodes")],
            [_rr(["*"], "", ["nodes", "nodes/status"], cluster=True),
             _rr(["*"], "coordination.k8s.io", ["leases"], ["*"])]),
        _fs("system-nodes", "system", 500, "ByUser", [_group("system:nodes")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
        _fs("kube-controller-manager", "workload-high", 800, "ByNamespace",
            [_user("system:kube-controller-manager")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
        _fs("kube-scheduler", "workload-high", 800, "ByNamespace",
            [_user("system:kube-scheduler")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
        _fs("kube-system-service-accounts", "workload-high", 900, "ByNamespace",
            [_sa("kube-system", "*")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
        _fs("service-accounts", "workload-low", 9000, "ByUser",
            [_group("system:serviceaccounts")], [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
        _fs("global-default", "global-default", 9900, "ByUser", everyone, [_ALL_RESOURCES], [_ALL_NON_RESOURCES]),
    ]


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (GROUP, "PriorityLevelConfiguration"): PriorityLevelStrategy,
    (GROUP, "FlowSchema"): FlowSchemaStrategy,
}

"""One scheduling cycle as a pure function: filter nodes, score the feasible ones, pick one.

Follows kube-scheduler's default plugins (NodeUnschedulable, TaintToleration, NodeAffinity,
NodeResourcesFit, PodTopologySpread, InterPodAffinity) and reproduces its FitError message,
because users paste "0/3 nodes are available: …" into search engines.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from vkube.host.predicates import (
    AffinityTerm,
    NodeInfo,
    PodInfo,
    match_label_selector,
    match_node_selector,
    tolerates,
    untolerated_taint,
)

R_UNSCHEDULABLE = "node(s) were unschedulable"
R_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
R_NODE_NAME = "node(s) didn't match the requested node name"
R_AFFINITY = "node(s) didn't match pod affinity rules"
R_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
R_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"

# Reasons preemption cannot fix (UnschedulableAndUnresolvable in kube-scheduler); the last
# two are VolumeBinding's (vkube.host.volumebinding)
_UNRESOLVABLE_PREFIXES = (R_UNSCHEDULABLE, R_NODE_AFFINITY, R_NODE_NAME, R_AFFINITY,
                          R_SPREAD_LABEL, "node(s) had untolerated taint",
                          "node(s) had volume node affinity conflict",
                          "node(s) didn't find available persistent volumes to bind")

WEIGHTS = {"resources": 1, "node_affinity": 2, "taints": 3, "inter_pod": 2, "spread": 2}


@dataclass
class Diagnosis:
    """Why nodes were rejected: reason -> node count, plus per-node reasons."""

    reasons: Counter[str] = field(default_factory=Counter)
    unresolvable: int = 0  # nodes no preemption could help
    num_nodes: int = 0
    prefilter_msg: str = ""  # a PreFilter refusal: it stands for every node

    def message(self) -> str:
        """kube-scheduler's FitError text (we never preempt, so no victims are ever found)."""
        n = self.num_nodes
        msg = f"0/{n} nodes are available"
        hist = sorted(f"{count} {reason}" for reason, count in self.reasons.items())
        if self.prefilter_msg:
            msg += f": {self.prefilter_msg}."
        else:
            msg += (": " + ", ".join(hist) + ".") if hist else "."
        parts = []
        helpful = n - self.unresolvable
        if helpful:
            parts.append(f"{helpful} No preemption victims found for incoming pod")
        if self.unresolvable:
            parts.append(f"{self.unresolvable} Preemption is not helpful for scheduling")
        return msg + f" preemption: 0/{n} nodes are available: " + ", ".join(sorted(parts)) + "."


@dataclass
class _Cycle:
    """Per-cycle precomputation (kube-scheduler's PreFilter state)."""

    affinity_domains: list[set[str]]  # per required affinity term: topology values with matches
    affinity_any: bool  # some pod anywhere matches all required affinity terms
    anti_domains: list[set[str]]
    existing_anti: set[tuple[str, str]]  # (topologyKey, value) forbidden by existing pods
    spread_counts: list[dict[str, int]]  # per constraint: domain value -> matching pods
    spread_min: list[int]


def _domain(node: NodeInfo, key: str) -> str | None:
    return node.labels.get(key)


def _prefilter(pod: PodInfo, nodes: list[NodeInfo]) -> _Cycle:
    aff: list[set[str]] = [set() for _ in pod.affinity]
    anti: list[set[str]] = [set() for _ in pod.anti_affinity]
    any_match = False
    existing: set[tuple[str, str]] = set()
    spread_counts: list[dict[str, int]] = [{} for _ in pod.spread]
    eligible = [n for n in nodes if _spread_eligible(pod, n)] if pod.spread else []
    for i, c in enumerate(pod.spread):
        key = c.get("topologyKey", "")
        for n in eligible:
            d = _domain(n, key)
            if d is None:
                continue
            cnt = spread_counts[i].setdefault(d, 0)
            sel = c.get("labelSelector")
            spread_counts[i][d] = cnt + sum(
                1 for p in n.pods.values()
                if p.namespace == pod.namespace and not p.terminating and match_label_selector(sel, p.labels))
    spread_min = []
    for i, c in enumerate(pod.spread):
        counts = spread_counts[i]
        m = min(counts.values()) if counts else 0
        if len(counts) < int(c.get("minDomains") or 1):
            m = 0
        spread_min.append(m)
    if pod.affinity or pod.anti_affinity:
        for n in nodes:
            for p in n.pods.values():
                all_match = bool(pod.affinity)
                for i, t in enumerate(pod.affinity):
                    if t.matches(p):
                        d = _domain(n, t.topology_key)
                        if d is not None:
                            aff[i].add(d)
                    else:
                        all_match = False
                any_match = any_match or all_match
                for i, t in enumerate(pod.anti_affinity):
                    if t.matches(p):
                        d = _domain(n, t.topology_key)
                        if d is not None:
                            anti[i].add(d)
    for n in nodes:
        for p in n.anti_pods.values():
            for t in p.anti_affinity:
                if t.matches(pod):
                    d = _domain(n, t.topology_key)
                    if d is not None:
                        existing.add((t.topology_key, d))
    return _Cycle(aff, any_match, anti, existing, spread_counts, spread_min)


def _spread_eligible(pod: PodInfo, node: NodeInfo) -> bool:
    """nodeAffinityPolicy Honor (default): only nodes the pod could land on count."""
    if not _node_affinity_ok(pod, node):
        return False
    return all(c.get("topologyKey", "") in node.labels for c in pod.spread)


def _node_affinity_ok(pod: PodInfo, node: NodeInfo) -> bool:
    for k, v in pod.node_selector.items():
        if node.labels.get(k) != v:
            return False
    return match_node_selector(pod.required_node_affinity, node.node)


def filter_node(pod: PodInfo, node: NodeInfo, cycle: _Cycle) -> list[str]:
    """Reasons the node cannot take the pod (empty list: it fits). Stops at the first
    failing plugin, like kube-scheduler; resource shortages are all reported together."""
    if node.unschedulable and not any(
            tolerates(t, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
            for t in pod.tolerations):
        return [R_UNSCHEDULABLE]
    if pod.node_name and pod.node_name != node.name:
        return [R_NODE_NAME]
    taints = node.taints
    if not node.ready and not any(t.get("key") == "node.kubernetes.io/not-ready" for t in taints):
        taints = [*taints, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    bad = untolerated_taint(taints, pod.tolerations, ("NoSchedule", "NoExecute"))
    if bad is not None:
        return [f"node(s) had untolerated taint {{{bad.get('key', '')}: {bad.get('value', '')}}}"]
    if not _node_affinity_ok(pod, node):
        return [R_NODE_AFFINITY]
    short = []
    alloc, used = node.allocatable, node.requested
    if used.get("pods", 0) + 1 > alloc.get("pods", 110):
        short.append("Too many pods")
    for res, want in pod.requests.items():
        if want <= 0:
            continue
        if want > alloc.get(res, 0) - used.get(res, 0):
            short.append(f"Insufficient {res}")
    if short:
        return short
    for i, c in enumerate(pod.spread):
        if c.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
            continue
        d = _domain(node, c.get("topologyKey", ""))
        if d is None:
            return [R_SPREAD_LABEL]
        self_match = 1 if match_label_selector(c.get("labelSelector"), pod.labels) else 0
        skew = cycle.spread_counts[i].get(d, 0) + self_match - cycle.spread_min[i]
        if skew > int(c.get("maxSkew", 1)):
            return [R_SPREAD]
    for i, t in enumerate(pod.affinity):
        d = _domain(node, t.topology_key)
        if d is None:
            return [R_AFFINITY]
        if d not in cycle.affinity_domains[i]:
            # The first pod of a group may match its own terms: allowed if nothing matches yet.
            if cycle.affinity_any or not all(x.matches(pod) for x in pod.affinity):
                return [R_AFFINITY]
    for i, t in enumerate(pod.anti_affinity):
        d = _domain(node, t.topology_key)
        if d is not None and d in cycle.anti_domains[i]:
            return [R_ANTI_AFFINITY]
    for key, value in cycle.existing_anti:
        if node.labels.get(key) == value:
            return [R_EXISTING_ANTI]
    return []


def _is_unresolvable(reasons: list[str]) -> bool:
    return any(r.startswith(_UNRESOLVABLE_PREFIXES) for r in reasons)


def _normalize(raw: dict[str, float], reverse: bool = False) -> dict[str, float]:
    if not raw:
        return raw
    lo, hi = min(raw.values()), max(raw.values())
    if hi == lo:
        return {k: (100.0 if reverse or hi > 0 else 0.0) for k in raw}
    if reverse:
        return {k: 100.0 * (hi - v) / (hi - lo) for k, v in raw.items()}
    return {k: 100.0 * (v - lo) / (hi - lo) for k, v in raw.items()}


def _term_domain_counts(terms: list[AffinityTerm], nodes: list[NodeInfo]) -> list[Counter[str]]:
    counts: list[Counter[str]] = [Counter() for _ in terms]
    for n in nodes:
        for p in n.pods.values():
            for i, t in enumerate(terms):
                if t.matches(p):
                    d = _domain(n, t.topology_key)
                    if d is not None:
                        counts[i][d] += 1
    return counts


def score_nodes(pod: PodInfo, feasible: list[NodeInfo], all_nodes: list[NodeInfo],
                cycle: _Cycle) -> dict[str, float]:
    """Weighted sum of the default score plugins, each normalised to 0..100."""
    names = [n.name for n in feasible]
    total = dict.fromkeys(names, 0.0)

    def add(scores: dict[str, float], weight: int) -> None:
        for k, v in scores.items():
            total[k] += weight * v

    res = {}
    for n in feasible:
        parts = []
        for alloc_key, used, want in (("cpu", n.nonzero_cpu, pod.nonzero_cpu),
                                      ("memory", n.nonzero_memory, pod.nonzero_memory)):
            cap = n.allocatable.get(alloc_key, 0)
            parts.append(0.0 if cap <= 0 else max(0.0, (cap - used - want) * 100.0 / cap))
        res[n.name] = sum(parts) / len(parts)
    add(res, WEIGHTS["resources"])
    if pod.preferred_node_affinity:
        raw = {}
        for n in feasible:
            raw[n.name] = float(sum(int(t.get("weight", 0)) for t in pod.preferred_node_affinity
                                    if match_node_selector({"nodeSelectorTerms": [t.get("preference", {})]}, n.node)))
        hi = max(raw.values()) or 1.0
        add({k: 100.0 * v / hi for k, v in raw.items()}, WEIGHTS["node_affinity"])
    raw_t = {n.name: float(sum(1 for t in n.taints if t.get("effect") == "PreferNoSchedule"
                               and not any(tolerates(x, t) for x in pod.tolerations)))
             for n in feasible}
    add(_normalize(raw_t, reverse=True), WEIGHTS["taints"])
    terms = pod.preferred_affinity + pod.preferred_anti_affinity
    if terms:
        counts = _term_domain_counts(terms, all_nodes)
        raw_p = {}
        for n in feasible:
            s = 0.0
            for i, t in enumerate(terms):
                d = _domain(n, t.topology_key)
                if d is not None and counts[i][d]:
                    sign = 1 if i < len(pod.preferred_affinity) else -1
                    s += sign * t.weight * counts[i][d]
            raw_p[n.name] = s
        add(_normalize(raw_p), WEIGHTS["inter_pod"])
    add(_normalize(_spread_raw(pod, feasible, all_nodes, cycle), reverse=True), WEIGHTS["spread"])
    return total


def _spread_raw(pod: PodInfo, feasible: list[NodeInfo], all_nodes: list[NodeInfo],
                cycle: _Cycle) -> dict[str, float]:
    """ScheduleAnyway constraints, else the system default: spread pods of one controller
    over hostnames and zones."""
    soft = [(i, c) for i, c in enumerate(pod.spread) if c.get("whenUnsatisfiable") == "ScheduleAnyway"]
    raw: dict[str, float] = {}
    if soft:
        for n in feasible:
            raw[n.name] = float(sum(cycle.spread_counts[i].get(_domain(n, c.get("topologyKey", "")) or "", 0)
                                    for i, c in soft))
        return raw
    if not pod.owner_uid:
        return {n.name: 0.0 for n in feasible}
    zones: Counter[str] = Counter()
    for n in all_nodes:
        z = n.labels.get("topology.kubernetes.io/zone")
        if z is not None:
            zones[z] += n.owners.get(pod.owner_uid, 0)
    for n in feasible:
        z = n.labels.get("topology.kubernetes.io/zone")
        raw[n.name] = n.owners.get(pod.owner_uid, 0) * 2.0 + (zones[z] if z is not None else 0)
    return raw


def schedule(pod: PodInfo, nodes: list[NodeInfo], *, rng: random.Random | None = None,
             extra_filter: Callable[[NodeInfo], str | None] | None = None,
             ) -> tuple[str | None, Diagnosis]:
    """Pick a node for ``pod`` (None with a Diagnosis when no node fits). ``extra_filter``
    is one more Filter plugin (volume binding): a reason, or None when the node fits."""
    rng = rng or random.Random()
    cycle = _prefilter(pod, nodes)
    diag = Diagnosis(num_nodes=len(nodes))
    feasible = []
    for n in nodes:
        reasons = filter_node(pod, n, cycle)
        if not reasons and extra_filter is not None and (why := extra_filter(n)):
            reasons = [why]
        if reasons:
            diag.reasons.update(reasons)
            if _is_unresolvable(reasons):
                diag.unresolvable += 1
        else:
            feasible.append(n)
    if not feasible:
        return None, diag
    if len(feasible) == 1:
        return feasible[0].name, diag
    scores = score_nodes(pod, feasible, nodes, cycle)
    best = max(scores.values())
    top = [k for k, v in scores.items() if v >= best - 1e-9]
    return (top[0] if len(top) == 1 else rng.choice(top)), diag

"""NetworkPolicies: every host pod of a virtual cluster lives in one host namespace, so pod
and namespace selectors both become *pod* selectors over translated labels (the pod's own
labels ``vkube.io/l-*`` and its virtual namespace's labels ``vkube.io/n-*``)."""

from __future__ import annotations

import copy

from vkube.api.meta import Obj
from vkube.client.resources import NETWORKPOLICIES
from vkube.syncer.base import DownSyncer
from vkube.syncer.isolation import public_only
from vkube.syncer.translate import LABEL_MANAGED_BY, Translator


def translate_peer(tr: Translator, peer: Obj, ns: str) -> Obj:
    """One ``from``/``to`` peer. ipBlock peers pass unchanged."""
    if "ipBlock" in peer:
        return copy.deepcopy(peer)
    ns_sel = peer.get("namespaceSelector")
    if ns_sel is None:  # pods of the policy's own namespace
        return {"podSelector": tr.translate_selector(peer.get("podSelector"), ns)}
    sel = tr.translate_selector(peer.get("podSelector"), None)
    nsel = tr.translate_selector(ns_sel, None, kind="n")
    nsel["matchLabels"].pop(LABEL_MANAGED_BY, None)
    sel["matchLabels"].update(nsel["matchLabels"])
    exprs = (sel.get("matchExpressions") or []) + (nsel.get("matchExpressions") or [])
    if exprs:
        sel["matchExpressions"] = exprs
    return {"podSelector": sel}


def translate_policy_spec(tr: Translator, spec: Obj, ns: str, *,
                          isolated: bool = False) -> Obj:
    """``isolated``: egress ipBlocks lose the private ranges (see ``public_only``)."""
    out = copy.deepcopy(spec)
    out["podSelector"] = tr.translate_selector(spec.get("podSelector"), ns)
    for rule in out.get("ingress") or []:
        if rule.get("from"):
            rule["from"] = [translate_peer(tr, p, ns) for p in rule["from"]]
    kept = []
    for rule in out.get("egress") or []:
        if rule.get("to"):
            peers = [translate_peer(tr, p, ns) for p in rule["to"]]
            if isolated:
                peers = [q for p in peers if (q := public_only(p)) is not None]
                if not peers:
                    continue  # an empty "to" would allow every destination
            rule["to"] = peers
        kept.append(rule)
    if "egress" in out:
        out["egress"] = kept
    return out


class NetworkPolicySyncer(DownSyncer):
    kind = "networkpolicies"
    vres = hres = NETWORKPOLICIES

    def desired(self, vobj: Obj) -> Obj:
        ns = vobj["metadata"]["namespace"]
        return {"apiVersion": NETWORKPOLICIES.api_version, "kind": "NetworkPolicy",
                "metadata": self.tr.host_metadata(vobj),
                "spec": translate_policy_spec(self.tr, vobj.get("spec") or {}, ns,
                                              isolated=self.ctx.values.isolation.enabled)}

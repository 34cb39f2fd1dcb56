"""Host words in text shown to a tenant, made virtual: the one place that rewrites what host
components wrote (event messages: the kubelet's ``NAME_NS(UID)``, the scheduler's
``Successfully assigned NS/NAME to NODE``, ``configmap "NAME-x-NS-x-VC" not found``…).

Replaced, whole tokens only, in one pass (a replacement is never rewritten again):
- the host names and UIDs the caller knows (the event's object: its host name, even a hashed
  one, and host UID → virtual name and UID);
- the host namespace → the virtual namespace;
- any readable host name of this cluster, ``NAME-x-NS-x-VC`` → ``NAME`` and ``NAME-x-VC``
  (cluster-scoped copies) → ``NAME``. Hashed names of other objects cannot be read back
  without a lookup and stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vkube.syncer.translate import Translator

#: a token is bounded by characters that cannot continue a Kubernetes name or UID
_BEFORE = r"(?<![A-Za-z0-9.-])"
_AFTER = r"(?![A-Za-z0-9-])"
_NAME = r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?"
_NS = r"[a-z0-9](?:(?!-x-)[a-z0-9-])*?"  # a readable host name's namespace never holds -x-


def virtual_text(text: str, tr: Translator, vns: str | None, known: Mapping[str, str]) -> str:
    """``text`` with host names, namespace and UIDs replaced by the virtual ones. ``known``:
    exact host → virtual replacements (longest first wins); ``vns``: the namespace the host
    namespace stands for here (None: left as is)."""
    exact = {k: v for k, v in known.items() if k and k != v}
    if vns:
        exact.setdefault(tr.host_namespace, vns)
    vc = re.escape(tr.vc)
    alternatives = [re.escape(k) for k in sorted(exact, key=len, reverse=True)]
    alternatives.append(rf"(?P<name>{_NAME})-x-{_NS}-x-{vc}")
    alternatives.append(rf"(?P<cname>[a-z0-9](?:(?!-x-)[a-z0-9.-])*?)-x-{vc}")
    pattern = re.compile(_BEFORE + "(?:" + "|".join(alternatives) + ")" + _AFTER)

    def swap(m: re.Match[str]) -> str:
        if m.group("name"):
            return m.group("name")
        if m.group("cname"):
            return m.group("cname")
        return exact[m.group(0)]

    return pattern.sub(swap, text)

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


#: a candidate token: a run of name characters not continuing another (matches start only here)
_RUN = re.compile(r"(?<![A-Za-z0-9.-])[A-Za-z0-9.-]+")
_PLAIN = re.compile(r"[A-Za-z0-9.-]+")


def _readable_names(vc: str) -> re.Pattern[str]:
    """Readable host names of cluster ``vc``, matched at a token's start (``re`` keeps the
    compiled pattern: one per cluster, never one per message)."""
    v = re.escape(vc)
    return re.compile(rf"(?:(?P<name>{_NAME})-x-{_NS}-x-{v}|"
                      rf"(?P<cname>[a-z0-9](?:(?!-x-)[a-z0-9.-])*?)-x-{v}){_AFTER}")


def virtual_text(text: str, tr: Translator, vns: str | None, known: Mapping[str, str]) -> str:
    """``text`` with host names, namespace and UIDs replaced by the virtual ones. ``known``:
    exact host → virtual replacements (longest first wins); ``vns``: the namespace the host
    namespace stands for here (None: left as is).

    The exact words differ for every pod, so they are not compiled into a pattern (a rollout
    compiled one per event, past ``re``'s cache): a match can only start where a token does,
    so each token is compared with them and then matched against the cluster's one pattern."""
    exact = {k: v for k, v in known.items() if k and k != v}
    if vns:
        exact.setdefault(tr.host_namespace, vns)
    if not all(_PLAIN.fullmatch(k) for k in exact):
        return _virtual_text_compiled(text, tr, exact)
    keys = sorted(exact, key=len, reverse=True)
    names = _readable_names(tr.vc)
    out: list[str] = []
    last = 0
    for run in _RUN.finditer(text):
        start, token = run.start(), run.group()
        for k in keys:  # whole token, or up to a dot (a name is not continued by one)
            if token.startswith(k) and (len(token) == len(k) or token[len(k)] == "."):
                out += (text[last:start], exact[k])
                last = start + len(k)
                break
        else:
            if (m := names.match(text, start)) is not None:
                out += (text[last:start], m.group("name") or m.group("cname"))
                last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _virtual_text_compiled(text: str, tr: Translator, exact: dict[str, str]) -> str:
    """``virtual_text`` as one compiled pattern, for exact words with other characters."""
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

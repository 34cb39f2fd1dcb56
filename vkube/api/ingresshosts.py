"""Which host names an Ingress claims on a shared ingress controller, and when two claims
collide. Pure functions (the syncer lists the host's Ingresses and asks; so does the embedded
host's admission of namespace tenants' Ingresses).

- Names compare as DNS does: case-insensitively, a trailing dot ignored.
- A wildcard ``*.example.com`` covers every name under ``example.com`` at any depth (nginx's
  ``server_name`` matches ``a.b.example.com`` too, though the Ingress API says one label), and
  collides both ways: a newer exact ``shop.example.com`` would take that name from the
  wildcard's owner (exact names win in every controller), a newer wildcard would serve names
  nobody claimed yet but another tenant's domain.
- A rule without ``host`` and ``spec.defaultBackend`` are the catch-all: every name no other
  Ingress serves. It collides only with another catch-all, so one Ingress on the host holds it.
- ingress-nginx's ``server-alias`` names more hosts, and ``from-to-www-redirect`` serves the
  ``www.`` twin of each host: both are claims too."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

#: the claim of a rule without a host and of ``spec.defaultBackend``
CATCH_ALL = "*"
NGINX = "nginx.ingress.kubernetes.io/"
_TRUE = ("true", "1", "t", "yes")


def normalize(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _covers(wildcard: str, name: str) -> bool:
    return wildcard.startswith("*.") and name != CATCH_ALL and name.endswith(wildcard[1:])


def overlaps(a: str, b: str) -> bool:
    """Could one request be served by both claims?"""
    a, b = normalize(a), normalize(b)
    if CATCH_ALL in (a, b):
        return a == b
    return a == b or _covers(a, b) or _covers(b, a)


def too_broad(name: str) -> str:
    """Why a claimed wildcard takes more than one tenant's domain ("" when it does not): a
    wildcard must leave a registrable name (two labels) after ``*.``, or one tenant holds every
    name of a top-level domain (``*.org``) for all the others. Public suffixes of two labels
    (``*.co.uk``) are not known here."""
    name = normalize(name)
    if name.startswith("*.") and len(name[2:].split(".")) < 2:
        return (f'the wildcard "{name}" covers a whole top-level domain; name a domain of your '
                'own, e.g. "*.example.com"')
    return ""


def aliases(value: str) -> list[str]:
    """``server-alias: "a.example.com, b.example.com"`` (nginx separates with commas)."""
    return [h for h in (p.strip() for p in str(value).split(",")) if h]


def claims(obj: dict[str, Any]) -> dict[str, str]:
    """claimed name (normalized; ``CATCH_ALL`` for the catch-all) → the field that claims it."""
    spec = obj.get("spec") or {}
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    out: dict[str, str] = {}
    if spec.get("defaultBackend") is not None:
        out[CATCH_ALL] = "spec.defaultBackend"
    hosts: list[str] = []
    for i, rule in enumerate(spec.get("rules") or ()):
        host = normalize(str((rule or {}).get("host") or "")) if isinstance(rule, dict) else ""
        if not host:
            out.setdefault(CATCH_ALL, f"spec.rules[{i}]")
            continue
        out.setdefault(host, f"spec.rules[{i}].host")
        hosts.append(host)
    for key in sorted(ann):  # any case: the annotation policy judges keys so too
        if key.lower() == NGINX + "server-alias":
            for alias in aliases(ann[key]):
                out.setdefault(normalize(alias), f"metadata.annotations[{key}]")
        elif key.lower() == NGINX + "from-to-www-redirect" and \
                str(ann[key]).strip().lower() in _TRUE:
            for host in hosts:
                twin = host[4:] if host.startswith("www.") else f"www.{host}"
                if not host.startswith("*."):
                    out.setdefault(twin, f"metadata.annotations[{key}]")
    return out


def collisions(mine: dict[str, str], theirs: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """Every (my claim, its field, their claim) that overlaps, in a stable order."""
    for name in sorted(mine):
        for other in sorted(theirs):
            if overlaps(name, other):
                yield name, mine[name], other


def collision(mine: dict[str, str], theirs: dict[str, str]) -> tuple[str, str, str] | None:
    return next(collisions(mine, theirs), None)


def describe(name: str) -> str:
    return ("every host no other Ingress names (a rule without host, or spec.defaultBackend)"
            if name == CATCH_ALL else f'host "{name}"')


def age_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    """``(creationTimestamp, namespace, name)``: which of two claims is older."""
    meta = obj.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "",
            meta.get("name") or "")


def taken(mine: dict[str, str], held: dict[str, str], my_key: tuple[str, str, str],
          others: Iterable[tuple[tuple[str, str, str], dict[str, str]]]) -> tuple[str, str, str] | None:
    """The first (my claim, its field, their claim) another Ingress holds, or None.

    ``held``: the claims the Ingress already serves (its stored version); a held name is kept
    against younger claims. Keys are ``(creationTimestamp, namespace, name)``: the older one
    (same age: the first by namespace/name) keeps a name. A name not held yet (a new Ingress,
    or an edit adding a host) is taken while any other Ingress serves an overlapping one."""
    for their_key, theirs in others:
        for name, where, other in collisions(mine, theirs):
            if name in held and their_key > my_key:
                continue  # ours is the older claim on this name
            return name, where, other
    return None

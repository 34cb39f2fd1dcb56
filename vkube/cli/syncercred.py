"""The syncer's confined host credential on the embedded host.

The CLI holds the user's host credentials (on the embedded host: its admin, system:masters);
the syncer must not. On the embedded host ``create``/``resume``/``--upgrade`` apply the
ServiceAccount ``vkube-NAME`` with the Role (and ClusterRole) of ``vkube.syncer.hostrbac`` and
write a kubeconfig whose client certificate, issued by the embedded host's CA, names that
ServiceAccount (no groups: RBAC matches a ServiceAccount subject by its user name), so the
syncer runs with exactly those grants. A real host keeps the user's kubeconfig: without the
host's CA no certificate can be minted (``vkube render`` is the confined path there).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml

from vkube.api import errors
from vkube.cli.state import ClusterState
from vkube.client import Client
from vkube.client.resources import (CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES,
                                    by_kind)
from vkube.syncer import hostrbac

FILE = "host-syncer.kubeconfig"
CONTEXT = "vkube-syncer"


def kubeconfig_path(st: ClusterState) -> Path:
    return st.dir / FILE


def for_syncer(st: ClusterState) -> tuple[str, str | None]:
    """The (kubeconfig, context) the cluster process gets for its host: the confined one when
    ``confine`` wrote it, else the user's own."""
    path = kubeconfig_path(st)
    if st.host_kind == "embedded" and path.exists():
        return str(path), CONTEXT
    return st.host_kubeconfig, st.host_context


def _labels(st: ClusterState) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vkube", "app.kubernetes.io/instance": st.name,
            "vkube.io/vcluster": st.name}


async def _custom_resources(hc: Client, st: ClusterState) -> dict[str, tuple[str, bool]]:
    """The host's plural and scope of every custom resource kind the values sync."""
    from vkube.syncer.customresources import find_kind
    from vkube.syncer.values import parse_values

    sync = parse_values(dict(st.values or {})).sync
    out: dict[str, tuple[str, bool]] = {}
    for kind_group in [*sync.to_host.custom_resources, *sync.from_host.custom_resources]:
        kind, group = kind_group.split(".", 1)
        with contextlib.suppress(errors.StatusError):
            found = await find_kind(hc, kind, group)
            if found is not None:
                out[kind_group] = (found[0].plural, found[0].namespaced)
    return out


async def confine(hc: Client, st: ClusterState) -> bool:
    """Apply the syncer's RBAC on the embedded host (``hc``: the user's host client) and write
    its kubeconfig; False (nothing done) on another host. Idempotent: resume and ``--upgrade``
    call it again, so the grants follow the values."""
    if st.host_kind != "embedded":
        return False
    from vkube.cli import render
    from vkube.cli.hosting import host_dir
    from vkube.pki.cluster import ClusterPKI

    pki_dir = host_dir() / "data" / "pki"
    if not (pki_dir / "ca.crt").exists() or not (pki_dir / "ca.key").exists():
        return False  # never mint a new CA here: the host would not trust it
    rbac = hostrbac.host_rbac(st.values, st.namespace, await _custom_resources(hc, st))
    objs = hostrbac.manifests(st.name, st.namespace, rbac, _labels(st))
    await _drop_stale(hc, st.name, st.namespace, objs)
    await render.apply(hc, objs)
    server = _server(Path(st.host_kubeconfig), st.host_context)
    doc = ClusterPKI(pki_dir, name="host").kubeconfig(
        server, context=CONTEXT, user=hostrbac.service_account_user(st.name, st.namespace),
        groups=(), namespace=st.namespace)
    path = kubeconfig_path(st)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)
    return True


def _server(kubeconfig: Path, context: str | None) -> str:
    doc: dict[str, Any] = yaml.safe_load(kubeconfig.read_text()) or {}
    want = context or doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == want), {})
    cluster = next((c["cluster"] for c in doc.get("clusters") or []
                    if c.get("name") == ctx.get("cluster")), {})
    return str(cluster["server"])


async def _drop_stale(hc: Client, name: str, namespace: str, keep: list[dict[str, Any]]) -> None:
    """Remove RBAC objects earlier values needed and these do not (``keep`` empty: all of
    them — ``delete``). Only objects named for this cluster and labelled with it."""
    cname = hostrbac.cluster_role_name(name, namespace)
    wanted = {(o["kind"], o["metadata"].get("namespace")) for o in keep}
    for res in (CLUSTERROLEBINDINGS, CLUSTERROLES):
        if (res.kind, None) not in wanted:
            with contextlib.suppress(errors.NotFound):
                await hc.delete(res, cname)
    selector = f"vkube.io/vcluster={name}"
    for res in (ROLEBINDINGS, ROLES):
        try:
            items = (await hc.list(res, label_selector=selector)).get("items") or []
        except errors.StatusError:
            continue
        for obj in items:
            meta = obj["metadata"]
            if meta["name"] == cname and (res.kind, meta["namespace"]) not in wanted:
                with contextlib.suppress(errors.NotFound):
                    await hc.delete(res, cname, namespace=meta["namespace"])


async def release(hc: Client, st: ClusterState) -> None:
    """``delete``: every RBAC object ``confine`` made, cluster-scoped ones and those in a
    host namespace that is kept too."""
    if st.host_kind == "embedded":
        await _drop_stale(hc, st.name, st.namespace, [])
        rbac = hostrbac.host_rbac(st.values, st.namespace)
        for obj in hostrbac.manifests(st.name, st.namespace, rbac, _labels(st))[:3]:
            res = by_kind(obj["apiVersion"], obj["kind"])
            assert res is not None
            with contextlib.suppress(errors.NotFound):
                await hc.delete(res, obj["metadata"]["name"], namespace=st.namespace)
    kubeconfig_path(st).unlink(missing_ok=True)


async def release_remote(hc: Client, name: str, namespace: str) -> None:
    """``delete`` of a cluster made on another machine: its grants outside the host namespace
    (the namespace's own go with it)."""
    await _drop_stale(hc, name, namespace, [])

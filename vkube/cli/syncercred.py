"""The syncer's confined host credential on the embedded host.

The CLI holds the user's host credentials (on the embedded host: its admin, system:masters);
the syncer must not. On the embedded host ``create``/``resume``/``--upgrade`` apply the
ServiceAccount ``vkube-NAME`` with the Role (and ClusterRole) of ``vkube.syncer.hostrbac`` and
write a kubeconfig whose client certificate, issued by the embedded host's CA, names that
ServiceAccount (no groups: RBAC matches a ServiceAccount subject by its user name), so the
syncer runs with exactly those grants. On any other host the same grants are applied and the
syncer gets a token of that ServiceAccount from a ``kubernetes.io/service-account-token``
Secret (Kubernetes' tokens controller fills it; deleting the Secret revokes it): no certificate
can be minted without the host's CA. Where the user may not create that RBAC, the syncer keeps
the user's kubeconfig and ``create`` says so.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vkube.cli.state import ClusterState

if TYPE_CHECKING:
    from vkube.client import Client

# yaml, the client and the RBAC derivation are imported where used: ``for_syncer`` runs in
# ``vkube create`` before the control plane starts, which must not wait for asyncio/aiohttp

FILE = "host-syncer.kubeconfig"
CONTEXT = "vkube-syncer"


def kubeconfig_path(st: ClusterState) -> Path:
    return st.dir / FILE


def for_syncer(st: ClusterState) -> tuple[str, str | None]:
    """The (kubeconfig, context) the cluster process gets for its host: the confined one when
    ``confine`` wrote it, else the user's own."""
    path = kubeconfig_path(st)
    if path.exists():
        return str(path), CONTEXT
    return st.host_kubeconfig, st.host_context


def _labels(st: ClusterState) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vkube", "app.kubernetes.io/instance": st.name,
            "vkube.io/vcluster": st.name}


async def _custom_resources(hc: Client, st: ClusterState) -> dict[str, tuple[str, bool]]:
    """The host's plural and scope of every custom resource kind the values sync."""
    from vkube.api import errors
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
    from vkube.api import yamlio

    from vkube.syncer import hostrbac
    if st.host_kind != "embedded":
        return await _confine_with_token(hc, st)
    from vkube.cli import render
    from vkube.cli.hosting import host_dir
    from vkube.pki.cluster import ClusterPKI

    pki_dir = host_dir() / "data" / "pki"
    if not (pki_dir / "ca.crt").exists() or not (pki_dir / "ca.key").exists():
        return False  # never mint a new CA here: the host would not trust it
    rbac = hostrbac.host_rbac(st.values, st.namespace, await _custom_resources(hc, st))
    objs = hostrbac.manifests(st.name, st.namespace, rbac, _labels(st))
    await render.apply(hc, objs)
    await drop_stale(hc, st.name, st.namespace, objs)  # after: the syncer is never ungranted
    server = _server(Path(st.host_kubeconfig), st.host_context)
    doc = ClusterPKI(pki_dir, name="host").kubeconfig(
        server, context=CONTEXT, user=hostrbac.service_account_user(st.name, st.namespace),
        groups=(), namespace=st.namespace)
    from vkube.pki.certs import write_private  # cryptography loads only when writing

    write_private(kubeconfig_path(st), yamlio.dump(doc, sort_keys=False).encode())
    return True


TOKEN_SECRET = "{name}-syncer-token"


async def _confine_with_token(hc: Client, st: ClusterState) -> bool:
    """A host whose CA we do not hold: the same grants, and a ServiceAccount token Secret."""
    from vkube.api import yamlio

    from vkube.api import errors
    from vkube.syncer import hostrbac
    import asyncio
    import base64
    import sys

    from vkube.cli import render
    from vkube.client.resources import SECRETS

    sa = f"vkube-{st.name}"
    secret_name = TOKEN_SECRET.format(name=sa)
    try:
        rbac = hostrbac.host_rbac(st.values, st.namespace, await _custom_resources(hc, st))
        objs = hostrbac.manifests(st.name, st.namespace, rbac, _labels(st))
        await render.apply(hc, objs)
        await drop_stale(hc, st.name, st.namespace, objs)
        with contextlib.suppress(errors.AlreadyExists):
            await hc.create(SECRETS, {
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": secret_name, "namespace": st.namespace, "labels": _labels(st),
                             "annotations": {"kubernetes.io/service-account.name": sa}}},
                namespace=st.namespace)
        token = ""
        for _ in range(150):  # the host's tokens controller fills it in
            data = (await hc.get(SECRETS, secret_name, namespace=st.namespace)).get("data") or {}
            if data.get("token"):
                token = base64.b64decode(data["token"]).decode()
                break
            await asyncio.sleep(0.2)
    except errors.StatusError as exc:
        print(f"warning: the syncer keeps your host credentials: its confined ServiceAccount could "
              f"not be set up ({exc})", file=sys.stderr)
        return False
    if not token:
        print(f"warning: the syncer keeps your host credentials: the host filled no token into "
              f"{st.namespace}/{secret_name} within 30 s", file=sys.stderr)
        return False
    cluster = _cluster(Path(st.host_kubeconfig), st.host_context)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": CONTEXT, "cluster": cluster}],
           "users": [{"name": CONTEXT, "user": {"token": token}}],
           "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT,
                                                      "namespace": st.namespace}}],
           "current-context": CONTEXT}
    from vkube.pki.certs import write_private  # cryptography loads only when writing

    write_private(kubeconfig_path(st), yamlio.dump(doc, sort_keys=False).encode())
    return True


def _cluster(kubeconfig: Path, context: str | None) -> dict[str, Any]:
    """The user's cluster entry with its CA embedded (a relative file would not resolve)."""
    from vkube.api import yamlio
    import base64

    doc: dict[str, Any] = yamlio.load(kubeconfig.read_text()) or {}
    want = context or doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == want), {})
    cluster = dict(next((c["cluster"] for c in doc.get("clusters") or []
                         if c.get("name") == ctx.get("cluster")), {}))
    ca_file = cluster.pop("certificate-authority", None)
    if ca_file and "certificate-authority-data" not in cluster:
        path = Path(ca_file)
        if not path.is_absolute():
            path = kubeconfig.parent / path
        cluster["certificate-authority-data"] = base64.b64encode(path.read_bytes()).decode()
    return cluster


def _server(kubeconfig: Path, context: str | None) -> str:
    return str(_cluster(kubeconfig, context)["server"])


async def drop_stale(hc: Client, name: str, namespace: str, keep: list[dict[str, Any]]) -> None:
    """Remove RBAC objects outside the host namespace that earlier values needed and ``keep``
    does not hold (``keep`` empty: all of them — ``delete``), and those earlier versions made
    under the former name (``hostrbac.legacy_cluster_role_name``). Only objects
    ``hostrbac.owns`` proves this cluster's: never another cluster's that shares a name, and
    a delete is conditional on the uid that was checked."""
    from vkube.api import errors
    from vkube.client.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES
    from vkube.syncer import hostrbac
    names = {hostrbac.cluster_role_name(name, namespace),
             hostrbac.legacy_cluster_role_name(name, namespace)}
    wanted = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in keep}
    selector = f"vkube.io/vcluster={name}"
    # bindings before roles: no binding is left naming a role that is gone
    for res in (CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES):
        try:
            items = (await hc.list(res, label_selector=selector)).get("items") or []
        except errors.StatusError:
            if res.namespaced:
                continue  # the Roles outside the host namespace: best effort, as before
            raise
        for obj in items:
            meta = obj["metadata"]
            ns = meta.get("namespace") if res.namespaced else None
            if meta["name"] not in names or (res.kind, ns, meta["name"]) in wanted \
                    or not hostrbac.owns(obj, name, namespace):
                continue
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await hc.delete(res, meta["name"], namespace=ns,
                                preconditions={"uid": meta["uid"]})


async def release(hc: Client, st: ClusterState) -> None:
    """``delete``: every RBAC object ``confine`` made, cluster-scoped ones and those in a
    host namespace that is kept too."""
    from vkube.api import errors
    from vkube.client.resources import by_kind
    from vkube.syncer import hostrbac
    if kubeconfig_path(st).exists() or st.host_kind == "embedded":
        await drop_stale(hc, st.name, st.namespace, [])
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
    await drop_stale(hc, name, namespace, [])

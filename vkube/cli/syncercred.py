"""The syncer's confined host credential.

The CLI holds the user's host credentials (on the embedded host: its admin, system:masters);
the syncer must not. ``create``/``resume``/``--upgrade`` apply the ServiceAccount
``vkube-NAME`` with the Role (and ClusterRole) of ``vkube.syncer.hostrbac`` and hand the
syncer a token of that ServiceAccount from a ``kubernetes.io/service-account-token`` Secret
(the host's tokens controller fills it; deleting the Secret or the ServiceAccount revokes it),
so the syncer runs with exactly those grants. A token, not a client certificate: a
certificate's CN (at most 64 characters, RFC 5280) cannot hold
``system:serviceaccount:NAMESPACE:vkube-NAME`` for long names, and off the embedded host no
certificate can be minted without the host's CA. On the embedded host a failure to confine is
an error; elsewhere, where the user may not create that RBAC, the syncer keeps the user's
kubeconfig and ``create`` says so.
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
    """Apply the syncer's RBAC on the host (``hc``: the user's host client) and write its
    kubeconfig; False (nothing done, a warning printed) where another host refuses it.
    Idempotent: resume and ``--upgrade`` call it again, so the grants follow the values."""
    return await _confine_with_token(hc, st, strict=st.host_kind == "embedded")


TOKEN_SECRET = "{name}-syncer-token"


async def _confine_with_token(hc: Client, st: ClusterState, *, strict: bool) -> bool:
    """The grants, and a ServiceAccount token Secret. ``strict`` (the embedded host, where the
    user is its admin): a failure raises rather than leave the syncer the admin's credential."""
    from vkube.api import yamlio

    from vkube.api import errors
    from vkube.syncer import hostrbac
    import asyncio
    import sys

    from vkube.client.resources import SECRETS

    sa = f"vkube-{st.name}"
    secret_name = TOKEN_SECRET.format(name=sa)
    try:
        rbac = hostrbac.host_rbac(st.values, st.namespace, await _custom_resources(hc, st))
        objs = hostrbac.manifests(st.name, st.namespace, rbac, _labels(st))
        # together (a few group commits on the host, not one round trip each): the stale
        # objects it drops never share a name with these
        await asyncio.gather(_apply(hc, objs), drop_stale(hc, st.name, st.namespace, objs))
        with contextlib.suppress(errors.AlreadyExists):
            await hc.create(SECRETS, {
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": secret_name, "namespace": st.namespace, "labels": _labels(st),
                             "annotations": {"kubernetes.io/service-account.name": sa}}},
                namespace=st.namespace)
        # the host's tokens controller fills it in (on the embedded host: at once)
        token = await _filled_token(hc, st.namespace, secret_name, timeout=30.0)
    except errors.StatusError as exc:
        if strict:
            raise
        print(f"warning: the syncer keeps your host credentials: its confined ServiceAccount could "
              f"not be set up ({exc})", file=sys.stderr)
        return False
    if not token:
        if strict:
            from vkube.cli.output import CLIError

            raise CLIError(f"the host filled no token into {st.namespace}/{secret_name} within "
                           f"30 s — is it running? `vkube host status`")
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


async def _apply(hc: Client, objs: list[dict[str, Any]]) -> None:
    """The ServiceAccount and roles together, then the bindings together: a binding after
    the role it names (a host that is not the user's own checks escalation against it)."""
    import asyncio

    from vkube.cli import render

    first = [o for o in objs if not o["kind"].endswith("Binding")]
    then = [o for o in objs if o["kind"].endswith("Binding")]
    for group in (first, then):
        await asyncio.gather(*(render.apply(hc, [o]) for o in group))


async def _filled_token(hc: Client, namespace: str, name: str, *, timeout: float) -> str:
    """The token a tokens controller writes into the Secret ``name`` (decoded), watched for
    rather than polled; "" when none came within ``timeout`` seconds."""
    import asyncio
    import base64

    from vkube.api import errors
    from vkube.client.resources import SECRETS

    def token_of(obj: dict[str, Any]) -> str:
        data = obj.get("data") or {}
        return base64.b64decode(data["token"]).decode() if data.get("token") else ""

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    watch, pause = True, 0.02
    while loop.time() < deadline:
        secret = await hc.get(SECRETS, name, namespace=namespace)
        if token := token_of(secret):
            return token
        if not watch:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)
            continue
        left = max(1, int(deadline - loop.time()))
        try:
            async with asyncio.timeout(left):
                async for ev in hc.watch(SECRETS, namespace=namespace, field_selector=f"metadata.name={name}",
                                         resource_version=secret["metadata"].get("resourceVersion"),
                                         allow_bookmarks=False, timeout_seconds=left):
                    if ev.type in ("ADDED", "MODIFIED") and (token := token_of(ev.object)):
                        return token
        except (TimeoutError, errors.Gone):
            pass  # read it again; the deadline ends the loop
        except errors.StatusError:
            watch = False  # a user who may read Secrets but not watch them: poll as before
    return ""


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
    order = (CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES)

    async def listed(res: Any) -> list[dict[str, Any]]:
        try:
            return (await hc.list(res, label_selector=selector)).get("items") or []
        except errors.StatusError:
            if res.namespaced:
                return []  # the Roles outside the host namespace: best effort, as before
            raise

    import asyncio

    # listed together; deleted bindings before roles: no binding is left naming a role that is gone
    for res, items in zip(order, await asyncio.gather(*(listed(res) for res in order))):
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
    from vkube.client.resources import SECRETS, by_kind
    from vkube.syncer import hostrbac
    if kubeconfig_path(st).exists() or st.host_kind == "embedded":
        await drop_stale(hc, st.name, st.namespace, [])
        rbac = hostrbac.host_rbac(st.values, st.namespace)
        for obj in hostrbac.manifests(st.name, st.namespace, rbac, _labels(st))[:3]:
            res = by_kind(obj["apiVersion"], obj["kind"])
            assert res is not None
            with contextlib.suppress(errors.NotFound):
                await hc.delete(res, obj["metadata"]["name"], namespace=st.namespace)
        with contextlib.suppress(errors.NotFound):  # its token (a kept namespace keeps it else)
            await hc.delete(SECRETS, TOKEN_SECRET.format(name=f"vkube-{st.name}"),
                            namespace=st.namespace)
    kubeconfig_path(st).unlink(missing_ok=True)


async def release_remote(hc: Client, name: str, namespace: str) -> None:
    """``delete`` of a cluster made on another machine: its grants outside the host namespace
    (the namespace's own go with it)."""
    await drop_stale(hc, name, namespace, [])


async def release_orphans(hc: Client, name: str) -> list[str]:
    """``delete NAME`` of a cluster neither this machine nor the host knows (a ``create``
    that failed half-way, in an earlier version): the host RBAC and token Secret that
    ``confine`` labelled for ``name``, whichever host namespace they were made for. Only
    objects :func:`vkube.syncer.hostrbac.owns` proves this cluster's. Returns what was removed,
    as ``kind/[namespace/]name``."""
    from vkube.api import errors
    from vkube.client.resources import (CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES,
                                        SECRETS, SERVICEACCOUNTS)
    from vkube.syncer import hostrbac

    selector = f"vkube.io/vcluster={name}"
    sa = f"vkube-{name}"
    found: dict[str, list[dict[str, Any]]] = {}
    for res in (CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES):
        with contextlib.suppress(errors.StatusError):
            found[res.kind] = (await hc.list(res, label_selector=selector)).get("items") or []
    # the host namespaces they were made for: a binding's subject names it, a name derives it
    namespaces: set[str] = set()
    for items in found.values():
        for obj in items:
            for s in obj.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace"):
                    namespaces.add(s["namespace"])
            n = obj["metadata"]["name"]
            if n.startswith("vkube-") and n.endswith(f".{name}"):
                namespaces.add(n[len("vkube-"):-len(name) - 1])
            if n == sa and obj["metadata"].get("namespace"):
                namespaces.add(obj["metadata"]["namespace"])
    removed: list[str] = []
    for ns in sorted(namespaces):
        await drop_stale(hc, name, ns, [])
        for res in (ROLEBINDINGS, ROLES, SECRETS, SERVICEACCOUNTS):  # in the host namespace
            obj_name = TOKEN_SECRET.format(name=sa) if res is SECRETS else sa
            try:
                obj = await hc.get(res, obj_name, namespace=ns)
            except errors.StatusError:
                continue
            labels = obj["metadata"].get("labels") or {}
            if labels.get("vkube.io/vcluster") != name or labels.get("app.kubernetes.io/name") != "vkube":
                continue
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await hc.delete(res, obj_name, namespace=ns,
                                preconditions={"uid": obj["metadata"]["uid"]})
                removed.append(f"{res.kind.lower()}/{ns}/{obj_name}")
    for res in (CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES):
        for obj in found.get(res.kind, []):
            meta = obj["metadata"]
            if any(hostrbac.owns(obj, name, ns) for ns in namespaces):
                where = f"{meta['namespace']}/" if meta.get("namespace") else ""
                removed.append(f"{res.kind.lower()}/{where}{meta['name']}")
    return removed

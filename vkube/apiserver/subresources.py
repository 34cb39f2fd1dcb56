"""Kind-specific subresources: pods/binding, pods/eviction, pods/log (proxied to the node's
kubelet endpoint, real or simulated), namespaces/finalize."""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
from aiohttp import web

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.apiserver import http
from vkube.api.meta import Obj, rfc3339
from vkube.apiserver.admission.connect import admit_connect
from vkube.apiserver.context import Context
from vkube.apiserver.dialpolicy import Refused
from vkube.apiserver.podlogopts import check_log_options
from vkube.apiserver.request import RequestContext
from vkube.netio import offered_protocols, relay_websockets


def _core(ctx: Context, kind: str) -> Any:
    storage = ctx.storage_for("", kind)
    assert storage is not None
    return storage


async def binding(ctx: Context, request: web.Request, rc: RequestContext) -> web.Response:
    """POST pods/NAME/binding: set spec.nodeName once, as the scheduler does."""
    info = rc.info
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = http.decode_body(await http.read_body(request), request.headers.get("Content-Type", http.JSON))
    target = (body or {}).get("target") if isinstance(body, dict) else None
    node = (target or {}).get("name") if isinstance(target, dict) else None
    if not node or not isinstance(node, str):
        raise errors.invalid("Binding", info.name, [errors.field_error("target.name", "Required value", reason="FieldValueRequired")])
    name = info.name or ((body.get("metadata") or {}).get("name"))
    pods = _core(ctx, "Pod")
    now = rfc3339(ctx.clock())

    def bind(pod: Obj) -> Obj:
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise errors.Conflict(f"pod {name} is already assigned to node \"{current}\"")
        pod["spec"]["nodeName"] = node
        status = pod.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now})
        status["conditions"] = conds
        return pod

    # typed: bind sets a checked string and a condition on the stored (checked) pod
    await pods.update_with(rc, info.namespace, name, bind, subresource="binding", typed=True)
    return http.json_response(http.success_status(201), 201)


async def eviction(ctx: Context, request: web.Request, rc: RequestContext) -> web.Response:
    """POST pods/NAME/eviction: delete unless a PodDisruptionBudget forbids it (429)."""
    info = rc.info
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = http.decode_body(await http.read_body(request), request.headers.get("Content-Type", http.JSON))
    if not isinstance(body, dict):
        raise errors.BadRequest("the body of an eviction must be an Eviction object")
    pods = _core(ctx, "Pod")
    pod = await pods.get(rc, info.namespace, info.name)
    if pod["metadata"].get("deletionTimestamp"):
        return http.json_response(http.success_status(201), 201)
    pdb_storage = ctx.storage_for("policy", "PodDisruptionBudget")
    phase = (pod.get("status") or {}).get("phase")
    if pdb_storage is not None and phase not in ("Succeeded", "Failed", "Pending"):
        from vkube.api.selectors import label_selector_from_dict

        labels = pod["metadata"].get("labels") or {}
        pdbs = (await pdb_storage.list(rc, info.namespace)).items
        matching = [p for p in pdbs
                    if (p.get("spec") or {}).get("selector") is not None
                    and label_selector_from_dict(p["spec"]["selector"]).matches(labels)]
        if len(matching) > 1:
            raise errors.internal_error("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
        for pdb in matching:
            allowed = int((pdb.get("status") or {}).get("disruptionsAllowed") or 0)
            if allowed <= 0:
                raise errors.TooManyRequests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    details={"causes": [{"reason": "DisruptionBudget",
                                         "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                                    f"{(pdb.get('status') or {}).get('desiredHealthy', 0)} healthy pods and has "
                                                    f"{(pdb.get('status') or {}).get('currentHealthy', 0)} currently"}]},
                    retry_after=10,
                )

            def take(p: Obj) -> Obj:
                st = p.setdefault("status", {})
                if int(st.get("disruptionsAllowed") or 0) <= 0:
                    raise errors.TooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", retry_after=10)
                st["disruptionsAllowed"] = int(st["disruptionsAllowed"]) - 1
                st.setdefault("disruptedPods", {})[info.name] = rfc3339(ctx.clock())
                return p

            await pdb_storage.update_with(rc, info.namespace, pdb["metadata"]["name"], take, subresource="status")
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise errors.BadRequest("deleteOptions: must be a DeleteOptions object")
    if options.get("dryRun"):
        rc = rc.replace(dry_run=True)
    await pods.delete(rc, info.namespace, info.name, options=options)
    return http.json_response(http.success_status(201), 201)


async def finalize(ctx: Context, request: web.Request, rc: RequestContext) -> web.Response:
    """PUT namespaces/NAME/finalize: only spec.finalizers change; an empty list on a terminating
    namespace removes it."""
    info = rc.info
    if request.method != "PUT":
        raise errors.method_not_allowed()
    body = http.decode_body(await http.read_body(request), request.headers.get("Content-Type", http.JSON))
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a Namespace object")
    wanted = (body.get("spec") or {}).get("finalizers") or []
    namespaces = _core(ctx, "Namespace")

    def set_finalizers(ns: Obj) -> Obj:
        ns.setdefault("spec", {})["finalizers"] = list(wanted)
        if not wanted:
            ns["spec"].pop("finalizers")
        return ns

    obj, _ = await namespaces.update_with(rc, None, info.name, set_finalizers, subresource="finalize")
    return http.json_response(obj)


async def pod_log(ctx: Context, request: web.Request, rc: RequestContext) -> web.StreamResponse:
    """GET pods/NAME/log: proxied to the kubelet endpoint the pod's node advertises."""
    info = rc.info
    check_log_options(info.name, request.query)  # before the pod, as kube-apiserver
    pod = await _core(ctx, "Pod").get(rc, info.namespace, info.name)
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    init_names = [c.get("name") for c in spec.get("initContainers") or []]
    eph_names = [c.get("name") for c in spec.get("ephemeralContainers") or []]
    container = request.query.get("container", "")
    if not container:
        if len(names) != 1:
            raise errors.BadRequest(
                f"a container name must be specified for pod {info.name}, choose one of: [{' '.join(map(str, names))}]"
                + (f" or one of the init containers: [{' '.join(map(str, init_names))}]" if init_names else "")
            )
        container = str(names[0])
    elif container not in names + init_names + eph_names:
        raise errors.BadRequest(f"container {container} is not valid for pod {info.name}")
    if container in eph_names and request.query.get("previous") not in ("true", "1"):
        # an ephemeral container the kubelet has not started (or a syncer did not pass on)
        # has no log yet: the kubelet's own answer, without asking a kubelet that never had it
        st = next((s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or ()
                   if s.get("name") == container), None)
        waiting = ((st or {}).get("state") or {}).get("waiting")
        if st is None or (waiting is not None and not st.get("containerID")):
            reason = (waiting or {}).get("reason") or "ContainerCreating"
            raise errors.BadRequest(f'container "{container}" in pod "{info.name}" is waiting to start: {reason}')
        ended = ((st or {}).get("state") or {}).get("terminated")
        if ended is not None and not st.get("containerID"):  # never started (syncer refused)
            # the kubelet's words for a terminated container without one, and why
            why = ": ".join(str(x) for x in (ended.get("reason"), ended.get("message")) if x)
            raise errors.BadRequest(f'container "{container}" in pod "{info.name}" is '
                                    f'terminated{": " + why if why else ""}')
    node_name = spec.get("nodeName")
    if not node_name:
        raise errors.BadRequest(f'container "{container}" in pod "{info.name}" is waiting to start: ContainerCreating')
    node = await _core(ctx, "Node").get(rc, None, node_name)
    address, port, tls_name = await _kubelet_target(ctx, node, node_name)
    params = {k: v for k, v in request.query.items()
              if k in ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")}
    url = f"https://{address}:{port}/containerLogs/{info.namespace}/{info.name}/{container}"
    session = ctx.http_session()
    try:
        upstream = await session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                                     **({"server_hostname": tls_name} if tls_name else {}))
    except aiohttp.ClientError as exc:
        raise errors.ServiceUnavailable(f"unable to reach the kubelet of node {node_name}: {exc}") from None
    async with upstream:
        if upstream.status != 200:
            text = (await upstream.text())[:1000]
            raise errors.BadRequest(text.strip() or f"kubelet answered {upstream.status}")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp


EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io",
                  "base64.channel.k8s.io", "portforward.k8s.io")


async def pod_stream(ctx: Context, request: web.Request, rc: RequestContext) -> web.StreamResponse:
    """pods/exec, attach, portforward: a WebSocket relayed frame by frame to the kubelet's
    endpoint of the pod's node, keeping the negotiated channel protocol."""
    info = rc.info
    pod = await _core(ctx, "Pod").get(rc, info.namespace, info.name)
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    container = request.query.get("container", "")
    if info.subresource != "portforward":
        if not container:
            container = str(names[0]) if names else ""
        elif container not in names + [c.get("name") for key in ("initContainers", "ephemeralContainers")
                                       for c in spec.get(key) or []]:
            raise errors.BadRequest(f"container {container} is not valid for pod {info.name}")
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        raise errors.BadRequest(f"cannot exec into a container in a completed pod; current phase is {pod['status']['phase']}")
    node_name = spec.get("nodeName")
    if not node_name:
        raise errors.BadRequest(f"pod {info.name} does not have a host assigned")
    await admit_connect(ctx, _core(ctx, "Pod").spec, rc, request.query, container)
    node = await _core(ctx, "Node").get(rc, None, node_name)
    address, port, tls_name = await _kubelet_target(ctx, node, node_name)
    if not web.WebSocketResponse(protocols=EXEC_PROTOCOLS).can_prepare(request).ok:
        raise errors.BadRequest(f"{info.subresource} requires a WebSocket upgrade (channel.k8s.io protocols)")
    # in process: a virtual cluster's syncer, or the embedded host's kubelet (None: dial)
    local = ctx.kubelet_connector(info.subresource, info.namespace, info.name, container or None,
                                  list(request.query.items()),
                                  offered_protocols(request.headers) or list(EXEC_PROTOCOLS)
                                  ) if ctx.kubelet_connector is not None else None
    if local is not None:
        async with local as upstream:
            ws = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else EXEC_PROTOCOLS)
            await ws.prepare(request)
            await relay_websockets(ws, upstream)
        return ws
    path = {"exec": "exec", "attach": "attach", "portforward": "portForward"}[info.subresource]
    target = f"https://{address}:{port}/{path}/{info.namespace}/{info.name}" + (f"/{container}" if container else "")
    protocols = offered_protocols(request.headers)
    session = ctx.http_session()
    try:
        upstream = await session.ws_connect(target, params=list(request.query.items()), protocols=protocols or EXEC_PROTOCOLS,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                            **({"server_hostname": tls_name} if tls_name else {}))
    except (aiohttp.ClientError, OSError) as exc:
        raise errors.ServiceUnavailable(f"unable to upgrade connection to the kubelet of node {node_name}: {exc}") from None
    # answer the client with the protocol the kubelet chose
    ws = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else EXEC_PROTOCOLS)
    await ws.prepare(request)

    async with upstream:
        await relay_websockets(ws, upstream)
    return ws


async def _kubelet_target(ctx: Context, node: Obj, node_name: str) -> tuple[str, int, str | None]:
    """(address, port, TLS name or None) of the kubelet to dial: the control plane's own
    endpoint when it set one, else the Node's — a tenant may write any Node, so a restricted
    dial policy checks that address first (dialpolicy: never this machine's own)."""
    if ctx.kubelet_endpoint:
        return ctx.kubelet_endpoint[0], ctx.kubelet_endpoint[1], None
    address, port = _kubelet_endpoint(node)
    if not address or not port:
        raise errors.ServiceUnavailable(f"node {node_name} has no kubelet endpoint")
    try:
        checked = await ctx.dial_policy.resolve(str(address), int(port))
    except Refused as exc:
        raise errors.ServiceUnavailable(f"unable to reach the kubelet of node {node_name}: {exc}") from None
    host = f"[{checked}]" if ":" in checked else checked
    return host, int(port), (str(address) if checked != str(address) else None)


def _kubelet_endpoint(node: Obj) -> tuple[str | None, int | None]:
    status = node.get("status") or {}
    port = (((status.get("daemonEndpoints") or {}).get("kubeletEndpoint")) or {}).get("Port")
    address = None
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        for a in status.get("addresses") or []:
            if a.get("type") == kind:
                address = a.get("address")
                break
        if address:
            break
    return address, port


def handler_for(spec: ResourceSpec, sub: str) -> Any:
    if spec.group == "" and spec.kind == "Pod":
        return {"binding": binding, "eviction": eviction, "log": pod_log, "exec": pod_stream,
                "attach": pod_stream, "portforward": pod_stream}.get(sub)
    if spec.group == "" and spec.kind == "Namespace" and sub == "finalize":
        return finalize
    if spec.group == "" and spec.kind == "ServiceAccount" and sub == "token":
        from vkube.apiserver.tokens import token_request

        return token_request
    return None

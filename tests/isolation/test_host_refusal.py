"""A pod the host refuses is never a silent Pending: the virtual pod shows the host's reason
(condition, status reason/message, Warning event) and is synced once the host accepts it."""

from __future__ import annotations

import asyncio

from vkube.client import Client
from vkube.client.resources import EVENTS, NAMESPACES, PODS
from vkube.syncer import load_values

from tests.syncer.conftest import (HOST_NS, VC, eventually, getter, planes,  # noqa: F401
                                   start_syncer, stop_syncer)


async def test_host_refusal_surfaces_and_clears(planes):  # noqa: F811
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values(""))
    v, h = pair.virtual, pair.host
    try:
        # the host namespace is being deleted (no namespace controller finishes it here): the
        # host's API refuses every new pod with 403, as it does past a quota
        await h.delete(NAMESPACES, HOST_NS)
        await v.create(PODS, {"metadata": {"name": "web", "namespace": "default"}, "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "nginx"}]}}, namespace="default")

        def refused(words):
            async def check():
                pod = await v.get(PODS, "web", namespace="default")
                status = pod.get("status") or {}
                assert status.get("reason") == "HostRefused", status
                assert status["message"].startswith("the host refused the pod: ")
                assert words in status["message"], status
                cond = next(c for c in status["conditions"] if c["type"] == "PodScheduled")
                assert cond["status"] == "False" and cond["reason"] == "HostRefused"
                assert cond["message"] == status["message"]
                events = (await v.list(EVENTS, namespace="default"))["items"]
                ev = [e for e in events if e["involvedObject"]["name"] == "web"
                      and e["reason"] == "HostRefused" and e["message"] == status["message"]]
                assert ev and ev[0]["type"] == "Warning"
                return pod
            return check
        pod = await eventually(refused(f"unable to create new content in namespace {HOST_NS} "
                                       "because it is being terminated"), attempts=400)
        # retried with backoff, without writing the same refusal again
        await asyncio.sleep(1.0)
        again = await v.get(PODS, "web", namespace="default")
        assert again["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]

        # the namespace goes: a new refusal, in the host's new words
        ns = await h.get(NAMESPACES, HOST_NS)
        ns["spec"]["finalizers"] = []
        await h.update(NAMESPACES, ns, subresource="finalize")
        await eventually(refused(f'namespaces "{HOST_NS}" not found'), attempts=600)

        # and once the host accepts, the pod is synced and the refusal is gone
        await h.create(NAMESPACES, {"metadata": {"name": HOST_NS}})
        await eventually(getter(h, PODS, f"web-x-default-x-{VC}", HOST_NS), attempts=1200)

        async def cleared():
            status = (await v.get(PODS, "web", namespace="default")).get("status") or {}
            assert "reason" not in status and "message" not in status, status
            assert not any(c.get("reason") == "HostRefused"
                           for c in status.get("conditions") or [])
        await eventually(cleared, attempts=400)
    finally:
        await stop_syncer(pair)


async def test_rejected_pod_is_not_synced_and_names_checks(planes):  # noqa: F811
    vcp, hcp = planes
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h:
        await h.create(NAMESPACES, {"metadata": {"name": HOST_NS}})
    values = load_values("isolation: {enabled: true, podSecurityStandard: restricted, "
                         "allowedRegistries: [ghcr.io/acme]}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await v.create(PODS, {"metadata": {"name": "plain", "namespace": "default"}, "spec": {
            "automountServiceAccountToken": False, "containers": [{"name": "c", "image": "nginx"}]}}, namespace="default")

        async def refused():
            status = (await v.get(PODS, "plain", namespace="default")).get("status") or {}
            assert status.get("reason") == "SyncRejected", status
            return status["message"]
        msg = await eventually(refused, attempts=400)
        assert msg.startswith('violates PodSecurity "restricted:latest": ')
        for words in ("allowPrivilegeEscalation != false", "unrestricted capabilities",
                      "runAsNonRoot != true", "seccompProfile"):
            assert words in msg
        assert msg.endswith('image registry not allowed (container "c" image "nginx"; '
                            'allowed: ghcr.io/acme)')
        assert not (await h.list(PODS, namespace=HOST_NS))["items"]

        # fixing the pod is a new pod (a pod's spec is immutable): it is synced
        await v.create(PODS, {"metadata": {"name": "fixed", "namespace": "default"}, "spec": {
            "automountServiceAccountToken": False, "securityContext": {"runAsNonRoot": True, "seccompProfile": {
                "type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "ghcr.io/acme/app:1", "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}},
            namespace="default")
        await eventually(getter(h, PODS, f"fixed-x-default-x-{VC}", HOST_NS), attempts=400)
        assert [p["metadata"]["name"] for p in (await h.list(PODS, namespace=HOST_NS))["items"]
                ] == [f"fixed-x-default-x-{VC}"]
    finally:
        await stop_syncer(pair)


async def test_quota_refusal_by_the_host(planes, monkeypatch):  # noqa: F811
    """Past the host's pod quota the host's own words reach the virtual pod, and stay there
    (the quota controller's recount never hands the charged pod's quota to it); once the
    quota is raised the pod is synced and the refusal is gone — at once, not after the
    refused pod's retry backoff, even when the retry on the raise reaches admission before
    the quota controller has copied the new limit into ``status.hard`` (what admission
    reads): that ordering, which load made happen now and then, is made certain here."""
    vcp, hcp = planes
    from vkube.client.resources import RESOURCEQUOTAS
    pair = await start_syncer(vcp, hcp, load_values(""))
    v, h = pair.virtual, pair.host
    _refused_wait_an_hour(pair)  # the raised quota itself must bring the refused pod back
    try:
        await h.create(RESOURCEQUOTAS, {"metadata": {"name": "q"}, "spec": {
            "hard": {"count/pods": "1"}}}, namespace=HOST_NS)
        # admission refuses ("status unknown for quota") until the quota controller has
        # computed the status, as kube-apiserver does
        await eventually(lambda: _quota_status_known(h, HOST_NS), attempts=600)
        for name in ("one", "two"):
            await v.create(PODS, {"metadata": {"name": name, "namespace": "default"}, "spec": {
                "automountServiceAccountToken": False,
                "containers": [{"name": "c", "image": "nginx"}]}}, namespace="default")

        async def refused() -> str:  # whichever of the two came second
            pods = (await v.list(PODS, namespace="default"))["items"]
            refusals = [p["metadata"]["name"] for p in pods
                        if (p.get("status") or {}).get("reason") == "HostRefused"
                        and "exceeded quota: q" in p["status"]["message"]]
            assert len(refusals) == 1, refusals
            events = (await v.list(EVENTS, namespace="default"))["items"]
            assert any(e["reason"] == "HostRefused" and e["type"] == "Warning"
                       and e["involvedObject"]["name"] == refusals[0] for e in events)
            return refusals[0]
        second = await eventually(refused, attempts=600)
        # it stays refused: retries (and the quota controller's recounts) let no 2nd pod in
        await asyncio.sleep(2.0)
        assert await refused() == second
        assert len((await h.list(PODS, namespace=HOST_NS))["items"]) == 1

        _quota_controller_late(monkeypatch)
        q = await h.get(RESOURCEQUOTAS, "q", namespace=HOST_NS)
        q["spec"]["hard"]["count/pods"] = "2"
        await h.update(RESOURCEQUOTAS, q)
        await eventually(getter(h, PODS, f"{second}-x-default-x-{VC}", HOST_NS), attempts=1200)

        async def cleared() -> None:
            status = (await v.get(PODS, second, namespace="default")).get("status") or {}
            assert status.get("reason") != "HostRefused", status
            assert not any(c.get("reason") == "HostRefused"
                           for c in status.get("conditions") or [])
        await eventually(cleared, attempts=600)
    finally:
        await stop_syncer(pair)


def _refused_wait_an_hour(pair) -> None:  # noqa: ANN001
    """A refused object's retry backoff becomes an hour: within a test's deadline only the
    syncer's watch of the host's quotas and LimitRanges can bring it back (other errors keep
    their backoff)."""
    for syncer in pair.syncer.syncers.values():
        queue, keys = syncer.queue, syncer.refusals.keys

        def slow(key: str, queue=queue, keys=keys, backoff=queue.add_rate_limited) -> None:  # noqa: ANN001
            if key in keys:
                queue.add_after(key, 3600)
            else:
                backoff(key)
        queue.add_rate_limited = slow


def _quota_controller_late(monkeypatch) -> None:  # noqa: ANN001
    """The quota controller handles each change a second late: the syncer's retry on the
    raised ``spec.hard`` meets the old ``status.hard`` and is refused once more, and only the
    controller's own write can bring the pod back."""
    from vkube.controllers.resourcequota import ResourceQuotaController
    reconcile = ResourceQuotaController.reconcile

    async def late(self, key: str) -> float | None:  # noqa: ANN001
        await asyncio.sleep(1.0)
        return await reconcile(self, key)
    monkeypatch.setattr(ResourceQuotaController, "reconcile", late)


async def _quota_status_known(h: Client, namespace: str) -> None:
    from vkube.client.resources import RESOURCEQUOTAS
    q = await h.get(RESOURCEQUOTAS, "q", namespace=namespace)
    assert (q.get("status") or {}).get("hard"), "quota status not computed yet"


async def test_every_kind_the_host_refuses_says_so_and_clears(planes):  # noqa: F811
    """Not only pods: a ConfigMap, Secret, Service, PVC, Ingress and NetworkPolicy the host
    refuses (here its quota) get a Warning event with the host's words on the virtual
    object; once the host takes them they are synced and a Normal event says so."""
    vcp, hcp = planes
    from vkube.client.resources import (CONFIGMAPS, INGRESSES, NETWORKPOLICIES, PVCS,
                                        RESOURCEQUOTAS, SECRETS, SERVICES)
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h:
        await h.create(NAMESPACES, {"metadata": {"name": HOST_NS}})
        await h.create(RESOURCEQUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": {
            "count/configmaps": "0", "count/secrets": "0", "count/services": "0",
            "count/persistentvolumeclaims": "0", "count/ingresses.networking.k8s.io": "0",
            "count/networkpolicies.networking.k8s.io": "0"}}}, namespace=HOST_NS)
        await eventually(lambda: _quota_status_known(h, HOST_NS), attempts=600)
    pair = await start_syncer(vcp, hcp, load_values(
        "sync: {configmaps: {all: true}, secrets: {all: true}}"))
    v, h = pair.virtual, pair.host
    _refused_wait_an_hour(pair)  # the quota's deletion itself must bring them back
    objects = [
        (CONFIGMAPS, "ConfigMap", {"data": {"k": "v"}}),
        (SECRETS, "Secret", {"stringData": {"k": "v"}}),
        (SERVICES, "Service", {"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}),
        (PVCS, "PersistentVolumeClaim", {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {
            "requests": {"storage": "1Gi"}}}}),
        (INGRESSES, "Ingress", {"spec": {"defaultBackend": {"service": {
            "name": "obj", "port": {"number": 80}}}}}),
        (NETWORKPOLICIES, "NetworkPolicy", {"spec": {"podSelector": {}}}),
    ]
    try:
        for res, _, body in objects:
            await v.create(res, {"metadata": {"name": "obj"}, **body}, namespace="default")

        def said(reason: str, words: str):
            async def check() -> None:
                events = (await v.list(EVENTS, namespace="default"))["items"]
                for _, kind, _ in objects:
                    assert any(e["involvedObject"]["kind"] == kind and e["reason"] == reason
                               and words in e["message"] for e in events), (kind, reason)
            return check
        await eventually(said("HostRefused", "exceeded quota: q"), attempts=1200)
        events = (await v.list(EVENTS, namespace="default"))["items"]
        ev = next(e for e in events if e["involvedObject"]["kind"] == "ConfigMap")
        assert ev["type"] == "Warning" and ev["message"].startswith(
            'the host refused the ConfigMap: configmaps "obj-x-default-x-vc1" is forbidden: '
            "exceeded quota: q")
        for res, _, _ in objects:
            assert not (await h.list(res, namespace=HOST_NS))["items"]

        await h.delete(RESOURCEQUOTAS, "q", namespace=HOST_NS)
        await eventually(said("HostAccepted", "the host accepted the"), attempts=2400)
        for res, _, _ in objects:
            await eventually(getter(h, res, f"obj-x-default-x-{VC}", HOST_NS), attempts=200)
    finally:
        await stop_syncer(pair)

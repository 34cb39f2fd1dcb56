"""Pods: the virtual pod is the spec, the host pod is the reality.

Down: create the rewritten host pod (after the ConfigMaps, Secrets, PVCs and token it needs),
keep its mutable fields (labels, annotations, images, activeDeadlineSeconds) current, delete it
with the virtual pod's grace period. Up: node (through the binding subresource) and status.
A host pod that disappears under a running virtual pod takes the virtual pod with it (its
controller makes a new one) — unless the host pod went while no syncer watched (pause/resume,
sleep/wake, failover) and the pod is bare or one its controller restarts (``restartPolicy:
Always``: Deployments, StatefulSets, DaemonSets): then it is made again, uid and all, as a
node's reboot keeps its pods; a virtual pod being deleted is finally removed once its host pod
is gone.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from vkube.api import errors
from vkube.api.kinds_other import SYSTEM_PRIORITY_CLASSES
from vkube.api.meta import Obj, now_rfc3339, object_key, ref_key, split_key
from vkube.client.resources import NAMESPACES, NODES, PODS, SERVICEACCOUNTS, SERVICES
from vkube.syncer.admission import (REASON_HOST, REASON_REJECTED, PodAdmission,
                                    host_refusal_message, surface_refusal)
from vkube.syncer.base import KindSyncer, SyncContext, delete_ignore_missing, deleting
from vkube.syncer.claims import ClaimsNotReady
from vkube.syncer.eventtext import virtual_text
from vkube.syncer.podgone import ANN_RESTARTS, as_shown, claims_to_run, mark_gone, restarts_before
from vkube.syncer.podowners import wait_owners
from vkube.syncer.podreplace import ANN_RULES, REASON_REPLACED, changed_fields, replaced_message, rules_digest
from vkube.syncer.podrewrite import (REASON_STRIPPED, REASON_SYSTEM_PRIORITY, USAGE_ANNOTATIONS, PodRejected,
                                     PodRewriteConfig, host_pod_name, referenced_objects, rewrite_pod,
                                     stripped_message, system_priority_message)
from vkube.syncer.refusals import is_refusal
from vkube.syncer.tokens import TokenManager
from vkube.syncer.translate import ANN_UID, fit_name
from vkube.syncer.values import MAX_USER_PRIORITY, Values, port_forward_targets

log = logging.getLogger(__name__)

#: on a virtual pod: its host pod was created. Older syncers wrote it (one more virtual write
#: and watch event per pod); it is still honoured, but the syncer now remembers host pods it
#: created or saw in memory, and after a restart a bound or started virtual pod tells the same.
ANN_HOST_UID = "vkube.io/host-uid"
STATUS_FIELDS = ("phase", "conditions", "message", "reason", "hostIP", "hostIPs", "podIP",
                 "podIPs", "startTime", "initContainerStatuses", "containerStatuses",
                 "ephemeralContainerStatuses", "qosClass", "resize")
TERMINAL = ("Succeeded", "Failed")


def workload_service_account(vc: str) -> str:
    return fit_name(f"vc-workload-{vc}", 253)


class PodSyncer(KindSyncer):
    kind = "pods"
    #: reconciles at once (over the client's keep-alive pool): a rollout's creates and status
    #: copies wait on round trips to either API, so 4 left both servers idle between
    #: requests; one key is never on two workers
    workers = 24
    #: host pod creates in flight at most; the other workers stay free for bindings and
    #: status going up. A rollout queues a thousand creates at once, and with every worker
    #: waiting on the host, pods already running there waited behind them (bench_rollout:
    #: the virtual side bound and showed Running 30-90 s after the host had them Running)
    max_creates = 16
    #: status changes that move neither the phase nor readiness (scheduled, sandbox made, IP
    #: assigned, container waiting) wait until this many seconds after the pod's last binding
    #: or status write, so a kubelet's burst becomes fewer virtual writes (each a watch event
    #: for every virtual controller): a starting pod's PodScheduled condition then usually
    #: goes up with its Running status, one write instead of two; phase, readiness and
    #: deletion are written at once
    status_interval = 1.0

    def __init__(self, ctx: SyncContext) -> None:
        super().__init__(ctx)
        self.tokens = TokenManager(ctx)
        self.keep_node_name = ctx.values.sync.nodes.enable_scheduler
        self.admission = PodAdmission(ctx.values, cluster=ctx.name)
        self._host_sa_ready = False
        # virtual pod uids whose host pod existed (created by us or seen on the host): a host
        # pod missing later was deleted under the virtual pod, not never created
        self._had_host: set[str] = set()
        # per key, what our last writes did, until the virtual informer shows them
        self._sent: dict[str, _Sent] = {}
        # per key, the (virtual pod's, host pod's, namespace rv) inputs whose host pod was found
        # current: the echo of our own write, or a status-only change, skips the rewrite
        self._checked: dict[str, tuple[object, object, str]] = {}
        # per key, why the last update of a running pod was refused (one event per reason)
        self._refused_update: dict[str, str] = {}
        # per key, ephemeral containers (kubectl debug) not synced down, and why
        #: name: (reason, why, when) — shown as terminated, so ``kubectl debug`` ends with it
        self._refused_debug: dict[str, dict[str, tuple[str, str, str]]] = {}
        # digest of the values that shape host pods (a host pod made under others is judged
        # again: vkube.syncer.podreplace), and the virtual pod uids whose host pod we deleted
        # to make it again under them
        self._rules = rules_digest(ctx.values)
        self._replacing: set[str] = set()
        # host pod creates in flight, the keys waiting for a free one (in order), and those
        # queued again for a free one that no worker has taken yet
        self._creating = 0
        self._create_waiting: dict[str, None] = {}
        self._create_released: set[str] = set()

    def setup(self) -> None:
        inf = self.ctx.informers
        self.vinf = inf.virtual(PODS)
        self.hinf = inf.host(PODS)
        self.namespaces = inf.virtual(NAMESPACES)
        self.services = inf.virtual(SERVICES)
        self.vinf.add_handler(self._on_virtual)
        self.hinf.add_handler(self._on_host)
        self.namespaces.add_handler(self._on_namespace)

    def _on_virtual(self, typ: str, pod: Obj, old: Obj | None) -> None:
        key = object_key(pod)
        if typ == "DELETED":
            self._had_host.discard(pod["metadata"].get("uid", ""))
            self._sent.pop(key, None)
            self._checked.pop(key, None)
            self._refused_update.pop(key, None)
            self._refused_debug.pop(key, None)
            self._replacing.discard(pod["metadata"].get("uid", ""))
            self._create_waiting.pop(key, None)
            self._create_released.discard(key)
            self.refusals.forget(pod)
        self.enqueue(key)

    def _on_host(self, typ: str, hpod: Obj, old: Obj | None) -> None:
        key = self.host_key(hpod)
        if key is None:
            return
        if typ != "DELETED" and (uid := _ann(hpod, ANN_UID)):
            self._had_host.add(uid)
        self.enqueue(key)

    def _on_namespace(self, typ: str, ns: Obj, old: Obj | None) -> None:
        if old is not None and (old["metadata"].get("labels") == ns["metadata"].get("labels")):
            return
        for pod in self.vinf.list(ns["metadata"]["name"]):
            self.enqueue(object_key(pod))

    def initial_keys(self) -> list[str]:
        keys = {object_key(o) for o in self.vinf.list()}
        keys |= {k for o in self.hinf.list() if (k := self.host_key(o))}
        return sorted(keys)

    async def prepare(self) -> None:
        """Pods that say they run but whose host pod is gone (paused, slept) are shown not
        running before the syncer is ready, never as they were (``vkube.syncer.podgone``),
        and so are they in their controllers' status (``vkube.syncer.podowners``)."""
        hns = self.ctx.host_namespace
        gone = [p for p in self.vinf.list() if claims_to_run(p) and self.hinf.get(
            host_pod_name(self.tr, p["metadata"]["name"], p["metadata"]["namespace"]), hns) is None]
        if gone:
            marked = await mark_gone(self.ctx.virtual, gone)
            # and their controllers' status no longer counts them (`kubectl rollout status`)
            await wait_owners(self.ctx.virtual, marked, self.vinf.list)

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        self._create_released.discard(key)
        try:
            await self._reconcile(key)
        finally:
            self._release_creates()

    def _release_creates(self) -> None:
        """Queue waiting keys again, as many as creates may start (``max_creates``)."""
        free = self.max_creates - self._creating - len(self._create_released)
        while free > 0 and self._create_waiting:
            key = next(iter(self._create_waiting))
            del self._create_waiting[key]
            self._create_released.add(key)
            self.queue.add(key)
            free -= 1

    async def _reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        assert ns is not None
        hname = host_pod_name(self.tr, name, ns)
        hns = self.ctx.host_namespace
        vpod = self.vinf.get(name, ns)
        hpod = self.hinf.get(hname, hns)
        if hpod is not None and not self.tr.owns(hpod, ns, name):
            return  # not this virtual pod's host pod: never reused, changed nor deleted
        if vpod is None:
            if hpod is not None and not deleting(hpod):
                await delete_ignore_missing(self.ctx.host, PODS, hname, hns)
            return
        if deleting(vpod):
            await self._deleting(vpod, hpod, hname)
            return
        if hpod is not None and _ann(hpod, ANN_UID) != vpod["metadata"].get("uid"):
            # a new virtual pod reuses the name of one whose host pod still exists
            if not deleting(hpod):
                await delete_ignore_missing(self.ctx.host, PODS, hname, hns,
                                            grace_period_seconds=0)
            return
        if hpod is None:
            await self._create_or_gone(vpod, hname)
            return
        if deleting(hpod) and vpod["metadata"].get("uid") in self._replacing:
            return  # its end is not the virtual pod's: the new host pod's status goes up
        await self._update_host(key, vpod, hpod)
        await self._sync_ephemeral(key, vpod, hpod)
        await self._refresh_token(vpod, key)
        await self._sync_up(key, vpod, hpod)

    async def _refresh_token(self, vpod: Obj, key: str) -> None:
        """Renew the pod's token Secret when due, and come back when it next is."""
        sa = _token_service_account(vpod)
        if sa is None:
            return
        ns = vpod["metadata"]["namespace"]
        due = self.tokens.refresh_in(ns, sa)
        if due == 0 or due is None:
            await self.tokens.ensure(ns, sa)
            due = self.tokens.refresh_in(ns, sa)
        if due:
            self.queue.add_after(key, min(due + 1, 24 * 3600))

    async def _deleting(self, vpod: Obj, hpod: Obj | None, hname: str) -> None:
        meta = vpod["metadata"]
        if hpod is None:
            try:
                await self.ctx.virtual.delete(PODS, meta["name"], namespace=meta["namespace"],
                                              grace_period_seconds=0,
                                              preconditions={"uid": meta["uid"]})
            except (errors.NotFound, errors.Conflict):
                pass
            return
        if not deleting(hpod):
            grace = meta.get("deletionGracePeriodSeconds")
            await delete_ignore_missing(self.ctx.host, PODS, hname, self.ctx.host_namespace,
                                        grace_period_seconds=grace)
        await self._sync_up(object_key(vpod), vpod, hpod)

    async def _create_or_gone(self, vpod: Obj, hname: str) -> None:
        meta = vpod["metadata"]
        hns = self.ctx.host_namespace
        if self._had_host_pod(vpod):
            # we created a host pod once: someone deleted it (or it was evicted).
            try:
                await self.ctx.host.get(PODS, hname, namespace=hns)
                return  # just not in our cache yet
            except errors.NotFound:
                pass
            if (vpod.get("status") or {}).get("phase") in TERMINAL:
                return
            if await self._recreate_bare(vpod, hname):
                return
            log.info("host pod %s is gone: deleting virtual pod %s/%s", hname,
                     meta["namespace"], meta["name"])
            try:
                await self.ctx.virtual.delete(PODS, meta["name"], namespace=meta["namespace"],
                                              grace_period_seconds=0,
                                              preconditions={"uid": meta["uid"]})
            except (errors.NotFound, errors.Conflict):
                pass
            return
        if self.keep_node_name and not (vpod.get("spec") or {}).get("nodeName"):
            return  # the virtual scheduler has not placed it yet
        # a host pod is made without ephemeral containers (_sync_ephemeral adds each, judged
        # on its own): a refused debug container never keeps its pod from the host
        refusal = self.admission.check(_with_host_ephemeral(vpod, {}))
        if refusal is not None:
            await surface_refusal(self.ctx.virtual, self.ctx.recorder, vpod, REASON_REJECTED,
                                  refusal)
            return
        key = object_key(vpod)
        if self._creating >= self.max_creates:
            self._create_waiting[key] = None  # queued again once a create has finished
            return
        self._create_waiting.pop(key, None)
        self._creating += 1
        try:
            await self._create(vpod, hname)
        finally:
            self._creating -= 1

    async def _create(self, vpod: Obj, hname: str) -> None:
        meta = vpod["metadata"]
        hns = self.ctx.host_namespace
        try:
            host_pod = await self._desired(_with_host_ephemeral(vpod, {}))
            await self.ctx.host.create(PODS, host_pod, namespace=hns)
        except _AddressNotKnown as e:
            log.debug("pod %s/%s waits: %s", meta["namespace"], meta["name"], e)
            self.queue.add_after(object_key(vpod), 0.2)
            return
        except ClaimsNotReady as e:  # the pod's (or the claim's) next event brings it back
            log.debug("pod %s/%s waits: %s", meta["namespace"], meta["name"], e)
            if e.shown:
                await self.ctx.syncers["resourceclaims"].surface_wait(vpod, str(e))  # type: ignore[attr-defined]
            self.queue.add_after(object_key(vpod), 10.0)
            return
        except PodRejected as e:
            await surface_refusal(self.ctx.virtual, self.ctx.recorder, vpod, REASON_REJECTED,
                                  str(e))
            return
        except errors.AlreadyExists:
            return  # the host watch brings it; the next reconcile compares
        except (errors.BadRequest, errors.Forbidden, errors.NotFound, errors.Invalid,
                errors.RequestEntityTooLarge) as e:
            # the host's admission or validation said no (quota, LimitRange, Pod Security, a
            # missing namespace): the tenant sees why; retried with backoff (quota frees up)
            await surface_refusal(self.ctx.virtual, self.ctx.recorder, vpod, REASON_HOST,
                                  host_refusal_message(e))
            self.refusals.note(object_key(vpod))  # tried again when the host's quota moves
            raise
        self.refusals.keys.discard(object_key(vpod))
        self._had_host.add(meta.get("uid", ""))

    async def _recreate_bare(self, vpod: Obj, hname: str) -> bool:
        """A pod whose host pod vanished while no syncer watched it — the cluster was paused
        or slept, or leadership moved — comes back as its user left it, as pods do after
        their node's reboot: its host pod is made again from the virtual pod, on the node the
        virtual pod is bound to when the host still has it. That is every bare pod, and an
        owned one whose containers always restart (a Job's pod is replaced by its Job, as
        upstream fails it). Only a host pod this syncer itself saw disappear (deleted or
        evicted under a running syncer) takes a pod with it; one made under other values
        (``_made_again``) with an owner is replaced by its controller. True when handled."""
        meta = vpod["metadata"]
        replacing = meta.get("uid") in self._replacing
        owned = bool(meta.get("ownerReferences"))
        restarts = ((vpod.get("spec") or {}).get("restartPolicy") or "Always") == "Always"
        if (meta.get("uid") in self._had_host and not replacing) or \
                (owned and (replacing or not restarts)):
            return False
        base = _with_host_ephemeral(vpod, {})  # its debug containers come back one by one
        refusal = self.admission.check(base)  # made again under today's rules
        if refusal is None:
            try:
                host_pod = await self._desired(base)
            except PodRejected as e:
                refusal = str(e)
        if refusal is not None:
            # it ran until new values refused it: no longer shown running (it stays in
            # _replacing: values that allow it again bring it back)
            if replacing and claims_to_run(vpod):
                await mark_gone(self.ctx.virtual, [vpod])
            await surface_refusal(self.ctx.virtual, self.ctx.recorder, vpod, REASON_REJECTED,
                                  refusal)
            return True
        # its restarts go on from where they were (a pod whose node restarted)
        host_pod["metadata"].setdefault("annotations", {})[ANN_RESTARTS] = restarts_before(vpod)
        node = (vpod.get("spec") or {}).get("nodeName")
        if node and not (host_pod.get("spec") or {}).get("nodeName"):
            try:
                hnode = await self.ctx.host.get(NODES, node)
                labels = (hnode.get("metadata") or {}).get("labels") or {}
                want = (host_pod.get("spec") or {}).get("nodeSelector") or {}
                if all(labels.get(k) == v for k, v in want.items()):  # new values may move it
                    _keep_on_node(host_pod, node)  # keep the binding true
            except errors.StatusError:
                pass  # node gone (or not ours to read): the host schedules it anew
        log.info("host pod %s of bare pod %s/%s is gone: re-creating it", hname,
                 meta["namespace"], meta["name"])
        try:
            await self.ctx.host.create(PODS, host_pod, namespace=self.ctx.host_namespace)
        except errors.AlreadyExists:
            return True
        self._had_host.add(meta.get("uid", ""))
        self._replacing.discard(meta.get("uid", ""))
        return True

    def _had_host_pod(self, vpod: Obj) -> bool:
        """Did this virtual pod have a host pod? (Then a missing one was deleted.)"""
        if vpod["metadata"].get("uid") in self._had_host or _ann(vpod, ANN_HOST_UID):
            return True
        status = vpod.get("status") or {}
        if status.get("startTime") or status.get("hostIP") or \
                status.get("phase") in ("Running", *TERMINAL):
            return True  # only the host pod's status fills these in
        # bound by us after the host scheduled it (with enableScheduler the virtual
        # scheduler binds before the host pod exists)
        return not self.keep_node_name and bool((vpod.get("spec") or {}).get("nodeName"))

    async def _desired(self, vpod: Obj) -> Obj:
        ns = vpod["metadata"]["namespace"]
        await self._ensure_host_sa()
        await self._ensure_dependencies(vpod)
        token_secret = None
        if (sa := _token_service_account(vpod)) is not None:
            token_secret = await self.tokens.ensure(ns, sa)
        nsobj = self.namespaces.get(ns) or {}
        api_host, api_port = self._in_cluster_api()
        claims = self.ctx.syncers.get("resourceclaims")
        resource_claims = await claims.for_pod(vpod) if claims is not None else ()  # type: ignore[attr-defined]
        cfg = PodRewriteConfig(
            translator=self.tr,
            host_service_account=workload_service_account(self.ctx.name),
            token_secret=token_secret,
            kube_service_host=api_host,
            kube_service_port=api_port,
            cluster_dns=self._cluster_dns(),
            keep_node_name=self.keep_node_name,
            host_access=self.ctx.values.host_access,  # type: ignore[arg-type]
            port_forward_targets=port_forward_targets(self.ctx.values),
            sync_priority_classes=self.ctx.values.sync.priorityclasses.enabled,
            sync_storage_classes=self.ctx.values.sync.storageclasses.enabled,
            namespace_labels=dict((nsobj.get("metadata") or {}).get("labels") or {}),
            services=tuple(self.services.list(ns)),
            node_selector=self.ctx.values.node_selector(),
            runtime_class_name=self.ctx.values.isolation.runtime_class_name,
            tolerations=_tolerations(self.ctx.values),
            resource_claims=resource_claims,
        )
        stripped: list[str] = []
        host_pod = rewrite_pod(vpod, cfg, stripped)
        pc = (vpod.get("spec") or {}).get("priorityClassName") or ""
        if pc in SYSTEM_PRIORITY_CLASSES and cfg.sync_priority_classes:
            cap = min(self.ctx.values.sync.priorityclasses.max_value, MAX_USER_PRIORITY)
            self.ctx.recorder.event(vpod, "Normal", REASON_SYSTEM_PRIORITY,
                                    system_priority_message(pc, cap))
        if stripped:  # said as admission warnings would say it (repeats only bump the count)
            self.ctx.recorder.event(vpod, "Warning", REASON_STRIPPED,
                                    stripped_message(stripped, self.ctx.name))
        host_pod["metadata"]["annotations"][ANN_RULES] = self._rules
        # a pod is created without them (the API refuses them on create); _sync_ephemeral
        # adds them through the host's pods/ephemeralcontainers, as on a running pod
        host_pod["spec"].pop("ephemeralContainers", None)
        return host_pod

    def _cluster_dns(self) -> str:
        """The nameserver of ClusterFirst pods: the synced ClusterIP of kube-system/kube-dns."""
        if not self.ctx.cluster_dns:
            return ""
        ip = _cluster_ip(self.services.get("kube-dns", "kube-system"))
        if not ip:
            raise _AddressNotKnown("kube-system/kube-dns has no ClusterIP yet")
        return ip

    def _in_cluster_api(self) -> tuple[str, int]:
        """KUBERNETES_SERVICE_HOST/PORT: a fixed address, else the ClusterIP and first port of
        the virtual ``default/kubernetes`` (as the kubelet takes them from that Service)."""
        if self.ctx.kube_service_host or not self.ctx.in_cluster_api:
            return self.ctx.kube_service_host, self.ctx.kube_service_port
        svc = self.services.get("kubernetes", "default")
        ip = _cluster_ip(svc)
        ports = ((svc or {}).get("spec") or {}).get("ports") or []
        if not ip or not ports:
            raise _AddressNotKnown("default/kubernetes has no ClusterIP yet")
        return ip, int(ports[0]["port"])

    async def _ensure_host_sa(self) -> None:
        if self._host_sa_ready:
            return
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": workload_service_account(self.ctx.name),
                             "labels": self.tr.owner_labels(None)},
                "automountServiceAccountToken": False}
        try:
            await self.ctx.host.create(SERVICEACCOUNTS, body, namespace=self.ctx.host_namespace)
        except errors.AlreadyExists:
            pass
        self._host_sa_ready = True

    async def _ensure_dependencies(self, vpod: Obj) -> None:
        """Sync what the pod mounts first, so the host pod starts without waiting on them."""
        ns = vpod["metadata"]["namespace"]
        cms, secrets, pvcs = referenced_objects(vpod)
        for kind, names in (("configmaps", cms), ("secrets", secrets),
                            ("persistentvolumeclaims", pvcs)):
            syncer = self.ctx.syncers.get(kind)
            if syncer is None:
                continue
            for n in sorted(names):
                await syncer.reconcile(ref_key(ns, n))

    async def _update_host(self, key: str, vpod: Obj, hpod: Obj) -> None:
        """Mutable pod fields only: labels, annotations, images, activeDeadlineSeconds.

        Skipped when neither pod nor the namespace changed since the host pod was last found
        current (most events are status changes or echoes of our own writes)."""
        ns = vpod["metadata"]["namespace"]
        nsobj = self.namespaces.get(ns) or {}
        inputs = (_inputs(vpod), _inputs(hpod), _rv(nsobj))
        if self._checked.get(key) == inputs:
            return
        # ephemeral containers are _sync_ephemeral's: here the pod is judged with those the host
        # pod has (one refused there, which can never be removed, must not block updates)
        vpod = _with_host_ephemeral(vpod, hpod)
        try:
            want = await self._desired_light(vpod)
        except PodRejected:
            return
        hmeta, hspec = hpod["metadata"], hpod.get("spec") or {}
        if (hmeta.get("annotations") or {}).get(ANN_RULES) != self._rules and \
                not deleting(hpod) and await self._made_again(vpod, hpod):
            return
        wmeta, wspec = want["metadata"], want["spec"]
        meta: Obj = {}
        spec: Obj = {}
        if hmeta.get("labels") != wmeta["labels"]:
            meta["labels"] = wmeta["labels"]
        hann = hmeta.get("annotations") or {}
        # the simulated usage a tenant removed is removed below too (other keys are merged)
        dropped = [k for k in USAGE_ANNOTATIONS if k in hann and k not in wmeta["annotations"]]
        if dropped or any(hann.get(k) != v for k, v in wmeta["annotations"].items()):
            merged = {**hann, **wmeta["annotations"]}
            meta["annotations"] = {k: v for k, v in merged.items() if k not in dropped}
        for field in ("containers", "initContainers"):
            hcs, wcs = hspec.get(field) or [], wspec.get(field) or []
            if any(hc.get("image") != wc.get("image") for hc, wc in zip(hcs, wcs)):
                spec[field] = [{**hc, "image": wc.get("image")} for hc, wc in zip(hcs, wcs)] + \
                    [dict(hc) for hc in hcs[len(wcs):]]
        if hspec.get("activeDeadlineSeconds") != wspec.get("activeDeadlineSeconds") and \
                wspec.get("activeDeadlineSeconds") is not None:
            spec["activeDeadlineSeconds"] = wspec["activeDeadlineSeconds"]
        if not meta and not spec:
            self._checked[key] = inputs
            return
        if significant_update(hmeta, hspec, wmeta, wspec):
            # as Pod Security admits an UPDATE (isSignificantPodUpdate): images and the
            # seccomp/AppArmor annotations are checked again; a refused update is not synced
            refusal = self.admission.check(vpod)
            if refusal is not None:
                if self._refused_update.get(key) != refusal:
                    self._refused_update[key] = refusal
                    self.ctx.recorder.event(vpod, "Warning", REASON_REJECTED,
                                            f"update not synced to the host: {refusal}")
                self._checked[key] = inputs
                return
        self._refused_update.pop(key, None)
        # shallow copies along the changed paths: the cache's objects stay untouched
        new = {**hpod, "metadata": {**hmeta, **meta}, "spec": {**hspec, **spec}}
        try:
            await self.ctx.host.update(PODS, new)
        except errors.StatusError as e:
            # the running pod keeps running as it was; the tenant sees why its change is not
            if is_refusal(e, creating=False):
                self.refusals.refused(vpod, e)
            raise
        self.refusals.accepted(vpod)

    async def _made_again(self, vpod: Obj, hpod: Obj) -> bool:
        """A host pod made under other values (``vkube.syncer.podreplace``): judged as a new
        pod would be. Refused, or different in a field no update may change, it is deleted
        and made again (``_recreate_bare``; a pod with an owner is replaced by its controller,
        and the new one is judged as it is created). True when it was deleted."""
        base = _with_host_ephemeral(vpod, {})  # debug containers are judged one by one
        refusal = self.admission.check(base)
        fields: list[str] = []
        if refusal is None:
            try:
                fields = changed_fields(hpod, await self._desired(base))
            except PodRejected as e:
                refusal = str(e)
        if refusal is None and not fields:
            return False  # _update_host writes the new digest
        meta = vpod["metadata"]
        if refusal is None:
            self.ctx.recorder.event(vpod, "Normal", REASON_REPLACED,
                                    replaced_message(fields, self.ctx.name))
        log.info("host pod of %s/%s made under other values: re-created (%s)", meta["namespace"],
                 meta["name"], refusal or ", ".join(fields))
        self._replacing.add(meta.get("uid", ""))
        await delete_ignore_missing(self.ctx.host, PODS, hpod["metadata"]["name"],
                                    self.ctx.host_namespace)
        return True

    async def _sync_ephemeral(self, key: str, vpod: Obj, hpod: Obj) -> None:
        """kubectl debug: ephemeral containers the virtual pod gained are added to the host pod
        through the host's pods/ephemeralcontainers (a strategic merge by name, so only the
        new ones are sent), rewritten as every container is (env, referenced objects,
        hostAccess). Each is judged on its own (one refused, which can never be removed, must
        not block the next): one that may not run is not sent, and the tenant gets a Warning
        event and a terminated status naming why (kubectl debug ends with it)."""
        have = {c.get("name") for c in (hpod.get("spec") or {}).get("ephemeralContainers") or ()}
        refused = self._refused_debug.get(key) or {}
        missing = [c for c in (vpod.get("spec") or {}).get("ephemeralContainers") or ()
                   if c.get("name") not in have and c.get("name") not in refused]
        if not missing or deleting(hpod):
            return
        ns = vpod["metadata"]["namespace"]
        nsobj = self.namespaces.get(ns) or {}
        api_host, api_port = self._in_cluster_api()  # known: the pod already runs
        cfg = PodRewriteConfig(
            translator=self.tr, host_service_account=workload_service_account(self.ctx.name),
            token_secret=None, keep_node_name=True, host_access=self.ctx.values.host_access,  # type: ignore[arg-type]
            namespace_labels=dict((nsobj.get("metadata") or {}).get("labels") or {}),
            services=tuple(self.services.list(ns)), kube_service_host=api_host,
            kube_service_port=api_port)
        add: list[Obj] = []
        new_refused: dict[str, tuple[str, str, str]] = {}
        now = now_rfc3339()
        stripped: list[str] = []
        all_ecs = (vpod.get("spec") or {}).get("ephemeralContainers") or []
        for c in missing:
            probe = {**vpod, "spec": {**(vpod.get("spec") or {}), "ephemeralContainers": [c]}}
            why = self.admission.check(probe)
            if why is None:
                removed: list[str] = []
                try:
                    add += rewrite_pod(probe, cfg, removed)["spec"]["ephemeralContainers"]
                except PodRejected as e:
                    why = str(e)
                at = f"spec.ephemeralContainers[{all_ecs.index(c)}]"  # its path in the tenant's pod
                stripped += [at + x[len(_PROBE_PATH):] for x in removed if x.startswith(_PROBE_PATH)]
            if why is not None:
                new_refused[c.get("name", "")] = (
                    REASON_REJECTED, why + _DEBUG_HINT if "capabilities" in why else why, now)
        if add:
            await self._ensure_dependencies(vpod)
            meta = hpod["metadata"]
            try:
                await self.ctx.host.patch(PODS, meta["name"], {"spec": {"ephemeralContainers": add}},
                                          type="strategic", namespace=meta["namespace"],
                                          subresource="ephemeralcontainers")
            except errors.NotFound:
                return
            except (errors.Invalid, errors.Forbidden, errors.BadRequest) as e:
                # the host's validation or admission said no: the tenant sees its words
                new_refused.update({c.get("name", ""): (REASON_HOST, host_refusal_message(e),
                                                        now) for c in add})
        if stripped:
            self.ctx.recorder.event(vpod, "Warning", REASON_STRIPPED,
                                    stripped_message(stripped, self.ctx.name))
        if new_refused:
            self._refused_debug[key] = {**refused, **new_refused}
            for name, (reason, why, _) in new_refused.items():
                self.ctx.recorder.event(vpod, "Warning", reason,
                                        f"ephemeral container {name} not synced to the host: {why}")
            # reconcile's _sync_up next puts their terminated status up

    async def _desired_light(self, vpod: Obj) -> Obj:
        """The rewrite without the side effects (token, dependencies) of a first creation."""
        ns = vpod["metadata"]["namespace"]
        nsobj = self.namespaces.get(ns) or {}
        cfg = PodRewriteConfig(
            translator=self.tr, host_service_account=workload_service_account(self.ctx.name),
            token_secret=None, keep_node_name=self.keep_node_name,
            # strip holds for changes too (annotations are mutable); reject refused at creation
            host_access="strip" if self.ctx.values.host_access == "strip" else "allow",
            node_selector=self.ctx.values.node_selector(),
            runtime_class_name=self.ctx.values.isolation.runtime_class_name,
            tolerations=_tolerations(self.ctx.values),
            port_forward_targets=port_forward_targets(self.ctx.values),
            sync_priority_classes=self.ctx.values.sync.priorityclasses.enabled,
            namespace_labels=dict((nsobj.get("metadata") or {}).get("labels") or {}))
        host_pod = rewrite_pod(vpod, cfg)
        host_pod["metadata"]["annotations"][ANN_RULES] = self._rules
        return host_pod

    # -- up ---------------------------------------------------------------------------------
    def _virtual_words(self, hstatus: Obj, vpod: Obj, hpod: Obj) -> Obj:
        """``hstatus`` with the host's words made virtual where a host component wrote them
        (the kubelet's ``back-off … pod=NAME_HOSTNS(HOSTUID)``, a mount error naming a host
        ConfigMap): a tenant sees only its own names. Copies only what changes."""
        hmeta = hpod["metadata"]
        hns, huid = self.tr.host_namespace, hmeta.get("uid") or ""

        def host_words(text: object) -> bool:
            return isinstance(text, str) and (hns in text or "-x-" in text
                                              or bool(huid and huid in text))
        known = {hmeta["name"]: vpod["metadata"]["name"], huid: vpod["metadata"].get("uid", "")}
        vns = vpod["metadata"].get("namespace")
        out = hstatus
        if host_words(hstatus.get("message")):
            out = {**out, "message": virtual_text(hstatus["message"], self.tr, vns, known)}
        for field in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            statuses = hstatus.get(field)
            if not statuses or not any(host_words((st or {}).get(part, {}).get(k, {}).get("message"))
                                       for st in statuses for part in ("state", "lastState")
                                       for k in ("waiting", "terminated")):
                continue
            fixed = []
            for st in statuses:
                st = copy.deepcopy(st)
                for part in ("state", "lastState"):
                    for k in ("waiting", "terminated"):
                        entry = (st.get(part) or {}).get(k)
                        if entry and host_words(entry.get("message")):
                            entry["message"] = virtual_text(entry["message"], self.tr, vns, known)
                fixed.append(st)
            out = {**out, field: fixed}
        return out

    async def _sync_up(self, key: str, vpod: Obj, hpod: Obj) -> None:
        """Node (binding) and status, host → virtual, in one pass: the status is a patch of the
        fields that differ, so it needs no fresh copy of the pod after the binding and does
        not conflict with other writers; what the virtual cache does not show yet of our own
        last writes is not written again."""
        meta = vpod["metadata"]
        uid = meta.get("uid", "")
        sent = self._sent.get(key)
        if sent is not None and sent.uid != uid:
            sent = self._sent[key] = _Sent(uid)
        node = (hpod.get("spec") or {}).get("nodeName")
        if node and not (vpod.get("spec") or {}).get("nodeName") and not deleting(vpod) and \
                not (sent is not None and sent.bound):
            nodes = self.ctx.syncers.get("nodes")
            if nodes is not None:
                await nodes.ensure(node)  # type: ignore[attr-defined]
            binding = {"apiVersion": "v1", "kind": "Binding",
                       "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            try:
                await self.ctx.virtual.create(PODS, binding, namespace=meta["namespace"],
                                              subresource="binding", name=meta["name"])
            except errors.Conflict:
                pass  # already bound (our cache is behind)
            except errors.NotFound:
                return
            sent = self._sent.setdefault(key, _Sent(uid))
            sent.bound = True
            sent.at = asyncio.get_running_loop().time()
        vstatus = vpod.get("status") or {}
        if sent is not None and sent.status is not None:
            if _rv_newer(sent.rv, _rv(vpod)):
                vstatus = sent.status  # the cache is behind our last status write
            else:
                sent.status = None
        hstatus = self._virtual_words(as_shown(hpod, vstatus), vpod, hpod)
        if refused := self._refused_debug.get(key):  # ephemeral containers not sent down
            hstatus = {**hstatus, "ephemeralContainerStatuses": [
                *(hstatus.get("ephemeralContainerStatuses") or ()), *(
                    {"name": n, "image": c.get("image", ""), "imageID": "", "ready": False,
                     "restartCount": 0, "state": {"terminated": {
                         # never started, as the kubelet reports a container it could not
                         # start: kubectl debug waits for running or terminated, then ends
                         "exitCode": 128, "reason": refused[n][0], "message": refused[n][1],
                         "finishedAt": refused[n][2]}},
                     "lastState": {}}
                    for c in (vpod.get("spec") or {}).get("ephemeralContainers") or ()
                    if (n := c.get("name", "")) in refused)]}
        changed: Obj = {}
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
        if "status" not in vpod:
            ops.append({"op": "add", "path": "/status", "value": {}})
        for f in STATUS_FIELDS:
            if f in hstatus:
                if vstatus.get(f) != hstatus[f]:
                    changed[f] = hstatus[f]
                    ops.append({"op": "add", "path": f"/status/{f}", "value": hstatus[f]})
            elif f in vstatus:
                changed[f] = None
                ops.append({"op": "remove", "path": f"/status/{f}"})
        if not changed:
            return
        now = asyncio.get_running_loop().time()
        urgent = deleting(vpod) or "phase" in changed or \
            _ready(hstatus) != _ready(vstatus)
        if not urgent and sent is not None and now < sent.at + self.status_interval:
            self.queue.add_after(key, sent.at + self.status_interval - now)
            return
        try:
            # a JSON patch: the uid test is a precondition (never a new pod of the same name)
            res = await self.ctx.virtual.patch(PODS, meta["name"], ops, type="json",
                                               namespace=meta["namespace"], subresource="status")
        except errors.NotFound:
            return
        except errors.Invalid as e:
            # replaced pod, or a field our cache shows is already gone: look again
            self._sent.pop(key, None)
            raise errors.Conflict(f"status of pod {key}: {e}") from e
        sent = self._sent.setdefault(key, _Sent(uid))
        rstatus = res.get("status") or {}
        sent.status = {f: rstatus[f] for f in STATUS_FIELDS if f in rstatus}
        sent.rv = _rv(res)
        sent.at = now


_PROBE_PATH = "spec.ephemeralContainers[0]"  # the one ephemeral container _sync_ephemeral judges
#: added to a refusal of kubectl debug's default profile ("general" adds SYS_PTRACE)
_DEBUG_HINT = " (kubectl debug --profile=baseline adds no capabilities)"

#: annotations Pod Security reads (pkg/api/pod: the deprecated seccomp and AppArmor forms)
_CHECKED_ANNOTATIONS = ("seccomp.security.alpha.kubernetes.io/",
                        "container.seccomp.security.alpha.kubernetes.io/",
                        "container.apparmor.security.beta.kubernetes.io/",
                        "vkube.io/port-forward-")  # and what PodAdmission checks with isolation


def significant_update(hmeta: Obj, hspec: Obj, wmeta: Obj, wspec: Obj) -> bool:
    """Would syncing ``want`` change what Pod Security or the registry allow-list judge?
    pod-security-admission's isSignificantPodUpdate: an image, or a seccomp/AppArmor
    annotation (the only such fields a pod update may change)."""
    for field in ("containers", "initContainers", "ephemeralContainers"):
        hcs, wcs = hspec.get(field) or [], wspec.get(field) or []
        if len(hcs) != len(wcs) or any(h.get("image") != w.get("image") for h, w in zip(hcs, wcs)):
            return True
    hann, wann = hmeta.get("annotations") or {}, wmeta.get("annotations") or {}
    return any(hann.get(k) != wann.get(k) for k in {*hann, *wann} if k.startswith(_CHECKED_ANNOTATIONS))


class _Sent:
    """What the pod syncer last wrote to one virtual pod (``uid``): whether it bound it, and
    the status fields and resourceVersion its last status patch produced."""

    __slots__ = ("at", "bound", "rv", "status", "uid")

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.bound = False
        self.status: Obj | None = None
        self.rv = ""
        self.at = 0.0  # event-loop time of the last status write


def _with_host_ephemeral(vpod: Obj, hpod: Obj) -> Obj:
    """``vpod`` with only the ephemeral containers its host pod has (a shallow copy)."""
    vspec = vpod.get("spec") or {}
    if not vspec.get("ephemeralContainers"):
        return vpod
    have = {c.get("name") for c in (hpod.get("spec") or {}).get("ephemeralContainers") or ()}
    kept = [c for c in vspec["ephemeralContainers"] if c.get("name") in have]
    return {**vpod, "spec": {**vspec, "ephemeralContainers": kept}}


def _ready(status: Obj) -> str | None:
    return next((c.get("status") for c in status.get("conditions") or []
                 if c.get("type") == "Ready"), None)


def _inputs(pod: Obj) -> tuple[object, ...]:
    """What of a pod the host copy's mutable fields follow: the spec (by its generation, which
    every spec change bumps; the resourceVersion where a server keeps no pod generation),
    labels and annotations. A status write (a kubelet's, or ours going up) changes none, so
    it costs no rewrite. The dicts are the informer's, which it replaces and never mutates."""
    m = pod.get("metadata") or {}
    gen = m.get("generation")
    return (m.get("uid"), gen if gen is not None else m.get("resourceVersion"),
            m.get("labels"), m.get("annotations"))


def _rv(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


def _rv_newer(a: str, b: str) -> bool:
    """Is resourceVersion ``a`` newer than ``b``? Only when both are numbers (ours are: the
    store's revision); otherwise False, so nothing is skipped on a guess."""
    return a.isdigit() and b.isdigit() and int(a) > int(b)


def _token_service_account(vpod: Obj) -> str | None:
    """The virtual service account whose token the pod mounts, if it mounts one."""
    spec = vpod.get("spec") or {}
    if spec.get("automountServiceAccountToken", True) is not False or \
            any("serviceAccountToken" in s for v in spec.get("volumes") or []
                for s in (v.get("projected") or {}).get("sources") or []):
        return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return None


def _tolerations(values: Values) -> tuple[Obj, ...]:
    """``isolation.tolerations`` as pod tolerations (empty fields left out)."""
    out = []
    for t in values.isolation.tolerations:
        tol: Obj = {"operator": t.operator}
        for k, v in (("key", t.key), ("value", t.value), ("effect", t.effect)):
            if v:
                tol[k] = v
        out.append(tol)
    return tuple(out)


class _AddressNotKnown(Exception):
    """A Service whose address a pod needs has not been given one by the host yet."""


def _cluster_ip(svc: Obj | None) -> str:
    ip = ((svc or {}).get("spec") or {}).get("clusterIP") or ""
    return "" if ip == "None" else ip


def _ann(obj: Obj, key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)


def _keep_on_node(host_pod: Obj, node: str) -> None:
    """Puts a re-created host pod back on its node. A pod without ResourceClaims is bound
    there directly; one with claims must pass the host scheduler, which alone allocates and
    reserves them (a kubelet refuses claims not reserved for its pod, and devices handed out
    outside the scheduler could go to another pod too): it gets a required node affinity on
    ``metadata.name``, as the DaemonSet controller pins its pods, ANDed with the pod's own."""
    spec = host_pod.setdefault("spec", {})
    if not spec.get("resourceClaims"):
        spec["nodeName"] = node
        return
    pin = {"key": "metadata.name", "operator": "In", "values": [node]}
    required = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {}) \
        .setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**t, "matchFields": [*(t.get("matchFields") or ()), pin]} for t in terms]

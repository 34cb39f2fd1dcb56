"""What ``create``, ``pause``, ``resume``, ``delete``, ``connect`` and ``disconnect`` do.
Each command is one coroutine; blocking process work runs in a thread."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import sys
from pathlib import Path

from vkube.api import yamlio

from vkube.api import errors
from vkube.cli import (hostns, hostresolve, kubeconfigs, process, replicas, state, syncercred,
                       values_files)
from vkube.cli.hostresolve import HostRef
from vkube.cli.output import CLIError, Progress
from vkube.cli.state import PAUSED, RUNNING, ClusterState
from vkube.client import Client
from vkube.client.resources import NAMESPACES


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _host_of(st: ClusterState) -> HostRef:
    return HostRef(st.host_kubeconfig, st.host_context, st.host_kind)


async def _host_label(host: HostRef) -> str:
    try:
        n = await hostresolve.node_count(host)
    except errors.StatusError:
        n = 0
    where = "embedded" if host.kind == "embedded" else (host.context or host.kubeconfig)
    return f"host ready ({where}, {n} node{'s' if n != 1 else ''})"


async def _host_serves_what_values_sync(hc: Client, values: dict) -> None:
    """A sync the host cannot serve would leave the syncer waiting forever: refused here."""
    from vkube.syncer.claims import host_lacks_dra
    from vkube.syncer.values import parse_values
    if parse_values(dict(values or {})).sync.resourceclaims.enabled and await host_lacks_dra(hc):
        raise CLIError("sync.resourceclaims.enabled: the host does not serve resource.k8s.io/v1 "
                       "(dynamic resource allocation, Kubernetes 1.34+) — set it to false, or use "
                       "a host that serves it")


async def create(args: argparse.Namespace) -> int:
    name = state.validate_name(args.name)
    namespace = args.namespace or f"vkube-{name}"
    if len(namespace) > 63 or not state._DNS_LABEL.match(namespace):
        raise CLIError(f"invalid host namespace {namespace!r}: it must be a DNS label "
                       "(lowercase letters, digits, '-', at most 63)")
    existing = ClusterState.load(name)
    if existing is not None and not args.upgrade:
        raise CLIError(f"virtual cluster {name!r} already exists — change its values with "
                       f"`vkube create {name} --upgrade -f values.yaml`, or remove it with "
                       f"`vkube delete {name}`")
    if existing is not None and existing.tenancy == "namespace":
        raise CLIError(f"{name!r} is a namespace tenant: --upgrade does not apply (there is no "
                       f"control plane) — `vkube delete {name}` and create it again to change it")
    if existing is not None and args.namespace and args.namespace != existing.namespace:
        raise CLIError(f"virtual cluster {name!r} lives in host namespace "
                       f"{existing.namespace!r}; the namespace cannot change on --upgrade")
    if existing is not None:
        _same_host(existing, args, "--upgrade")
    if existing is not None and args.in_cluster and not existing.in_cluster:
        raise CLIError(f"--in-cluster: virtual cluster {name!r} runs on this machine; where it "
                       f"runs cannot change on --upgrade — `vkube delete {name}` and create it "
                       "again with --in-cluster")
    shared_flag = bool(getattr(args, "shared", False))
    keep_shared = existing is not None and existing.shared  # --upgrade keeps the mode
    # with --shared (or a shared cluster's --upgrade) the files are checked once the
    # controlPlane.mode is in
    values = values_files.load_files(args.values, check=not (shared_flag or keep_shared)) \
        if args.values else None
    if values is not None and keep_shared and not (values.get("controlPlane") or {}).get("mode"):
        # values that do not name a mode keep the cluster's (only a mode asked for moves)
        values = values_files.merge(values, {"controlPlane": {"mode": "shared"}})
    if values_files.has_flag_values(args):
        values = values_files.with_flags(values or dict(existing.values if existing else {}),
                                         args)
        if shared_flag:
            values_files.validate(values)
    if getattr(args, "expose", False):
        values = {**(values if values is not None else (existing.values if existing else {})),
                  "expose": True}
    if values is not None and not args.in_cluster and not (existing and existing.in_cluster):
        replicas.check_local(values, name)
    if existing is not None and values is not None:
        was = "shared" if existing.shared else "dedicated"
        if not (values.get("controlPlane") or {}).get("mode") and was == "shared":
            values = values_files.merge(values, {"controlPlane": {"mode": "shared"}})
        now = ((values.get("controlPlane") or {}).get("mode")) or "dedicated"
        if was != now:
            raise CLIError(f"virtual cluster {name!r} runs in {was} mode; --upgrade keeps the "
                           f"mode — move it with `vkube snapshot save {name} FILE`, `vkube "
                           f"delete {name}`, create it again {'with' if now == 'shared' else 'without'}"
                           f" --shared, pause it and `vkube snapshot restore {name} FILE`")
        if keep_shared:
            values_files.validate(values)  # the files were not checked on their own
    final = values if values is not None else (existing.values if existing else {})
    if ((final.get("controlPlane") or {}).get("mode") == "shared" and final.get("expose")):
        raise CLIError("--expose (expose: true) cannot be used with --shared (controlPlane.mode: "
                       "shared): the shared server's clusters share one address, told apart by "
                       "path /clusters/NAME and TLS server name, which the exposed relay does not "
                       f"carry — drop --expose, or `vkube create {name} --expose` without --shared")
    in_cluster = bool(args.in_cluster or (existing and existing.in_cluster))
    if in_cluster:
        from vkube.cli import render

        render.refuse_shared_mode(values if values is not None else
                                  (existing.values if existing else {}), "--in-cluster")
        render.refuse_long_name(name, "--in-cluster")
    progress = Progress()
    if existing is not None and values is not None:
        dropped = values_files.dropped_keys(existing.values, values)
        if dropped:
            progress.info(f"values replaced: {', '.join(dropped)} "
                          f"{'is' if len(dropped) == 1 else 'are'} not in the new -f files and "
                          "go back to the default — pass every values file again to keep them")
    with progress.step("looking for a host cluster") as done:
        host = await _resolve_for_create(args, existing, in_cluster)
        done(await _host_label(host))
    async with host.client() as hc:
        await _host_serves_what_values_sync(hc, values if values is not None else
                                            (existing.values if existing else {}))
        if existing is None:
            found = [c for c in await hostns.virtual_clusters(hc) if c["name"] == name]
            if found and not args.upgrade:
                raise CLIError(f"virtual cluster {name!r} already exists on the host (namespace "
                               f"{found[0]['namespace']}) — pick another name or delete it "
                               f"with `vkube delete {name}` from the machine that created it")
            st = ClusterState(name=name, namespace=namespace, host_kubeconfig=host.kubeconfig,
                              host_context=host.context, host_kind=host.kind, created=_now(),
                              values=values or {}, in_cluster=bool(args.in_cluster))
            old_values = st.values
        else:
            st = existing
            old_values = dict(existing.values or {})
            if values is not None:
                st.values = values
        values_files.write(st.values_file, st.values)
        if st.in_cluster:
            await _create_in_cluster(hc, st, progress)
            await _turned_off(hc, st, old_values, progress)
            return 0
        if existing is not None and st.status == PAUSED:
            await _claim(hc, st)
            await _turned_off(hc, st, old_values, progress)
            progress.info(f"values updated; {name!r} stays paused — `vkube resume {name}` "
                          "starts it with them")
            return 0
        with progress.step("starting the control plane") as done:
            url = await _start_and_claim(hc, st, restart=existing is not None)
            done(f"control plane {'restarted with new values' if existing else 'ready'} at {url}")
        await _turned_off(hc, st, old_values, progress)
        if not st.shared:
            from vkube.cli import syncwait

            await syncwait.wait_synced(hc, st, progress)  # what the values ask to see
    if args.connect or (args.connect is None and existing is None):
        ctx = _connect(st, switch=True)
        progress.ok(f"switched context to {ctx}")
    elif st.context_name:
        _connect(st, switch=False)  # --upgrade keeps the current context; the port may change
    return 0


async def _turned_off(hc: Client, st: ClusterState, old_values: dict, progress: Progress) -> None:
    """Host copies of kinds the new values no longer sync go (``turnedoff``)."""
    from vkube.cli.turnedoff import kept_note, remove_turned_off

    if old_values is st.values:
        return
    gone = await remove_turned_off(hc, st.name, st.namespace, old_values, st.values)
    if gone:
        progress.info(f"sync turned off: removed their host copies — {', '.join(gone)}")
    if note := kept_note(old_values, st.values):
        progress.info(note)


async def _resolve_for_create(args: argparse.Namespace, existing: ClusterState | None,
                              in_cluster: bool) -> HostRef:
    """The host of ``create``. ``--in-cluster`` runs the control plane's image in a pod: the
    embedded host's kubelets are simulated and run no image, so it is refused there (and never
    started for it) instead of applying a pod that only pretends to run."""
    known = _host_of(existing) if existing else None
    if not in_cluster:
        return await hostresolve.resolve(args.host_kubeconfig, args.host_context, known=known)
    name = args.name
    why = (f"--in-cluster runs the control plane's image in a pod of a real host cluster; "
           f"vkube's embedded host simulates its kubelets and runs no image — `vkube create "
           f"{name}` without --in-cluster runs it on this machine, or pass "
           f"--host-kubeconfig FILE (and --host-context) of a real cluster")
    try:
        host = await hostresolve.resolve(args.host_kubeconfig, args.host_context,
                                         start_embedded=False, known=known)
    except CLIError:
        if args.host_kubeconfig or args.host_context:
            raise
        raise CLIError(f"--in-cluster needs a real host cluster and none answers at the "
                       f"current context — pass --host-kubeconfig FILE (and --host-context) of "
                       f"one, or `vkube create {name}` without --in-cluster runs it on this "
                       "machine") from None
    if await hostresolve.runs_no_images(host):
        raise CLIError(f"the host {host.describe()} is a vkube embedded host: {why}")
    return host


def _same_host(st: ClusterState, args: argparse.Namespace, what: str) -> None:
    """``--host-kubeconfig``/``--host-context`` on a cluster that has its host already: only
    accepted when they name that host (they would otherwise be silently ignored)."""
    given_kc = getattr(args, "host_kubeconfig", None)
    given_ctx = getattr(args, "host_context", None)
    if not given_kc and not given_ctx:
        return
    kc = str(Path(given_kc).expanduser().resolve()) if given_kc else \
        str(kubeconfigs.user_kubeconfig_path().expanduser().resolve())
    if kc == st.host_kubeconfig and (given_ctx or st.host_context) == st.host_context:
        return
    flag = "--host-kubeconfig" if given_kc else "--host-context"
    raise CLIError(f"{flag}: virtual cluster {st.name!r} runs on host "
                   f"{_host_of(st).describe()}; {what} keeps that host — drop {flag}, or "
                   f"`vkube delete {st.name}` and create it on the other host")


async def create_spawned(args: argparse.Namespace, st: ClusterState,
                         spawned: process.Spawned) -> int:
    """The rest of ``create_cmd.create`` once its control plane is starting: find the host,
    claim the host namespace, save the state, then name the host to the syncer. A failure
    before that stops the process and removes the cluster directory: nothing is left."""
    progress = Progress()
    named = False  # the syncer knows its host: from then on this is a normal virtual cluster
    host: HostRef | None = None
    made_namespace: bool | None = None  # None: the host namespace is not touched yet
    try:
        if args.values:
            values_files.validate(st.values)
        with progress.step("looking for a host cluster") as done:
            host = await hostresolve.resolve(args.host_kubeconfig, args.host_context)
            done(await _host_label(host))
        st.host_kubeconfig, st.host_context, st.host_kind = host.kubeconfig, host.context, host.kind
        async with host.client() as hc:
            with progress.step("starting the control plane") as done:
                found = [c for c in await hostns.virtual_clusters(hc) if c["name"] == st.name]
                if found:
                    raise CLIError(f"virtual cluster {st.name!r} already exists on the host "
                                   f"(namespace {found[0]['namespace']}) — pick another name or "
                                   f"delete it with `vkube delete {st.name}` from the machine "
                                   "that created it")
                known_new = await hostns.get_namespace(hc, st.namespace) is None
                made_namespace = known_new
                st.status = RUNNING
                try:
                    await _claim(hc, st, known_new=known_new)  # saves the state file
                    await syncercred.confine(hc, st)  # before the syncer learns its host
                    process.write_host_file(st)
                    named = True
                except BaseException:
                    await _release_quietly(hc, st)
                    raise
                # As for resume, a control plane that does not become ready keeps its state
                # (`vkube logs`, `vkube delete` work on it).
                url = await asyncio.to_thread(process.wait_ready, st, spawned)
                await hostns.annotate(hc, st.namespace, status=RUNNING, url=url)
                done(f"control plane ready at {url}")
            from vkube.cli import syncwait

            await syncwait.wait_synced(hc, st, progress)  # what the values ask to see
        exposed = None
        if (st.values or {}).get("expose"):
            with progress.step("exposing the API server") as done:
                exposed = await asyncio.to_thread(process.wait_exposed, st)
                done(f"API server exposed at {exposed}")
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C: nothing of it stays
        from vkube.cli import createundo

        await createundo.undo(st, spawned, host, made_namespace)
        raise
    except BaseException:
        if not named:
            await asyncio.to_thread(process.abort, spawned)
            st.remove()
        raise
    if args.connect is not False:
        ctx = _connect(st, switch=True, server=exposed)
        progress.ok(f"switched context to {ctx}")
    return 0


async def _release_quietly(hc: Client, st: ClusterState) -> None:
    """Undo a claim (best effort: the original error is what the user must see)."""
    if not (st.dir / "state.json").exists():
        return  # the claim itself failed (e.g. another virtual cluster owns the namespace)
    try:
        await syncercred.release(hc, st)  # the RBAC outside the namespace goes too
    except (errors.StatusError, OSError):
        pass
    try:
        await hostns.release_namespace(hc, st.namespace, delete=st.created_namespace)
    except (errors.StatusError, OSError):
        pass


async def _claim(hc: Client, st: ClusterState, *, known_new: bool = False) -> None:
    st.created_namespace = await hostns.claim_namespace(
        hc, name=st.name, namespace=st.namespace, created=st.created,
        status=PAUSED if st.status == PAUSED else RUNNING, values=st.values,
        known_new=known_new, pod_security=True)
    st.save()


async def _start_and_claim(hc: Client, st: ClusterState, *, restart: bool) -> str:
    """Start the process and claim the host namespace at the same time: the control plane's
    start-up (~0.5 s) hides the host round trips. On the embedded host the syncer's confined
    credential (``syncercred``) is granted first: the process starts with it."""
    if restart:
        await asyncio.to_thread(process.stop, st)
    known_new = await hostns.get_namespace(hc, st.namespace) is None
    st.status = RUNNING
    if known_new and st.host_kind == "embedded":
        await _claim(hc, st, known_new=True)  # the Role needs its namespace
    if st.host_kind == "embedded":
        await syncercred.confine(hc, st)
    process.ensure_port(st)  # saves; start() below then leaves the state file alone
    started = asyncio.create_task(asyncio.to_thread(process.start, st))
    try:
        await _claim(hc, st, known_new=known_new)
    except BaseException:
        await asyncio.gather(started, return_exceptions=True)
        await asyncio.to_thread(process.stop, st)
        raise
    url = await started
    st.save()  # process.start may have picked a new port
    await hostns.annotate(hc, st.namespace, status=RUNNING, url=url)
    return url


async def _create_in_cluster(hc: Client, st: ClusterState, progress: Progress) -> None:
    from vkube.cli import render

    with progress.step("applying the control plane manifests to the host") as done:
        st.status = RUNNING
        await _claim(hc, st)  # saves first: `vkube delete` can clean up a half-applied one
        objs = render.manifests(st.name, st.namespace, st.values)
        n = await render.apply(hc, objs)
        await syncercred.drop_stale(hc, st.name, st.namespace, objs)  # --upgrade: former grants
        done(f"control plane applied to host namespace {st.namespace} ({n} objects)")


def _connect(st: ClusterState, *, switch: bool, ctx: str | None = None,
             server: str | None = None) -> str:
    ctx = ctx or st.context_name or kubeconfigs.context_name(st.name)
    if server is None and (st.values or {}).get("expose"):
        server = process.wait_exposed(st)  # expose: the kubeconfig uses the exposed address
    cluster, user = kubeconfigs.cluster_and_user(st.data_dir, server)
    kubeconfigs.add_context(ctx, cluster, user, switch=switch)
    written = str(kubeconfigs.user_kubeconfig_path().expanduser().resolve())
    if st.context_name != ctx or written not in st.context_files:
        st.context_name = ctx
        st.context_files = [*(f for f in st.context_files if f != written), written]
        st.save()
    return ctx


async def connect(args: argparse.Namespace) -> int:
    st = state.require(args.name)
    if st.tenancy == "namespace":
        from vkube.cli import nstenancy

        return await nstenancy.connect(st, args)
    if st.status == PAUSED:
        raise CLIError(f"virtual cluster {st.name!r} is paused — `vkube resume {st.name}` first")
    if not args.server and process.ready_url(st) is None:
        raise CLIError(f"virtual cluster {st.name!r} is not running — see `vkube logs {st.name}` "
                       f"and start it with `vkube resume {st.name}`")
    ctx = args.kube_config_context_name or kubeconfigs.context_name(st.name)
    if args.print:
        server = args.server
        if server is None and (st.values or {}).get("expose"):
            server = process.wait_exposed(st)  # as connect writes it: the exposed address
        cluster, user = kubeconfigs.cluster_and_user(st.data_dir, server)
        sys.stdout.write(yamlio.dump(kubeconfigs.entry(cluster, user, ctx),
                                        sort_keys=False))
        return 0
    _connect(st, switch=True, ctx=ctx, server=args.server)
    print(f"✔ switched context to {ctx} ({kubeconfigs.user_kubeconfig_path()})")
    return 0


async def disconnect(args: argparse.Namespace) -> int:
    current = kubeconfigs.current_context()
    if not current or not current.startswith(kubeconfigs.CONTEXT_PREFIX):
        mine = {s.context_name for s in map(ClusterState.load, state.local_names()) if s}
        if current not in mine:
            print(f"not connected to a virtual cluster (current context: {current or 'none'})")
            return 0
    prev = kubeconfigs.switch_back()
    if prev is None:
        # there was no current context before `vkube connect`: restore exactly that
        kubeconfigs.unset_current()
        print(f"✔ disconnected from {current}; no context was current before, so none is now "
              "(pick one with `kubectl config use-context NAME`)")
        return 0
    print(f"✔ switched context back to {prev}")
    return 0


async def _scale_in_cluster(st: ClusterState, count: int) -> None:
    from vkube.client.resources import STATEFULSETS

    async with _host_of(st).client() as hc:
        await hc.patch(STATEFULSETS, f"vkube-{st.name}", {"spec": {"replicas": count}},
                       namespace=st.namespace)


async def pause(args: argparse.Namespace) -> int:
    st = state.require(args.name)
    progress = Progress()
    if st.tenancy == "namespace":
        return await _scale_tenant(st, progress, pause=True)
    if st.in_cluster:
        with progress.step("scaling the in-cluster control plane to 0") as done:
            await _scale_in_cluster(st, 0)
            st.status = PAUSED
            st.save()
            done("control plane scaled to 0")
        await _cleanup_host(st, progress, status=PAUSED)
        return 0
    with progress.step("stopping the control plane") as done:
        was = await asyncio.to_thread(process.stop, st)
        st.status = PAUSED
        st.save()
        done("control plane stopped" if was else "control plane was not running")
    await _cleanup_host(st, progress, status=PAUSED)
    if st.shared:
        from vkube.cli import sharedproc

        if await asyncio.to_thread(sharedproc.stop_if_idle):
            progress.info("the shared server serves no other running cluster and was stopped")
    progress.info(f"{st.name} paused; its data is kept — `vkube resume {st.name}` starts it again")
    return 0


async def _cleanup_host(st: ClusterState, progress: Progress, *, status: str | None) -> None:
    from vkube.syncer.syncer import cleanup_host

    with progress.step(f"removing synced objects from host namespace {st.namespace}") as done:
        host = _host_of(st)
        if not await hostresolve.reachable(host, timeout=3.0):
            done(f"host {host.describe()} not reachable: synced objects left in place")
            return
        async with host.client() as hc:
            n = await cleanup_host(hc, st.namespace, st.name, grace_period_seconds=0,
                                   keep_volumes=status == PAUSED)  # the tenant's data stays
            if status:
                await hostns.annotate(hc, st.namespace, status=status)
        done(f"removed {n} synced object{'s' if n != 1 else ''} from host namespace {st.namespace}")


async def _scale_tenant(st: ClusterState, progress: Progress, *, pause: bool) -> int:
    from vkube.cli import nstenancy

    what = "to zero" if pause else "back"
    with progress.step(f"scaling the workloads of namespace {st.namespace} {what}") as done:
        n, pods = await nstenancy.scale(st, pause=pause)
        bare = (f"; {pods} bare pod{'s' if pods != 1 else ''} "
                + ("saved and stopped" if pause else "recreated")) if pods else ""
        held = "; every other pod stopped and new pods refused (quota count/pods: 0) " \
               "until `vkube resume`" if pause else ""
        done(f"{n} workload{'s' if n != 1 else ''} scaled {what} in namespace {st.namespace}"
             f"{bare}{held}")
    return 0


async def resume(args: argparse.Namespace) -> int:
    st = state.require(args.name)
    if st.tenancy == "namespace":
        return await _scale_tenant(st, Progress(), pause=False)
    if process.running_pid(st) is not None and process.ready_url(st):
        print(f"{st.name} is already running at {process.ready_url(st)}")
        return 0
    progress = Progress()
    with progress.step("looking for the host cluster") as done:
        host = await hostresolve.resolve(None, None, known=_host_of(st))
        done(await _host_label(host))
    if st.in_cluster:
        n = replicas.wanted(st.values)  # pause/resume keep the replica count (enableHA)
        with progress.step(f"scaling the in-cluster control plane to {n}") as done:
            await _scale_in_cluster(st, n)
            st.status = RUNNING
            st.save()
            async with host.client() as hc:
                await hostns.annotate(hc, st.namespace, status=RUNNING)
            done(f"control plane scaled to {n}")
        return 0
    with progress.step("starting the control plane") as done:
        await asyncio.to_thread(process.stop, st)  # a half-dead supervisor, if any
        st.status = RUNNING
        st.save()
        if st.host_kind == "embedded":
            async with host.client() as hc:
                await syncercred.confine(hc, st)
        url = await asyncio.to_thread(process.start, st)
        async with host.client() as hc:
            await hostns.annotate(hc, st.namespace, status=RUNNING, url=url)
        done(f"control plane ready at {url}; the syncer re-creates its host objects")
    if st.context_name:
        _connect(st, switch=False)  # the port may have changed
    return 0


async def delete(args: argparse.Namespace) -> int:
    name = state.validate_name(args.name)
    st = ClusterState.load(name)
    if st is None:
        return await _delete_remote(args, name)
    _same_host(st, args, "`vkube delete`")
    progress = Progress()
    host = _host_of(st)
    host_up = await hostresolve.reachable(host, timeout=3.0)
    if not host_up:
        _refuse_or_name_leftovers(st, args, progress)
    if st.tenancy == "namespace" and not host_up:
        _forget_context(st, progress)
        st.remove()
        progress.info(f"{name} deleted here; its host side is left as said above")
        return 0
    if st.tenancy == "namespace":
        from vkube.cli import nstenancy

        with progress.step(f"removing tenant namespace {st.namespace}") as done:
            await nstenancy.delete(st, args.keep_namespace)
            done(f"namespace {st.namespace} {'kept' if args.keep_namespace or not st.created_namespace else 'deleted'}")
        _forget_context(st, progress)
        st.remove()
        progress.info(f"{name} deleted")
        return 0
    with progress.step("stopping the control plane") as done:
        if st.shared:  # leaves the shared server, its keys removed from the shared store
            from vkube.cli import sharedproc

            was = await asyncio.to_thread(sharedproc.delete, st)
        else:
            was = await asyncio.to_thread(process.stop, st)
        done("control plane stopped" if was else "control plane was not running")
    if host_up:
        await _cleanup_host(st, progress, status=None)
    if host_up:
        drop = st.created_namespace and not args.keep_namespace
        with progress.step(f"{'deleting' if drop else 'releasing'} host namespace "
                           f"{st.namespace}") as done:
            async with host.client() as hc:
                if st.in_cluster:
                    await _delete_rendered(hc, st)
                    await syncercred.release_remote(hc, st.name, st.namespace)  # former names
                else:
                    await syncercred.release(hc, st)
                await hostns.release_namespace(hc, st.namespace, delete=drop)
            done(f"host namespace {st.namespace} {'deleted' if drop else 'kept'}")
    _forget_context(st, progress)
    st.remove()
    if st.shared:
        from vkube.cli import sharedproc

        if await asyncio.to_thread(sharedproc.stop_if_idle):
            progress.info("the shared server served no other cluster and was stopped")
    progress.info(f"{name} deleted")
    note = store_left_behind(st)
    if note:
        progress.info(note)
    return 0


def _refuse_or_name_leftovers(st: ClusterState, args: argparse.Namespace,
                              progress: Progress) -> None:
    """``delete`` with its host down: the host side (namespace, synced objects, the syncer's
    grants) cannot be removed. Refused unless ``--force``; then each thing left is named with
    the command that removes it once the host answers."""
    from vkube.syncer import hostrbac

    host = _host_of(st)
    embedded = host.kind == "embedded"
    where = "the embedded host" if embedded else f"host {host.describe()}"
    if not getattr(args, "force", False):
        start = ("start it with `vkube host start`" if embedded else
                 "make it reachable")
        raise CLIError(f"{where} does not answer, so {st.name}'s objects on it cannot be "
                       f"removed — {start}, then `vkube delete {st.name}`; or `vkube delete "
                       f"{st.name} --force` deletes it here and names what stays on the host")
    left = []
    if st.created_namespace and not args.keep_namespace:
        left.append(f"namespace {st.namespace} (with everything in it)")
    elif st.tenancy == "namespace":
        left.append(f"the tenant's account, quota and guard rails in namespace {st.namespace}")
    else:
        left.append(f"the synced objects in namespace {st.namespace}")
    if st.tenancy != "namespace" and not st.in_cluster:
        cname = hostrbac.cluster_role_name(st.name, st.namespace)
        left.append(f"ClusterRole/ClusterRoleBinding {cname} (if its values needed them)")
    flags = "" if embedded else (f" --host-kubeconfig {host.kubeconfig}" +
                                 (f" --host-context {host.context}" if host.context else ""))
    then = " once it answers (`vkube host start`)" if embedded else " once it answers"
    progress.info(f"{where} does not answer; left on it: {'; '.join(left)}")
    progress.info(f"remove them{then} with `vkube delete {st.name}{flags}` (it finds "
                  f"{st.name} on the host by its namespace)")


def store_left_behind(st: ClusterState) -> str | None:
    """What `delete` left in an external store (PostgreSQL, etcd: the user's database, never
    dropped by vkube), with the command that removes it; None for the data dir's SQLite."""
    from urllib.parse import unquote, urlsplit

    if st.shared:  # the shared server removed its keys from the shared store
        return None
    url = str(((st.values.get("controlPlane") or {}).get("store")) or "")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}@{hosts}" if at else hosts  # without its password
    where = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    if scheme in ("postgres", "postgresql"):
        return (f"{st.name}'s objects are still in the store {where} (tables kv and meta; vkube "
                f"never drops your database) — remove them with: "
                f"psql '{where}' -c 'DROP TABLE kv, meta'")
    if scheme in ("etcd", "etcd3"):
        prefix = unquote(parts.path).rstrip("/") if parts.path not in ("", "/") else ""
        return (f"{st.name}'s objects are still in the store {where} (keys under "
                f"'{prefix}/'; vkube never deletes your database's data) — remove them with: "
                f"etcdctl --endpoints={hosts} del --prefix '{prefix}/'")
    return None


def _forget_context(st: ClusterState, progress: Progress) -> None:
    """Remove the cluster's context from every kubeconfig vkube wrote it into."""
    ctx = st.context_name or kubeconfigs.context_name(st.name)
    current = kubeconfigs.user_kubeconfig_path().expanduser().resolve()
    for path in sorted({current, *(Path(f) for f in st.context_files)}):
        try:
            was_current = kubeconfigs.remove_context(ctx, path)
        except CLIError as e:  # a file that became unreadable: say so, delete the rest
            progress.info(f"context {ctx} left in {path}: {e}")
            continue
        if was_current:
            back = kubeconfigs.current_context(path)
            where = "" if path == current else f" in {path}"
            progress.ok(f"removed context {ctx}{where}; current context is now "
                        f"{back or 'unset'}")


async def _delete_rendered(hc: Client, st: ClusterState) -> None:
    """What ``create --in-cluster`` applied: everything carries the instance label."""
    from vkube.cli import render
    from vkube.client.resources import by_kind

    for obj in reversed(render.manifests(st.name, st.namespace, st.values)):
        res = by_kind(obj["apiVersion"], obj["kind"])
        if res is None or obj["kind"] == "Namespace":
            continue
        with contextlib.suppress(errors.NotFound):
            await hc.delete(res, obj["metadata"]["name"],
                            namespace=obj["metadata"].get("namespace") if res.namespaced else None)


async def _delete_remote(args: argparse.Namespace, name: str) -> int:
    """A virtual cluster created on another machine: only its host side can be removed."""
    host = await hostresolve.resolve(args.host_kubeconfig, args.host_context,
                                     start_embedded=False)
    async with host.client() as hc:
        found = [c for c in await hostns.virtual_clusters(hc) if c["name"] == name]
        if not found and (orphans := await syncercred.release_orphans(hc, name)):
            print(f"✔ removed what a failed `vkube create {name}` left on the host: "
                  f"{', '.join(orphans)}")
            return 0
        if not found:
            raise CLIError(f"virtual cluster {name!r} not found locally nor on host "
                           f"{host.describe()} — see `vkube list`")
        from vkube.syncer.syncer import cleanup_host

        ns = found[0]["namespace"]
        await cleanup_host(hc, ns, name, grace_period_seconds=0)
        await syncercred.release_remote(hc, name, ns)
        with contextlib.suppress(errors.NotFound):
            owns = ((await hc.get(NAMESPACES, ns))["metadata"].get("annotations") or {}).get(
                hostns.ANN_OWNS_NS) == "true"
            await hostns.release_namespace(hc, ns, delete=owns and not args.keep_namespace)
    print(f"✔ removed {name}'s host side (namespace {ns}); its control plane ran elsewhere")
    return 0


async def sleep(args: argparse.Namespace) -> int:
    """``vkube sleep NAME``: a shared cluster stops its components, its synced host objects
    are removed and its memory freed; its data stays and any request wakes it."""
    from vkube.cli import sharedproc

    st = state.require(args.name)
    _refuse_tenant(st, "sleep")
    if not st.shared:
        raise CLIError(f"virtual cluster {st.name!r} runs in its own process (dedicated mode); "
                       f"sleep needs shared mode — `vkube pause {st.name}` stops it instead")
    if st.status == PAUSED:
        raise CLIError(f"virtual cluster {st.name!r} is paused — `vkube resume {st.name}` first")
    progress = Progress()
    with progress.step(f"putting {st.name} to sleep") as done:
        await asyncio.to_thread(sharedproc.set_sleeping, st, True)
        done(f"{st.name} sleeping; its host workloads are removed until it wakes")
    progress.info(f"any request wakes it, or `vkube wake {st.name}`")
    return 0


async def wake(args: argparse.Namespace) -> int:
    from vkube.cli import sharedproc

    st = state.require(args.name)
    _refuse_tenant(st, "wake")
    if not st.shared:
        raise CLIError(f"virtual cluster {st.name!r} runs in its own process (dedicated mode) "
                       f"and never sleeps — `vkube resume {st.name}` starts a paused one")
    if st.status == PAUSED:
        raise CLIError(f"virtual cluster {st.name!r} is paused — `vkube resume {st.name}` "
                       "starts it")
    progress = Progress()
    if sharedproc.registered(st) and not sharedproc.is_sleeping(st) and process.ready_url(st):
        progress.info(f"{st.name} is already awake at {process.ready_url(st)}; nothing to do")
        return 0
    with progress.step(f"waking {st.name}") as done:
        await asyncio.to_thread(sharedproc.set_sleeping, st, False)
        done(f"{st.name} awake at {process.ready_url(st)}; the syncer puts its host workloads back")
    return 0


def _refuse_tenant(st: ClusterState, what: str) -> None:
    if st.tenancy == "namespace":
        raise CLIError(f"{st.name!r} is a namespace tenant (host namespace {st.namespace}, no "
                       f"control plane of its own) and has nothing to {what} — `vkube "
                       f"{'pause' if what == 'sleep' else 'resume'} {st.name}` scales its "
                       f"workloads {'to zero' if what == 'sleep' else 'back'}")

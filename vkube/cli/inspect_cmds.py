"""``list``, ``describe`` and ``logs``: what exists, in what state, and what it is doing.
Local state says what this machine runs; the host's labelled namespaces add the rest."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from typing import Any

from vkube.api import errors
from vkube.cli import hostns, hostresolve, kubeconfigs, process, state
from vkube.cli.hostresolve import HostRef
from vkube.cli.output import CLIError, age, print_json, print_table
from vkube.cli.state import FAILED, PAUSED, RUNNING, SLEEPING, ClusterState


def observed_status(st: ClusterState) -> str:
    """Desired state checked against the process: Running only if it really serves."""
    if st.status == PAUSED:
        return PAUSED
    if st.in_cluster or st.tenancy == "namespace":
        return st.status
    if st.shared:
        from vkube.cli import sharedproc

        if sharedproc.serve_pid() is None or not sharedproc.registered(st) \
                or not process.ready_url(st):
            return FAILED
        return SLEEPING if sharedproc.is_sleeping(st) else RUNNING
    if len(process.process_tree(st)) >= 2 and process.ready_url(st):
        return RUNNING  # supervisor and serve alive, serve reported ready
    return FAILED


def _age_of(created: str) -> str:
    try:
        t = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return "?"
    return age(time.time() - t.timestamp())


def cluster_mode(st: ClusterState) -> str:
    """What the MODE column shows: the tenancy, and for a virtual cluster where its control
    plane runs (the same words as ``describe``'s Control plane line)."""
    if st.tenancy == "namespace":
        return "namespace"
    if st.shared:
        return "shared"
    return "in-cluster" if st.in_cluster else "vcluster"


async def replica_status(st: ClusterState) -> dict[str, Any] | None:
    """Local replicas (``enableHA``): how many serve and which one leads (the live holder of
    the ``kube-system/vkube-leader`` Lease, read through the cluster's own API)."""
    members = process.replicas_of(st)
    if not members:
        return None
    leader = None
    if process.ready_url(st):
        from vkube.api.meta import parse_time, utcnow
        from vkube.client.kubeconfig import client_from_kubeconfig
        from vkube.client.resources import LEASES

        try:
            async with client_from_kubeconfig(str(st.data_dir / "kubeconfig"), None,
                                              user_agent="vkube-cli", timeout=5.0) as c:
                spec = (await c.get(LEASES, "vkube-leader", namespace="kube-system")).get(
                    "spec") or {}
            renewed = parse_time(spec.get("renewTime"))
            if renewed is not None and (utcnow() - renewed).total_seconds() \
                    < (spec.get("leaseDurationSeconds") or 0):
                leader = process.leader_index(members, spec.get("holderIdentity") or "", st.name)
        except (errors.StatusError, OSError, ValueError, asyncio.TimeoutError):
            pass  # no lease yet, or the API went away meanwhile: no leader to show
    return {"wanted": len(members), "ready": sum(1 for m in members if m["ready"]),
            "leader": leader, "members": members}


def _replicas_cell(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    lead = f", leader {r['leader']}" if r["leader"] is not None else ", no leader"
    return f"{r['ready']}/{r['wanted']}{lead}"


HOST_UNREACHABLE = " (host unreachable)"


def with_host(status: str, host_up: bool) -> str:
    """A cluster that serves but whose host is down runs nothing: say so next to Running
    (its pods cannot be synced, so they would stay Pending with no event)."""
    return status + HOST_UNREACHABLE if not host_up and status in (RUNNING, SLEEPING) else status


async def _host_clusters(hosts: list[HostRef],
                         up: dict[tuple[str, str | None], bool]) -> dict[str, dict[str, Any]]:
    """The virtual clusters the hosts' labelled namespaces name; ``up`` gets, per host,
    whether it answered."""
    out: dict[str, dict[str, Any]] = {}
    for h in hosts:
        if (h.kubeconfig, h.context) in up:
            continue
        up[(h.kubeconfig, h.context)] = await hostresolve.reachable(h)
        if not up[(h.kubeconfig, h.context)]:
            continue
        try:
            async with h.client(timeout=5.0) as c:
                for vc in await hostns.virtual_clusters(c):
                    out.setdefault(vc["name"], {**vc, "host": h.describe()})
        except errors.StatusError:
            continue
    return out


async def collect(args: argparse.Namespace) -> list[dict[str, Any]]:
    locals_ = [s for s in map(ClusterState.load, state.local_names()) if s is not None]
    hosts = [HostRef(s.host_kubeconfig, s.host_context, s.host_kind) for s in locals_]
    if args.host_kubeconfig or args.host_context:
        hosts.insert(0, await hostresolve.resolve(args.host_kubeconfig, args.host_context,
                                                  start_embedded=False))
    else:
        hosts.append(HostRef(str(hostresolve.embedded_kubeconfig()), None, "embedded"))
    up: dict[tuple[str, str | None], bool] = {}
    remote = await _host_clusters(hosts, up)
    current = kubeconfigs.current_context() if kubeconfigs.user_kubeconfig_path().exists() else None
    rows: list[dict[str, Any]] = []
    for st in locals_:
        remote.pop(st.name, None)
        ctx = st.context_name or kubeconfigs.context_name(st.name)
        observed = observed_status(st)
        status = with_host(observed, up.get((st.host_kubeconfig, st.host_context), True))
        reps = await replica_status(st) if st.status != PAUSED else None
        # connected: kubectl's current context is this cluster *and* it answers there (a
        # sleeping shared cluster answers: its first request wakes it)
        rows.append({"name": st.name, "namespace": st.namespace, "status": status,
                     "created": st.created,
                     "connected": current == ctx and observed in (RUNNING, SLEEPING),
                     "currentContext": current == ctx,
                     "local": True, "tenancy": st.tenancy, "mode": cluster_mode(st),
                     "host": HostRef(st.host_kubeconfig, st.host_context, st.host_kind).describe(),
                     "url": process.ready_url(st) or "",
                     **({"replicas": reps} if reps else {})})
    for vc in remote.values():
        rows.append({"name": vc["name"], "namespace": vc["namespace"], "status": vc["status"],
                     "created": vc["created"],
                     "connected": current == kubeconfigs.context_name(vc["name"])
                     and vc["status"] == RUNNING,
                     "currentContext": current == kubeconfigs.context_name(vc["name"]),
                     "local": False, "tenancy": vc.get("tenancy", "vcluster"),
                     "mode": vc.get("tenancy", "vcluster"),
                     "host": vc["host"], "url": vc["url"]})
    return sorted(rows, key=lambda r: r["name"])


async def list_(args: argparse.Namespace) -> int:
    rows = await collect(args)
    if args.output == "json":
        print_json(rows)
        return 0
    if not rows:
        print("No virtual clusters found — create one with `vkube create NAME`")
        return 0
    ha = any(r.get("replicas") for r in rows)  # the column only where it says something
    print_table(["NAME", "NAMESPACE", "STATUS", "CONNECTED", "AGE", "MODE"]
                + (["REPLICAS"] if ha else []),
                [[r["name"], r["namespace"], r["status"], _connected_cell(r),
                  _age_of(r["created"]), r["mode"]]
                 + ([_replicas_cell(r.get("replicas"))] if ha else []) for r in rows])
    return 0


def _connected_cell(row: dict[str, Any]) -> str:
    """True when kubectl's current context is this cluster and it answers; when the context is
    current but nothing answers there (paused, failed), say so rather than leave it blank."""
    if row["connected"]:
        return "True"
    if row.get("currentContext"):
        return f"no ({str(row['status']).split(' ')[0].lower()})"
    return ""


async def host_custom_resources(host: Any, values: dict[str, Any]) -> dict[str, dict[str, str]]:
    """For each kind of ``sync.toHost``/``sync.fromHost.customResources``: whether the host
    serves it (its CRD must be installed there for the objects to be synced)."""
    from vkube.syncer.customresources import find_kind

    out: dict[str, dict[str, str]] = {}
    for side in ("toHost", "fromHost"):
        kinds = (((values.get("sync") or {}).get(side) or {}).get("customResources") or {})
        for kind_group, toggle in kinds.items():
            if not toggle.get("enabled", True):
                continue
            kind, group = kind_group.split(".", 1)
            found = await find_kind(host, kind, group)
            out.setdefault(side, {})[kind_group] = (
                "served by the host" if found else "CRD missing on the host: install it there to sync")
    return out


async def describe(args: argparse.Namespace) -> int:
    from vkube.syncer.values import dump_values, parse_values

    st = state.require(args.name)
    host = HostRef(st.host_kubeconfig, st.host_context, st.host_kind)
    pids = process.process_tree(st)
    doc: dict[str, Any] = {
        "name": st.name, "tenancy": st.tenancy, "status": observed_status(st),
        "created": st.created,
        "apiServer": process.ready_url(st) or "",
        "dns": process.dns_address(st) or "",
        "exposed": process.exposed_url(st) or "",
        "context": st.context_name or "",
        "host": {"kubeconfig": st.host_kubeconfig, "context": st.host_context,
                 "kind": st.host_kind, "namespace": st.namespace,
                 "namespaceCreatedByVkube": st.created_namespace},
        # a namespace tenant runs nothing here: no data directory nor log to point at
        "dataDir": "" if st.tenancy == "namespace" else str(st.data_dir),
        "log": "" if st.tenancy == "namespace" else str(_log_file(st)),
        "process": {"pids": pids, "rssBytes": process.rss_bytes(pids)},
        # the process serving the API (serve; in shared mode, shared with other clusters)
        "pid": pids[-1] if len(pids) >= 2 else None,
        "mode": "shared" if st.shared else "dedicated",
        "values": st.values, "effectiveValues": dump_values(parse_values(st.values)),
        "synced": None,
    }
    reps = await replica_status(st) if st.status != PAUSED else None
    if reps:
        doc["replicas"] = reps
        doc["pid"] = None  # each replica has its own (``replicas.members[].pid``)
    if st.tenancy == "namespace" or st.in_cluster:
        doc["mode"] = cluster_mode(st)  # no local control plane: "namespace" / "in-cluster"
        doc["pid"] = None
    doc["customResources"] = {}
    host_up = await hostresolve.reachable(host)
    doc["hostReachable"] = host_up
    doc["status"] = with_host(doc["status"], host_up)
    if host_up:
        async with host.client() as hc:
            doc["synced"] = await hostns.synced_counts(hc, st.namespace, st.name)
            doc["customResources"] = await host_custom_resources(hc, doc["effectiveValues"])
    if args.output == "json":
        print_json(doc)
        return 0
    rss = doc["process"]["rssBytes"]
    memory = f"{rss / 2**20:.1f} MiB" if pids else "-"
    if pids and st.shared:  # the one process serves every shared cluster: not this one's size
        from vkube.cli import sharedproc

        served = len(list(sharedproc.members_dir().glob("*.json")))
        memory += (f" (the whole shared server, serving {served} cluster"
                   f"{'' if served == 1 else 's'})")
    lines = [
        ("Name", st.name), ("Mode", cluster_mode(st)), ("Status", doc["status"]), ("Created", st.created),
        ("API server", doc["apiServer"] or "-"),
        *([("Exposed at", doc["exposed"])] if doc["exposed"] else []),
        ("DNS", doc["dns"] or "-"),
        ("Context", doc["context"] or "-"),
        ("Host", f"{host.describe()} [{st.host_kind}]"
                 + ("" if host_up else " — not reachable" + _host_hint(st))),
        ("Host namespace", st.namespace),
        *([("Data dir", doc["dataDir"]), ("Log", doc["log"])] if doc["dataDir"] else []),
        ("Control plane", _control_plane(st, doc, reps)),
        ("Processes", ", ".join(map(str, pids)) or "-"),
        ("Memory (RSS)", memory),
    ]
    if reps:
        lines.insert(3, ("Replicas", _replicas_cell(reps)))
    width = max(len(k) for k, _ in lines) + 1
    for k, v in lines:
        print(f"{k + ':':<{width}} {v}")
    for m in (reps or {}).get("members", []):
        role = " (leader)" if m["index"] == reps["leader"] else ""  # type: ignore[index]
        pid = f", pid {m['pid']}" if m["pid"] else ""
        print(f"  replica {m['index']}: {m['url'] or 'not serving'}{pid}{role}")
    synced = doc["synced"]
    print("Synced to host:" if synced is not None else "Synced to host: host not reachable")
    for kind, n in sorted((synced or {}).items()):
        print(f"  {kind:<{width}} {n}")
    if synced == {}:
        print("  (nothing yet)")
    for side, kinds in doc["customResources"].items():
        print(f"Custom resources ({side}):")
        for kind, state_ in sorted(kinds.items()):
            print(f"  {kind:<{width}} {state_}")
    print("Values:" + (" (defaults)" if not st.values else ""))
    if st.values:
        from vkube.api import yamlio

        print("  " + yamlio.dump(st.values, sort_keys=False).rstrip().replace("\n", "\n  "))
    return 0


def _control_plane(st: ClusterState, doc: dict[str, Any], reps: dict[str, Any] | None) -> str:
    """Where the API server runs, in words: a namespace tenant has none of its own."""
    if st.tenancy == "namespace":
        return "none — a namespace of the host, served by the host's API server"
    if st.in_cluster:
        return f"in the host cluster (StatefulSet in namespace {st.namespace})"
    if reps:
        n = len(reps.get("members") or [])
        return f"{doc['mode']}, {n} replica{'' if n == 1 else 's'} (pids below)"
    return f"{doc['mode']} (pid {doc['pid']})" if doc["pid"] else doc["mode"]


def _host_hint(st: ClusterState) -> str:
    return ": start it with `vkube host start`" if st.host_kind == "embedded" else ""


async def logs(args: argparse.Namespace) -> int:
    st = state.require(args.name)
    log_file = st.data_dir / "audit.log" if getattr(args, "audit", False) else _log_file(st)
    if not log_file.exists():
        raise CLIError(f"{st.name} has no log yet ({log_file}) — it has never started")
    with open(log_file, "rb") as f:
        data = f.read()
    lines = data.decode(errors="replace").splitlines(keepends=True)
    if args.tail is not None and args.tail >= 0:
        lines = lines[-args.tail:] if args.tail else []
    sys.stdout.write("".join(lines))
    sys.stdout.flush()
    if not args.follow:
        return 0
    pos = len(data)
    while True:
        await asyncio.sleep(0.25)
        with open(log_file, "rb") as f:
            f.seek(pos)
            chunk = f.read()
        if chunk:
            pos += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()


def _log_file(st: ClusterState) -> Any:
    """A cluster's own log: its process's for a dedicated cluster; for a shared one, the
    lines the shared server attributes to it (vkube.cluster.clusterlog), never another
    tenant's (the shared server's own log, with every cluster's lines, is the operator's)."""
    return st.log_file

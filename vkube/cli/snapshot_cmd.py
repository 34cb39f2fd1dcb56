"""``vkube snapshot save|restore NAME FILE``: a virtual cluster's whole store at one revision,
to a file and back, from and into any backend (see ``vkube.store.snapshot``).

The store is the one the cluster's control plane uses: ``controlPlane.store`` of its values,
else its SQLite file; ``--store URL`` names another. ``save`` works while the cluster runs;
``restore`` needs it paused (its API server must not write meanwhile).

Secrets are encrypted at rest with a key of the cluster's own; ``save`` writes them decrypted
(the file is 0600) and ``restore`` encrypts them with the target cluster's key, so a snapshot
restores into a cluster created anew, into the other mode or onto another machine."""

from __future__ import annotations

import argparse
from typing import Any

from vkube.cli.output import CLIError, guarded


def register(sub: Any) -> None:
    p = sub.add_parser("snapshot", help="save or restore a virtual cluster's store",
                       description="Save a virtual cluster's store at one revision to a file, "
                                   "or restore one into it (any backend to any backend).",
                       epilog="examples:\n  vkube snapshot save my-vcluster backup.jsonl\n"
                              "  vkube pause my-vcluster && vkube snapshot restore my-vcluster "
                              "backup.jsonl && vkube resume my-vcluster",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, help_ in (("save", "write the store at one revision to FILE"),
                          ("restore", "make the store hold exactly what FILE holds")):
        a = actions.add_parser(action, help=help_)
        a.add_argument("name", metavar="NAME")
        a.add_argument("file", metavar="FILE")
        a.add_argument("--store", default=None,
                       help="store URL (default: the cluster's controlPlane.store, else its "
                            "SQLite file)")
        a.add_argument("--etcd-cafile", default=None)
        a.add_argument("--etcd-certfile", default=None)
        a.add_argument("--etcd-keyfile", default=None)
        if action == "restore":
            for grant, (flag, help_) in _GRANTS.items():
                a.add_argument(flag, dest="allow", action="append_const", const=grant,
                               help=help_)
        a.set_defaults(func=guarded(_run))


#: what a restore refuses unless named (``vkube.cluster.snapgrants``): grant -> flag, help
_GRANTS = {
    "anonymous": ("--allow-anonymous-access", "restore RBAC granting system:anonymous or "
                  "system:unauthenticated more than a new cluster does"),
    "authenticated": ("--allow-authenticated-access", "restore RBAC granting "
                      "system:authenticated (every user and service account) more than a new "
                      "cluster does"),
    "service-accounts": ("--allow-service-account-access", "restore RBAC granting "
                         "system:serviceaccounts or system:serviceaccounts:NAMESPACE (every "
                         "pod's token) more than a new cluster does"),
    "bootstrappers": ("--allow-bootstrapper-access", "restore RBAC granting "
                      "system:bootstrappers[:…] (whoever holds a bootstrap token) more than a "
                      "new cluster does"),
    "nodes": ("--allow-node-access", "restore RBAC granting system:nodes or system:node:NAME "
              "(kubelets) more than a new cluster does"),
    "components": ("--allow-component-access", "restore RBAC granting system:kube-proxy, "
                   "system:kube-scheduler, system:kube-controller-manager or vkube's "
                   "component users more than a new cluster does"),
    "webhooks": ("--allow-webhooks", "restore admission webhook configurations and CRD "
                 "conversion webhooks"),
    "admission-policies": ("--allow-admission-policies", "restore Validating/Mutating "
                           "AdmissionPolicies and their bindings"),
    "apiservices": ("--allow-apiservices", "restore APIServices backed by a Service"),
    "bootstrap-tokens": ("--allow-bootstrap-tokens", "restore bootstrap token Secrets usable "
                         "for authentication"),
}


#: this installation's snapshot key, under VKUBE_HOME: ``save`` puts an HMAC of the file with
#: it in the trailer, and ``restore`` takes a file whose HMAC checks as one this installation
#: wrote (a SHA-256 anyone can recompute; the key only this user can read) — from the cluster
#: named in its header (``stores.cluster_origin``: by name), trusted only for that one
_KEY_FILE = "snapshot.key"


def _installation_key(create: bool) -> bytes | None:
    """The key (made on first ``save``, 0600); None when there is none yet."""
    import os

    from vkube.cli import state

    path = state.home() / _KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{_KEY_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(os.urandom(32).hex() + "\n")
        try:
            os.link(tmp, path)  # atomic, and never over a key another save just made
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return _installation_key(False)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CLIError(f"{path} is not a vkube snapshot key (64 hex digits) — remove it; the next "
                       "`vkube snapshot save` makes a new one")
    return key


def _key_file() -> str:
    from vkube.cli import state

    return str(state.home() / _KEY_FILE)


def _store_url(args: argparse.Namespace) -> str:
    from vkube.cli import process, state

    if args.store:
        return str(args.store)
    st = state.require(args.name)
    if args.action == "restore" and process.running_pid(st) is not None:
        raise CLIError(f"virtual cluster {args.name!r} is running: `vkube pause {args.name}` "
                       f"first, then restore, then `vkube resume {args.name}`")
    store = (st.values.get("controlPlane") or {}).get("store")
    if store and store != "sqlite":
        return str(store)
    db = st.data_dir / "state.db"
    if args.action == "save" and not db.exists():
        raise CLIError(f"virtual cluster {args.name!r} has no store at {db} yet")
    st.data_dir.mkdir(parents=True, exist_ok=True)
    return str(db)


def _encryption_file(args: argparse.Namespace) -> Any:
    """The cluster's EncryptionConfiguration (``restore`` makes it if the cluster never ran,
    as its API server would); None for a cluster vkube does not know or that has none."""
    from vkube.cli import state
    from vkube.cluster.config import shared_encryption_config

    st = state.ClusterState.load(state.validate_name(args.name))
    if st is None:
        return None
    if args.action == "restore":
        st.data_dir.mkdir(parents=True, exist_ok=True)
        return shared_encryption_config(st.data_dir)
    path = st.data_dir / "encryption-config.yaml"
    return path if path.exists() else None


def _existing_encryption(args: argparse.Namespace) -> Any:
    """The target cluster's EncryptionConfiguration file if it has one yet (the check reads
    it; checking never creates a key)."""
    from vkube.cli import state

    st = state.ClusterState.load(state.validate_name(args.name))
    path = st.data_dir / "encryption-config.yaml" if st is not None else None
    return path if path is not None and path.exists() else None


def _origin(args: argparse.Namespace) -> Any:
    """The cluster ``args.name`` as a snapshot file's origin (None: no cluster with a CA)."""
    from vkube.cli import state
    from vkube.cluster import stores

    st = state.ClusterState.load(state.validate_name(args.name))
    return stores.cluster_origin(st.name, st.data_dir) if st is not None else None


def _file_origin(path: str) -> Any:
    """The origin a file's header claims (for messages only: trust comes from the HMAC)."""
    import json

    try:
        with open(path, "rb") as handle:
            origin = json.loads(handle.readline()).get("origin")
    except (OSError, ValueError, AttributeError):
        return None
    return origin if isinstance(origin, dict) else None


def _untrusted(args: argparse.Namespace) -> str:
    """Why the file's grants were checked (it is not this installation's file of this cluster)."""
    from vkube.cluster.stores import same_cluster

    claimed = _file_origin(args.file)
    if claimed is not None and not same_cluster(claimed, args.origin):
        return (f"the file was saved from another cluster ({str(claimed.get('cluster'))!r}, CA "
                f"{str(claimed.get('ca'))[:23]}…): what it grants restores without flags only "
                "into the cluster it was saved from")
    return f"the file was not written by this vkube installation from {args.name}"


def _refused(args: argparse.Namespace, exc: Exception) -> CLIError:
    """A file refused before anything was written: one line, and what to do instead."""
    from vkube.cluster import stores

    text = str(exc)
    if isinstance(exc, stores.SnapshotGrant):
        return CLIError(f"{text} ({_untrusted(args)}); nothing was restored into {args.name}")
    if "newer vkube" in text:
        return CLIError(f"{text}; nothing was restored into {args.name}")
    return CLIError(f"{text} — nothing was restored into {args.name}; restore a file that "
                    "`vkube snapshot save SOURCE FILE` wrote")


def _verify(args: argparse.Namespace) -> None:
    """Every line and every entry of the file checked against the target cluster before any
    store is opened."""
    from vkube.cluster import stores

    # what the file may grant: what the user named with --allow-…; all of it if this
    # installation wrote the file from this very cluster (its HMAC checks with the key,
    # ``args.key``, and its header names ``args.origin``)
    args.grants = frozenset(args.allow or ())
    args.key = _installation_key(False)
    args.origin = _origin(args)
    try:
        args.own = stores.verify_snapshot(args.file, _existing_encryption(args), args.grants,
                                          args.key, args.origin).signed
    except FileNotFoundError:
        raise CLIError(f"snapshot file {args.file} not found — check the path") from None
    except stores.SnapshotError as exc:
        raise _refused(args, exc) from None
    except OSError as exc:
        raise _file_error(args, exc) from None


def _file_error(args: argparse.Namespace, exc: OSError) -> CLIError:
    """The snapshot file cannot be read or written (a directory, no permission): one line
    and what to run instead."""
    why = "is a directory, not a file" if isinstance(exc, IsADirectoryError) else \
        f"cannot be {'read' if args.action == 'restore' else 'written'}: {exc.strerror or exc}"
    fix = (f"restore a file that `vkube snapshot save SOURCE FILE` wrote: `vkube snapshot "
           f"restore {args.name} FILE`" if args.action == "restore" else
           f"name a file to write: `vkube snapshot save {args.name} {args.name}.jsonl`")
    return CLIError(f"snapshot file {args.file} {why} — {fix}")


def _write_failed(args: argparse.Namespace, where: str, exc: Exception) -> CLIError:
    """The store failed during the restore's writes: what it holds now, and the retry."""
    from vkube.cluster import stores

    again = f"`vkube snapshot restore {args.name} {args.file}`"
    if isinstance(exc, stores.PartialCommit):
        return CLIError(f"restore of {args.name} stopped midway: {exc} — the store holds "
                        f"{exc.applied} of the {exc.total} changes; run {again} again to "
                        "finish (it makes the store hold exactly the file)")
    if not getattr(exc, "transient", True):  # a refusal, not an outage: retrying cannot help
        return CLIError(f"store {where} refused the restore: {exc} — the restore wrote nothing "
                        f"(one transaction); check the store with `vkube describe {args.name}`")
    return CLIError(f"store {where}: {exc} — the restore wrote nothing (one transaction); "
                    f"once the store is back, run {again} again")


def _transform(args: argparse.Namespace) -> Any:
    from vkube.cluster import stores

    path = _encryption_file(args)
    if path is None:
        return None
    try:
        return stores.Decrypter(path) if args.action == "save" else stores.encrypter(path)
    except ValueError as exc:  # encryption.ConfigError
        raise CLIError(f"{path}: {exc}") from None


def _provenance(args: argparse.Namespace) -> str:
    if args.own:
        return (f"; the file was written by this vkube installation from {args.name} (its HMAC "
                "checks), so what it grants is restored as saved")
    return f"; {_untrusted(args)}: what it grants beyond a new cluster was checked"


def _saved(args: argparse.Namespace, keys: int, revision: int, size: int, transform: Any) -> None:
    print(f"saved {keys} keys of {args.name} at revision {revision} to {args.file} "
          f"({size} bytes; Secrets in plain text, file mode 0600)")
    missed = getattr(transform, "undecryptable", None)
    if missed:
        print(f"warning: {len(missed)} value(s) could not be decrypted with {args.name}'s keys "
              f"and are saved encrypted (first: {missed[0]}); they restore only into a cluster "
              "with the same encryption key")


def _refuse_namespace_tenant(args: argparse.Namespace) -> None:
    """A namespace tenant has no store of its own: its objects are the host's."""
    from vkube.cli import state

    if args.store:
        return
    st = state.require(args.name)
    if st.tenancy == "namespace":
        raise CLIError(f"{args.name!r} is a namespace tenant: its objects live in host namespace "
                       f"{st.namespace} of the host cluster, not in a vkube store — back them up "
                       f"with the host's tools (e.g. `kubectl get all,cm,secret -n "
                       f"{st.namespace} -o yaml`)")


def _shared_state(args: argparse.Namespace) -> Any:
    """The cluster's state when it is a shared cluster and no --store names another store."""
    from vkube.cli import state

    if args.store:
        return None
    st = state.require(args.name)
    return st if st.shared else None


def _run_shared(args: argparse.Namespace, st: Any) -> int:
    """A shared cluster's keys live under its prefix of the shared store. ``save`` reads them
    from here (a consistent cut at one revision, as for a dedicated store); ``restore`` is done
    by the shared server, the only writer of that store, while the cluster is paused."""
    import asyncio

    from vkube.cli import process, sharedproc
    from vkube.cluster import stores

    if args.action == "restore":
        if process.running_pid(st) is not None:
            what = "sleeping" if sharedproc.is_sleeping(st) else "running"
            raise CLIError(f"virtual cluster {args.name!r} is {what}: `vkube pause {args.name}` "
                           f"first, then restore, then `vkube resume {args.name}`")
        _verify(args)
        try:
            info = sharedproc.restore(st, args.file, allow=args.grants,
                                      key_file=_key_file() if args.key is not None else "")
            args.own = bool(info.get("signed"))
        finally:
            sharedproc.stop_if_idle()  # started for the restore only, if nothing else runs
        print(f"restored {info['keys']} keys into {args.name} from {args.file} (revision "
              f"{info['revision']} of the source): {info['created']} created, {info['updated']} "
              f"updated, {info['deleted']} deleted{_provenance(args)}")
        return 0
    db = sharedproc.data_dir() / "state.db"
    if not db.exists():
        raise CLIError(f"the shared server has no store at {db} yet")
    transform = _transform(args)
    try:
        saved = asyncio.run(stores.save_snapshot(str(db), args.file, prefix=f"/clusters/{st.name}",
                                                 transform=transform, key=_installation_key(True),
                                                 origin=stores.cluster_origin(st.name, st.data_dir)))
    except stores.StoreError as exc:
        raise CLIError(f"store {db}: {exc}") from None
    except OSError as exc:
        raise CLIError(f"{args.file}: {exc.strerror or exc}") from None
    _saved(args, saved.keys, saved.revision, saved.bytes, transform)
    return 0


def _check_save_target(args: argparse.Namespace) -> None:
    """Where ``save`` writes must be a file in an existing directory: say which of the two is
    wrong (an error opening it would only say "not found")."""
    from pathlib import Path

    target = Path(args.file)
    if target.is_dir():
        raise CLIError(f"{args.file} is a directory — name a file in it, e.g. "
                       f"`vkube snapshot save {args.name} {target / (args.name + '.jsonl')}`")
    if not target.parent.is_dir():
        raise CLIError(f"directory {target.parent} does not exist, so snapshot file {args.file} "
                       f"cannot be written — `mkdir -p {target.parent}` first, or name a file "
                       "in an existing directory")


def _run(args: argparse.Namespace) -> int:
    import asyncio  # here, not at parser build: every vkube command imports this module

    from vkube.cluster import stores

    _refuse_namespace_tenant(args)
    shared = _shared_state(args)
    if args.action == "save":
        _check_save_target(args)
    if shared is not None:
        return _run_shared(args, shared)
    url = _store_url(args)
    tls = {k: v for k, v in (("ca_file", args.etcd_cafile), ("cert_file", args.etcd_certfile),
                             ("key_file", args.etcd_keyfile)) if v}
    try:
        if args.action == "restore":
            _verify(args)  # refuse a bad file before the store is opened
            transform = _transform(args)
            check = stores.snapshot_check(args.file, _existing_encryption(args), args.grants)
            info = asyncio.run(stores.restore_snapshot(url, args.file, transform=transform,
                                                       check=check, key=args.key,
                                                       origin=args.origin, **tls))
            args.own = info.signed  # the same read as what was written
        else:
            transform = _transform(args)
            # the file names this cluster as its origin only when it is the cluster's own
            # store (``--store`` may name any store: its file is trusted for no cluster)
            info = asyncio.run(stores.save_snapshot(url, args.file, transform=transform,
                                                    key=_installation_key(True),
                                                    origin=None if args.store else _origin(args),
                                                    **tls))
    except FileNotFoundError:
        raise CLIError(f"snapshot file {args.file} not found — check the path") from None
    except stores.UnsupportedStore as exc:
        raise CLIError(str(exc)) from None
    except stores.SnapshotError as exc:  # the file changed since it was checked
        raise _refused(args, exc) from None
    except stores.StoreError as exc:
        if args.action == "restore":
            raise _write_failed(args, stores.describe(url), exc) from None
        raise CLIError(f"store {stores.describe(url)}: {exc}") from None
    except OSError as exc:
        raise _file_error(args, exc) from None
    if args.action == "save":
        _saved(args, info.keys, info.revision, info.bytes, transform)
    else:
        kept = ("; resourceVersions kept" if info.kept_revisions else
                "; resourceVersions are new (the target store had data, or is etcd), so "
                "clients relist")
        print(f"restored {info.keys} keys into {args.name} from {args.file} (revision "
              f"{info.revision} of the source): {info.created} created, {info.updated} updated, "
              f"{info.deleted} deleted{kept}{_provenance(args)}")
    return 0

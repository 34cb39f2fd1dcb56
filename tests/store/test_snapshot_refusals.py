"""``vkube snapshot restore`` never trusts a file: crafted files (an attacker's, a damaged
disk's) are refused through the CLI with one line naming the first bad entry, and the target
store is left exactly as it was — ``kubectl get`` still works and shows the old objects. A
database failing in the middle of the restore's writes leaves it as it was too (one
transaction), on SQLite (a cluster's own store) and on PostgreSQL (``--store``)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, make_user

from .conftest import fresh_postgres_database

Line = dict  # one key line of a snapshot file: {"k", "v" (base64), "c", "m"}


def _line(key: str, value: bytes, rev: int = 5) -> Line:
    return {"k": key, "v": base64.b64encode(value).decode(), "c": rev, "m": rev}


def _obj(kind: str, name: str, namespace: str | None = "default", **extra: object) -> bytes:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return json.dumps({"apiVersion": "v1", "kind": kind, "metadata": meta, **extra}).encode()


def _craft(good: Path, out: Path, edit: Callable[[list[Line]], None]) -> Path:
    """``good`` with its key lines edited and a correct trailer (so that only the content
    checks can find what is wrong)."""
    lines = good.read_bytes().splitlines(keepends=True)
    entries = [json.loads(line) for line in lines[1:-1]]
    edit(entries)
    body = [json.dumps(e).encode() + b"\n" for e in entries]
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    out.write_bytes(lines[0] + b"".join(body) + json.dumps(end).encode() + b"\n")
    return out


def _cases(tmp: Path, good: Path) -> list[tuple[Path, str]]:
    """(crafted file, what the refusal must say) for each kind of fault."""
    cm = "/core/configmaps/default/evil"
    cases: list[tuple[str, Callable[[list[Line]], None], str]] = [
        ("undecodable", lambda e: e.append(_line(cm, b"{not json")),
         f"'{cm}' (line {{n}}): the value is not JSON"),
        ("array", lambda e: e.append(_line(cm, b"[1, 2]")), "the value is JSON list, not an object"),
        ("name", lambda e: e.append(_line(cm, _obj("ConfigMap", "other"))),
         "metadata.name 'other' is not the key's name 'evil'"),
        ("namespace", lambda e: e.append(_line(cm, _obj("ConfigMap", "evil", "kube-system"))),
         "metadata.namespace 'kube-system' is not the key's namespace 'default'"),
        ("kind", lambda e: e.append(_line("/core/secrets/default/evil", _obj("ConfigMap", "evil"))),
         "kind 'ConfigMap' does not belong under this key ('Secret')"),
        ("scope", lambda e: e.append(_line("/core/namespaces/default/evil", _obj("Namespace", "evil"))),
         "namespaces are cluster-scoped"),
        ("surrogate", lambda e: e.insert(0, _line("/core/configmaps/default/\ud800", b"{}")),
         "'/core/configmaps/default/\\ud800' (line 2): the key holds the character U+D800"),
        ("unknown", lambda e: e.append(_line("/evil.example.com/things/default/x", b"{}")),
         "no resource 'things' in group 'evil.example.com'"),
        ("no-crd", lambda e: e.append(_line("/stable.example.com/widgets/default/w", json.dumps(
            {"apiVersion": "stable.example.com/v1", "kind": "Widget",
             "metadata": {"name": "w", "namespace": "default"}}).encode())),
         "neither built in nor defined by a CustomResourceDefinition in this file"),
        ("typed", lambda e: e.append(_line(cm, _obj("ConfigMap", "evil", data="not a map"))),
         "the object does not decode as a ConfigMap: data:"),
        ("big", lambda e: e.append(_line(cm, _obj("ConfigMap", "evil", data={"x": "y" * (3 << 20)}))),
         "over the API's limit of 3145728"),
        ("twice", lambda e: e.append(dict(e[-1])), "the key appears twice"),
        ("foreign-key", lambda e: e.append(_line("/core/secrets/default/evil",
                                                 b"k8s:enc:aesgcm:v1:key1:" + os.urandom(64))),
         "encrypted with a key the target cluster does not have"),
    ]
    out = []
    for name, edit, message in cases:
        path = _craft(good, tmp / f"{name}.jsonl", edit)
        n = len(path.read_bytes().splitlines()) - 1  # appended entries: the last key line
        out.append((path, message.replace("{n}", str(n))))
    raw = good.read_bytes()
    header = json.loads(raw.splitlines()[0])
    (tmp / "truncated.jsonl").write_bytes(raw[: len(raw) // 2])
    (tmp / "foreign.jsonl").write_text("apiVersion: v1\nkind: Config\n")
    (tmp / "newer.jsonl").write_bytes(json.dumps({**header, "version": 3}).encode() + b"\n"
                                      + b"\n".join(raw.splitlines()[1:]) + b"\n")
    out += [(tmp / "truncated.jsonl", "is truncated"),
            (tmp / "foreign.jsonl", "is not a vkube snapshot"),
            (tmp / "newer.jsonl", "is snapshot format 3, written by a newer vkube")]
    return out


def _refused(proc: object, message: str, name: str) -> None:
    rc, err = proc.returncode, proc.stderr  # type: ignore[attr-defined]
    assert rc == 1, (rc, err)
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and message in err, err
    assert f"nothing was restored into {name}" in err, err


def _in_process(user: User, capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    """``vkube ARGV`` run by the CLI's own parser and command function in this process
    (VKUBE_HOME and KUBECONFIG are the user's): its exit code and what it printed."""
    import types

    from vkube.cli.main import build_parser

    capsys.readouterr()
    args = build_parser().parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)


def _rows(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT max(revision), count(*) FROM kv").fetchone()
    finally:
        conn.close()


@pytest.fixture
def user(tmp_path: Path) -> User:
    u = make_user(tmp_path / "user")
    yield u  # type: ignore[misc]
    cleanup(u)


@pytest.mark.timeout(900)
def test_crafted_files_are_refused_and_the_cluster_is_unchanged(
        user: User, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKUBE_HOME", str(user.home))
    monkeypatch.setenv("KUBECONFIG", str(user.kubeconfig))
    user.vkube("create", "vc")
    user.kubectl("create", "configmap", "keep", "--from-literal=a=b")
    user.kubectl("create", "secret", "generic", "s", "--from-literal=p=q")
    good = tmp_path / "good.jsonl"
    user.vkube("snapshot", "save", "vc", str(good))
    user.kubectl("create", "configmap", "after", "--from-literal=c=d")  # a restore would drop it
    user.vkube("pause", "vc")
    db = user.home / "clusters" / "vc" / "data" / "state.db"
    before = _rows(db)
    cases = _cases(tmp_path, good)
    # the first through a process of its own, as a user runs it; the others through the same
    # parser and command in this process (a second each of imports saved, same code path)
    path, message = cases[0]
    _refused(user.vkube("snapshot", "restore", "vc", str(path), check=False), message, "vc")
    for path, message in cases[1:]:
        _refused(_in_process(user, capsys, "snapshot", "restore", "vc", str(path)), message, "vc")
        assert _rows(db) == before, path

    # the store failing in the middle of the writes: one transaction, nothing written
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER boom BEFORE INSERT ON kv WHEN NEW.key = "
                 "'/core/secrets/default/s' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    conn.commit()
    conn.close()
    out = user.vkube("snapshot", "restore", "vc", str(good), check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "disk on fire" in out.stderr and "the restore wrote nothing" in out.stderr
    assert "`vkube snapshot restore vc " in out.stderr and "Traceback" not in out.stderr
    assert _rows(db) == before
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER boom")
    conn.commit()
    conn.close()

    user.vkube("resume", "vc")
    names = set(user.kubectl("get", "configmaps", "-o", "name").stdout.split())
    assert {"configmap/keep", "configmap/after"} <= names and "configmap/evil" not in names
    secret = json.loads(user.kubectl("get", "secret", "s", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["p"]) == b"q"
    assert user.kubectl("get", "secrets", "-A").returncode == 0


@pytest.fixture
async def postgres_db(postgres_server: str) -> AsyncIterator[str]:
    async for url in fresh_postgres_database(postgres_server):
        yield url


async def _pg(url: str, *statements: str) -> object:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        result = None
        for statement in statements:
            result = await conn.fetch(statement)
        return [tuple(r) for r in result or []]
    finally:
        await conn.close()


@pytest.mark.timeout(600)
async def test_postgres_store_refuses_crafted_files_and_survives_a_failing_restore(
        tmp_path: Path, postgres_db: str) -> None:
    """``--store postgres://…``: a file restores; a crafted one is refused with the store
    untouched; a restore the database fails midway leaves the store as it was."""
    import asyncio
    import subprocess
    import sys

    u = make_user(tmp_path / "user")

    def vkube(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vkube", *args], env=u.env,
                              capture_output=True, text=True, timeout=120)

    ns = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    good = _craft_fresh(tmp_path / "good.jsonl", [
        _line("/core/configmaps/default/one", _obj("ConfigMap", "one", data={"a": "b"}), 2),
        _line("/core/namespaces/default", ns.encode(), 1)])
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(good), "--store",
                                  postgres_db)
    assert out.returncode == 0 and "restored 2 keys" in out.stdout, out.stderr
    count = "SELECT count(*), max(revision) FROM kv"
    before = await _pg(postgres_db, count)
    bad = _craft(good, tmp_path / "bad.jsonl", lambda e: e.append(
        _line("/core/configmaps/default/two", _obj("ConfigMap", "three"))))
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(bad), "--store",
                                  postgres_db)
    _refused(out, "metadata.name 'three' is not the key's name 'two'", "pgvc")
    assert await _pg(postgres_db, count) == before

    grown = _craft(good, tmp_path / "grown.jsonl", lambda e: e.extend(
        _line(f"/core/configmaps/default/n{i}", _obj("ConfigMap", f"n{i}")) for i in range(50)))
    await _pg(postgres_db, "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.key = "
              "'/core/configmaps/default/n7' THEN RAISE EXCEPTION 'disk on fire'; END IF; "
              "RETURN NEW; END $$ LANGUAGE plpgsql",
              "CREATE TRIGGER boom BEFORE INSERT ON kv FOR EACH ROW EXECUTE FUNCTION boom()")
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(grown), "--store",
                                  postgres_db)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "disk on fire" in out.stderr and "the restore wrote nothing" in out.stderr
    assert await _pg(postgres_db, count) == before
    await _pg(postgres_db, "DROP TRIGGER boom ON kv")
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "pgvc", str(grown), "--store",
                                  postgres_db)
    assert out.returncode == 0 and "50 created" in out.stdout, out.stderr


def _craft_fresh(path: Path, entries: list[Line]) -> Path:
    header = {"format": "vkube-store-snapshot", "version": 2, "revision": 10,
              "source": "test", "values": "transformed"}
    body = [json.dumps(e).encode() + b"\n" for e in sorted(entries, key=lambda e: e["k"])]
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(body)
                     + json.dumps(end).encode() + b"\n")
    return path


@pytest.mark.timeout(600)
async def test_etcd_restore_failing_midway_says_what_it_left(tmp_path: Path,
                                                             etcd_server: str) -> None:
    """etcd takes at most 128 operations per transaction, so a bigger restore is several: one
    failing after others (here a value over etcd's default 1.5 MiB request limit, refused by
    etcd itself) is reported with how many changes were made and how to finish, in one
    line; the store holds exactly those; a restore run again makes it hold the file."""
    import asyncio
    import subprocess
    import sys
    import uuid

    from vkube.store import open_store

    u = make_user(tmp_path / "user")
    url = f"{etcd_server}/refusals-{uuid.uuid4().hex[:8]}"

    def vkube(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vkube", *args], env=u.env,
                              capture_output=True, text=True, timeout=120)

    small = [_line(f"/core/configmaps/default/c{i:03d}", _obj("ConfigMap", f"c{i:03d}"))
             for i in range(200)]
    big = _line("/core/configmaps/default/zz-big",
                _obj("ConfigMap", "zz-big", data={"x": "y" * (2 << 20)}))
    path = _craft_fresh(tmp_path / "big.jsonl", small + [big])
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "etcdvc", str(path), "--store", url)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "stopped midway" in out.stderr and "holds 200 of the 201 changes" in out.stderr
    assert "`vkube snapshot restore etcdvc " in out.stderr and "again to finish" in out.stderr
    store = open_store(url)
    await store.start()
    try:
        assert (await store.range("/core/configmaps/")).count == 200
    finally:
        await store.close()
    fine = _craft_fresh(tmp_path / "fine.jsonl", small[:150])
    out = await asyncio.to_thread(vkube, "snapshot", "restore", "etcdvc", str(fine), "--store", url)
    assert out.returncode == 0 and "50 deleted" in out.stdout, out.stderr

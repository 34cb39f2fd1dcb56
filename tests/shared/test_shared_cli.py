"""Shared mode as a user drives it: ``vkube create --shared`` (the shared server starts on
first use), every verb on shared clusters, the real kubectl through each cluster's context,
workloads synced to the embedded host, sleep and wake, and isolation between the clusters.
Moving a cluster between the modes goes through ``vkube snapshot``."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.conftest import kubectl
from tests.security.test_tokens import unauthorized

DEPLOY = json.dumps({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})


@pytest.fixture(scope="module")
def host_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    u = make_user(tmp_path_factory.mktemp("shared-user"))
    u.vkube("host", "start", "--nodes", "2")
    try:
        yield u
    finally:
        cleanup(u)


def host_pods(u: User, ns: str) -> list[str]:
    out = u.kubectl("--context", "vkube-host", "get", "pods", "-n", ns, "-o",
                    "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}").stdout
    return [line for line in out.splitlines() if line.strip()]


def _host_writers(u: User, ns: str, resource: str) -> set[str]:
    """Who created ``resource`` objects in host namespace ``ns``, by the host's audit log."""
    who = set()
    for line in (u.home / "host" / "data" / "audit.log").read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (event.get("verb") == "create" and event.get("stage") == "ResponseComplete"
                and ref.get("resource") == resource and ref.get("namespace") == ns
                and not ref.get("subresource")):
            who.add(event["user"]["username"])
    return who


def ctx(u: User, name: str, *args: str, **kw: object):  # noqa: ANN201
    return u.kubectl("--context", f"vkube_{name}", *args, **kw)


@pytest.mark.timeout(600)  # a long user walk; past 300 s on a loaded machine
def test_shared_clusters_through_the_cli(host_user: User) -> None:
    u = host_user
    u.vkube("create", "--shared", "one", "--connect=false")
    u.vkube("create", "--shared", "two", "--connect=false")
    u.vkube("connect", "one")
    u.vkube("connect", "two")
    d1, d2 = u.describe("one"), u.describe("two")
    # one process serves both, and says so
    assert d1["mode"] == d2["mode"] == "shared"
    assert d1["pid"] and d1["pid"] == d2["pid"]
    assert d1["apiServer"].endswith("/clusters/one") and d2["apiServer"].endswith("/clusters/two")
    assert d1["apiServer"].rsplit("/clusters/", 1)[0] == d2["apiServer"].rsplit("/clusters/", 1)[0]
    rows = u.list()
    assert rows["one"]["status"] == rows["two"]["status"] == "Running"

    # each its own API: a namespace in one is not in two
    ctx(u, "one", "create", "namespace", "team-one")
    assert "team-one" not in ctx(u, "two", "get", "ns").stdout

    # a synced workload on the embedded host, in the cluster's own host namespace
    ctx(u, "one", "apply", "-f", "-", input=DEPLOY)
    eventually(lambda: _running(u, "vkube-one", 2), timeout=120)
    assert host_pods(u, "vkube-two") == []
    # ... made by the cluster's own confined host identity (its ServiceAccount), as a dedicated
    # cluster's syncer: never with the user's host admin credential, which the host's RBAC
    # would not confine to the cluster's namespace
    writers = _host_writers(u, "vkube-one", "pods")
    assert writers == {"system:serviceaccount:vkube-one:vkube-one"}, writers

    # sleep: workloads off the host, Sleeping in the list; the next kubectl wakes it
    u.vkube("sleep", "one")
    # the current context is a sleeping cluster: still CONNECTED (its next request wakes it),
    # and MODE says shared as describe does
    u.kubectl("config", "use-context", "vkube_one")
    rows = u.list()
    assert rows["one"]["status"] == "Sleeping" and rows["one"]["connected"] is True
    assert rows["one"]["mode"] == rows["two"]["mode"] == "shared"
    line = next(ln for ln in u.vkube("list").stdout.splitlines() if ln.startswith("one "))
    assert line.split()[2:4] == ["Sleeping", "True"] and line.split()[-1] == "shared"
    eventually(lambda: _running(u, "vkube-one", 0), timeout=60)
    assert u.list()["two"]["status"] == "Running"
    out = ctx(u, "one", "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").stdout
    assert out == "2"
    assert u.list()["one"]["status"] == "Running"
    eventually(lambda: _running(u, "vkube-one", 2), timeout=120)
    eventually(lambda: _virtual_running(u, "one", 2), timeout=120)

    # sleep and an explicit wake; a snapshot restore into a sleeping cluster says it sleeps
    u.vkube("sleep", "one")
    r = u.vkube("snapshot", "restore", "one", str(u.home / "none.snap"), check=False)
    assert r.returncode == 1 and "'one' is sleeping: `vkube pause one` first" in r.stderr
    u.vkube("wake", "one")
    assert u.list()["one"]["status"] == "Running"
    again = u.vkube("wake", "one").stdout
    assert "already awake" in again and "puts its host workloads back" not in again, again
    eventually(lambda: _running(u, "vkube-one", 2), timeout=120)

    # pause / resume work as for a dedicated cluster; the others keep running
    u.vkube("pause", "two")
    assert u.list()["two"]["status"] == "Paused"
    # kubectl to a paused cluster: its own certificate and a Status that says so
    r = ctx(u, "two", "get", "ns", check=False)
    assert r.returncode != 0 and "virtual cluster two is paused" in r.stderr, r.stderr
    assert "vkube resume two" in r.stderr and "x509" not in r.stderr
    assert u.describe("one")["status"] == "Running"
    u.vkube("resume", "two")
    assert "default" in ctx(u, "two", "get", "ns").stdout

    # --upgrade with values that name no mode keeps the cluster shared; asking for the
    # other mode is refused by name (moving goes through a snapshot)
    # (and its values are checked as a shared cluster's: sleep is accepted)
    u.vkube("create", "one", "--upgrade", "-f", _values(u, {"sync": {"configmaps": {"all": True}},
                                                           "sleep": {"afterInactivity": "1h"}}))
    assert u.describe("one")["mode"] == "shared" and u.list()["one"]["status"] == "Running"
    kept = json.loads((u.home / "clusters" / "one" / "state.json").read_text())["values"]
    assert kept["sleep"] == {"afterInactivity": "1h"}, kept
    assert "default" in ctx(u, "one", "get", "ns").stdout
    r = u.vkube("create", "one", "--upgrade", "-f",
                _values(u, {"controlPlane": {"mode": "dedicated"}}), check=False)
    assert r.returncode != 0 and "shared mode" in r.stderr and "vkube snapshot" in r.stderr
    # --expose would give a context without the cluster's path: refused naming both flags
    r = u.vkube("create", "--shared", "shx", "--expose", check=False)
    assert r.returncode == 1 and "--expose" in r.stderr and "--shared" in r.stderr, r.stderr
    assert "shx" not in u.list()

    # delete removes the data too: a new cluster of the same name starts empty
    u.vkube("delete", "two")
    u.vkube("create", "--shared", "two", "--connect=false")
    # --upgrade keeps kubectl's current context (and adds none for a cluster made with
    # --connect=false) unless --connect asks for the switch
    before = u.current_context()
    assert before != "vkube_two"
    u.vkube("create", "two", "--upgrade")
    assert u.current_context() == before
    assert "vkube_two" not in u.kubeconfig.read_text()
    u.vkube("connect", "two")
    u.kubectl("config", "use-context", before)
    u.vkube("create", "two", "--upgrade", "--connect=false")
    assert u.current_context() == before
    assert "team-one" not in ctx(u, "two", "get", "ns").stdout
    pid = u.describe("one")["pid"]
    u.vkube("delete", "two")
    u.vkube("delete", "one")
    assert not (u.home / "shared" / "supervisor.pid").exists() or not _alive(pid)


def test_sleep_after_inactivity(host_user: User) -> None:
    """``sleep.afterInactivity`` in the values of ``create --shared``: an idle cluster with a
    running workload goes to sleep on its own (pods off the host), and ``kubectl get`` wakes
    it with its workload back."""
    u = host_user
    u.vkube("create", "--shared", "sleepy", "--connect=false", "-f",
            _values(u, {"sleep": {"afterInactivity": "15s"}}))
    u.vkube("connect", "sleepy")
    try:
        ctx(u, "sleepy", "apply", "-f", "-", input=DEPLOY)
        eventually(lambda: _running(u, "vkube-sleepy", 2), timeout=120)

        def asleep() -> None:
            assert u.list()["sleepy"]["status"] == "Sleeping"
        eventually(asleep, timeout=180, delay=2)
        eventually(lambda: _running(u, "vkube-sleepy", 0), timeout=60)
        assert ctx(u, "sleepy", "get", "deployment", "web", "-o",
                   "jsonpath={.spec.replicas}").stdout == "2"
        assert u.list()["sleepy"]["status"] == "Running"
        eventually(lambda: _running(u, "vkube-sleepy", 2), timeout=120)
    finally:
        u.vkube("delete", "sleepy")


def test_sleep_is_refused_for_a_dedicated_cluster(host_user: User) -> None:
    u = host_user
    u.vkube("create", "solo", "--connect=false")
    try:
        r = u.vkube("sleep", "solo", check=False)
        assert r.returncode == 1 and "dedicated" in r.stderr and "vkube pause solo" in r.stderr
        assert "Traceback" not in r.stderr
        r = u.vkube("create", "x", "-f", _values(u, {"sleep": {"afterInactivity": "5m"}}),
                    check=False)
        assert r.returncode != 0 and "sleep.afterInactivity" in r.stderr
        r = u.vkube("create", "x", "--shared", "-f",
                    _values(u, {"sleep": {"afterInactivity": "soon"}}), check=False)
        assert r.returncode != 0 and "sleep.afterInactivity" in r.stderr and "30m" in r.stderr
    finally:
        u.vkube("delete", "solo")


def _secret(u: User, name: str, secret: str) -> str:
    import base64

    out = ctx(u, name, "get", "secret", secret, "-o", "jsonpath={.data.k}").stdout
    return base64.b64decode(out).decode()


def _encrypted_at_rest(db: Path, key: str) -> bool:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM kv WHERE key = ? ORDER BY revision DESC LIMIT 1",
                           (key,)).fetchone()
    finally:
        conn.close()
    assert row is not None, key
    return bytes(row[0]).startswith(b"k8s:enc:aesgcm:v1:")


def test_snapshot_moves_a_cluster_between_modes(host_user: User, tmp_path: Path) -> None:
    """Each ``vkube create`` makes a new encryption key: Secrets move (the file holds them
    decrypted, 0600; restore encrypts them with the target's key), and the restored cluster
    syncs workloads again (a Secret it cannot read would stop its syncer)."""
    u = host_user
    snap = tmp_path / "snap.jsonl"
    u.vkube("create", "mover", "--connect=false")
    u.vkube("connect", "mover")
    ctx(u, "mover", "create", "configmap", "moved", "--from-literal=k=dedicated")
    ctx(u, "mover", "create", "secret", "generic", "kept", "--from-literal=k=s3cret")
    # a grant a file from elsewhere would need --allow-authenticated-access for: this
    # installation wrote the file from a cluster of this name (the one deleted below, created
    # again in the other mode), so it restores as saved
    ctx(u, "mover", "create", "clusterrolebinding", "everyone", "--clusterrole=view",
        "--group=system:authenticated")
    saved = u.vkube("snapshot", "save", "mover", str(snap)).stdout
    assert "plain text" in saved and snap.stat().st_mode & 0o777 == 0o600
    u.vkube("delete", "mover")
    # into shared mode
    u.vkube("create", "--shared", "mover", "--connect=false")
    pid = u.describe("mover")["pid"]
    # the only shared cluster paused: the server serves none and stops (README says so);
    # a restore starts it for the restore only
    out = u.vkube("pause", "mover").stdout
    assert "shared server serves no other running cluster and was stopped" in out, out
    assert not _alive(pid)
    # a crafted file is refused before the shared server is asked to write anything
    lines = snap.read_bytes().splitlines(keepends=True)
    evil = json.loads(lines[1])
    evil["v"] = base64.b64encode(b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": '
                                 b'{"name": "x", "namespace": "kube-system"}}').decode()
    body = [json.dumps(evil).encode() + b"\n"] + lines[2:-1]
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    (tmp_path / "evil.jsonl").write_bytes(lines[0] + b"".join(body) + json.dumps(end).encode()
                                          + b"\n")
    out = u.vkube("snapshot", "restore", "mover", str(tmp_path / "evil.jsonl"), check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert f"entry '{evil['k']}' (line 2)" in out.stderr and "nothing was restored" in out.stderr
    out = u.vkube("snapshot", "restore", "mover", str(snap)).stdout
    assert "written by this vkube installation from mover (its HMAC checks)" in out, out
    pid_file = u.home / "shared" / "supervisor.pid"
    assert not pid_file.exists() or not _alive(int(pid_file.read_text().strip() or 0))
    u.vkube("resume", "mover")
    u.vkube("connect", "mover")
    assert ctx(u, "mover", "get", "cm", "moved", "-o", "jsonpath={.data.k}").stdout == "dedicated"
    assert ctx(u, "mover", "get", "clusterrolebinding", "everyone", "-o",
               "jsonpath={.subjects[0].name}").stdout == "system:authenticated"
    assert _secret(u, "mover", "kept") == "s3cret"
    assert _encrypted_at_rest(u.home / "shared" / "data" / "state.db", "/clusters/mover/core/secrets/default/kept")
    ctx(u, "mover", "run", "after-move", "--image=nginx")
    eventually(lambda: _virtual_running(u, "mover", 1), timeout=120)
    # the syncer runs and the nodes it copied up lead to this host's kubelets
    assert ctx(u, "mover", "exec", "after-move", "--", "hostname").stdout.strip() == "after-move"
    ctx(u, "mover", "delete", "pod", "after-move", "--wait=false")
    ctx(u, "mover", "patch", "cm", "moved", "-p", '{"data":{"k":"shared"}}')
    # saved from the shared cluster, its file is trusted there (the shared server checks the
    # HMAC and the origin against the cluster's CA itself)
    u.vkube("snapshot", "save", "mover", str(snap))
    u.vkube("pause", "mover")
    out = u.vkube("snapshot", "restore", "mover", str(snap)).stdout
    assert "written by this vkube installation from mover (its HMAC checks)" in out, out
    # and back out of it
    u.vkube("delete", "mover")
    u.vkube("create", "mover", "--connect=false")
    u.vkube("pause", "mover")
    u.vkube("snapshot", "restore", "mover", str(snap))
    u.vkube("resume", "mover")
    u.vkube("connect", "mover")
    assert ctx(u, "mover", "get", "cm", "moved", "-o", "jsonpath={.data.k}").stdout == "shared"
    assert _secret(u, "mover", "kept") == "s3cret"
    assert _encrypted_at_rest(u.home / "clusters" / "mover" / "data" / "state.db",
                              "/core/secrets/default/kept")
    u.vkube("delete", "mover")


def _values(u: User, doc: dict[str, object]) -> str:
    path = u.home.parent / f"values-{abs(hash(json.dumps(doc)))}.yaml"
    path.write_text(json.dumps(doc))
    return str(path)


def _running(u: User, ns: str, n: int) -> None:
    pods = host_pods(u, ns)
    assert len(pods) == n and all(p.endswith("Running") for p in pods), pods


def _virtual_running(u: User, name: str, n: int) -> None:
    out = ctx(u, name, "get", "pods", "-o", "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}").stdout
    phases = [p for p in out.splitlines() if p]
    assert phases.count("Running") == n, phases


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_pods_reach_their_own_api_in_cluster(host_user: User, tmp_path: Path) -> None:
    """A synced pod of a shared cluster reaches its own API the way in-cluster clients do: the
    URL from ``KUBERNETES_SERVICE_HOST``/``PORT`` alone (no path, no server name), the pod's
    ``ca.crt`` and its service-account token. The port belongs to that cluster: another
    cluster's token is refused there, and this cluster's token is refused by the other."""
    import base64

    import kubernetes
    from kubernetes.config.incluster_config import InClusterConfigLoader

    u = host_user
    u.vkube("create", "--shared", "inpod", "--connect=false")
    u.vkube("create", "--shared", "outer", "--connect=false")
    u.vkube("connect", "inpod")
    u.vkube("connect", "outer")
    try:
        ctx(u, "inpod", "create", "namespace", "team")
        ctx(u, "inpod", "create", "rolebinding", "reader", "-n", "team", "--clusterrole=view",
            "--serviceaccount=team:default")
        eventually(lambda: ctx(u, "inpod", "get", "sa", "default", "-n", "team"), timeout=60)
        ctx(u, "inpod", "run", "op", "-n", "team", "--image=nginx", "--restart=Never")

        def synced() -> dict:
            return json.loads(u.kubectl("--context", "vkube-host", "get", "pod", "op-x-team-x-inpod",
                                        "-n", "vkube-inpod", "-o", "json").stdout)
        hpod = eventually(synced, timeout=120)
        env = {e["name"]: e.get("value") for e in hpod["spec"]["containers"][0].get("env") or []}
        host, port = env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
        # a shared cluster's pod never points the embedded kubelet at an address of this
        # machine (vkube.io/port-forward-PORT), whatever it names
        ctx(u, "inpod", "run", "fwd", "--image=nginx", "--restart=Never",
            f"--annotations=vkube.io/port-forward-80=127.0.0.1:{port}")

        def refused() -> None:
            msg = ctx(u, "inpod", "get", "pod", "fwd", "-o",
                      "jsonpath={.status.reason}: {.status.message}").stdout
            assert msg.startswith("SyncRejected: ") and "shared mode never may" in msg, msg
        eventually(refused, timeout=60, delay=1)
        # the port is the cluster's own, not the shared listener's (which needs a path)
        shared_url = u.describe("inpod")["apiServer"]
        assert host == "127.0.0.1" and f":{port}/" not in shared_url
        svc_ep = json.loads(ctx(u, "inpod", "get", "endpoints", "kubernetes", "-o", "json").stdout)
        assert svc_ep["subsets"][0]["ports"][0]["port"] == int(port)
        mount = next(m for m in hpod["spec"]["containers"][0]["volumeMounts"]
                     if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
        vol = next(v for v in hpod["spec"]["volumes"] if v["name"] == mount["name"])
        secret = json.loads(u.kubectl("--context", "vkube-host", "get", "secret",
                                      vol["secret"]["secretName"], "-n", "vkube-inpod",
                                      "-o", "json").stdout)
        sa_dir = tmp_path / "serviceaccount"
        sa_dir.mkdir()
        for key in ("token", "ca.crt", "namespace"):
            (sa_dir / key).write_bytes(base64.b64decode(secret["data"][key]))

        # the official client's own in-cluster loader, with the pod's env and files
        cfg = kubernetes.client.Configuration()
        InClusterConfigLoader(token_filename=str(sa_dir / "token"),
                              cert_filename=str(sa_dir / "ca.crt"),
                              environ={"KUBERNETES_SERVICE_HOST": host,
                                       "KUBERNETES_SERVICE_PORT": port}).load_and_set(cfg)
        with kubernetes.client.ApiClient(cfg) as api:
            pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod("team")
        assert [p.metadata.name for p in pods.items] == ["op"]

        # kubectl as rest.InClusterConfig sets it up: server from the env, CA file, token file
        def incluster_kubeconfig(token_file: Path, server: str, tag: str) -> Path:
            path = tmp_path / f"incluster-{tag}.yaml"
            path.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "pod",
                "clusters": [{"name": "c", "cluster": {
                    "server": server, "certificate-authority": str(sa_dir / "ca.crt")}}],
                "users": [{"name": "sa", "user": {"tokenFile": str(token_file)}}],
                "contexts": [{"name": "pod", "context": {"cluster": "c", "user": "sa",
                                                        "namespace": "team"}}]}))
            return path
        in_pod = incluster_kubeconfig(sa_dir / "token", f"https://{host}:{port}", "own")
        out = kubectl(in_pod, "get", "pods", "-o", "name").stdout
        assert out.split() == ["pod/op"]
        who = json.loads(kubectl(in_pod, "auth", "whoami", "-o", "json").stdout)
        assert who["status"]["userInfo"]["username"] == "system:serviceaccount:team:default"

        # a token of another shared cluster is not accepted on this cluster's port ...
        other_token = tmp_path / "other-token"
        other_token.write_text(ctx(u, "outer", "create", "token", "default", "-n", "default").stdout.strip())
        foreign = incluster_kubeconfig(other_token, f"https://{host}:{port}", "foreign")
        r = kubectl(foreign, "get", "pods", check=False)
        assert unauthorized(r), r.stderr
        # ... nor this cluster's token at the other cluster's URL (with its server name)
        outer = json.loads(ctx(u, "outer", "config", "view", "--raw", "--minify", "-o",
                               "json").stdout)["clusters"][0]["cluster"]
        assert outer["tls-server-name"]  # the shared URL, as the cluster's own kubeconfig has it
        at_outer = tmp_path / "at-outer.yaml"
        at_outer.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "c", "cluster": outer}],
            "users": [{"name": "sa", "user": {"tokenFile": str(sa_dir / "token")}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "sa"}}]}))
        r = kubectl(at_outer, "get", "pods", check=False)
        assert unauthorized(r), r.stderr

        # asleep, the port still answers: the pod's request wakes its cluster
        u.vkube("sleep", "inpod")
        assert u.list()["inpod"]["status"] == "Sleeping"
        out = kubectl(in_pod, "get", "pods", "-o", "name", timeout=120).stdout
        assert out.split() == ["pod/op"]
        assert u.list()["inpod"]["status"] == "Running"

        # each shared cluster's own log: its lines, none of the other's
        own = u.vkube("logs", "inpod").stdout
        assert "virtual cluster inpod ready" in own and "inpod asleep" in own, own
        assert "outer" not in own
        other = u.vkube("logs", "outer").stdout
        assert "virtual cluster outer ready" in other and "inpod" not in other, other
    finally:
        u.vkube("delete", "inpod")
        u.vkube("delete", "outer")


def test_a_shared_cluster_never_reaches_this_machine(host_user: User) -> None:
    """The shared process dials for every tenant: a webhook url at an open and at a closed
    loopback port read the same, and a pod's port-forward annotation (refused by the syncer,
    still in the virtual API) or an APIService behind an ExternalName 127.0.0.1 never connect
    (tests/webhooks/probes.py; the dedicated-cluster side is in tests/webhooks)."""
    from tests.webhooks.probes import probe_loopback

    u = host_user
    u.vkube("create", "--shared", "probe", "--connect=false")
    u.vkube("connect", "probe")
    try:
        probe_loopback(lambda *args, **kw: ctx(u, "probe", *args, **kw))
    finally:
        u.vkube("delete", "probe", check=False)


class _Background:
    """A client process in the background, its stdout and stderr read as they come."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        import subprocess
        import threading

        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(iter(s.readline, "")),
                             daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


class _RawWatch(_Background):
    """``kubectl get --raw WATCH-PATH -v=6`` (``-v=6`` logs the status once the stream starts)."""

    def __init__(self, u: User, name: str, path: str) -> None:
        from tests.conftest import KUBECTL

        super().__init__([KUBECTL, "--context", f"vkube_{name}", "get", "--raw", path, "-v=6"],
                         {**u.env, "KUBECTL_KUBERC": "false",
                          "KUBECACHEDIR": str(u.kubeconfig.parent / ".kubectl-cache")})

    def started(self) -> None:
        assert any("200 OK" in line for line in self.err), self.err


OPERATOR = """import kopf

@kopf.on.event("pods")
def seen(event, **_):
    print("EVENT", event["type"], event["object"]["metadata"]["name"], flush=True)
"""


@pytest.mark.timeout(600)
def test_sleep_keeps_watches_and_pod_streams_work_on_wake(host_user: User, tmp_path: Path) -> None:
    """Sleep survives a watching client: sleep ends open watches as a server timeout does; a
    re-watch from the version it had (real kubectl) is held without waking the cluster — still
    Sleeping — and a watch's timeoutSeconds ends it cleanly; a `kubectl run` wakes the cluster
    and the held watch gets its pod. ``kubectl exec``/``logs`` at a sleeping cluster work the
    first time (they wait for the pod to be back on the host). A kopf operator watching pods
    keeps its cluster asleep too, and sees what the wake brings."""
    import sys

    u = host_user
    u.vkube("create", "--shared", "napper", "--connect=false")
    u.vkube("connect", "napper")
    watches: list[_Background] = []
    try:
        # kopf (aiohttp sends no server name): the cluster's own port, as the README says
        port = (u.home / "clusters" / "napper" / "data" / "incluster-port").read_text().strip()
        kopf_config = tmp_path / "kopf.yaml"
        kopf_config.write_text(u.vkube("connect", "napper", "--print", "--server",
                                       f"https://127.0.0.1:{port}").stdout)
        (tmp_path / "op.py").write_text(OPERATOR)
        kopf = _Background([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace",
                            "default", str(tmp_path / "op.py")],
                           {**u.env, "KUBECONFIG": str(kopf_config)})
        watches.append(kopf)
        eventually(lambda: _kopf_started(kopf), timeout=60)
        ctx(u, "napper", "run", "p", "--image=nginx")
        eventually(lambda: _kopf_saw(kopf, ("None", "ADDED"), "p"), timeout=60)  # listed
        ctx(u, "napper", "label", "pod", "p", "probe=1")
        eventually(lambda: _kopf_saw(kopf, ("MODIFIED",), "p"), timeout=60)  # its watch is open
        eventually(lambda: _virtual_running(u, "napper", 1), timeout=120)
        rv = json.loads(ctx(u, "napper", "get", "--raw", "/api/v1/namespaces/default/pods").stdout
                        )["metadata"]["resourceVersion"]
        assert int(rv) > 0
        path = f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
        first = _RawWatch(u, "napper", path)
        watches.append(first)
        eventually(first.started, timeout=60)
        u.vkube("sleep", "napper")
        # the open watch ended as at a server timeout: kubectl exits 0, no error
        assert first.proc.wait(60) == 0, first.err
        assert not [ln for ln in first.err if "error" in ln.lower()], first.err
        # the client's re-watch from its version is held; the cluster stays asleep
        second = _RawWatch(u, "napper", path)
        watches.append(second)
        timed = ctx(u, "napper", "get", "--raw", path + "&timeoutSeconds=2")
        assert timed.returncode == 0 and timed.stdout == ""
        assert u.list()["napper"]["status"] == "Sleeping"
        assert second.proc.poll() is None and not second.out
        assert kopf.proc.poll() is None
        # a create wakes it; the held watches continue from their versions and see the new pod
        ctx(u, "napper", "run", "w", "--image=nginx")
        eventually(lambda: _added(second.out, "w"), timeout=60)
        assert second.proc.poll() is None
        eventually(lambda: _kopf_saw(kopf, ("ADDED",), "w"), timeout=60)
        eventually(lambda: _virtual_running(u, "napper", 2), timeout=120)

        # exec and logs at a sleeping cluster: they wake it and work the first time
        u.vkube("sleep", "napper")
        eventually(lambda: _running(u, "vkube-napper", 0), timeout=60)
        r = ctx(u, "napper", "exec", "p", "--", "hostname", check=False)
        assert r.returncode == 0 and r.stdout.strip() == "p", r.stderr
        u.vkube("sleep", "napper")
        r = ctx(u, "napper", "logs", "w", check=False)
        assert r.returncode == 0 and "nginx" in r.stdout, r.stderr
    finally:
        for w in watches:
            w.stop()
        u.vkube("delete", "napper")


def _kopf_started(kopf: _Background) -> None:
    assert kopf.proc.poll() is None, kopf.err
    assert any("Initial authentication has finished" in ln for ln in kopf.err), kopf.err


def _kopf_saw(kopf: _Background, etypes: tuple[str, ...], name: str) -> None:
    assert any(f"EVENT {t} {name}\n" in kopf.out for t in etypes), (kopf.out, kopf.err[-20:])


def _added(lines: list[str], name: str) -> None:
    events = [json.loads(ln) for ln in list(lines) if ln.strip()]
    assert any(e["type"] == "ADDED" and e["object"]["metadata"]["name"] == name for e in events), events


def _cluster_entry(u: User, name: str) -> dict:
    return json.loads(u.kubectl("config", "view", "--raw", "--minify", "--context", f"vkube_{name}",
                                "-o", "json").stdout)


def _anonymous(u: User, name: str, path: str) -> tuple[int, str]:
    """GET ``path`` of cluster ``name`` with no credential (its CA and server name, as curl
    --cacert --connect-to would): status and body."""
    import urllib3

    cluster = _cluster_entry(u, name)["clusters"][0]["cluster"]
    http = urllib3.PoolManager(ca_cert_data=base64.b64decode(cluster["certificate-authority-data"]).decode(),
                               server_hostname=cluster["tls-server-name"], retries=False)
    r = http.request("GET", cluster["server"] + path, timeout=30)
    return r.status, r.data.decode()


def _as_token(u: User, name: str, token: str, tmp: Path) -> Path:
    """A kubeconfig for cluster ``name`` (its server, CA and TLS server name) whose only
    credential is ``token``."""
    doc = _cluster_entry(u, name)
    doc["users"] = [{"name": "t", "user": {"token": token}}]
    doc["contexts"][0]["context"]["user"] = "t"
    path = tmp / f"{name}-{hashlib.sha256(token.encode()).hexdigest()[:8]}.kubeconfig"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.timeout(600)
def test_only_its_own_tokens_wake_a_sleeping_cluster(host_user: User, tmp_path: Path) -> None:
    """A bearer token wakes a sleeping shared cluster only if the cluster would accept it:
    garbage, a token of another shared cluster and an expired token of its own key are 401 and
    it stays Sleeping (`vkube list`); `kubectl create token`'s token wakes it. Refused
    requests do not keep it awake either: under a stream of them it falls asleep on its own."""
    import datetime as dt

    from vkube.pki.tokens import SigningKey, TokenIssuer

    u = host_user
    u.vkube("create", "--shared", "guarded", "--connect=false", "-f",
            _values(u, {"sleep": {"afterInactivity": "20s"}}))
    u.vkube("create", "--shared", "stranger", "--connect=false")
    u.vkube("connect", "guarded")
    u.vkube("connect", "stranger")
    try:
        tokens: dict[str, str] = {}

        def token_of(name: str) -> None:
            tokens[name] = ctx(u, name, "create", "token", "default").stdout.strip()
        eventually(lambda: token_of("guarded"), timeout=60)  # once its default account exists
        eventually(lambda: token_of("stranger"), timeout=60)
        ctx(u, "guarded", "create", "rolebinding", "default-view", "--clusterrole=view",
            "--serviceaccount=default:default")
        sa = json.loads(ctx(u, "guarded", "get", "serviceaccount", "default", "-o", "json").stdout)
        key = SigningKey.from_pem((u.home / "clusters" / "guarded" / "data" / "pki" / "sa.key").read_bytes())
        issuer = "https://kubernetes.default.svc.cluster.local"
        expired = TokenIssuer(issuer, key).issue(
            sa, audiences=[issuer], now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3))[0]
        refused = {"garbage": "garbage", "another cluster's": tokens["stranger"], "expired": expired}
        configs = {what: _as_token(u, "guarded", token, tmp_path) for what, token in refused.items()}
        own = _as_token(u, "guarded", tokens["guarded"], tmp_path)

        u.vkube("sleep", "guarded")
        assert u.list()["guarded"]["status"] == "Sleeping"
        for what, config in configs.items():
            out = kubectl(config, "get", "configmaps", check=False)
            assert unauthorized(out), (what, out.stderr)
        assert u.list()["guarded"]["status"] == "Sleeping"
        # its own service account's token wakes it
        kubectl(own, "get", "configmaps")
        assert u.list()["guarded"]["status"] == "Running"

        # awake, refused tokens and anonymous health checks are no activity: it falls asleep
        # while they keep coming
        def asleep() -> None:
            out = kubectl(configs["garbage"], "get", "configmaps", check=False)
            assert unauthorized(out), out.stderr
            status, body = _anonymous(u, "guarded", "/readyz")
            assert status == 200 or (status == 503 and "is asleep" in body), (status, body)
            assert u.list()["guarded"]["status"] == "Sleeping"
        eventually(asleep, timeout=240, delay=2)
    finally:
        u.vkube("delete", "guarded")
        u.vkube("delete", "stranger")


@pytest.mark.timeout(600)
def test_watch_caps_from_values(host_user: User, tmp_path: Path) -> None:
    """``controlPlane.watches`` in the values of ``create --shared``: the real kubectl's watches
    beyond the per-credential or per-cluster cap are refused with 429 (kubectl retries, then
    says so); another credential still gets what is left of the cluster's cap; a dedicated
    cluster refuses the key."""
    from tests.conftest import KUBECTL

    u = host_user
    caps = _values(u, {"controlPlane": {"watches": {"maxPerCluster": 3, "maxPerCredential": 2}}})
    out = u.vkube("create", "never", "--connect=false", "-f", caps, check=False)
    assert out.returncode != 0 and "controlPlane.watches: caps watches in shared mode only" in out.stderr, out.stderr
    u.vkube("create", "--shared", "capped", "--connect=false", "-f", caps)
    u.vkube("connect", "capped")
    path = "/api/v1/namespaces/default/configmaps?watch=1"
    watches: list[_Background] = []
    try:
        token: list[str] = []
        eventually(lambda: token.append(ctx(u, "capped", "create", "token", "default").stdout.strip()),
                   timeout=60)
        ctx(u, "capped", "create", "rolebinding", "default-view", "--clusterrole=view",
            "--serviceaccount=default:default")
        as_sa = _as_token(u, "capped", token[0], tmp_path)
        env = {**u.env, "KUBECTL_KUBERC": "false"}
        for _ in range(2):  # the admin's two
            watches.append(_RawWatch(u, "capped", path))
            eventually(watches[-1].started, timeout=60)
        refused = ctx(u, "capped", "get", "--raw", path, check=False, timeout=120)
        assert refused.returncode != 0 and "too many requests" in refused.stderr.lower(), refused.stderr
        # the service account: the cluster's third place, then the cluster is full
        watches.append(_Background([KUBECTL, "--kubeconfig", str(as_sa), "get", "--raw", path, "-v=6"], env))
        eventually(lambda: _RawWatch.started(watches[-1]), timeout=60)  # type: ignore[arg-type]
        refused = kubectl(as_sa, "get", "--raw", path, check=False, timeout=120)
        assert refused.returncode != 0 and "too many requests" in refused.stderr.lower(), refused.stderr
        # a watch that ends frees its place (its client went away: counted off within seconds)
        watches.pop(0).stop()

        def one_more() -> None:
            w = _RawWatch(u, "capped", path)
            watches.append(w)
            try:
                eventually(w.started, timeout=20, delay=0.5)
            except AssertionError:
                w.stop()
                watches.remove(w)
                raise
        eventually(one_more, timeout=120, delay=1)
    finally:
        for w in watches:
            w.stop()
        u.vkube("delete", "capped")



def _tls_to(u: User, name: str) -> "ssl.SSLSocket":
    """A TLS connection to cluster ``name`` by its server name (its CA verifies it), no request."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    cluster = _cluster_entry(u, name)["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    url = urlsplit(cluster["server"])
    raw = socket.create_connection((url.hostname, url.port), timeout=30)
    return ctx.wrap_socket(raw, server_hostname=cluster["tls-server-name"])


def _closed_by_server(sock: "ssl.SSLSocket", wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


class _Stream(_Background):
    """``kubectl --kubeconfig KC ARGS -v=6``: started once client-go logs the 200."""

    def __init__(self, kubeconfig: Path | None, u: User, *args: str) -> None:
        from tests.conftest import KUBECTL

        where = ["--kubeconfig", str(kubeconfig)] if kubeconfig else ["--context", "vkube_guarded"]
        super().__init__([KUBECTL, *where, *args, "-v=6"],
                         {**u.env, "KUBECTL_KUBERC": "false",
                          "KUBECACHEDIR": str(u.kubeconfig.parent / ".kubectl-cache")})

    def started(self) -> None:
        assert any("200 OK" in line for line in self.err), self.err


def _too_many(proc: "subprocess.CompletedProcess[str]") -> None:
    assert proc.returncode != 0 and "too many requests" in proc.stderr.lower(), proc.stderr


@pytest.mark.timeout(900)
def test_a_tenant_exhausts_only_its_own_connections_streams_and_watches(host_user: User, tmp_path: Path) -> None:
    """``controlPlane.connections``/``streams``/``watches`` of a ``--shared`` cluster, through
    the real kubectl: connections by its server name beyond its cap are closed after the
    handshake (kubectl fails) while another tenant's kubectl is served; ``logs -f`` streams
    over the per-user or per-cluster cap get 429; watches count by user, so tokens minted for
    one ServiceAccount share its cap; a dedicated cluster refuses the keys."""
    u = host_user
    for doc, key in (({"controlPlane": {"streams": {"maxPerUser": 1}}}, "streams"),
                     ({"controlPlane": {"connections": {"maxPerCluster": 9}}}, "connections")):
        out = u.vkube("create", "never", "--connect=false", "-f", _values(u, doc), check=False)
        assert out.returncode != 0 and f"controlPlane.{key}: caps {key} in shared mode only" in out.stderr, out.stderr
    caps = _values(u, {"controlPlane": {"connections": {"maxPerCluster": 4},
                                        "streams": {"maxPerCluster": 3, "maxPerUser": 2},
                                        "watches": {"maxPerCluster": 4, "maxPerCredential": 2}}})
    u.vkube("create", "--shared", "guarded", "--connect=false", "-f", caps)
    u.vkube("create", "--shared", "bystander", "--connect=false")
    u.vkube("connect", "guarded")
    u.vkube("connect", "bystander")
    procs: list[_Background] = []
    socks: list[object] = []
    try:
        # connections: four by its server name are held; the fifth is closed, kubectl with it
        socks += [_tls_to(u, "guarded") for _ in range(4)]
        fifth = _tls_to(u, "guarded")
        socks.append(fifth)
        assert _closed_by_server(fifth, wait=30)
        assert ctx(u, "guarded", "get", "ns", check=False, timeout=120).returncode != 0
        assert "default" in ctx(u, "bystander", "get", "ns").stdout  # the other tenant is served
        for s in socks:
            s.close()  # type: ignore[attr-defined]
        socks.clear()
        def served() -> None:
            r = ctx(u, "guarded", "get", "ns", check=False, timeout=120)
            assert r.returncode == 0 and "default" in r.stdout, r.stderr
        eventually(served, timeout=60, delay=1)

        # streams: a pod whose logs are followed
        ctx(u, "guarded", "run", "p", "--image=nginx")
        eventually(lambda: _virtual_running(u, "guarded", 1), timeout=180, delay=1)
        token: list[str] = []
        for _ in range(3):  # three tokens of one ServiceAccount: one user
            token.append(ctx(u, "guarded", "create", "token", "default").stdout.strip())
        ctx(u, "guarded", "create", "rolebinding", "default-view", "--clusterrole=view",
            "--serviceaccount=default:default")
        as_sa = [_as_token(u, "guarded", t, tmp_path) for t in token]
        for _ in range(2):  # the admin's two
            procs.append(_Stream(None, u, "logs", "-f", "p"))
            eventually(procs[-1].started, timeout=60)
        _too_many(ctx(u, "guarded", "logs", "-f", "p", check=False, timeout=120))
        procs.append(_Stream(as_sa[0], u, "logs", "-f", "p"))  # the cluster's third
        eventually(procs[-1].started, timeout=60)
        _too_many(kubectl(as_sa[1], "logs", "-f", "p", check=False, timeout=120))  # the cluster is full
        for p in procs:
            p.stop()
        procs.clear()

        # watches by user: two tokens of the ServiceAccount fill its cap, a third token of it
        # is refused; the admin still gets the cluster's rest
        path = "/api/v1/namespaces/default/configmaps?watch=1"
        for kc in as_sa[:2]:
            procs.append(_Stream(kc, u, "get", "--raw", path))
            eventually(procs[-1].started, timeout=60)
        _too_many(kubectl(as_sa[2], "get", "--raw", path, check=False, timeout=120))
        procs.append(_RawWatch(u, "guarded", path))
        eventually(procs[-1].started, timeout=60)
        bystander = _RawWatch(u, "bystander", path)
        procs.append(bystander)
        eventually(bystander.started, timeout=60)
    finally:
        for s in socks:
            s.close()  # type: ignore[attr-defined]
        for p in procs:
            p.stop()
        u.vkube("delete", "guarded")
        u.vkube("delete", "bystander")

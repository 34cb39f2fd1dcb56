"""Protobuf request bodies decode to the JSON the same client would have sent.

Golden fixtures in ``protobuf_fixtures/``: ``kubectl-create-<name>.bin`` is the body kubectl
1.37 POSTed for the command in ``COMMANDS``; ``<name>.json`` is what the same kubectl prints for
that command with ``--dry-run=client -o json`` (its own Go JSON encoding of the object; ``token``
has no dry run and was checked by hand). Regenerate with
``.venv/bin/python tests/api/test_protobuf.py tests/api/protobuf_fixtures``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from vkube.api.errors import BadRequest
from vkube.api.protobuf import MAGIC, ProtobufDecoder, _go_duration, decode_protobuf

FIXTURES = Path(__file__).with_name("protobuf_fixtures")
KUBECTL = str(Path(sys.executable).parent / "kubectl")

# -- a tiny protobuf encoder ------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def vint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def blob(num: int, data: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(data)) + data


def text(num: int, value: str) -> bytes:
    return blob(num, value.encode())


def msg(num: int, *parts: bytes) -> bytes:
    return blob(num, b"".join(parts))


def entry(num: int, key: str, value: bytes) -> bytes:
    """A map entry: key 1, value 2 (value already encoded as field 2)."""
    return msg(num, text(1, key), value)


def envelope(api_version: str, kind: str, *parts: bytes) -> bytes:
    return MAGIC + msg(1, text(1, api_version), text(2, kind)) + blob(2, b"".join(parts))


def meta(name: str, *extra: bytes) -> bytes:
    """ObjectMeta as gogo writes it: every non-pointer field, zero or not, plus the given ones."""
    return msg(1, text(1, name), text(2, ""), text(3, ""), text(4, ""), text(5, ""), text(6, ""),
               vint(7, 0), blob(8, b""), *extra)


# -- golden bodies captured from real kubectl -------------------------------------------------

GOLDEN = sorted(p.stem for p in FIXTURES.glob("*.bin"))


def test_fixtures_present() -> None:
    assert len(GOLDEN) >= 15


@pytest.mark.parametrize("name", GOLDEN)
def test_kubectl_bodies_match_kubectl_json(name: str) -> None:
    body = (FIXTURES / f"{name}.bin").read_bytes()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert body.startswith(MAGIC)
    assert decode_protobuf(body) == expected


def test_golden_highlights() -> None:
    """Spot checks of the facts the fixtures pin, so a regenerated fixture cannot hide them."""
    zero = decode_protobuf((FIXTURES / "kubectl-create-deployment-0.bin").read_bytes())
    assert zero["spec"]["replicas"] == 0
    container = zero["spec"]["template"]["spec"]["containers"][0]
    assert container == {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}],
                         "resources": {}}
    assert zero["spec"]["strategy"] == {} and zero["status"] == {}
    three = decode_protobuf((FIXTURES / "kubectl-create-deployment-3.bin").read_bytes())
    assert three["spec"]["replicas"] == 3
    secret = decode_protobuf((FIXTURES / "kubectl-create-secret.bin").read_bytes())
    assert secret["data"]["user"] == "YWRtaW4="
    pdb = decode_protobuf((FIXTURES / "kubectl-create-pdb.bin").read_bytes())
    assert pdb["spec"]["minAvailable"] == "50%"
    svc = decode_protobuf((FIXTURES / "kubectl-create-service.bin").read_bytes())
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [8080, 8443]
    quota = decode_protobuf((FIXTURES / "kubectl-create-quota.bin").read_bytes())
    assert quota["spec"]["hard"] == {"cpu": "1500m", "memory": "1Gi", "pods": "10"}


def test_schema_is_generated_from_the_installed_kubectl(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed schema is what tools/gen_protobuf_schema.py derives from our kubectl."""
    spec = importlib.util.spec_from_file_location(
        "gen_protobuf_schema", Path(__file__).parents[2] / "tools" / "gen_protobuf_schema.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, generator)  # dataclasses look their module up
    spec.loader.exec_module(generator)
    out = tmp_path / "schema.json"
    assert generator.main([KUBECTL, "-o", str(out)]) == 0
    committed = Path(__file__).parents[2] / "vkube" / "api" / "protobuf_schema.json"
    assert json.loads(out.read_text()) == json.loads(committed.read_text())


# -- hand-built bodies --------------------------------------------------------------------------


def test_namespace() -> None:
    body = envelope("v1", "Namespace", meta("demo", entry(11, "team", text(2, "a"))), msg(2), msg(3))
    assert decode_protobuf(body) == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "demo", "labels": {"team": "a"}}, "spec": {}, "status": {}}


def test_configmap_and_binary_secret() -> None:
    cm = envelope("v1", "ConfigMap", meta("cfg"), entry(2, "a", text(2, "1")),
                  entry(2, "b", text(2, "")), entry(3, "bin", blob(2, b"\x00\xff")))
    assert decode_protobuf(cm) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"a": "1", "b": ""}, "binaryData": {"bin": "AP8="}}
    secret = envelope("v1", "Secret", meta("s"), entry(2, "k", blob(2, bytes(range(5)))),
                      text(3, "Opaque"), vint(5, 1))
    assert decode_protobuf(secret) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "immutable": True,
        "data": {"k": "AAECAwQ="}, "type": "Opaque"}


def deployment(*spec: bytes) -> bytes:
    container = msg(2, text(1, "web"), text(2, "nginx"),
                    msg(6, text(1, "http"), vint(2, 0), vint(3, 8080), text(4, "TCP"), text(5, "")),
                    msg(8, entry(1, "cpu", msg(2, text(1, "250m"))),
                        entry(2, "memory", msg(2, text(1, "64Mi")))))
    template = msg(3, meta(""), msg(2, container))
    return envelope("apps/v1", "Deployment", meta("web"), msg(2, *spec, template, msg(4)), msg(3))


def test_deployment_pointer_replicas() -> None:
    assert decode_protobuf(deployment(vint(1, 0)))["spec"]["replicas"] == 0
    assert decode_protobuf(deployment(vint(1, 3)))["spec"]["replicas"] == 3
    absent = decode_protobuf(deployment())
    assert "replicas" not in absent["spec"]
    # a non-pointer omitempty scalar written as zero is dropped, as JSON would
    assert "minReadySeconds" not in decode_protobuf(deployment(vint(5, 0)))["spec"]
    assert decode_protobuf(deployment(vint(5, 7)))["spec"]["minReadySeconds"] == 7


def test_container_ports_and_resources() -> None:
    obj = decode_protobuf(deployment(vint(1, 1)))
    assert obj["spec"]["template"]["metadata"] == {}
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container == {
        "name": "web", "image": "nginx",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "250m"}, "requests": {"memory": "64Mi"}}}


def test_intorstring_target_port() -> None:
    def svc(target: bytes) -> dict[str, Any]:
        port = msg(1, text(1, ""), text(2, "TCP"), vint(3, 80), msg(4, *target), vint(5, 0))
        return decode_protobuf(envelope("v1", "Service", meta("s"), msg(2, port), msg(3)))

    assert svc([vint(1, 0), vint(2, 8080), text(3, "")])["spec"]["ports"] == [
        {"protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert svc([vint(1, 1), vint(2, 0), text(3, "http")])["spec"]["ports"][0]["targetPort"] == "http"
    # JSON prints a non-pointer IntOrString even when zero
    assert svc([])["spec"]["ports"][0]["targetPort"] == 0


def test_pod_times_volumes_and_negative_ints() -> None:
    created = msg(8, vint(1, 1795918994), vint(2, 123))  # 2026-11-29T02:23:14Z, nanos dropped
    deleting = msg(9, vint(1, 0))
    volume = msg(1, text(1, "scratch"), msg(2, msg(2, text(1, "Memory"))))  # VolumeSource.emptyDir
    spec = msg(2, volume, msg(2, text(1, "c"), text(2, "busybox")), vint(4, 30),
               vint(25, (-5) & (1 << 64) - 1))
    obj = decode_protobuf(envelope("v1", "Pod", meta("p", created, deleting), spec))
    assert obj["metadata"] == {"name": "p", "creationTimestamp": "2026-11-29T02:23:14Z",
                               "deletionTimestamp": "1970-01-01T00:00:00Z"}
    assert obj["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {"medium": "Memory"}}]
    assert obj["spec"]["terminationGracePeriodSeconds"] == 30
    assert obj["spec"]["priority"] == -5
    assert obj["spec"]["containers"] == [{"name": "c", "image": "busybox", "resources": {}}]


def test_zero_time_is_null_or_omitted() -> None:
    # creationTimestamp is omitzero in 1.37; a non-omitzero zero Time prints null
    assert "creationTimestamp" not in decode_protobuf(envelope("v1", "Namespace", meta("x")))["metadata"]
    tok = decode_protobuf(envelope("authentication.k8s.io/v1", "TokenRequest", meta("sa"),
                                   msg(2, text(1, "api")), msg(3, text(1, "t"), blob(2, b""))))
    assert tok["status"] == {"token": "t", "expirationTimestamp": None}


def test_microtime_and_duration() -> None:
    event = envelope("events.k8s.io/v1", "Event", meta("e"),
                     msg(2, vint(1, 1795918994), vint(2, 123456789)), text(11, "Normal"))
    assert decode_protobuf(event)["eventTime"] == "2026-11-29T02:23:14.123456Z"
    metrics = envelope("metrics.k8s.io/v1beta1", "PodMetrics", meta("m"), msg(3, vint(1, 90 * 10**9)))
    assert decode_protobuf(metrics)["window"] == "1m30s"
    for ns, expected in [(0, "0s"), (1500, "1.5µs"), (2 * 10**6, "2ms"), (3600 * 10**9, "1h0m0s"),
                         (-1_500_000_000, "-1.5s"), (3661 * 10**9, "1h1m1s")]:
        assert _go_duration(ns) == expected


def test_eviction_with_delete_options() -> None:
    body = envelope("policy/v1", "Eviction", meta("web-1", text(3, "default")),
                    msg(2, vint(1, 0), msg(2, text(1, "uid-1")), text(4, "Foreground"),
                        text(5, "All")))
    assert decode_protobuf(body) == {
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"},
                          "propagationPolicy": "Foreground", "dryRun": ["All"]}}


def test_delete_options_kind_resolves_to_meta() -> None:
    body = envelope("v1", "DeleteOptions", vint(1, 5))
    assert decode_protobuf(body) == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 5}


def test_packed_repeated_wrapped_slices_and_raw_json() -> None:
    # Job.spec.podFailurePolicy.rules[].onExitCodes.values: repeated int32, packed
    on_exit = msg(2, text(1, "c"), text(2, "In"), blob(3, varint(1) + varint(42)), vint(3, 7))
    job = envelope("batch/v1", "Job", meta("j"), msg(2, msg(11, msg(1, text(1, "FailJob"), on_exit))))
    rules = decode_protobuf(job)["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"] == {"containerName": "c", "operator": "In", "values": [1, 42, 7]}
    # UserInfo.extra: map values are wrapper messages {items: 1}
    review = envelope("authorization.k8s.io/v1", "SubjectAccessReview", meta("r"),
                      msg(2, entry(5, "scopes", msg(2, text(1, "a"), text(1, "b"))), text(3, "bob")))
    assert decode_protobuf(review)["spec"] == {"extra": {"scopes": ["a", "b"]}, "user": "bob"}
    # FieldsV1 and RawExtension hold JSON bytes
    managed = msg(17, text(1, "kubectl"), text(2, "Update"), msg(7, blob(1, b'{"f:data":{}}')))
    rev = envelope("apps/v1", "ControllerRevision", meta("r", managed), msg(2, blob(1, b'{"spec":1}')),
                   vint(3, 2))
    obj = decode_protobuf(rev)
    assert obj["data"] == {"spec": 1} and obj["revision"] == 2
    assert obj["metadata"]["managedFields"] == [
        {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:data": {}}}]


def test_protobuf_merge_and_unknown_fields() -> None:
    # a singular message written twice merges; unknown field numbers are skipped
    body = envelope("v1", "ConfigMap", msg(1, text(1, "a")), msg(1, text(3, "ns")), vint(99, 1),
                    entry(2, "k", text(2, "v")))
    assert decode_protobuf(body) == {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}}


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    (b"", "magic"),
    (b'{"kind": "Pod"}', "magic"),
    (MAGIC + b"\x0a\x05\x0a\x02v1", "past the end"),
    (MAGIC + msg(1, text(1, "v1")), "no apiVersion or kind"),
    (envelope("v1", "NoSuchKind"), "NoSuchKind"),
    (envelope("example.com/v1", "Widget"), "Widget"),
    (envelope("v1", "ConfigMap", vint(1, 5)), "wire type"),
    (envelope("v1", "ConfigMap", b"\x0b"), "wire type 3"),
    (envelope("v1", "ConfigMap", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), "varint"),
    (MAGIC + msg(1, text(1, "v1"), text(2, "Pod")) + text(3, "gzip"), "contentEncoding"),
    (envelope("apps/v1", "ControllerRevision", msg(2, blob(1, b"{not json"))), "JSON"),
])
def test_malformed_bodies_are_bad_requests(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        decode_protobuf(body)
    assert message in err.value.message
    assert err.value.code == 400


def test_deep_nesting_is_rejected() -> None:
    inner = b""
    for _ in range(200):  # RawExtension can nest whole envelopes
        inner = envelope("apps/v1", "ControllerRevision", msg(2, blob(1, inner or b"{}")))
    with pytest.raises(BadRequest):
        decode_protobuf(inner)


def test_fuzz_never_raises_anything_but_bad_request() -> None:
    rng = random.Random(1234)
    seeds = [(FIXTURES / f"{name}.bin").read_bytes() for name in GOLDEN]
    decoder = ProtobufDecoder.from_file()
    for i in range(3000):
        seed = bytearray(rng.choice(seeds))
        if i % 3 == 0:
            body = MAGIC + bytes(rng.getrandbits(8) for _ in range(rng.randrange(64)))
        else:
            for _ in range(rng.randrange(1, 6)):
                pos = rng.randrange(len(seed))
                if rng.random() < 0.5:
                    seed[pos] = rng.getrandbits(8)
                else:
                    del seed[pos:pos + rng.randrange(1, 8)]
            body = bytes(seed)
        try:
            obj = decoder.decode(body)
        except BadRequest:
            continue
        json.dumps(obj, allow_nan=False)  # whatever decodes is valid JSON


def test_float_fields_and_non_finite() -> None:
    # autoscaling/v2 metrics use no floats; a double field is easiest via the schema directly
    decoder = ProtobufDecoder({"messages": {"k8s.io/api/core/v1.Probe": [[1, "x", 0, "double"]]}})
    ok = MAGIC + msg(1, text(1, "v1"), text(2, "Probe")) + blob(2, b"\x09" + struct.pack("<d", 1.5))
    assert decoder.decode(ok)["x"] == 1.5
    bad = MAGIC + msg(1, text(1, "v1"), text(2, "Probe")) + blob(2, b"\x09" + struct.pack("<d", float("inf")))
    with pytest.raises(BadRequest):
        decoder.decode(bad)


# -- live: today's kubectl still sends protobuf we decode into its own JSON ---------------------

COMMANDS: dict[str, list[str]] = {
    "namespace": ["create", "namespace", "demo"],
    "configmap": ["create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=two", "-n", "demo"],
    "secret": ["create", "secret", "generic", "sec", "--from-file=bin={binfile}", "--from-literal=user=admin"],
    "deployment-0": ["create", "deployment", "web", "--image=nginx", "--replicas=0", "--port=80"],
    "deployment-3": ["create", "deployment", "web3", "--image=nginx:1.27", "--image=busybox", "--replicas=3"],
    "service": ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:8443"],
    "service-nodeport": ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
    "job": ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
    "cronjob": ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"],
    "quota": ["create", "quota", "q", "--hard=cpu=1500m,memory=1Gi,pods=10", "--scopes=BestEffort"],
    "pdb": ["create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"],
    "role": ["create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps"],
    "rolebinding": ["create", "rolebinding", "rb", "--role=r", "--user=alice", "--serviceaccount=default:sa"],
    "ingress": ["create", "ingress", "ing", "--rule=foo.com/bar=svc:8080", "--class=nginx"],
    "priorityclass": ["create", "priorityclass", "pc", "--value=1000", "--description=high"],
    "serviceaccount": ["create", "serviceaccount", "sa"],
    "token": ["create", "token", "sa", "--duration=10m", "--audience=api"],
}
SECRET_FILE = bytes(range(40)) + b"\xff\xfe\x00"
_RESOURCES = {
    "v1": [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True),
           ("secrets", "Secret", True), ("services", "Service", True),
           ("serviceaccounts", "ServiceAccount", True),
           ("serviceaccounts/token", "TokenRequest", True), ("resourcequotas", "ResourceQuota", True)],
    "apps/v1": [("deployments", "Deployment", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "rbac.authorization.k8s.io/v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
}


class CaptureServer:
    """A fake API server on 127.0.0.1: legacy discovery, and every POST body recorded."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> CaptureServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if request.method == "GET":
            if path == "/api":
                return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
            if path == "/apis":
                groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
                           "preferredVersion": {"groupVersion": gv, "version": "v1"}}
                          for gv in _RESOURCES if gv != "v1"]
                return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            gv = "v1" if path == "/api/v1" else path.removeprefix("/apis/")
            if gv in _RESOURCES:
                return web.json_response({
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                    "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k,
                                   "verbs": ["create", "get", "list", "delete"]}
                                  for n, k, ns in _RESOURCES[gv]]})
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        body = await request.read()
        self.bodies.append((path, request.content_type, body))
        obj = decode_protobuf(body)  # our decoder answers kubectl: a failure shows in its output
        if obj["kind"] == "TokenRequest":
            obj["status"] = {"token": "t", "expirationTimestamp": "2030-01-01T00:00:00Z"}
        return web.json_response(obj, status=201)

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "u", "user": {}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}]}))
        return path


async def _kubectl(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def capture(names: list[str], directory: Path) -> dict[str, tuple[bytes, dict[str, Any] | None]]:
    """Run each command against a CaptureServer: (protobuf body, kubectl's dry-run JSON or None)."""
    (directory / "bin.dat").write_bytes(SECRET_FILE)
    results: dict[str, tuple[bytes, dict[str, Any] | None]] = {}
    async with CaptureServer() as server:
        env = {**os.environ, "KUBECONFIG": str(server.kubeconfig(directory)), "HOME": str(directory)}
        for name in names:
            args = [a.replace("{binfile}", str(directory / "bin.dat")) for a in COMMANDS[name]]
            before = len(server.bodies)
            code, _, err = await _kubectl(env, *args)
            assert code == 0, f"kubectl {' '.join(args)}: {err}"
            [(_, content_type, body)] = server.bodies[before:]
            assert content_type == "application/vnd.kubernetes.protobuf"
            split = args.index("--") if "--" in args else len(args)
            dry: dict[str, Any] | None = None
            if name != "token":  # `kubectl create token` has no dry run
                code, out, err = await _kubectl(env, *args[:split], "--dry-run=client", "-o", "json",
                                                *args[split:])
                assert code == 0, err
                dry = json.loads(out)
            results[name] = (body, dry)
    return results


async def test_live_kubectl_bodies_decode_to_its_json(tmp_path: Path) -> None:
    names = ["deployment-0", "secret", "service", "pdb", "token"]
    for name, (body, dry) in (await capture(names, tmp_path)).items():
        decoded = decode_protobuf(body)
        if dry is not None:
            assert decoded == dry, name
        assert decoded == json.loads((FIXTURES / f"kubectl-create-{name}.json").read_text()), name


def _regenerate(directory: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(capture(list(COMMANDS), Path(tmp)))
    for name, (body, dry) in results.items():
        (directory / f"kubectl-create-{name}.bin").write_bytes(body)
        expected = dry if dry is not None else decode_protobuf(body)
        (directory / f"kubectl-create-{name}.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    _regenerate(Path(sys.argv[1]))

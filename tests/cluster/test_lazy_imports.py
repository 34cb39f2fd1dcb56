"""An idle control plane, started through ``vkube serve``'s entry point and answering kubectl,
has not imported what only some requests need (each costs RSS for the cluster's whole life):
PyJWT (until a token is issued or presented), jsonpatch (until a JSON patch or a webhook's
patch), dnspython (until the cluster DNS gets a query), vkube's CEL modules (until a CRD, a
policy or a webhook's matchConditions need an expression compiled), and aiohttp's default trust
store (until a connection verifies against the system's CAs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import KUBECTL

LAZY = ("jwt", "jsonpatch", "jsonpointer", "dns")

SCRIPT = r"""
import asyncio, json, os, signal, subprocess, sys
from vkube.cli import main, serving

real_serve = serving.serve
data_dir, kubectl, out = sys.argv[1:4]

async def serve(config):
    task = asyncio.ensure_future(real_serve(config))
    while not os.path.exists(os.path.join(data_dir, "ready")):
        await asyncio.sleep(0.05)
    import vkube.dns.server  # what the syncer's DNS runs, when there is a host
    from vkube.cluster.virtual import VirtualCluster
    kc = os.path.join(data_dir, "kubeconfig")
    proc = await asyncio.create_subprocess_exec(kubectl, "--kubeconfig", kc, "get", "ns", "-o", "name",
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = await proc.communicate()
    import aiohttp.connector
    store = aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]
    lazy = lambda: sorted(m for m in sys.modules if m.split(".")[0] in LAZY_ROOTS or m.startswith("vkube.api.cel"))
    modules = lazy()
    import vkube.dns.wire  # what the cluster DNS's first query imports
    import vkube.api.cel  # what a CRD's rules import
    with open(out, "w") as f:
        json.dump({"kubectl": stdout.decode(), "kubectl_err": stderr.decode(), "trust_store_certs": store,
                   "modules": modules, "after_query": lazy()}, f)
    os.kill(os.getpid(), signal.SIGTERM)
    return await task

serving.serve = serve
sys.exit(main.main(["serve", "--name", "lazy", "--data-dir", data_dir, "--port", "0"]))
""".replace("LAZY_ROOTS", repr(LAZY))


def test_an_idle_control_plane_has_not_imported_the_lazy_modules(tmp_path: Path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data"), KUBECTL, str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert "namespace/kube-system" in got["kubectl"].split(), got["kubectl_err"]
    assert {"dns.message", "vkube.api.cel_compile"} <= set(got["after_query"])  # the check sees them
    assert not got["modules"], got["modules"]
    assert got["trust_store_certs"] == 0

"""enableHA/replicas are accepted only where they hold: on a shared store; ``render`` runs the
replicas on that store (no per-replica SQLite volume); HA on SQLite is refused by ``create``,
``render`` and ``serve``. Local replicas run: ``test_local_replicas.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.conftest import make_user
from vkube.cli.render import manifests
from vkube.cluster.config import ClusterConfig

PG = "postgres://vkube@127.0.0.1:5432/vkube"


def test_render_runs_replicas_on_the_shared_store():
    values = {"enableHA": True, "replicas": 3, "controlPlane": {"store": PG}}
    sts = next(o for o in manifests("team", "tenants", values) if o["kind"] == "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    assert "volumeClaimTemplates" not in sts["spec"]  # no SQLite volume per replica
    pod = sts["spec"]["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    mounts = {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["volumes"]}
    # the store reaches serve through the mounted values (controlPlane.store)
    cm = next(o for o in manifests("team", "tenants", values) if o["kind"] == "ConfigMap")
    assert PG in cm["data"]["values.yaml"]
    single = next(o for o in manifests("team", "tenants", {}) if o["kind"] == "StatefulSet")
    assert single["spec"]["replicas"] == 1 and single["spec"]["volumeClaimTemplates"]


@pytest.mark.parametrize("store", [None, "sqlite", "/tmp/x.db", "sqlite:///tmp/x.db"])
def test_cluster_config_refuses_ha_without_a_shared_store(tmp_path, store):
    with pytest.raises(ValueError, match="shared store"):
        ClusterConfig(name="x", data_dir=tmp_path, store_url=store, ha=True)
    ClusterConfig(name="x", data_dir=tmp_path, store_url=PG, ha=True)


def test_cli_refuses_ha_on_sqlite(tmp_path):
    u = make_user(tmp_path)
    f = tmp_path / "v.yaml"
    f.write_text("enableHA: true\nreplicas: 3\n")
    for cmd in (["create", "x"], ["render", "x"]):
        out = u.vkube(*cmd, "-f", str(f), check=False)
        assert out.returncode == 1 and "enableHA: needs a shared store" in out.stderr, out.stderr
        assert "split brain" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    serve = subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp_path / "d"),
                            "--host-kubeconfig", str(tmp_path / "none"), "-f", str(f)],
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2 and "enableHA: needs a shared store" in serve.stderr
    f.write_text(f"enableHA: true\nreplicas: 3\ncontrolPlane: {{store: '{PG}'}}\n")
    rendered = u.vkube("render", "x", "-f", str(f)).stdout
    assert "replicas: 3" in rendered

"""storagemigration.k8s.io/v1: a StorageVersionMigration of ``secrets`` created with kubectl
re-encrypts every Secret under the new first key after a rotation (read back raw from the
SQLite file), and reports Running then Succeeded; an unknown resource ends Failed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.admission.conftest import eventually
from tests.admission.test_encryption import SECRET_VALUE, aes_config, kc, key, raw_rows, start
from vkube.controllers.runtime import ControllerManager
from vkube.controllers.storageversionmigration import StorageVersionMigrationController


@asynccontextmanager
async def migrator(cp) -> AsyncIterator[None]:  # noqa: ANN001 - RunningControlPlane
    client = cp.client()
    mgr = ControllerManager(client, identity="svm", leader_election=False)
    mgr.add(StorageVersionMigrationController)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 60)
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


SVM = """
apiVersion: storagemigration.k8s.io/v1
kind: StorageVersionMigration
metadata: {{name: {name}}}
spec: {{resource: {{group: "{group}", resource: {resource}}}}}
"""


async def test_migration_reencrypts_secrets_after_rotation(tmp_path: Path) -> None:
    old, new = key(), key()
    cfg = tmp_path / "enc.yaml"
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("old", old)))
    try:
        for i in range(3):
            await kc(cp, "create", "secret", "generic", f"s{i}", f"--from-literal=k={SECRET_VALUE}")
    finally:
        await cp.cp.stop()
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("new", new), ("old", old)))
    try:
        async with migrator(cp):
            await kc(cp, "create", "-f", "-", input=SVM.format(name="secrets-1", group="", resource="secrets"))

            async def done() -> dict:
                svm = json.loads((await kc(cp, "get", "storageversionmigration", "secrets-1", "-o", "json")).stdout)
                conds = {c["type"]: c["status"] for c in svm.get("status", {}).get("conditions") or ()}
                assert conds.get("Succeeded") == "True", svm.get("status")
                return svm
            svm = await eventually(done)
            assert svm["status"]["resourceVersion"]
            assert {c["type"]: c["status"] for c in svm["status"]["conditions"]}["Running"] == "False"

            await kc(cp, "create", "-f", "-", input=SVM.format(name="nothing", group="example.com", resource="widgets"))

            async def failed() -> bool:
                svm = json.loads((await kc(cp, "get", "storageversionmigration", "nothing", "-o", "json")).stdout)
                cond = next((c for c in svm.get("status", {}).get("conditions") or () if c["type"] == "Failed"), None)
                assert cond is not None and cond["message"] == "resource widgets.example.com is not served", svm
                return True
            await eventually(failed)
    finally:
        await cp.cp.stop()
    db = tmp_path / "cp" / "state.db"
    for i in range(3):
        rows = [v for _, v in raw_rows(db) if f"/secrets/default/s{i}".encode() in v]
        assert b"k8s:enc:aesgcm:v1:new:" in rows[-1], rows[-1][:120]
    # the old key can go: every secret still reads
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("new", new)))
    try:
        out = await kc(cp, "get", "secrets", "-o", "name")
        assert {"secret/s0", "secret/s1", "secret/s2"} <= set(out.stdout.split())
    finally:
        await cp.cp.stop()


async def test_spec_is_immutable(tmp_path: Path) -> None:
    cp = await start(tmp_path)
    try:
        await kc(cp, "create", "-f", "-", input=SVM.format(name="m", group="", resource="configmaps"))
        out = await kc(cp, "patch", "storageversionmigration", "m", "--type", "merge",
                       "-p", '{"spec":{"resource":{"resource":"secrets"}}}', check=False)
        assert out.returncode != 0 and "field is immutable" in out.stderr
    finally:
        await cp.cp.stop()

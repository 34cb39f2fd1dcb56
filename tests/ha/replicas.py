"""Three ``vkube serve`` replicas of one virtual cluster on a shared store, as processes, for
the HA acceptance tests: started, found (which one leads), killed and restarted by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import kubectl


@dataclass
class Replica:
    index: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def identity(self) -> str:
        assert self.proc is not None
        return f"{socket.gethostname()}-{self.proc.pid}-ha"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Replicas:
    root: Path
    values: Path
    host_kubeconfig: Path
    members: list[Replica] = field(default_factory=list)

    def start(self, i: int) -> Replica:
        r = self.members[i]
        (r.data_dir / "ready").unlink(missing_ok=True)
        out = open(r.log, "ab")
        r.proc = subprocess.Popen(
            [sys.executable, "-m", "vkube", "serve", "--name", "ha", "--data-dir", str(r.data_dir),
             "--host-kubeconfig", str(self.host_kubeconfig), "-f", str(self.values)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "VKUBE_LOG_LEVEL": "INFO"})
        out.close()
        return r

    def start_all(self, n: int = 3) -> None:
        if not self.members:
            for i in range(n):
                d = self.root / f"replica-{i}"
                d.mkdir(parents=True, exist_ok=True)
                self.members.append(Replica(i, d, self.root / f"replica-{i}.log"))
        for i in range(len(self.members)):
            self.start(i)
        deadline = time.monotonic() + 120
        while not all((r.data_dir / "ready").exists() for r in self.members):
            for r in self.members:
                if not r.alive():
                    raise AssertionError(f"replica {r.index} exited:\n{r.log.read_text()[-3000:]}")
            assert time.monotonic() < deadline, "replicas not serving within 120 s"
            time.sleep(0.2)

    def kill(self, r: Replica, sig: int = signal.SIGKILL) -> None:
        assert r.proc is not None
        r.proc.send_signal(sig)
        r.proc.wait(60)

    def stop_all(self) -> None:
        for r in self.members:
            if r.alive():
                self.kill(r, signal.SIGTERM)

    def lease(self, via: Replica) -> dict:
        out = kubectl(via.kubeconfig, "get", "lease", "-n", "kube-system", "vkube-leader",
                      "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def leader(self, via: Replica) -> Replica | None:
        """The live replica holding an unexpired lease, read through ``via``."""
        spec = self.lease(via).get("spec") or {}
        return next((r for r in self.members
                     if r.alive() and r.identity == spec.get("holderIdentity")), None)

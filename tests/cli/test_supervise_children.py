"""The supervisor with several children (``--children``, how ``enableHA`` runs its replicas
and front): each restarted on its own with back-off; one that keeps failing is given up while
the others run; an essential one given up stops everything; SIGTERM stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vkube.cli.process import SUPERVISOR, _alive, child_pids

CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def sleeper(name: str) -> list[str]:
    return [sys.executable, "-c", f"import time; time.sleep(600)  # {name}"]


def child(sup: subprocess.Popen[str], name: str) -> int | None:
    """The live child of ``sup`` that runs ``sleeper(name)``."""
    for pid in child_pids(sup.pid):
        if f"# {name}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and _alive(pid):
            return pid
    return None


def supervise(tmp_path: Path, children: list[dict]) -> subprocess.Popen[str]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(children))
    with open(tmp_path / "log", "w") as log:
        return subprocess.Popen([sys.executable, "-S", "-P", str(SUPERVISOR), "--pid-file",
                                 str(tmp_path / "pid"), "--children", str(spec)],
                                stderr=log, text=True)


def wait(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return result


def test_children_restart_alone_and_stop_together(tmp_path: Path):
    ready = tmp_path / "a.ready"
    sup = supervise(tmp_path, [{"name": "a", "cmd": sleeper("a"), "ready": str(ready)},
                               {"name": "b", "cmd": sleeper("b"), "ready": str(tmp_path / "b")},
                               {"name": "bad", "cmd": CRASHER, "ready": str(tmp_path / "c")}])
    try:
        a = wait(lambda: child(sup, "a"))
        b = wait(lambda: child(sup, "b"))
        ready.write_text("http://127.0.0.1:1\n")  # as serve would
        # a killed child: its ready file goes, it is started again, the others are left alone
        os.kill(a, signal.SIGKILL)
        wait(lambda: not ready.exists())
        a2 = wait(lambda: (p := child(sup, "a")) and p != a and p)
        assert child(sup, "b") == b
        # "bad" fails five times quickly (0.5+1+2+4 s of back-off) and is given up; the
        # supervisor keeps the rest running
        wait(lambda: "giving up on it" in (tmp_path / "log").read_text(), timeout=120)
        assert sup.poll() is None and child(sup, "a") == a2 and child(sup, "b") == b
    finally:
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0
    log = (tmp_path / "log").read_text()
    assert "bad failed 5 times in a row (last exit code 3); giving up on it" in log
    assert "a exited with code -9" in log
    assert not (tmp_path / "pid").exists()
    assert not any(_alive(p) for p in (a2, b))


def test_an_essential_child_given_up_stops_everything(tmp_path: Path):
    sup = supervise(tmp_path, [{"name": "replica 0", "cmd": sleeper("r0"), "ready": str(tmp_path / "r")},
                               {"name": "front", "cmd": CRASHER, "ready": str(tmp_path / "f"),
                                "essential": True}])
    kids: set[int] = set()
    deadline = time.monotonic() + 120
    while sup.poll() is None and time.monotonic() < deadline:
        kids |= set(child_pids(sup.pid))
        time.sleep(0.05)
    assert sup.wait(30) == 1
    assert "front failed 5 times in a row" in (tmp_path / "log").read_text()
    assert not any(_alive(p) for p in kids)


def test_a_bad_spec_is_refused(tmp_path: Path):
    (tmp_path / "spec.json").write_text("[{}]")
    out = subprocess.run([sys.executable, "-S", "-P", str(SUPERVISOR), "--pid-file",
                          str(tmp_path / "pid"), "--children", str(tmp_path / "spec.json")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "spec.json" in out.stderr


def recorded(tmp_path: Path) -> list[int]:
    """The pids the supervisor recorded as its children (none before it wrote any)."""
    try:
        return [pid for pid, _ in json.loads((tmp_path / "pid.children").read_text())]
    except FileNotFoundError:
        return []


def test_children_die_with_a_killed_supervisor(tmp_path: Path):
    """``kill -9`` of the supervisor: the kernel sends each child SIGTERM (PDEATHSIG)."""
    sup = supervise(tmp_path, [{"name": "a", "cmd": sleeper("a"), "ready": str(tmp_path / "a")},
                               {"name": "b", "cmd": sleeper("b"), "ready": str(tmp_path / "b")}])
    a = wait(lambda: child(sup, "a"))
    b = wait(lambda: child(sup, "b"))
    wait(lambda: sorted(recorded(tmp_path)) == sorted([a, b]))
    sup.kill()
    sup.wait(30)
    wait(lambda: not _alive(a) and not _alive(b))


def test_a_new_supervisor_stops_what_an_earlier_one_left(tmp_path: Path):
    """A child left running (one started without PDEATHSIG, as before it existed) is stopped
    by the next supervisor of the same pid file; a recorded pid now naming another process
    (its start time differs) is left alone."""
    leftover = subprocess.Popen(sleeper("leftover"))
    try:
        start = int(Path(f"/proc/{leftover.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        (tmp_path / "pid.children").write_text(json.dumps([[leftover.pid, start],
                                                           [os.getpid(), start - 1]]))
        sup = supervise(tmp_path, [{"name": "a", "cmd": sleeper("a"),
                                    "ready": str(tmp_path / "a")}])
        try:
            assert leftover.wait(60) == -signal.SIGTERM
            a = wait(lambda: child(sup, "a"))
            wait(lambda: recorded(tmp_path) == [a])
        finally:
            sup.send_signal(signal.SIGTERM)
            assert sup.wait(30) == 0
        log = (tmp_path / "log").read_text()
        assert f"stopped 1 process(es) an earlier supervisor left running: {leftover.pid}" in log
        assert not (tmp_path / "pid.children").exists()
    finally:
        leftover.kill()
        leftover.wait()

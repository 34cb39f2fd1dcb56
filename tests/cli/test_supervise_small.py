"""The single-child supervisor stays small: it imports neither ``subprocess`` nor ``json`` nor
``typing`` (~3 MiB of RSS for every cluster's life), nor ``signal``'s enums (~0.8 MiB), starts its child with fork + exec with
stdin on /dev/null and its own environment, and reports a command it cannot run as exit 127."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vkube.cli.process import SUPERVISOR, _alive, child_pids

HEAVY = ("subprocess", "json", "typing", "threading", "selectors", "re", "signal", "enum")


def wait(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return result


def test_a_child_runs_with_null_stdin_and_the_supervisor_imported_nothing_heavy(tmp_path: Path):
    out = tmp_path / "out"
    script = ("import os, sys; data = sys.stdin.read(); "
              f"open({str(out)!r}, 'w').write(repr(data) + ' ' + os.environ.get('MARK', '')); "
              "import time; time.sleep(600)")
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "MARK": "inherited"}
    # the child must not print its own import times into the supervisor's stderr
    cmd = ["env", "-u", "PYTHONPROFILEIMPORTTIME", sys.executable, "-c", script]
    sup = subprocess.Popen([sys.executable, "-S", "-P", str(SUPERVISOR), "--pid-file",
                            str(tmp_path / "pid"), "--ready-file", str(tmp_path / "ready"), "--", *cmd],
                           stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        wait(lambda: out.exists() and out.read_text().endswith("inherited"))
        assert out.read_text() == "'' inherited"  # stdin was /dev/null, not the supervisor's pipe
        (child,) = [p for p in child_pids(sup.pid) if _alive(p)]
    finally:
        sup.send_signal(signal.SIGTERM)
        _, err = sup.communicate(timeout=60)
    assert sup.returncode == 0
    assert not _alive(child)
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if line.startswith("import time:")}
    assert "ctypes" in imported  # the trace is there (PR_SET_PDEATHSIG needs ctypes)
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_a_command_that_cannot_run_is_a_quick_failure_with_exit_127(tmp_path: Path):
    sup = subprocess.Popen([sys.executable, "-S", "-P", str(SUPERVISOR), "--pid-file",
                            str(tmp_path / "pid"), "--ready-file", str(tmp_path / "ready"), "--",
                            str(tmp_path / "no-such-program")], stderr=subprocess.PIPE, text=True)
    try:
        err = wait(lambda: sup.stderr.readline() if sup.poll() is None else "EOF")
        assert "cannot run" in err and "no-such-program" in err
        err = wait(lambda: sup.stderr.readline())
        assert "exited with code 127" in err
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.communicate(timeout=60)

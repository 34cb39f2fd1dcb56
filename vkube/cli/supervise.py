"""``python -S -P .../vkube/cli/supervise.py --pid-file F --ready-file R -- CMD...`` (or
``python -m vkube.cli.supervise ...``): a tiny supervisor that keeps one ``vkube serve``
running — restarting it with backoff when it dies unexpectedly — until SIGTERM, which it
forwards and waits for. It imports only the standard library (it runs as a file, without
site) so it starts fast and costs a few MB of RSS.

It gives up (exit 1) after several quick failures in a row: a control plane that cannot start
should show as Failed, not burn a core."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

BACKOFF = (0.5, 1, 2, 4, 8, 15, 30)
QUICK = 10.0  # a child that lived less than this counts as a quick failure
MAX_QUICK_FAILURES = 5
STOP_GRACE = 20.0


class Supervisor:
    def __init__(self, cmd: list[str], pid_file: str, ready_file: str) -> None:
        self.cmd = cmd
        self.pid_file = pid_file
        self.ready_file = ready_file
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        with open(self.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
        quick_failures = 0
        try:
            while not self.stopping:
                started = time.monotonic()
                self.child = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL)
                if self.stopping:  # SIGTERM came between the loop test and the assignment
                    self.child.send_signal(signal.SIGTERM)
                rc = self._wait_child()
                self._unready()  # a killed serve cannot remove it itself
                if self.stopping:
                    return 0
                lived = time.monotonic() - started
                quick_failures = quick_failures + 1 if lived < QUICK else 0
                if quick_failures >= MAX_QUICK_FAILURES:
                    _say(f"serve failed {quick_failures} times in a row (last exit code {rc}); "
                         "giving up")
                    return 1
                delay = BACKOFF[min(quick_failures, len(BACKOFF) - 1)]
                _say(f"serve exited with code {rc} after {lived:.1f}s; restarting in {delay}s")
                self._sleep(delay)
            return 0
        finally:
            try:
                with open(self.pid_file) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.unlink(self.pid_file)
            except OSError:
                pass

    def _unready(self) -> None:
        try:
            os.unlink(self.ready_file)
        except FileNotFoundError:
            pass

    def _wait_child(self) -> int:
        assert self.child is not None
        while True:
            try:
                return self.child.wait(timeout=STOP_GRACE if self.stopping else None)
            except subprocess.TimeoutExpired:
                _say(f"serve did not stop within {STOP_GRACE:g}s; killing it")
                self.child.kill()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))


def _say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} vkube-supervisor: {msg}", file=sys.stderr,
          flush=True)


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[0] != "--pid-file" or argv[2] != "--ready-file" or argv[4] != "--":
        print("usage: python -m vkube.cli.supervise --pid-file FILE --ready-file FILE -- CMD...",
              file=sys.stderr)
        return 2
    return Supervisor(argv[5:], argv[1], argv[3]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

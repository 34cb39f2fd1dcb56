"""Throwaway PostgreSQL and etcd servers on 127.0.0.1 for the store tests and benchmarks.

``.ci/run`` starts one of each and exports ``VKUBE_TEST_POSTGRES`` / ``VKUBE_TEST_ETCD``; when
those are unset (a developer's machine) the tests start their own from the installed binaries
(Debian's ``postgresql`` and ``etcd-server``), and skip, naming the package, when there are none.

    python -m tests.store.servers postgres /tmp   # prints the URL, runs until SIGTERM
    python -m tests.store.servers etcd DIR
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres(parent: str | None = None) -> Iterator[str]:
    """A fresh cluster in a new directory under ``parent`` (removed afterwards; its own, since
    the ``postgres`` user must reach it); yields ``postgres://postgres@127.0.0.1:PORT/postgres``."""
    bindir = postgres_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    directory = tempfile.mkdtemp(prefix="vkube-pg-", dir=parent)
    os.chmod(directory, 0o755)
    data = os.path.join(directory, "pgdata")
    os.makedirs(data, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (directory, data):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    subprocess.run(_as_postgres_user([f"{bindir}/initdb", "-D", data, "-U", "postgres",
                                      "-A", "trust", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c max_connections=300"
    subprocess.run(_as_postgres_user([f"{bindir}/pg_ctl", "-D", data, "-o", options, "-w",
                                      "-l", os.path.join(directory, "log"), "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres_user([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate",
                                          "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def etcd(directory: str) -> Iterator[str]:
    """A one-member etcd with its data in ``directory``; yields ``etcd://127.0.0.1:PORT``."""
    binary = shutil.which("etcd")
    if binary is None:
        raise FileNotFoundError("etcd is not installed (apt-get install etcd-server)")
    port, peer = free_port(), free_port()
    log = open(os.path.join(directory, "etcd.log"), "wb")
    proc = subprocess.Popen(
        [binary, "--data-dir", os.path.join(directory, "etcd"), "--name", "vkube-test",
         "--listen-client-urls", f"http://127.0.0.1:{port}",
         "--advertise-client-urls", f"http://127.0.0.1:{port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"vkube-test=http://127.0.0.1:{peer}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start; see {directory}/etcd.log")
            time.sleep(0.1)
        yield f"etcd://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main() -> None:
    kind, directory = sys.argv[1], sys.argv[2]
    # postgres makes its own directory under the system's temp dir: the ``postgres`` user must
    # be able to reach it, which a private (0700) ``directory`` would not allow.
    server = postgres(None) if kind == "postgres" else etcd(directory)
    with server as url:
        print(url, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()

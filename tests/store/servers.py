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


class PostgresServer:
    """A fresh PostgreSQL cluster in a new directory under ``parent`` (its own, since the
    ``postgres`` user must reach it) that a test can stop and start again on the same port
    and data: ``postgres://postgres@127.0.0.1:PORT/postgres``."""

    def __init__(self, parent: str | None = None) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.directory = tempfile.mkdtemp(prefix="vkube-pg-", dir=parent)
        os.chmod(self.directory, 0o755)
        self.data = os.path.join(self.directory, "pgdata")
        os.makedirs(self.data, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.directory, self.data):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        subprocess.run(_as_postgres_user([f"{bindir}/initdb", "-D", self.data, "-U", "postgres",
                                          "-A", "trust", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} "
                   "-c max_connections=300")
        subprocess.run(_as_postgres_user([f"{self.bindir}/pg_ctl", "-D", self.data, "-o",
                                          options, "-w", "-l",
                                          os.path.join(self.directory, "log"), "start"]),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clients disconnected, a clean shutdown) or ``immediate`` (as a crash)."""
        subprocess.run(_as_postgres_user([f"{self.bindir}/pg_ctl", "-D", self.data, "-m", mode,
                                          "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def postgres(parent: str | None = None) -> Iterator[str]:
    """A fresh cluster (removed afterwards); yields ``postgres://postgres@127.0.0.1:PORT/postgres``."""
    server = PostgresServer(parent)
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


class EtcdServer:
    """A one-member etcd with its data in ``directory`` that a test can stop and start again
    on the same ports and data. ``tls``: (ca, server cert, server key) files; clients then
    need https and a certificate that CA signed (``--client-cert-auth``)."""

    def __init__(self, directory: str, tls: tuple[str, str, str] | None = None) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise FileNotFoundError("etcd is not installed (apt-get install etcd-server)")
        self.binary, self.directory, self.tls = binary, directory, tls
        self.port, self.peer = free_port(), free_port()
        self.url = f"etcd://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        scheme = "https" if self.tls else "http"
        client = f"{scheme}://127.0.0.1:{self.port}"
        cmd = [self.binary, "--data-dir", os.path.join(self.directory, "etcd"),
               "--name", "vkube-test", "--listen-client-urls", client,
               "--advertise-client-urls", client,
               "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
               "--initial-cluster", f"vkube-test=http://127.0.0.1:{self.peer}"]
        if self.tls:
            ca, cert, key = self.tls
            cmd += ["--trusted-ca-file", ca, "--cert-file", cert, "--key-file", key,
                    "--client-cert-auth"]
        with open(os.path.join(self.directory, "etcd.log"), "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start; see {self.directory}/etcd.log")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def etcd(directory: str) -> Iterator[str]:
    """A one-member etcd with its data in ``directory``; yields ``etcd://127.0.0.1:PORT``."""
    server = EtcdServer(directory)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


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

"""``kubectl exec`` into a simulated container is honest: stdin reaches the commands the
simulation implements (``cat``, ``sh`` with ``read``), and a command it does not implement fails
with exit 127 and a message saying so — never an empty success or a false "sh not found"."""

from __future__ import annotations

from tests.cli.conftest import User


def test_kubectl_exec_stdin_and_unimplemented_commands(user: User) -> None:
    user.vkube("create", "ex")
    user.kubectl("run", "p", "--image=nginx")
    user.kubectl("wait", "pod/p", "--for=condition=Ready", "--timeout=90s", timeout=120)

    def ex(*argv: str, stdin: str | None = None):  # noqa: ANN202
        flags = ["-i"] if stdin is not None else []
        return user.kubectl("exec", *flags, "p", "--", *argv, input=stdin, check=False)

    r = ex("cat", stdin="hello\n")
    assert (r.returncode, r.stdout) == (0, "hello\n"), r
    r = ex("sh", "-c", "read x; echo got $x", stdin="hello world\n")
    assert (r.returncode, r.stdout) == (0, "got hello world\n"), r
    r = ex("sh", stdin="echo $HOSTNAME\nexit 3\n")
    assert (r.returncode, r.stdout) == (3, "p\n"), r
    r = ex("sh", "-c", "echo $HOSTNAME")
    assert (r.returncode, r.stdout) == (0, "p\n"), r
    for argv in (["ls", "/"], ["sh", "-c", "ls /"]):
        r = ex(*argv)
        assert r.returncode == 127 and r.stdout == "", r
        assert "simulated container does not implement" in r.stderr, r
        assert "executable file not found" not in r.stderr, r
    r = ex("hostname", stdin="ignored\n")  # -i with a command that reads no stdin: no wait
    assert (r.returncode, r.stdout) == (0, "p\n"), r

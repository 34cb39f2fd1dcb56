"""``kubectl attach`` through the virtual API server and the syncer to the simulated kubelet,
which serves it as a kubelet does: what the container prints from the moment of attaching, then
a Success status (the exit code is the pod's status, which ``kubectl run -i`` reads)."""

from __future__ import annotations

from tests.cli.conftest import User, eventually


def test_kubectl_attach_shows_the_output_until_the_container_ends(user: User) -> None:
    user.vkube("create", "att")
    # an interactive shell: its output comes only from what is typed, so what attach shows
    # does not depend on when it connected
    user.kubectl("run", "talker", "--image=busybox", "--restart=Never", "--stdin",
                 "--attach=false", "--", "sh")
    eventually(lambda: user.kubectl("get", "pod", "talker", "-o", "jsonpath={.status.phase}")
               .stdout == "Running" or _no(), timeout=90, delay=0.5)
    out = user.kubectl("attach", "-i", "talker", "-c", "talker", timeout=60, check=False,
                       input="echo hello; echo world\nexit 3\n")
    # a kubelet ends attach with Success whatever the exit code
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.count("hello\nworld\n") == 1, (out.stdout, out.stderr)
    eventually(lambda: user.kubectl(
        "get", "pod", "talker", "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}").stdout == "3"
        or _no(), timeout=90, delay=0.5)
    # kubectl run -i: what ran before the attach comes once (from the logs), not again from
    # attach, and the container's exit code is kubectl's, read from the pod's status
    out = user.kubectl("run", "once", "-i", "--image=busybox", "--restart=Never", "--",
                       "sh", "-c", "echo only-once; sleep 3; exit 3", timeout=120, check=False,
                       input="")
    assert out.stdout.count("only-once") == 1, (out.stdout, out.stderr)
    assert "falling back" not in out.stderr, out.stderr
    assert out.returncode == 3, (out.returncode, out.stdout, out.stderr)


def _no() -> None:
    raise AssertionError("not yet")

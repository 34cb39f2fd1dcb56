"""``kubectl attach`` through the virtual API server and the syncer to the simulated kubelet,
which serves it as KWOK's Attach configuration does: the container's output, then its end."""

from __future__ import annotations

from tests.cli.conftest import User, eventually


def test_kubectl_attach_shows_the_output_until_the_container_ends(user: User) -> None:
    user.vkube("create", "att")
    user.kubectl("run", "talker", "--image=busybox", "--restart=Never", "--",
                 "sh", "-c", "echo hello; echo world; sleep 8")
    eventually(lambda: user.kubectl("get", "pod", "talker", "-o", "jsonpath={.status.phase}")
               .stdout == "Running" or _no(), timeout=90, delay=0.5)
    out = user.kubectl("attach", "talker", "-c", "talker", timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "hello\nworld\n" in out.stdout, (out.stdout, out.stderr)
    # a failing container: attach reports its exit code as kubectl does
    user.kubectl("run", "failer", "--image=busybox", "--restart=Never", "--",
                 "sh", "-c", "echo bye; sleep 8; exit 3")
    eventually(lambda: user.kubectl("get", "pod", "failer", "-o", "jsonpath={.status.phase}")
               .stdout == "Running" or _no(), timeout=90, delay=0.5)
    out = user.kubectl("attach", "failer", timeout=60, check=False)
    assert "bye" in out.stdout and out.returncode != 0, (out.returncode, out.stdout, out.stderr)


def _no() -> None:
    raise AssertionError("not yet")

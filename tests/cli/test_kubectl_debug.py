"""``kubectl debug`` against a ``vkube create`` cluster on the embedded host: an ephemeral
container added through pods/ephemeralcontainers reaches the host pod, runs, reports its
status up and answers logs, exec and attach; ``--copy-to`` makes a pod; what hostAccess
``reject`` forbids (the default profile's SYS_PTRACE, a node debugger's host namespaces) is
refused with a message naming the fix."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

NAME = "dbg"
NS = f"vkube-{NAME}"


def _status(u: User, pod: str, container: str) -> dict[str, Any]:
    out = json.loads(u.kubectl("get", "pod", pod, "-o", "json").stdout)
    st = [s for s in out["status"].get("ephemeralContainerStatuses") or ()
          if s["name"] == container]
    assert st, out["status"]
    return st[0]


def _state(u: User, pod: str, container: str, state: str) -> dict[str, Any]:
    st = _status(u, pod, container)["state"]
    assert state in st, st
    return st[state]


def test_kubectl_debug(user: User) -> None:
    user.vkube("create", NAME)
    user.kubectl("run", "web", "--image=nginx")
    eventually(lambda: _phase(user, "web", "Running"), timeout=120)

    # the non-interactive form: runs on the host pod, its status and log come back up
    user.kubectl("debug", "web", "--image=busybox", "-c", "dbg", "--profile=baseline",
                 "--", "sh", "-c", "echo hi")
    done = eventually(lambda: _state(user, "web", "dbg", "terminated"), timeout=120)
    assert (done["exitCode"], done["reason"]) == (0, "Completed")
    assert user.kubectl("logs", "web", "-c", "dbg").stdout == "hi\n"
    host = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "pods", "-n", NS,
                              "-o", "json").stdout)["items"]
    assert [c["name"] for c in host[0]["spec"]["ephemeralContainers"]] == ["dbg"]
    assert _phase(user, "web", "Running")  # the pod itself is untouched

    # kubectl debug -i: the shell runs what is typed, until `exit`
    out = user.kubectl("debug", "-i", "web", "--image=busybox", "-c", "sh1", "--profile=baseline",
                       "--target=web", input="echo hello\nhostname\nexit\n", timeout=120)
    assert "hello\nweb\n" in out.stdout, (out.stdout, out.stderr)
    eventually(lambda: _state(user, "web", "sh1", "terminated"), timeout=120)
    assert user.kubectl("logs", "web", "-c", "sh1").stdout == "hello\nweb\n"

    # `exit N` anywhere a command stands ends the shell with N, as sh does
    out = user.kubectl("debug", "-i", "web", "--image=busybox", "-c", "sh3", "--profile=baseline",
                       input="echo two; if true; then exit 3; fi\necho never\n", timeout=120,
                       check=False)
    assert "two\n" in out.stdout and "never" not in out.stdout, (out.stdout, out.stderr)
    assert eventually(lambda: _state(user, "web", "sh3", "terminated"), timeout=120)["exitCode"] == 3
    # exec into a container that is no longer running: the kubelet's error, never a failed upgrade
    out = user.kubectl("exec", "web", "-c", "sh3", "--", "echo", "x", check=False)
    assert out.returncode == 1 and out.stdout == "", (out.stdout, out.stderr)
    assert out.stderr.startswith("error: Internal error occurred: error executing command in "
                                 "container: container not running ("), out.stderr
    assert "upgrade" not in out.stderr
    out = user.kubectl("attach", "web", "-c", "sh3", check=False)
    assert out.returncode == 1 and "error attaching to container: container not running (" \
        in out.stderr and "upgrade" not in out.stderr, (out.stdout, out.stderr)

    # a running debug container: exec into it, then kubectl attach to its shell
    user.kubectl("debug", "-i", "--attach=false", "web", "--image=busybox", "-c", "sh2",
                 "--profile=baseline")
    eventually(lambda: _state(user, "web", "sh2", "running"), timeout=120)
    assert user.kubectl("exec", "web", "-c", "sh2", "--", "hostname").stdout == "web\n"
    out = user.kubectl("attach", "web", "-c", "sh2", "-i", input="echo via-attach\nexit\n",
                       timeout=120)
    assert "via-attach\n" in out.stdout, (out.stdout, out.stderr)
    eventually(lambda: _state(user, "web", "sh2", "terminated"), timeout=120)

    # the default profile adds SYS_PTRACE: under hostAccess reject it is not synced, and the
    # tenant is told why and what to change (an event, and a terminated status: never started)
    user.kubectl("debug", "web", "--image=busybox", "-c", "ptrace", "--", "sh", "-c", "echo x")
    ended = eventually(lambda: _state(user, "web", "ptrace", "terminated"), timeout=120)
    assert (ended["reason"], ended["exitCode"]) == ("SyncRejected", 128)
    assert 'must not include "SYS_PTRACE"' in ended["message"]
    assert "sync.pods.hostAccess: strip" in ended["message"]
    assert "--profile=baseline" in ended["message"]
    refused = user.kubectl("logs", "web", "-c", "ptrace", check=False)
    assert 'container "ptrace" in pod "web" is terminated: SyncRejected: ' in refused.stderr
    # kubectl debug -i (and -it) waits for the container to run or end: it ends, with the
    # reason, instead of waiting forever
    for i, flags in enumerate((["-i"], ["--attach=true"])):
        name = f"ptrace{i}"
        out = user.kubectl("debug", *flags, "web", "--image=busybox", "-c", name,
                           input="echo never\n", timeout=180, check=False)
        assert out.returncode != 0 and "never" not in out.stdout, (out.stdout, out.stderr)
        assert f'container "{name}" in pod "web" is terminated: SyncRejected: ' \
            in out.stderr and 'must not include "SYS_PTRACE"' in out.stderr, out.stderr
    events = user.kubectl("get", "events", "--field-selector", "involvedObject.name=web").stdout
    assert "ephemeral container ptrace not synced to the host" in events
    # ...and, never removable, it does not hold back the pod's own updates
    user.kubectl("set", "image", "pod/web", "web=nginx:1.27")

    def host_image() -> None:
        hp = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "pods", "-n", NS,
                                "-o", "json").stdout)["items"][0]
        assert hp["spec"]["containers"][0]["image"] == "nginx:1.27", hp["spec"]["containers"]
    eventually(host_image, timeout=120)

    # --copy-to: a copy of the pod with the debug container
    user.kubectl("debug", "web", "--copy-to=web-copy", "--profile=baseline", "--image=busybox",
                 "-c", "dbg", "--", "sh", "-c", "echo copied")
    eventually(lambda: _logs(user, "web-copy", "dbg", "copied\n"), timeout=120)

    # a node debugger wants the node's namespaces and root: refused, naming the fix
    node = user.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    out = user.kubectl("debug", f"node/{node}", "--image=busybox", "--", "true")
    pod = out.stdout.split("debugging pod ")[1].split()[0]

    def refused_pod() -> str:
        st = json.loads(user.kubectl("get", "pod", pod, "-o", "json").stdout)["status"]
        assert st.get("reason") == "SyncRejected", st
        return st["message"]
    message = eventually(refused_pod, timeout=120)
    assert "hostNetwork=true, hostPID=true, hostIPC=true" in message
    assert 'hostPath volumes (volume "host-root")' in message
    assert "sync.pods.hostAccess: strip" in message


def _phase(u: User, pod: str, phase: str) -> bool:
    got = u.kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}").stdout
    assert got == phase, got
    return True


def _logs(u: User, pod: str, container: str, want: str) -> None:
    out = u.kubectl("logs", pod, "-c", container, check=False)
    assert out.stdout == want, (out.stdout, out.stderr)

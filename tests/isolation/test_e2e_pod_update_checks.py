"""Pod Security and the registry allow-list checked again when a synced pod is updated, as
pod-security-admission checks a significant pod UPDATE (an image, a seccomp/AppArmor
annotation): through ``vkube create -f values.yaml`` and kubectl, a refused update leaves the
host pod as it was and the virtual pod gets a Warning event naming the check; an allowed one
reaches the host."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually, user  # noqa: F401  (the fixture)
from tests.conftest import kubectl

VALUES = """
isolation:
  enabled: true
  allowedRegistries: [docker.io]
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers: [{name: c, image: nginx}]
"""


def host_pod(u: User) -> dict:
    out = kubectl(u.home / "host" / "kubeconfig", "get", "pods", "-n", "vkube-upd", "-o",
                  "json").stdout
    items = json.loads(out)["items"]
    assert len(items) == 1, [p["metadata"]["name"] for p in items]
    return items[0]


def events(u: User) -> str:
    return u.kubectl("get", "events", "--field-selector", "involvedObject.name=web", "-o",
                     "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}").stdout


def test_significant_updates_are_checked_again(user: User, tmp_path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(VALUES)
    user.vkube("create", "upd", "-f", str(values))
    user.kubectl("apply", "-f", "-", input=POD)
    user.kubectl("wait", "pod/web", "--for=condition=Ready", "--timeout=120s", timeout=150)

    # AppArmor unconfined through the annotation Pod Security reads: refused, not synced
    key = "container.apparmor.security.beta.kubernetes.io/c"
    user.kubectl("annotate", "pod", "web", f"{key}=unconfined")

    def refused_apparmor() -> None:
        text = events(user)
        assert "SyncRejected: update not synced to the host: violates PodSecurity" in text, text
        assert "forbidden AppArmor profile" in text, text
    eventually(refused_apparmor, timeout=60, delay=0.5)
    assert key not in (host_pod(user)["metadata"].get("annotations") or {})
    # while refused, other changes of the same pod are not synced either (upstream refuses
    # the whole update); taking the annotation back lets them through
    user.kubectl("label", "pod", "web", "tier=front")
    user.kubectl("annotate", "pod", "web", f"{key}=runtime/default", "--overwrite")
    eventually(lambda: _labelled(user), timeout=60, delay=0.5)
    assert (host_pod(user)["metadata"].get("annotations") or {}).get(key) == "runtime/default"

    # an image from a registry outside the allow-list: refused, the host keeps its image
    user.kubectl("set", "image", "pod/web", "c=evil.example.com/miner:1")

    def refused_image() -> None:
        text = events(user)
        assert "image registry not allowed" in text and "evil.example.com/miner:1" in text, text
    eventually(refused_image, timeout=60, delay=0.5)
    assert host_pod(user)["spec"]["containers"][0]["image"] == "nginx"

    # an allowed image reaches the host
    user.kubectl("set", "image", "pod/web", "c=docker.io/library/nginx:1.27")
    eventually(lambda: _image(user, "docker.io/library/nginx:1.27"), timeout=60, delay=0.5)


def _labelled(u: User) -> None:
    labels = host_pod(u)["metadata"].get("labels") or {}
    assert any(k.endswith("tier") and v == "front" for k, v in labels.items()), labels


def _image(u: User, image: str) -> None:
    assert host_pod(u)["spec"]["containers"][0]["image"] == image

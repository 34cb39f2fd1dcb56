"""Bearer tokens besides TokenRequest's, through the user's entry points and the real kubectl:
a static ``--token-auth-file`` on `vkube serve`, bootstrap tokens and the token cleaner, and
legacy service-account token Secrets filled in by the tokens controller (`vkube create`)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.cli.conftest import User, user  # noqa: F401 - the fixture
from tests.conftest import kubectl


def eventually(check, timeout: float = 90, delay: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)


def bare(tmp: Path, kubeconfig: Path) -> tuple[Path, str, Path]:
    """A kubeconfig presenting no client certificate (the token alone), the server, its CA."""
    doc = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])["cluster"]
    ca = tmp / "ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    empty = tmp / "bare"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    return empty, cluster["server"], ca


def as_token(tmp: Path, kubeconfig: Path, token: str, *args: str, check: bool = True):
    empty, server, ca = bare(tmp, kubeconfig)
    return kubectl(empty, "--server", server, "--certificate-authority", str(ca), "--token", token,
                   *args, check=check)


def unauthorized(out: subprocess.CompletedProcess[str]) -> bool:
    """kubectl's words for a 401 (auth whoami says "Unauthorized"; discovery asks for credentials)."""
    return out.returncode != 0 and ("(Unauthorized)" in out.stderr
                                    or "asked for the client to provide credentials" in out.stderr)


def whoami(tmp: Path, kubeconfig: Path, token: str) -> dict:
    return json.loads(as_token(tmp, kubeconfig, token, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]


def test_static_token_file(tmp_path: Path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('31ada4fd-adec-460c-809a-9e56ceb75269,alice,1001,"team-a,devs"\n'
                      "  s3cr3t-bob, bob,1002\n")
    data = tmp_path / "d"
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", str(data), "--port", "0",
                             "--no-controllers", "--token-auth-file", str(tokens)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: (data / "kubeconfig").exists() or _fail(proc), timeout=120, delay=0.1)
        kc = data / "kubeconfig"
        alice = whoami(tmp_path, kc, "31ada4fd-adec-460c-809a-9e56ceb75269")
        assert alice == {"username": "alice", "uid": "1001",
                         "groups": ["team-a", "devs", "system:authenticated"]}
        assert whoami(tmp_path, kc, "s3cr3t-bob")["username"] == "bob"  # leading spaces trimmed
        out = as_token(tmp_path, kc, "31ada4fd-adec-460c-809a-9e56ceb75268", "get", "ns", check=False)
        assert unauthorized(out)
        # authenticated, not authorized: RBAC still decides
        out = as_token(tmp_path, kc, "s3cr3t-bob", "get", "secrets", check=False)
        assert out.returncode != 0 and 'User "bob" cannot list resource "secrets"' in out.stderr
    finally:
        proc.terminate()
        proc.wait(30)
    tokens.write_text("only,two\n")
    out = subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp_path / "e"),
                          "--token-auth-file", str(tokens)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "must have at least 3 columns (token, user name, user uid), found 2" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def _fail(proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"vkube serve exited: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError("not yet")


def bootstrap_secret(token_id: str, secret: str, **extra: str) -> str:
    data = {"token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true", **extra}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                           "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
                           "stringData": data})


def test_bootstrap_tokens_and_the_token_cleaner(user: User, tmp_path: Path):  # noqa: F811
    user.vkube("create", "boot")
    kc = user.kubeconfig
    user.kubectl("apply", "-f", "-", input=bootstrap_secret(
        "abcdef", "0123456789abcdef", **{"auth-extra-groups": "system:bootstrappers:worker"}))
    me = whoami(tmp_path, kc, "abcdef.0123456789abcdef")
    assert me["username"] == "system:bootstrap:abcdef"
    assert me["groups"] == ["system:bootstrappers", "system:bootstrappers:worker", "system:authenticated"]
    for bad in ("abcdef.0123456789abcdee", "abcdeg.0123456789abcdef"):
        out = as_token(tmp_path, kc, bad, "auth", "whoami", check=False)
        assert unauthorized(out), out.stderr
    # not for authentication, or with a group outside system:bootstrappers:*: refused
    user.kubectl("apply", "-f", "-", input=bootstrap_secret(
        "ghijkl", "0123456789abcdef", **{"usage-bootstrap-authentication": "false"}))
    user.kubectl("apply", "-f", "-", input=bootstrap_secret(
        "mnopqr", "0123456789abcdef", **{"auth-extra-groups": "system:masters"}))
    for tid in ("ghijkl", "mnopqr"):
        out = as_token(tmp_path, kc, f"{tid}.0123456789abcdef", "get", "ns", check=False)
        assert unauthorized(out), out.stderr
    # expiring: valid until then, refused after, and the token cleaner deletes its Secret
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    user.kubectl("apply", "-f", "-", input=bootstrap_secret("stuvwx", "0123456789abcdef", expiration=soon))
    assert whoami(tmp_path, kc, "stuvwx.0123456789abcdef")["username"] == "system:bootstrap:stuvwx"

    def cleaned() -> None:
        out = user.kubectl("get", "secret", "-n", "kube-system", "bootstrap-token-stuvwx", check=False)
        assert out.returncode != 0 and "NotFound" in out.stderr

    eventually(cleaned, timeout=90)
    out = as_token(tmp_path, kc, "stuvwx.0123456789abcdef", "get", "ns", check=False)
    assert unauthorized(out)
    # the unexpired one is left alone
    user.kubectl("get", "secret", "-n", "kube-system", "bootstrap-token-abcdef")


LEGACY = """
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: bot-token
  annotations: {kubernetes.io/service-account.name: bot}
"""


def test_legacy_service_account_token_secrets(user: User, tmp_path: Path):  # noqa: F811
    user.vkube("create", "legacy")
    kc = user.kubeconfig
    user.kubectl("create", "serviceaccount", "bot")
    user.kubectl("apply", "-f", "-", input=LEGACY)

    def filled() -> dict:
        s = json.loads(user.kubectl("get", "secret", "bot-token", "-o", "json").stdout)
        assert (s.get("data") or {}).get("token"), "token not filled in yet"
        return s

    secret = eventually(filled)
    sa_uid = user.kubectl("get", "sa", "bot", "-o", "jsonpath={.metadata.uid}").stdout
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa_uid
    assert base64.b64decode(secret["data"]["namespace"]).decode() == "default"
    assert base64.b64decode(secret["data"]["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    token = base64.b64decode(secret["data"]["token"]).decode()
    me = whoami(tmp_path, kc, token)
    assert me["username"] == "system:serviceaccount:default:bot"
    # the account goes: its Secret goes, and the token with it
    user.kubectl("delete", "serviceaccount", "bot")

    def gone() -> None:
        out = user.kubectl("get", "secret", "bot-token", check=False)
        assert out.returncode != 0 and "NotFound" in out.stderr

    eventually(gone)

    def refused() -> None:  # at most kube-apiserver's 10 s token cache later
        assert unauthorized(as_token(tmp_path, kc, token, "get", "pods", check=False))

    eventually(refused, timeout=60, delay=1.0)
    # a Secret naming an account that does not exist is deleted
    user.kubectl("apply", "-f", "-", input=LEGACY.replace("bot-token", "ghost-token").replace(": bot}", ": ghost}"))

    def ghost_gone() -> None:
        out = user.kubectl("get", "secret", "ghost-token", check=False)
        assert out.returncode != 0 and "NotFound" in out.stderr

    eventually(ghost_gone)

"""Authentication through the user's entry points: the real kubectl with the kubeconfig a
control plane writes, raw HTTPS without credentials, service-account tokens from
`kubectl create token`, TokenReview through the official Python client."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path

import aiohttp
import jwt
import kubernetes
import pytest
import yaml

from vkube.apiserver.server import ControlPlane
from vkube.pki import client_context
from vkube.pki.cluster import ClusterPKI, embedded_kubeconfig

from tests.conftest import kubectl


async def k(kubeconfig, *args: str, check: bool = True, input: str | None = None):
    return await asyncio.to_thread(kubectl, kubeconfig, *args, check=check, input=input)


def anonymous(cp: ControlPlane) -> aiohttp.ClientSession:
    """Verifies the server (the cluster CA), presents nothing."""
    assert cp.pki is not None
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(cp.pki.ca_pem)))


async def call(cp: ControlPlane, path: str, *, token: str | None = None, method: str = "GET",
               json_body: object = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with anonymous(cp) as s, s.request(method, cp.url + path, headers=headers, json=json_body) as r:
        return r.status, await r.read()


async def whoami(cp: ControlPlane, token: str) -> tuple[int, dict]:
    status, body = await call(cp, "/apis/authentication.k8s.io/v1/selfsubjectreviews", token=token,
                              method="POST", json_body={"apiVersion": "authentication.k8s.io/v1",
                                                        "kind": "SelfSubjectReview"})
    return status, yaml.safe_load(body)


UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_kubeconfig_embeds_and_verifies(control_plane):
    doc = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    assert cluster["server"].startswith("https://127.0.0.1:")
    assert "insecure-skip-tls-verify" not in cluster and "certificate-authority-data" in cluster
    assert set(user) == {"client-certificate-data", "client-key-data"}
    out = await k(control_plane.kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo}")
    assert yaml.safe_load(out.stdout) == {"username": "kubernetes-admin",
                                          "groups": ["system:masters", "system:authenticated"]}
    # only HTTPS is served
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(control_plane.url.replace("https://", "http://") + "/healthz") as r:
                await r.read()


async def test_anonymous_is_401_except_health_and_version(control_plane):
    cp = control_plane.cp
    for path in ("/api/v1/namespaces", "/api/v1/namespaces/default/secrets", "/apis", "/api",
                 "/openapi/v2", "/metrics", "/openid/v1/jwks", "/.well-known/openid-configuration",
                 "/apis/authentication.k8s.io/v1/selfsubjectreviews", "/nonexistent/../api/v1/pods"):
        status, body = await call(cp, path)
        assert status == 401, path
        assert yaml.safe_load(body) == UNAUTHORIZED, path
    status, _ = await call(cp, "/api/v1/namespaces/default/configmaps", method="POST",
                           json_body={"metadata": {"name": "x"}})
    assert status == 401
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        status, _ = await call(cp, path)
        assert status == 200, path
    # anonymous passes authentication there, but RBAC's system:public-info-viewer names only
    # those exact paths (as upstream): a sub-check is forbidden, not unauthenticated
    status, _ = await call(cp, "/readyz/ping")
    assert status == 403
    async with control_plane.client() as c:  # nothing was written by the refused POST
        from vkube.client.resources import CONFIGMAPS
        assert (await c.list(CONFIGMAPS, namespace="default"))["items"] == []


async def test_bad_credentials_are_401_even_where_anonymous_is_allowed(control_plane):
    cp = control_plane.cp
    garbage = ["x", "a.b.c", "a" * 70_000, "e30.e30.", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.",
               "not base64 at all . . ."]
    for token in garbage:
        for path in ("/api/v1/pods", "/healthz"):
            status, body = await call(cp, path, token=token)
            assert status == 401 and yaml.safe_load(body) == UNAUTHORIZED, (token[:20], path)
    async with anonymous(cp) as s:
        for header in ("Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer    "):
            async with s.get(cp.url + "/api/v1/pods", headers={"Authorization": header}) as r:
                assert r.status == 401


async def test_kubectl_create_token_authenticates_as_the_service_account(control_plane):
    kc = control_plane.kubeconfig
    await k(kc, "create", "serviceaccount", "robot")
    token = (await k(kc, "create", "token", "robot")).stdout.strip()
    cp = control_plane.cp
    status, me = await whoami(cp, token)
    assert status == 201
    assert me["status"]["userInfo"]["username"] == "system:serviceaccount:default:robot"
    assert me["status"]["userInfo"]["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                                                  "system:authenticated"]
    assert me["status"]["userInfo"]["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    # kubectl itself, with the token instead of the client certificate
    token_kc = kc.parent / "robot.kubeconfig"
    token_kc.write_text(yaml.safe_dump(embedded_kubeconfig(control_plane.url, context="robot",
                                                           ca_pem=cp.pki.ca_pem, token=token)))
    out = await k(token_kc, "auth", "whoami")
    assert "system:serviceaccount:default:robot" in out.stdout
    # the token is signed by a key published at the issuer discovery endpoints
    async with control_plane.session() as s:
        async with s.get(control_plane.url + "/.well-known/openid-configuration") as r:
            config = await r.json()
        async with s.get(control_plane.url + "/openid/v1/jwks") as r:
            assert r.headers["Content-Type"] == "application/jwk-set+json"
            jwks = await r.json()
    assert config["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert config["jwks_uri"].endswith("/openid/v1/jwks")
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name],
                        audience="https://kubernetes.default.svc.cluster.local")
    assert claims["sub"] == "system:serviceaccount:default:robot"

    # tampered: one character of the signature changed
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    assert (await whoami(cp, tampered))[0] == 401
    # claims swapped for another service account's, signature kept
    forged = base64.urlsafe_b64encode(base64.urlsafe_b64decode(payload + "==").replace(b":robot", b":admin")).rstrip(b"=")
    assert (await whoami(cp, f"{head}.{forged.decode()}.{sig}"))[0] == 401
    # another audience: not for this API server
    other = (await k(kc, "create", "token", "robot", "--audience=vault")).stdout.strip()
    assert (await whoami(cp, other))[0] == 401
    # expired: issued by this cluster's own issuer two hours ago for one hour
    assert cp.ctx is not None
    sa = yaml.safe_load((await k(kc, "get", "sa", "robot", "-o", "yaml")).stdout)
    old, _ = cp.ctx.token_issuer.issue(sa, audiences=list(cp.ctx.api_audiences), expiration_seconds=3600,
                                       now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    assert (await whoami(cp, old))[0] == 401
    # the service account deleted (and recreated: another UID): its tokens die, once the
    # token cache forgets them (kube-apiserver's --token-success-cache-ttl, 10 s)
    await k(kc, "delete", "serviceaccount", "robot")
    await k(kc, "create", "serviceaccount", "robot")
    await refused_soon(cp, token)
    fresh = (await k(kc, "create", "token", "robot")).stdout.strip()
    assert (await whoami(cp, fresh))[0] == 201


async def refused_soon(cp, token: str) -> None:
    """401 within kube-apiserver's token cache TTL (10 s), polled as upstream's e2e tests do;
    and never longer than the cache allows."""
    from vkube.apiserver.authn import TOKEN_SUCCESS_TTL

    loop = asyncio.get_running_loop()
    start = loop.time()
    while (await whoami(cp, token))[0] != 401:
        assert loop.time() - start < TOKEN_SUCCESS_TTL + 50, "the token was never refused"
        await asyncio.sleep(0.5)


async def test_pod_bound_token_dies_with_its_pod(control_plane):
    kc = control_plane.kubeconfig
    await k(kc, "create", "serviceaccount", "worker")
    await k(kc, "run", "p", "--image=nginx", "--overrides",
            '{"spec": {"serviceAccountName": "worker"}}')
    token = (await k(kc, "create", "token", "worker", "--bound-object-kind=Pod",
                     "--bound-object-name=p")).stdout.strip()
    status, me = await whoami(control_plane.cp, token)
    assert status == 201
    assert me["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    # binding to a pod that does not exist is refused
    out = await k(kc, "create", "token", "worker", "--bound-object-kind=Pod", "--bound-object-name=ghost", check=False)
    assert out.returncode != 0 and 'pods "ghost" not found' in out.stderr
    await k(kc, "delete", "pod", "p", "--grace-period=0", "--force")
    await refused_soon(control_plane.cp, token)


async def test_credentials_of_one_cluster_are_worthless_on_another(tmp_path: Path):
    a = ControlPlane(data_dir=tmp_path / "a", name="a")
    b = ControlPlane(data_dir=tmp_path / "b", name="b")
    await a.start()
    await b.start()
    try:
        assert a.pki is not None and b.pki is not None
        # A's kubeconfig pointed at B: B's certificate is not trusted (no request is sent)
        doc = yaml.safe_load((tmp_path / "a" / "kubeconfig").read_text())
        doc["clusters"][0]["cluster"]["server"] = b.url
        wrong = tmp_path / "a-at-b"
        wrong.write_text(yaml.safe_dump(doc))
        out = await k(wrong, "get", "ns", check=False)
        assert out.returncode != 0 and "certificate" in out.stderr
        # ... and trusting B's CA does not help: A's client certificate is refused by B
        doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(b.pki.ca_pem).decode()
        wrong.write_text(yaml.safe_dump(doc))
        out = await k(wrong, "get", "ns", check=False)
        assert out.returncode != 0 and "ns" not in out.stdout
        # a certificate of B's *name* issued by another CA (a look-alike "system:masters")
        impostor = ClusterPKI(tmp_path / "impostor", name="b")
        ctx = client_context(b.pki.ca_pem, impostor.client_pair("kubernetes-admin", ("system:masters",)))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            with pytest.raises(aiohttp.ClientError):
                async with s.get(b.url + "/api/v1/namespaces") as r:
                    await r.read()
        # a service-account token of A on B
        await k(tmp_path / "a" / "kubeconfig", "create", "serviceaccount", "default", "-n", "kube-system",
                check=False)
        await k(tmp_path / "a" / "kubeconfig", "create", "serviceaccount", "robot")
        await k(tmp_path / "b" / "kubeconfig", "create", "serviceaccount", "robot")
        token = (await k(tmp_path / "a" / "kubeconfig", "create", "token", "robot")).stdout.strip()
        assert (await whoami(a, token))[0] == 201
        assert (await whoami(b, token))[0] == 401
    finally:
        await a.stop()
        await b.stop()


def _token_review(kubeconfig: Path, tokens: list[str]) -> list[object]:
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    with kubernetes.client.ApiClient(cfg) as api:
        authn = kubernetes.client.AuthenticationV1Api(api)
        return [authn.create_token_review(kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=t))).status for t in tokens]


async def test_token_review_with_the_official_client(control_plane):
    kc = control_plane.kubeconfig
    await k(kc, "create", "serviceaccount", "robot", "-n", "kube-system")
    token = (await k(kc, "create", "token", "robot", "-n", "kube-system")).stdout.strip()
    good, bad = await asyncio.to_thread(_token_review, kc, [token, token[:-3] + "abc"])
    assert good.authenticated is True
    assert good.user.username == "system:serviceaccount:kube-system:robot"
    assert good.audiences == ["https://kubernetes.default.svc.cluster.local"]
    assert not bad.authenticated and bad.error and token not in bad.error


async def test_serving_certificate_renews_without_dropping_clients(control_plane):
    cp = control_plane.cp
    assert cp.serving is not None
    async with control_plane.client() as c:
        from vkube.client.resources import NAMESPACES
        await c.list(NAMESPACES)  # a kept-alive connection on the old certificate
        before = cp.serving.cert_path.read_bytes()
        cp.extra_sans = ("vkube.example.test",)  # a new name: the certificate must be re-issued
        assert cp.serving.ensure(cp.serving_names()) == "missing SANs vkube.example.test"
        assert cp.serving.cert_path.read_bytes() != before
        await c.list(NAMESPACES)  # the open connection carries on
    out = await k(control_plane.kubeconfig, "get", "ns", "default", "-o", "name")
    assert out.stdout.strip() == "namespace/default"  # new handshakes get the new certificate

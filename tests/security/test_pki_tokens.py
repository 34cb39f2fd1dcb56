"""Service-account JWTs: Kubernetes' claims, verification failures with kube-apiserver's text,
legacy Secret tokens, and the discovery documents — verified independently with PyJWT's JWKS client
code path (PyJWK) so what we publish really verifies what we sign."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from vkube.pki import LEGACY_ISSUER, SigningKey, TokenAuthenticator, TokenError, TokenIssuer

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUD = ["https://kubernetes.default.svc.cluster.local"]
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def obj(kind, name, uid, namespace="team", **meta):
    m = {"name": name, "uid": uid, **meta}
    if namespace:
        m["namespace"] = namespace
    return {"kind": kind, "metadata": m}


@pytest.fixture(scope="module")
def rsa_key():
    return SigningKey.generate("RS256")


@pytest.fixture()
def world():
    return {("ServiceAccount", "team", "builder"): obj("ServiceAccount", "builder", "sa-1"),
            ("Pod", "team", "web-0"): obj("Pod", "web-0", "pod-1"),
            ("Secret", "team", "s"): obj("Secret", "s", "sec-1"),
            ("Node", "", "n1"): obj("Node", "n1", "node-1", namespace=None)}


def make(key, world, **kw):
    issuer = TokenIssuer(ISSUER, key)
    auth = TokenAuthenticator(issuers=[ISSUER], keys=[key], audiences=API_AUD,
                              lookup=lambda k, ns, n: world.get((k, ns, n)), **kw)
    return issuer, auth


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_bound_token_claims_and_identity(alg, world):
    key = SigningKey.generate(alg)
    issuer, auth = make(key, world)
    sa, pod, node = (world[k] for k in (("ServiceAccount", "team", "builder"), ("Pod", "team", "web-0"),
                                        ("Node", "", "n1")))
    token, exp = issuer.issue(sa, audiences=API_AUD, expiration_seconds=3600, pod=pod, node=node, now=NOW)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": key.kid}
    claims = claims_of(token)
    assert claims["iss"] == ISSUER and claims["sub"] == "system:serviceaccount:team:builder"
    assert claims["aud"] == API_AUD
    assert claims["iat"] == claims["nbf"] == int(NOW.timestamp())
    assert claims["exp"] == int(NOW.timestamp()) + 3600 == int(exp.timestamp())
    assert len(claims["jti"]) == 36
    assert claims["kubernetes.io"] == {"namespace": "team", "serviceaccount": {"name": "builder", "uid": "sa-1"},
                                       "pod": {"name": "web-0", "uid": "pod-1"}, "node": {"name": "n1", "uid": "node-1"}}
    ident = auth.authenticate(token, now=NOW + dt.timedelta(minutes=5))
    assert ident.name == "system:serviceaccount:team:builder" and ident.uid == "sa-1"
    assert ident.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    assert ident.extra == {"authentication.kubernetes.io/pod-name": ["web-0"],
                           "authentication.kubernetes.io/pod-uid": ["pod-1"],
                           "authentication.kubernetes.io/node-name": ["n1"],
                           "authentication.kubernetes.io/node-uid": ["node-1"],
                           "authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}
    assert ident.audiences == tuple(API_AUD)


def test_kid_is_kube_apiservers(rsa_key):
    der = rsa_key.key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    assert rsa_key.kid == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert SigningKey.from_pem(rsa_key.private_pem()).kid == rsa_key.kid


def test_failures_with_kube_apiserver_messages(rsa_key, world):
    issuer, auth = make(rsa_key, world)
    sa = world[("ServiceAccount", "team", "builder")]
    pod = world[("Pod", "team", "web-0")]
    token, _ = issuer.issue(sa, audiences=API_AUD, pod=pod, now=NOW)

    def fails(tok, message, **kw):
        with pytest.raises(TokenError) as info:
            auth.authenticate(tok, **kw)
        assert str(info.value) == message

    fails(token, "service account token has expired", now=NOW + dt.timedelta(seconds=3600 + 61))
    assert auth.authenticate(token, now=NOW + dt.timedelta(seconds=3600 + 59)) is not None  # 60 s leeway
    fails(token, "service account token is not valid yet", now=NOW - dt.timedelta(seconds=120))
    other_aud, _ = issuer.issue(sa, audiences=["vault"], now=NOW)
    fails(other_aud, f'token audiences ["vault"] is invalid for the target audiences ["{API_AUD[0]}"]', now=NOW)
    assert auth.authenticate(other_aud, audiences=["vault"], now=NOW).audiences == ("vault",)
    # tampering: change the subject, keep the signature
    head, body, sig = token.split(".")
    claims = claims_of(token)
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    fails(f"{head}.{forged_body}.{sig}", "invalid signature", now=NOW)
    # signed by another key with our kid / without it
    stranger = TokenIssuer(ISSUER, SigningKey.generate("RS256"))
    fails(stranger.issue(sa, audiences=API_AUD, now=NOW)[0], "invalid signature", now=NOW)
    # "alg": "none" is never accepted
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    fails(unsigned, "invalid signature", now=NOW)
    # algorithm confusion: HS256 keyed with our public key
    pem = rsa_key.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    signing_input = f'{b64(json.dumps({"alg": "HS256", "kid": rsa_key.kid}).encode())}.{body}'
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    fails(f"{signing_input}.{b64(mac)}", "invalid signature", now=NOW)
    # bound objects
    del world[("Pod", "team", "web-0")]
    fails(token, 'pods "web-0" not found', now=NOW)
    world[("Pod", "team", "web-0")] = obj("Pod", "web-0", "pod-2")
    fails(token, "pod UID (pod-2) does not match service account pod ref claim (pod-1)", now=NOW)
    world[("Pod", "team", "web-0")] = obj("Pod", "web-0", "pod-1", deletionTimestamp="2026-06-01T11:58:00Z")
    fails(token, "service account token has been invalidated", now=NOW)
    world[("Pod", "team", "web-0")] = obj("Pod", "web-0", "pod-1", deletionTimestamp="2026-06-01T11:59:30Z")
    assert auth.authenticate(token, now=NOW) is not None  # within the grace period
    world[("ServiceAccount", "team", "builder")] = obj("ServiceAccount", "builder", "sa-2")
    fails(token, "service account UID (sa-2) does not match claim (sa-1)", now=NOW)
    del world[("ServiceAccount", "team", "builder")]
    fails(token, 'serviceaccounts "builder" not found', now=NOW)


def test_remembered_signature_still_checks_times_bound_objects_and_keys(rsa_key, world):
    """A token's verified signature is remembered (a client sends the same token with every
    request); expiry, bound objects and the key it was verified with are still checked each time."""
    issuer, auth = make(rsa_key, world)
    token, _ = issuer.issue(world[("ServiceAccount", "team", "builder")], audiences=API_AUD, now=NOW)
    first = auth.authenticate(token, now=NOW)
    assert auth.authenticate(token, now=NOW) == first
    with pytest.raises(TokenError, match="expired"):
        auth.authenticate(token, now=NOW + dt.timedelta(days=2))
    uid = world[("ServiceAccount", "team", "builder")]["metadata"]["uid"]
    world[("ServiceAccount", "team", "builder")] = obj("ServiceAccount", "builder", "sa-new")
    with pytest.raises(TokenError, match=rf"service account UID \(sa-new\) does not match claim \({uid}\)"):
        auth.authenticate(token, now=NOW)
    world[("ServiceAccount", "team", "builder")] = obj("ServiceAccount", "builder", uid)
    assert auth.authenticate(token, now=NOW) == first
    auth.keys = {k.kid: k for k in [SigningKey.generate("RS256")]}  # its key is no longer trusted
    with pytest.raises(TokenError, match="invalid signature"):
        auth.authenticate(token, now=NOW)


def test_not_ours_is_none(rsa_key, world):
    _, auth = make(rsa_key, world)
    for junk in ("", "abc", "a.b.c", "x" * 70000, "static-token-1234",
                 jwt.encode({"iss": "https://someone.else"}, "s" * 32, algorithm="HS256")):
        assert auth.authenticate(junk, now=NOW) is None


def test_bound_to_secret(rsa_key, world):
    issuer, auth = make(rsa_key, world)
    token, _ = issuer.issue(world[("ServiceAccount", "team", "builder")], audiences=API_AUD,
                            secret=world[("Secret", "team", "s")], now=NOW)
    assert claims_of(token)["kubernetes.io"]["secret"] == {"name": "s", "uid": "sec-1"}
    assert auth.authenticate(token, now=NOW).extra == {
        "authentication.kubernetes.io/credential-id": [f"JTI={claims_of(token)['jti']}"]}
    world[("Secret", "team", "s")] = obj("Secret", "s", "sec-9")
    with pytest.raises(TokenError, match=r"secret UID \(sec-9\) does not match service account secret ref claim"):
        auth.authenticate(token, now=NOW)


def test_issue_arguments(rsa_key, world):
    issuer = TokenIssuer(ISSUER, rsa_key)
    sa = world[("ServiceAccount", "team", "builder")]
    with pytest.raises(ValueError, match="expirationSeconds"):
        issuer.issue(sa, audiences=API_AUD, expiration_seconds=599)
    with pytest.raises(ValueError, match="not both"):
        issuer.issue(sa, audiences=API_AUD, pod=world[("Pod", "team", "web-0")], secret=world[("Secret", "team", "s")])
    with pytest.raises(ValueError, match="audience"):
        issuer.issue(sa, audiences=[])


def test_legacy_secret_tokens(rsa_key, world):
    issuer, auth = make(rsa_key, world)
    sa = world[("ServiceAccount", "team", "builder")]
    token = issuer.issue_legacy(sa, "builder-token")
    claims = claims_of(token)
    assert claims == {"iss": LEGACY_ISSUER, "kubernetes.io/serviceaccount/namespace": "team",
                      "kubernetes.io/serviceaccount/secret.name": "builder-token",
                      "kubernetes.io/serviceaccount/service-account.name": "builder",
                      "kubernetes.io/serviceaccount/service-account.uid": "sa-1",
                      "sub": "system:serviceaccount:team:builder"}
    with pytest.raises(TokenError, match='secrets "builder-token" not found'):
        auth.authenticate(token, now=NOW)
    secret = obj("Secret", "builder-token", "sec-2")
    secret["data"] = {"token": base64.b64encode(token.encode()).decode()}
    world[("Secret", "team", "builder-token")] = secret
    ident = auth.authenticate(token, now=NOW + dt.timedelta(days=3650))  # legacy tokens do not expire
    assert ident.name == "system:serviceaccount:team:builder" and ident.expires is None
    secret["data"] = {"token": base64.b64encode(b"something else").decode()}
    with pytest.raises(TokenError, match="does not match server's copy"):
        auth.authenticate(token, now=NOW)
    _, strict = make(rsa_key, world, legacy=False)
    assert strict.authenticate(token, now=NOW) is None


def test_discovery_documents_verify_our_tokens(world):
    rsa_key, ec_key = SigningKey.generate("RS256"), SigningKey.generate("ES256")
    issuer = TokenIssuer(ISSUER, rsa_key, extra_public_keys=[ec_key])
    config = issuer.openid_configuration()
    assert config == {"issuer": ISSUER, "jwks_uri": "https://kubernetes.default.svc.cluster.local/openid/v1/jwks",
                      "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                      "id_token_signing_alg_values_supported": ["ES256", "RS256"]}
    assert TokenIssuer("https://example.com/clusters/a", rsa_key).openid_configuration()["jwks_uri"] == \
        "https://example.com/openid/v1/jwks"
    jwks = issuer.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [rsa_key.kid, ec_key.kid]
    assert {k["use"] for k in jwks["keys"]} == {"sig"}
    assert set(jwks["keys"][0]) == {"use", "kty", "kid", "alg", "n", "e"}
    assert set(jwks["keys"][1]) == {"use", "kty", "kid", "crv", "alg", "x", "y"}
    # an outside verifier using only the published JWKS accepts our token (key rotation: old key still listed)
    old_signer = TokenIssuer(ISSUER, ec_key)
    token, _ = old_signer.issue(world[("ServiceAccount", "team", "builder")], audiences=["vault"])
    jwk_set = jwt.PyJWKSet.from_dict(json.loads(json.dumps(jwks)))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwk_set.keys if k.key_id == kid)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="vault", issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:team:builder"


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(aud=5), lambda c: c.update(aud={"a": 1}), lambda c: c.update(aud=[1, 2]),
    lambda c: c.update(exp="soon"), lambda c: c.update(exp=True), lambda c: c.update(nbf=[1]),
    lambda c: c.update({"kubernetes.io": "x"}), lambda c: c["kubernetes.io"].update(serviceaccount=[]),
    lambda c: c["kubernetes.io"].update(pod="web-0"), lambda c: c.pop("exp"),
    lambda c: c["kubernetes.io"]["serviceaccount"].update(name=["builder"]),
])
def test_signed_but_malformed_claims_are_token_errors(rsa_key, world, mutate):
    """Even with a valid signature, odd claim types give a TokenError, never a crash."""
    issuer, auth = make(rsa_key, world)
    token, _ = issuer.issue(world[("ServiceAccount", "team", "builder")], audiences=API_AUD, now=NOW)
    claims = claims_of(token)
    mutate(claims)
    forged = jwt.encode(claims, rsa_key.key, algorithm="RS256", headers={"kid": rsa_key.kid})
    with pytest.raises(TokenError):
        auth.authenticate(forged, now=NOW)


@pytest.mark.parametrize("header, claims", [
    ({"alg": ["RS256"], "kid": "x"}, {"iss": ISSUER}), ({"alg": "RS256", "kid": ["x"]}, {"iss": ISSUER}),
    ({"alg": "RS256"}, {"iss": [ISSUER]}), ({"alg": "RS256"}, ["not", "an", "object"]), ("header", {"iss": ISSUER}),
])
def test_malformed_headers_never_crash(rsa_key, world, header, claims):
    _, auth = make(rsa_key, world)
    b64 = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()  # noqa: E731
    token = f"{b64(header)}.{b64(claims)}.c2ln"
    try:
        assert auth.authenticate(token, now=NOW) is None
    except TokenError:
        pass

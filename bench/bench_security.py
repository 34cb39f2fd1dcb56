"""Security building blocks (issue 12), each in isolation: Pod Security admission decisions per
second (restricted:latest, a compliant and a violating pod), the time to mint a cluster's PKI
(CA + serving + client certificate, what ``vkube create`` will add to create→ready), and
service-account tokens issued and verified per second (RS256 and ES256).

Prints JSON lines. Usage: python bench/bench_security.py [N]   (default N=20000)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

from vkube.api.podsecurity import PodSecurityAdmission
from vkube.pki import CertificateAuthority, SigningKey, TokenAuthenticator, TokenIssuer

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
LABELS = {"pod-security.kubernetes.io/enforce": "restricted"}
GOOD = {"metadata": {"name": "ok"}, "spec": {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "c", "image": "i", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}
BAD = {"metadata": {"name": "bad"}, "spec": {"hostNetwork": True, "containers": [
    {"name": "c", "image": "i", "securityContext": {"privileged": True}}]}}


def timed(label: str, n: int, fn) -> None:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"bench": label, "n": n, "per_s": round(n / elapsed),
                      "us_each": round(elapsed / n * 1e6, 1)}))


def main() -> None:
    psa = PodSecurityAdmission()
    timed("podsecurity_restricted_allowed", N,
          lambda: psa.validate_pod(GOOD, namespace="ns", namespace_labels=LABELS))
    timed("podsecurity_restricted_refused", N,
          lambda: psa.validate_pod(BAD, namespace="ns", namespace_labels=LABELS))
    for key_type in ("ecdsa", "rsa"):
        t0 = time.perf_counter()
        ca = CertificateAuthority.create("bench-ca", key_type=key_type)
        ca.issue_serving(["localhost", "127.0.0.1", "vc.vkube.svc"], key_type=key_type)
        ca.issue_client("admin", ["system:masters"], key_type=key_type)
        print(json.dumps({"bench": "pki_ca_serving_client", "key_type": key_type,
                          "ms": round((time.perf_counter() - t0) * 1000, 1)}))
    sa = {"metadata": {"name": "default", "namespace": "ns", "uid": "u1"}}
    world = {("ServiceAccount", "ns", "default"): sa}
    for alg in ("RS256", "ES256"):
        key = SigningKey.generate(alg)
        issuer = TokenIssuer("https://kubernetes.default.svc", key)
        auth = TokenAuthenticator(issuers=[issuer.issuer], keys=[key], audiences=["api"],
                                  lookup=lambda k, ns, n: world.get((k, ns, n)))
        count = max(1, N // 10)
        timed(f"sa_token_issue_{alg}", count, lambda: issuer.issue(sa, audiences=["api"]))
        token, _ = issuer.issue(sa, audiences=["api"], now=dt.datetime.now(dt.timezone.utc))
        timed(f"sa_token_verify_{alg}", count, lambda: auth.authenticate(token))


if __name__ == "__main__":
    main()

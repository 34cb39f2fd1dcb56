"""NetworkPolicy evaluation cost on the embedded host (issue 15/16): the time of one
``vkube.api.netpol.check`` (egress of the source, ingress of the destination) against N
policies spread over namespaces, as the kubelet runs it for every simulated connection.
Prints JSON lines. Usage: python bench/bench_netpol.py [POLICIES] [CHECKS]  (default 1000 20000)"""

from __future__ import annotations

import json
import random
import sys
import time

from vkube.api.netpol import Endpoint, PolicySet

POLICIES = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
CHECKS = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
NAMESPACES = 50


def policy(i: int, rng: random.Random) -> dict:
    ns = f"ns{i % NAMESPACES}"
    return {"metadata": {"namespace": ns, "name": f"p{i}"}, "spec": {
        "podSelector": {"matchLabels": {"app": f"a{rng.randrange(20)}"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": f"r{rng.randrange(5)}"}}},
                              {"namespaceSelector": {"matchLabels": {"team": f"t{rng.randrange(5)}"}}}],
                     "ports": [{"port": 80}, {"port": 8000, "endPort": 8100}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]},
                   {"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}]}}


def endpoint(rng: random.Random, n: int) -> Endpoint:
    ns = f"ns{rng.randrange(NAMESPACES)}"
    return Endpoint(ip=f"10.244.{n // 250}.{n % 250 + 1}", namespace=ns, name=f"pod{n}",
                    labels={"app": f"a{rng.randrange(20)}", "role": f"r{rng.randrange(5)}"},
                    namespace_labels={"kubernetes.io/metadata.name": ns, "team": f"t{rng.randrange(5)}"},
                    named_ports={"http": ((8080, "TCP"),)})


def main() -> None:
    rng = random.Random(1)
    pols = [policy(i, rng) for i in range(POLICIES)]
    pods = [endpoint(rng, n) for n in range(500)]
    pairs = [(rng.choice(pods), rng.choice(pods), rng.choice((80, 8050, 8080, 443))) for _ in range(CHECKS)]
    t = time.perf_counter()
    pset = PolicySet(pols)  # parsed once, as the embedded host keeps it between changes
    allowed = sum(1 for s, d, p in pairs if pset.check(s, d, p))
    elapsed = time.perf_counter() - t
    print(json.dumps({"bench": "netpol_check", "policies": POLICIES, "checks": CHECKS,
                      "allowed": allowed, "us_per_check": round(elapsed / CHECKS * 1e6, 1),
                      "checks_per_s": round(CHECKS / elapsed)}), flush=True)


if __name__ == "__main__":
    main()

"""Per-request cost of the request context (issue 10): parsing the path into upstream's
RequestInfo and building the RequestContext (user, audit ID), in microseconds per request.
In-process and single-threaded, so the figure is stable on a contended machine (HTTP round
trips there vary by 2-3x run to run).

Prints JSON lines. Usage: python bench/bench_requestinfo.py [N]   (default N=100000)
"""

from __future__ import annotations

import json
import sys
import timeit

from vkube.apiserver.request import RequestContext, cluster_admin, new_audit_id
from vkube.apiserver.requestinfo import parse

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
CASES = [
    ("GET", "/api/v1/namespaces/default/pods/p", ""),
    ("GET", "/apis/apps/v1/namespaces/default/deployments", "labelSelector=a%3Db&fieldSelector=metadata.name%3Dd"),
    ("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale", "fieldManager=m"),
    ("GET", "/version", ""),
]


def main() -> None:
    for method, path, query in CASES:
        parse_us = timeit.timeit(lambda: parse(method, path, query), number=N) / N * 1e6
        ctx_us = timeit.timeit(lambda: RequestContext(user=cluster_admin(), info=parse(method, path, query),
                                                      audit_id=new_audit_id(None)), number=N) / N * 1e6
        print(json.dumps({"bench": "request_context", "method": method, "path": path, "query": query, "n": N,
                          "parse_us": round(parse_us, 2), "parse_and_context_us": round(ctx_us, 2)}))


if __name__ == "__main__":
    main()

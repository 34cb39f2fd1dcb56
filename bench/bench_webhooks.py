"""Dynamic admission benchmark (issue 14): the latency one validating webhook and one CEL
ValidatingAdmissionPolicy add to a ConfigMap create, against the same create without them.

A `vkube serve --no-controllers` child process (bench/_serve.py, HTTPS with the admin's client
certificate) serves the API; this process
runs a small HTTPS webhook (a thread, certificate from vkube.pki) that allows everything, and
creates N ConfigMaps sequentially over HTTP per configuration. The configurations are measured
in interleaved rounds (none, webhook, policy, none, …) so load drift hits all of them alike.

Prints JSON lines: per configuration p50/mean in ms, and the added p50 in ms and as a ratio.
Usage: python bench/bench_webhooks.py [N]   (default N=300)
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import serve_api  # noqa: E402

from vkube.pki.certs import CertificateAuthority  # noqa: E402
from vkube.pki.tls import server_context  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
ROUNDS = 3
ARG = "/apis/admissionregistration.k8s.io/v1"


class AllowAll(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook server would

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on replies

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        data = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": {"uid": review["request"]["uid"], "allowed": True}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_webhook() -> tuple[ThreadingHTTPServer, str, str]:
    ca = CertificateAuthority.create("bench-webhook-ca")
    pair = ca.issue_serving(["127.0.0.1"], common_name="webhook")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), AllowAll)
    httpd.daemon_threads = True
    ctx: ssl.SSLContext = server_context(pair, ca.cert_pem)
    ctx.verify_mode = ssl.CERT_NONE
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"https://127.0.0.1:{httpd.server_address[1]}/validate", base64.b64encode(ca.cert_pem).decode()


RULE = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}


def webhook_config(url: str, ca: str) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "bench"},
            "webhooks": [{"name": "bench.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "clientConfig": {"url": url, "caBundle": ca}, "rules": [RULE]}]}


POLICY = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
          "metadata": {"name": "bench"},
          "spec": {"matchConstraints": {"resourceRules": [RULE]},
                   "validations": [{"expression": "object.metadata.name.size() < 64 && "
                                                  "(!has(object.data) || size(object.data) <= 10)"}]}}
BINDING = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
           "metadata": {"name": "bench"}, "spec": {"policyName": "bench", "validationActions": ["Deny"]}}


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None, ok: int = 201) -> None:
    data = orjson.dumps(body) if body is not None else None
    async with session.request(method, url, data=data, headers={"Content-Type": "application/json"}) as r:
        if r.status != ok:
            raise RuntimeError(f"{method} {url}: {r.status} {await r.text()}")


async def creates(session: aiohttp.ClientSession, base: str, tag: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{tag}-{i}"}, "data": {"k": "v"}}
        t = time.perf_counter()
        await call(session, "POST", f"{base}/api/v1/namespaces/default/configmaps", body)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def main() -> None:
    httpd, url, ca = start_webhook()
    results: dict[str, list[float]] = {"none": [], "webhook": [], "policy": []}
    with serve_api() as (base, tls):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
            await creates(session, base, "warm", 30)
            for r in range(ROUNDS):
                results["none"] += await creates(session, base, f"n{r}", N // ROUNDS)
                await call(session, "POST", f"{base}{ARG}/validatingwebhookconfigurations", webhook_config(url, ca))
                results["webhook"] += await creates(session, base, f"w{r}", N // ROUNDS)
                await call(session, "DELETE", f"{base}{ARG}/validatingwebhookconfigurations/bench", ok=200)
                await call(session, "POST", f"{base}{ARG}/validatingadmissionpolicies", POLICY)
                await call(session, "POST", f"{base}{ARG}/validatingadmissionpolicybindings", BINDING)
                results["policy"] += await creates(session, base, f"p{r}", N // ROUNDS)
                await call(session, "DELETE", f"{base}{ARG}/validatingadmissionpolicybindings/bench", ok=200)
                await call(session, "DELETE", f"{base}{ARG}/validatingadmissionpolicies/bench", ok=200)
    httpd.shutdown()
    base_p50 = statistics.median(results["none"])
    for name, samples in results.items():
        p50 = statistics.median(samples)
        print(json.dumps({"bench": "webhooks", "case": name, "n": len(samples), "p50_ms": round(p50, 3),
                          "mean_ms": round(statistics.fmean(samples), 3),
                          "p99_ms": round(sorted(samples)[int(len(samples) * 0.99) - 1], 3),
                          "added_p50_ms": round(p50 - base_p50, 3), "ratio_p50": round(p50 / base_p50, 3)}))


if __name__ == "__main__":
    asyncio.run(main())

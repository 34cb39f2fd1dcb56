"""A small HTTPS admission/conversion webhook server for the tests: a thread with its own
certificate (issued by a test CA through ``vkube.pki``), answering by path:

``/validate``  refuses objects whose name starts with ``bad`` (with a warning otherwise);
``/mutate``    adds the label ``webhook=mutated`` by JSON patch (``/mutate-other``: ``other=yes``);
``/slow``      answers after ``slow_seconds``; ``/hold`` answers once ``release`` is set (a
request kept executing as long as a test needs); ``/garbage`` answers non-JSON;
``/badpatch``  patches an invalid label key in; ``/typepatch`` makes ``data`` a number;
``/wronguid``, ``/nopatchtype``, ``/undecodable`` answer malformed reviews; ``/denyquietly``
refuses without a Status;
``/scale-plus-one`` adds one to a Scale's ``spec.replicas``; ``/privileged`` makes a pod's first
container privileged; ``/add-container`` adds a ``sidecar`` container;
``/convert``   a ConversionReview answer moving ``spec.size`` ↔ ``spec.replicas`` (v1 ↔ v2).

Every request body is kept in ``requests`` (path, decoded JSON)."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vkube.pki.certs import CertificateAuthority
from vkube.pki.tls import server_context


def _patch(ops: list[dict[str, Any]]) -> str:
    return base64.b64encode(json.dumps(ops).encode()).decode()


def review_answer(path: str, review: dict[str, Any], server: "WebhookServer") -> dict[str, Any] | str:
    req = review.get("request") or {}
    resp: dict[str, Any] = {"uid": req.get("uid"), "allowed": True}
    obj = req.get("object") or {}
    name = (obj.get("metadata") or {}).get("name") or req.get("name") or ""
    if path == "/validate":
        if str(name).startswith("bad"):
            resp = {"uid": req.get("uid"), "allowed": False,
                    "status": {"code": 403, "message": f"the name {name} is not allowed here"}}
        else:
            resp["warnings"] = [f"checked {name} by the test webhook"]
            resp["auditAnnotations"] = {"checked": name}
    elif path == "/mutate":
        ops: list[dict[str, Any]] = []
        if not (obj.get("metadata") or {}).get("labels"):
            ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
        ops.append({"op": "add", "path": "/metadata/labels/webhook", "value": "mutated"})
        resp.update(patchType="JSONPatch", patch=_patch(ops))
    elif path == "/mutate-other":
        ops = [] if (obj.get("metadata") or {}).get("labels") else [{"op": "add", "path": "/metadata/labels", "value": {}}]
        ops.append({"op": "add", "path": "/metadata/labels/other", "value": "yes"})
        resp.update(patchType="JSONPatch", patch=_patch(ops))
    elif path == "/slow":
        time.sleep(server.slow_seconds)
    elif path == "/hold":
        server.release.wait(120)
    elif path == "/garbage":
        return "this is not an AdmissionReview"
    elif path == "/badpatch":
        resp.update(patchType="JSONPatch", patch=_patch([
            {"op": "add", "path": "/metadata/labels", "value": {"bad key!": "x"}}]))
    elif path == "/wronguid":
        resp["uid"] = "not-the-request's"
    elif path == "/nopatchtype":
        resp["patch"] = _patch([{"op": "add", "path": "/data", "value": {}}])
    elif path == "/undecodable":
        resp.update(patchType="JSONPatch", patch=base64.b64encode(b"{not a patch").decode())
    elif path == "/denyquietly":
        resp = {"uid": req.get("uid"), "allowed": False}
    elif path == "/scale-plus-one":  # a Scale of */scale: one replica more than asked
        replicas = int((obj.get("spec") or {}).get("replicas") or 0)
        resp.update(patchType="JSONPatch", patch=_patch([{"op": "replace", "path": "/spec/replicas",
                                                          "value": replicas + 1}]))
    elif path == "/privileged":
        resp.update(patchType="JSONPatch", patch=_patch([
            {"op": "add", "path": "/spec/containers/0/securityContext/privileged", "value": True}]))
    elif path == "/add-container":
        if all(c.get("name") != "sidecar" for c in (obj.get("spec") or {}).get("containers") or ()):
            resp.update(patchType="JSONPatch", patch=_patch([
                {"op": "add", "path": "/spec/containers/-", "value": {"name": "sidecar", "image": "busybox"}}]))
    elif path == "/typepatch":
        resp.update(patchType="JSONPatch", patch=_patch([{"op": "add", "path": "/data", "value": 42}]))
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


def conversion_answer(review: dict[str, Any]) -> dict[str, Any]:
    req = review.get("request") or {}
    want = req.get("desiredAPIVersion", "")
    out = []
    for obj in req.get("objects") or ():
        obj = json.loads(json.dumps(obj))
        spec = obj.setdefault("spec", {})
        if want.endswith("/v2") and "size" in spec:
            spec["replicas"] = spec.pop("size")
        elif want.endswith("/v1") and "replicas" in spec:
            spec["size"] = spec.pop("replicas")
        obj["apiVersion"] = want
        out.append(obj)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req.get("uid"), "convertedObjects": out, "result": {"status": "Success"}}}


class WebhookServer:
    """``with WebhookServer(names) as s:`` — ``s.url``, ``s.ca_bundle`` (base64 PEM)."""

    def __init__(self, names: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.ca = CertificateAuthority.create("webhook-test-ca")
        self.pair = self.ca.issue_serving(list(names), common_name="webhook")
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.slow_seconds = 3.0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                doc = json.loads(body)
                outer.requests.append((path, doc))
                answer = conversion_answer(doc) if path == "/convert" else review_answer(path, doc, outer)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx: ssl.SSLContext = server_context(self.pair, self.ca.cert_pem)
        ctx.verify_mode = ssl.CERT_NONE
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_bundle = base64.b64encode(self.ca.cert_pem).decode()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def __enter__(self) -> "WebhookServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

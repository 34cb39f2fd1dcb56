"""A small aggregated API server for the tests: ``wardle.example.com/v1alpha1`` flunders over
HTTPS (stdlib server in a thread, so kubectl subprocesses can call through vkube while the test
waits). It records the front-proxy headers of every request it answers."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from collections.abc import Callable
from typing import Any

from vkube.pki.certs import CertificateAuthority

GROUP, VERSION = "wardle.example.com", "v1alpha1"
RESOURCES = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}", "resources": [
    {"name": "flunders", "singularName": "flunder", "namespaced": True, "kind": "Flunder",
     "verbs": ["get", "list"], "shortNames": ["fl"]}]}


_REF = {"$ref": "#/components/schemas/com.example.wardle.v1alpha1.Flunder"}
OPENAPI = {"openapi": "3.0.0", "info": {"title": "wardle", "version": "v0"}, "paths": {
    f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/flunders/{{name}}": {"get": {
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _REF}}}},
        "x-kubernetes-action": "get",
        "x-kubernetes-group-version-kind": {"group": GROUP, "version": VERSION, "kind": "Flunder"}}}},
    "components": {"schemas": {
    "com.example.wardle.v1alpha1.Flunder": {
        "type": "object", "description": "A Flunder is what the wardle server serves.",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"type": "object"},
                       "spec": {"type": "object", "description": "What the flunder refers to.",
                                "properties": {"reference": {"type": "string"}}}},
        "x-kubernetes-group-version-kind": [{"group": GROUP, "version": VERSION, "kind": "Flunder"}]}}}}


def flunder(name: str, ns: str, user: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-11-30T00:00:00Z",
                         "annotations": {"seen-user": user}}, "spec": {"reference": "x"}}


Route = Callable[[str, str], "tuple[int, dict[str, Any]] | None"]


class Wardle:
    """``routes(path, user)`` may answer a GET itself (code, JSON body); None falls back to the
    flunders API."""

    def __init__(self, service: str = "wardle", namespace: str = "default", routes: Route | None = None,
                 port: int = 0) -> None:
        """``port``: one the virtual cluster's owner published (``portForwardTargets``)."""
        self.ca = CertificateAuthority.create("wardle-ca")
        pair = self.ca.issue_serving([f"{service}.{namespace}.svc"], common_name="wardle")
        self.requests: list[dict[str, Any]] = []
        self._dir = tempfile.TemporaryDirectory()
        cert, key = Path(self._dir.name, "tls.crt"), Path(self._dir.name, "tls.key")
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        wardle = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0].rstrip("/")
                peer = self.connection.getpeercert() or {}
                subject = dict(pair[0] for pair in peer.get("subject", ()))
                wardle.requests.append({"path": path, "user": self.headers.get("X-Remote-User"),
                                        "client_cn": subject.get("commonName"),
                                        "groups": self.headers.get_all("X-Remote-Group") or [],
                                        "authorization": self.headers.get("Authorization")})
                user = self.headers.get("X-Remote-User") or ""
                answer = routes(self.path, user) if routes is not None else None
                if answer is not None:
                    return self._send(*answer)
                parts = path.strip("/").split("/")
                if path == f"/apis/{GROUP}/{VERSION}":
                    return self._send(200, RESOURCES)
                if path == f"/openapi/v3/apis/{GROUP}/{VERSION}":
                    return self._send(200, OPENAPI)
                if parts[:3] == ["apis", GROUP, VERSION] and len(parts) >= 6 and parts[3] == "namespaces" \
                        and parts[5] == "flunders":
                    ns = parts[4]
                    if "watch=1" in self.path or "watch=true" in self.path:
                        return self._stream([{"type": "ADDED", "object": flunder("one", ns, user)},
                                             {"type": "MODIFIED", "object": flunder("one", ns, user)}])
                    if len(parts) == 7:
                        if parts[6] != "one":
                            return self._send(404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                    "status": "Failure", "reason": "NotFound", "code": 404,
                                                    "message": f'flunders.{GROUP} "{parts[6]}" not found',
                                                    "details": {"name": parts[6], "group": GROUP, "kind": "flunders"}})
                        return self._send(200, flunder("one", ns, user))
                    return self._send(200, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FlunderList",
                                            "metadata": {}, "items": [flunder("one", ns, user)]})
                return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "reason": "NotFound", "code": 404, "message": "not found"})

            def _stream(self, events: list[dict[str, Any]]) -> None:
                """A watch: one JSON event per chunk, then the end of the stream."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in events:
                    data = json.dumps(event).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._context = context
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def trust_clients(self, ca_pem: str) -> None:
        """Ask for client certificates signed by ``ca_pem`` (the front-proxy CA an aggregated
        server reads from ``kube-system/extension-apiserver-authentication``)."""
        self._context.load_verify_locations(cadata=ca_pem)
        self._context.verify_mode = ssl.CERT_OPTIONAL

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.cert_pem).decode()

    def __enter__(self) -> "Wardle":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()

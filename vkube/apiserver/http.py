"""Request decoding and response encoding: the only place that knows media types, body limits
and how a StatusError becomes an HTTP reply."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from vkube.api import errors

if TYPE_CHECKING:  # PyYAML is imported on the first YAML body, not at start-up (~15 ms)
    from vkube.api.yamldecode import YamlBody

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's default request body limit (3 MiB)
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str
    params: dict[str, str]

    @property
    def as_(self) -> str:
        return self.params.get("as", "")


def parse_accept(header: str | None) -> list[MediaType]:
    out = []
    for part in (header or "").split(","):
        pieces = [p.strip() for p in part.split(";") if p.strip()]
        if not pieces:
            continue
        params = {}
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        out.append(MediaType(pieces[0].lower(), params))
    return out


def wants(accept: list[MediaType], as_: str, group: str = "meta.k8s.io") -> MediaType | None:
    """The first accepted media type asking for ``as=<as_>`` (e.g. Table)."""
    for mt in accept:
        if mt.as_ == as_ and mt.params.get("g", group) == group and mt.type in (JSON, "application/yaml", "*/*"):
            return mt
    return None


#: where ``read_body`` leaves the raw body on the request (the audit log reads it there)
REQUEST_BODY = web.RequestKey("vkube_request_body", bytes)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing more than 3 MiB with a 413 before reading it all."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.request_entity_too_large("limit is 3145728")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.request_entity_too_large("limit is 3145728")
        chunks.append(chunk)
    raw = b"".join(chunks)
    request[REQUEST_BODY] = raw  # kept for the audit log's Request level
    return raw


#: bodies above this size are decoded on a worker thread, so one big (CPU-bound) decode does
#: not stall every other request on the event loop
THREAD_DECODE_BYTES = 256 * 1024


def decode_body(raw: bytes, content_type: str) -> Any:
    """JSON or YAML (only the types Kubernetes accepts); errors are 400s naming the problem."""
    return decode_request_body(raw, content_type)[0]


async def decode_body_async(raw: bytes, content_type: str) -> tuple[Any, YamlBody | None]:
    """``decode_request_body``, on a worker thread when the body is large."""
    if len(raw) > THREAD_DECODE_BYTES:
        return await asyncio.to_thread(decode_request_body, raw, content_type)
    return decode_request_body(raw, content_type)


def decode_request_body(raw: bytes, content_type: str) -> tuple[Any, YamlBody | None]:
    """The decoded body and, for YAML, its parsed nodes (the duplicate-field check reads them
    instead of parsing the body again). YAML aliases that would expand past go-yaml's limits
    or past the request size limit are refused before anything is built."""
    ct = content_type.split(";")[0].strip().lower()
    if not raw.strip():
        raise errors.BadRequest("the request body is empty")
    if ct in ("application/yaml", "application/apply-patch+yaml", "text/yaml", "application/x-yaml"):
        if raw.lstrip()[:1] == b"{":  # JSON is YAML, and clients (kubectl, client-go) send JSON
            try:
                return orjson.loads(raw), None
            except orjson.JSONDecodeError:
                pass  # a YAML flow mapping such as {a: 1}: the YAML decoder reads it
        from vkube.api.yamldecode import load_yaml

        parsed = load_yaml(raw, max_bytes=MAX_BODY)
        if len(parsed.docs) != 1:
            raise errors.BadRequest("the request body must contain exactly one YAML document")
        return parsed.docs[0], parsed
    if ct in (JSON, "application/merge-patch+json", "application/strategic-merge-patch+json",
              "application/json-patch+json", "", "*/*"):
        try:
            return orjson.loads(raw), None
        except orjson.JSONDecodeError as exc:
            raise errors.BadRequest(f"error decoding JSON body: {exc}") from None
    if ct == "application/vnd.kubernetes.protobuf":
        from vkube.api.protobuf import decode_protobuf

        return decode_protobuf(raw), None
    # negotiation.NewUnsupportedMediaTypeError over the serializers kube-apiserver offers
    raise errors.UnsupportedMediaType(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf")


def json_response(body: Any, status: int = 200, *, headers: dict[str, str] | None = None,
                  content_type: str = JSON) -> web.Response:
    """JSON ending in a newline, as Go's ``json.Encoder`` writes every kube-apiserver body."""
    return web.Response(body=orjson.dumps(body) + b"\n", status=status,
                        headers={**(headers or {}), "Content-Type": content_type})


# Go's encoder escapes these inside strings (HTML safety; U+2028/2029 for JavaScript); they
# can only occur inside JSON strings, so a byte replacement is exact.
_GO_ESCAPES = ((b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def go_json(obj: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` writes it: HTML-escaped strings and a trailing newline."""
    out = orjson.dumps(obj)
    for raw, escaped in _GO_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out + b"\n"


def status_bytes(exc: errors.StatusError) -> bytes:
    """A Status body byte for byte as kube-apiserver writes it (keys in Go's order, empty
    fields left out, Go's escaping, a trailing newline): clients such as the official Python
    client's tests compare these bytes."""
    return go_json(exc.to_status())


def status_response(exc: errors.StatusError) -> web.Response:
    headers = {"Content-Type": JSON}
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(body=status_bytes(exc), status=exc.code, headers=headers)


def success_status(code: int = 200, *, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Success Status, keys in Go's order (``details`` before ``code``)."""
    st: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        st["details"] = details
    st["code"] = code
    return st

"""CRD conversion webhooks (``spec.conversion.strategy: Webhook``), as apiextensions-apiserver's
``webhookConverter`` calls them: one ``ConversionReview`` (apiextensions.k8s.io/v1) per
conversion — every object of a list in one request — and the answer checked (uid, count,
apiVersion, kind, and metadata other than labels and annotations unchanged). A failure is the
request's 500 with upstream's text (``conversion webhook for G/V, Kind=K failed: …``)."""

from __future__ import annotations

import uuid
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.apiserver.admission.webhookclient import CallError, WebhookClient

__all__ = ["ConversionWebhooks"]

_TIMEOUT = 30  # seconds: kube-apiserver's default client timeout for conversion webhooks
_FREE_METADATA = ("labels", "annotations")


class ConversionWebhooks:
    def __init__(self, client: WebhookClient) -> None:
        self.client = client

    async def convert(self, strategy: Any, objects: list[Obj], desired: str) -> list[Obj]:
        """``objects`` (any stored or requested versions) in ``desired``; raises a 500."""
        if not objects:
            return objects
        webhook = strategy.conversion_webhook or {}
        source = str(objects[0].get("apiVersion", ""))
        gvk = f"{source}, Kind={objects[0].get('kind', strategy.kind)}"
        try:
            return await self._call(webhook, objects, desired)
        except _Failed as exc:
            raise errors.internal_error(f"conversion webhook for {gvk} {exc}") from None

    async def _call(self, webhook: dict[str, Any], objects: list[Obj], desired: str) -> list[Obj]:
        versions = webhook.get("conversionReviewVersions") or []
        if "v1" not in versions:
            raise _Failed("failed: no supported conversion review versions")
        uid = str(uuid.uuid4())
        review = {"kind": "ConversionReview", "apiVersion": "apiextensions.k8s.io/v1",
                  "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects}}
        try:
            doc = await self.client.post(webhook.get("clientConfig") or {}, review, timeout=_TIMEOUT)
        except CallError as exc:
            raise _Failed(f"failed: {exc}") from None
        converted = _response(doc, uid)
        if len(converted) != len(objects):
            raise _Failed(f"returned {len(converted)} objects, expected {len(objects)}")
        for i, (before, after) in enumerate(zip(objects, converted)):
            problem = _check(before, after, desired)
            if problem:
                raise _Failed(f"returned invalid {problem} at index {i}" if problem.startswith("metadata")
                              else f"returned invalid converted object at index {i}: {problem}")
        return converted


class _Failed(Exception):
    pass


def _response(doc: dict[str, Any], uid: str) -> list[Obj]:
    if doc.get("apiVersion") != "apiextensions.k8s.io/v1" or doc.get("kind") != "ConversionReview":
        raise _Failed("failed: expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got "
                      f"{doc.get('apiVersion', '')}, Kind={doc.get('kind', '')}")
    response = doc.get("response")
    if not isinstance(response, dict):
        raise _Failed("failed: no response provided")
    if response.get("uid") != uid:
        raise _Failed(f'failed: expected response.uid="{uid}", got "{response.get("uid", "")}"')
    result = response.get("result") if isinstance(response.get("result"), dict) else {}
    if result.get("status") != "Success":
        if result.get("message"):
            raise _Failed(f"failed: {result['message']}")
        raise _Failed(f"failed: response.result.status was '{result.get('status', '')}', not 'Success'")
    converted = response.get("convertedObjects")
    if not isinstance(converted, list) or not all(isinstance(o, dict) for o in converted):
        raise _Failed("failed: convertedObjects must be a list of objects")
    return converted


def _check(before: Obj, after: Obj, desired: str) -> str:
    if after.get("apiVersion") != desired:
        return f"invalid groupVersion (expected {desired}, received {after.get('apiVersion', '')})"
    if after.get("kind") != before.get("kind"):
        return f"invalid kind (expected {before.get('kind')}, received {after.get('kind', '')})"
    bm, am = before.get("metadata") or {}, after.get("metadata")
    if not isinstance(am, dict):
        return "metadata: missing metadata in converted object"
    for key, words in (("name", "name"), ("namespace", "namespace"), ("uid", "UID")):
        if bm.get(key, "") != am.get(key, ""):
            return f"metadata: must have the same {words}: {bm.get(key, '')} != {am.get(key, '')}"
    for key in _FREE_METADATA:
        value = am.get(key)
        if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
            return f"metadata: metadata.{key} must be a map of strings in converted object"
    # only labels and annotations may change: everything else is the original's (restoreObjectMeta)
    after["metadata"] = {**{k: v for k, v in bm.items() if k not in _FREE_METADATA},
                         **{k: am[k] for k in _FREE_METADATA if am.get(k) is not None}}
    return ""

"""Store errors are interpreted per verb, as k8s.io/apiserver's storage/errors Interpret*Error
functions do: the table here is theirs; the HTTP tests drive a real store into each error."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from vkube.api import errors
from vkube.api.builtin import builtin_registry
from vkube.apiserver.storeerrors import (interpret_create_error, interpret_delete_error, interpret_get_error,
                                         interpret_list_error, interpret_update_error, interpret_watch_error)
from vkube.store import BackendError, StoreClosed
from vkube.store.base import Compacted, FutureRevision, KeyExists, KeyNotFound, KeyValue, RevisionMismatch

PODS = builtin_registry().by_kind("", "Pod")
DEPLOYMENTS = builtin_registry().by_kind("apps", "Deployment")
KV = KeyValue("/core/pods/ns/p", b"{}", 1, 2)

OPTIMISTIC = ('Operation cannot be fulfilled on {q} "p": the object has been modified; please apply your '
              "changes to the latest version and try again")


def cases():  # noqa: ANN201 - (function, store error, code, reason, message)
    return [
        (interpret_create_error, KeyExists("k"), 409, "AlreadyExists", 'pods "p" already exists'),
        (interpret_create_error, StoreClosed("closed"), 500, "ServerTimeout",
         "The create operation against pods could not be completed at this time, please try again."),
        (interpret_create_error, BackendError("disk"), 500, "InternalError", "disk"),
        (interpret_get_error, KeyNotFound("k"), 404, "NotFound", 'pods "p" not found'),
        (interpret_get_error, Compacted(3, 9), 410, "Expired", "too old resource version: 3 (9)"),
        (interpret_get_error, FutureRevision("99"), 504, "Timeout", "Too large resource version"),
        (interpret_get_error, StoreClosed("closed"), 500, "ServerTimeout", "The get operation against pods"),
        (interpret_list_error, KeyNotFound("k"), 404, "NotFound", "not found"),
        (interpret_list_error, Compacted(3, 9), 410, "Expired", "too old resource version: 3 (9)"),
        (interpret_list_error, StoreClosed("closed"), 500, "ServerTimeout", "The list operation against pods"),
        (interpret_update_error, RevisionMismatch("k", KV), 409, "Conflict", OPTIMISTIC.format(q="pods")),
        (interpret_update_error, KeyExists("k"), 409, "Conflict", OPTIMISTIC.format(q="pods")),
        (interpret_update_error, KeyNotFound("k"), 404, "NotFound", 'pods "p" not found'),
        (interpret_update_error, StoreClosed("closed"), 500, "ServerTimeout", "The update operation against pods"),
        (interpret_delete_error, KeyNotFound("k"), 404, "NotFound", 'pods "p" not found'),
        (interpret_delete_error, RevisionMismatch("k", KV), 409, "Conflict", OPTIMISTIC.format(q="pods")),
        (interpret_delete_error, StoreClosed("closed"), 500, "ServerTimeout", "The delete operation against pods"),
        (interpret_watch_error, Compacted(3, 9), 410, "Expired", "too old resource version: 3 (9)"),
        (interpret_watch_error, BackendError("disk"), 500, "InternalError", "disk"),
    ]


@pytest.mark.parametrize("fn,exc,code,reason,message", cases(),
                         ids=[f"{c[0].__name__}-{type(c[1]).__name__}" for c in cases()])
def test_interpretation_per_verb(fn, exc, code, reason, message):
    args = (exc, PODS) if fn in (interpret_list_error, interpret_watch_error) else (exc, PODS, "p")
    err = fn(*args)
    assert isinstance(err, errors.StatusError)
    assert (err.code, err.reason) == (code, reason)
    assert message in err.message


def test_group_qualifies_the_resource():
    err = interpret_update_error(RevisionMismatch("k", KV), DEPLOYMENTS, "p")
    assert err.message == OPTIMISTIC.format(q="deployments.apps")
    assert err.details == {"name": "p", "group": "apps", "kind": "deployments"}
    timeout = interpret_create_error(StoreClosed("x"), DEPLOYMENTS, "p")
    assert timeout.details["retryAfterSeconds"] == 2 and timeout.retry_after == 2


async def test_each_verb_answers_its_own_status_through_http(control_plane):
    """Create of an existing name is 409 AlreadyExists; a PUT with a stale resourceVersion,
    and a delete precondition on one, are 409 Conflict; a watch below the compacted revision is
    410 Expired (as a watch ERROR event); once the store is gone every verb says ServerTimeout (500), never a crash."""
    url = control_plane.url + "/api/v1/namespaces/default/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    async with control_plane.session() as s:
        async with s.post(url, json=cm) as r:
            assert r.status == 201
            stale = (await r.json())["metadata"]["resourceVersion"]
        async with s.post(url, json=cm) as r:
            body = await r.json()
            assert (r.status, body["reason"]) == (409, "AlreadyExists")
            assert body["message"] == 'configmaps "c" already exists'
        async with s.patch(url + "/c", json={"data": {"a": "2"}},
                           headers={"Content-Type": "application/merge-patch+json"}) as r:
            assert r.status == 200
        async with s.put(url + "/c", json={**cm, "metadata": {"name": "c", "resourceVersion": stale}}) as r:
            body = await r.json()
            assert (r.status, body["reason"], body["message"]) == (409, "Conflict", OPTIMISTIC.format(q="configmaps").replace('"p"', '"c"'))
        store = control_plane.cp.ctx.store
        await store.compact(await store.current_revision())
        # as the watch cache answers (cacher.go: "must fail with a watch event of type ERROR"):
        # 200, then one ERROR event carrying the 410 Expired Status
        async with s.get(url, params={"watch": "1", "resourceVersion": "1"}) as r:
            event = orjson.loads(await r.content.readline())
            assert r.status == 200 and event["type"] == "ERROR"
            assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        await store.close()
        # (create reads the namespace first, in NamespaceLifecycle admission: that get fails first)
        for method, path, verb in [("GET", "/c", "get configmaps"), ("GET", "", "list configmaps"),
                                   ("DELETE", "/c", "get configmaps"), ("POST", "", "get namespaces")]:
            async with s.request(method, url + path, json=cm if method == "POST" else None) as r:
                body = await r.json()
                assert (r.status, body["reason"]) == (500, "ServerTimeout"), (method, path, body)
                assert body["message"].startswith("The {} operation against {}".format(*verb.split()))

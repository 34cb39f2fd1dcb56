"""The audit log: one ``audit.k8s.io/v1`` Event per request (stage ``ResponseComplete``) as JSON
lines, at the level the first matching rule of an audit ``Policy`` gives it — ``None``,
``Metadata`` (who, what, when, the outcome), ``Request`` (plus the request body) or
``RequestResponse`` (plus the response body). Without a policy file every request is logged
at ``Metadata``. Admission's annotations (Pod Security's ``enforce-policy``,
``audit-violations``, ``exempt``...) ride along in ``annotations``."""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from vkube.api import yamlio

from vkube.api.meta import rfc3339_micro
from vkube.apiserver.request import RequestContext
from vkube.apiserver.requestinfo import RequestInfo

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
AUDIT_FILE = "audit.log"


class PolicyError(ValueError):
    """An audit Policy that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Rule:
    level: str
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    resources: tuple[tuple[str | None, frozenset[str], frozenset[str]], ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()

    def matches(self, rc: RequestContext) -> bool:
        user, info = rc.user, rc.info
        if self.users and user.name not in self.users:
            return False
        if self.groups and not self.groups.intersection(user.groups):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if not info.is_resource:
            if self.resources or self.namespaces:
                return False
            return not self.non_resource_urls or any(
                fnmatch.fnmatchcase(info.path, u) if u.endswith("*") else info.path == u
                for u in self.non_resource_urls)
        if self.non_resource_urls:
            return False
        if self.namespaces and info.namespace not in self.namespaces and not (
                "" in self.namespaces and not info.namespace):
            return False
        if not self.resources:
            return True
        full = info.resource + (f"/{info.subresource}" if info.subresource else "")
        for group, names, resource_names in self.resources:
            if group is not None and group != info.group:
                continue
            if names and not any(n in (full, "*", f"*/{info.subresource}") or
                                 (n == f"{info.resource}/*" and info.subresource) for n in names):
                continue
            if resource_names and info.name not in resource_names:
                continue
            return True
        return False


def _set(doc: Mapping[str, Any], key: str) -> frozenset[str]:
    return frozenset(str(v) for v in doc.get(key) or ())


class Policy:
    def __init__(self, rules: list[Rule], omit_stages: frozenset[str] = frozenset(),
                 omit_managed_fields: bool = False) -> None:
        self.rules = rules
        self.omit_stages = omit_stages
        self.omit_managed_fields = omit_managed_fields

    @classmethod
    def default(cls) -> "Policy":
        return cls([Rule("Metadata")])

    @classmethod
    def parse(cls, doc: Any) -> "Policy":
        if not isinstance(doc, Mapping) or doc.get("kind") != "Policy":
            raise PolicyError("kind: must be Policy (apiVersion audit.k8s.io/v1)")
        rules = []
        for i, r in enumerate(doc.get("rules") or []):
            if not isinstance(r, Mapping):
                raise PolicyError(f"rules[{i}]: must be an object")
            level = r.get("level")
            if level not in LEVELS:
                raise PolicyError(f'rules[{i}].level: Unsupported value: "{level}": supported values: '
                                  + ", ".join(f'"{x}"' for x in LEVELS))
            stages = _set(r, "omitStages")
            for s in stages - set(STAGES):
                raise PolicyError(f'rules[{i}].omitStages: Unsupported value: "{s}"')
            resources = tuple((gr.get("group"), _set(gr, "resources"), _set(gr, "resourceNames"))
                              for gr in r.get("resources") or [])
            if resources and r.get("nonResourceURLs"):
                raise PolicyError(f"rules[{i}].nonResourceURLs: Invalid value: rules cannot apply to both "
                                  "regular resources and non-resource URLs")
            rules.append(Rule(level, _set(r, "users"), _set(r, "userGroups"), _set(r, "verbs"),
                              _set(r, "namespaces"), resources,
                              tuple(str(u) for u in r.get("nonResourceURLs") or ()), stages))
        if not rules:
            raise PolicyError("rules: Required value")
        return cls(rules, _set(doc, "omitStages"), bool(doc.get("omitManagedFields")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Policy":
        try:
            doc = yamlio.load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot read audit policy {path}: {exc}") from None
        return cls.parse(doc)

    def level_for(self, rc: RequestContext) -> tuple[str, frozenset[str]]:
        for rule in self.rules:
            if rule.matches(rc):
                return rule.level, rule.omit_stages | self.omit_stages
        return "None", self.omit_stages


def _body(data: bytes | None, omit_managed_fields: bool) -> Any:
    if not data:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            obj = yamlio.load(data)
        except yaml.YAMLError:
            return None
    if omit_managed_fields and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        obj["metadata"].pop("managedFields", None)
    return obj if isinstance(obj, (dict, list)) else None


def object_ref(info: RequestInfo) -> dict[str, str] | None:
    if not info.is_resource:
        return None
    ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
           "apiGroup": info.group, "apiVersion": info.version, "subresource": info.subresource}
    return {k: v for k, v in ref.items() if v}


_BACKUP_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}")


class AuditLog:
    """Appends events to ``path`` (0600); each line is written and flushed whole.

    Rotation follows kube-apiserver's (lumberjack): once a line would take the file past
    ``max_size_mb`` MiB (``--audit-log-maxsize``; 0 means lumberjack's default, 100), the file is
    renamed to ``NAME-<UTC time>.EXT`` (``audit-2026-11-30T03-04-05.000.log``) and a new one
    begun; backups beyond ``max_backups`` (``--audit-log-maxbackup``; 0 keeps all) or older than
    ``max_age_days`` (``--audit-log-maxage``; 0 keeps all) are removed."""

    def __init__(self, path: str | os.PathLike[str], policy: Policy | None = None, *,
                 max_size_mb: int = 0, max_backups: int = 0, max_age_days: int = 0) -> None:
        self.path = Path(path)
        self.policy = policy or Policy.default()
        self.max_bytes = (max_size_mb or 100) * 1024 * 1024
        self.max_backups, self.max_age_days = max_backups, max_age_days
        self._fh: Any = None
        self._size = 0

    def _file(self) -> Any:
        if self._fh is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._fh = os.fdopen(fd, "ab")
            self._size = os.fstat(fd).st_size
        return self._fh

    def _write(self, line: bytes) -> None:
        fh = self._file()
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
            fh = self._file()
        fh.write(line)
        fh.flush()
        self._size += len(line)

    def _rotate(self) -> None:
        self.close()
        now = dt.datetime.now(dt.timezone.utc)
        stamp = now.strftime("%Y-%m-%dT%H-%M-%S.") + f"{now.microsecond // 1000:03d}"
        self.path.replace(self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}"))
        self._prune(now)

    def backups(self) -> list[Path]:
        """Rotated files of this log, oldest first (their names sort by time)."""
        prefix, suffix = f"{self.path.stem}-", self.path.suffix
        return sorted(p for p in self.path.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(suffix) and p != self.path
                      and _BACKUP_STAMP.fullmatch(p.name[len(prefix):len(p.name) - len(suffix)]))

    def _prune(self, now: dt.datetime) -> None:
        old = self.backups()
        doomed = set(old[:-self.max_backups]) if self.max_backups else set()
        if self.max_age_days:
            cutoff = (now - dt.timedelta(days=self.max_age_days)).timestamp()
            doomed |= {p for p in old if p.stat().st_mtime < cutoff}
        for p in doomed:
            with contextlib.suppress(OSError):
                p.unlink()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def level(self, rc: RequestContext) -> str:
        level, omit = self.policy.level_for(rc)
        return "None" if "ResponseComplete" in omit else level

    def record(self, rc: RequestContext, *, uri: str, source_ip: str | None, user_agent: str | None,
               code: int, received: dt.datetime, status: Mapping[str, Any] | None = None,
               request_body: bytes | None = None, response_body: bytes | None = None,
               level: str | None = None) -> dict[str, Any] | None:
        level = level or self.level(rc)
        if level == "None":
            return None
        event: dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": rc.audit_id,
            "stage": "ResponseComplete", "requestURI": uri, "verb": rc.info.verb,
            "user": rc.user.to_dict(), "sourceIPs": [source_ip] if source_ip else [],
        }
        if user_agent:
            event["userAgent"] = user_agent
        ref = object_ref(rc.info)
        if ref:
            if "name" not in ref and rc.info.verb == "create" and code < 300 and response_body:
                # the created object's name (generateName included), as upstream's LogRequestObject
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                    name = (orjson.loads(response_body).get("metadata") or {}).get("name")
                    if name:
                        ref["name"] = name
            event["objectRef"] = ref
        rs: dict[str, Any] = {"metadata": {}, "code": code}
        if status and code >= 300:
            rs.update({k: status[k] for k in ("status", "message", "reason", "details") if k in status})
        event["responseStatus"] = rs
        if level in ("Request", "RequestResponse"):
            body = _body(request_body, self.policy.omit_managed_fields)
            if body is not None:
                event["requestObject"] = body
        if level == "RequestResponse":
            body = _body(response_body, self.policy.omit_managed_fields)
            if body is not None:
                event["responseObject"] = body
        event["requestReceivedTimestamp"] = rfc3339_micro(received)
        event["stageTimestamp"] = rfc3339_micro(dt.datetime.now(dt.timezone.utc))
        if rc.audit_annotations:
            event["annotations"] = dict(rc.audit_annotations)
        self._write(orjson.dumps(event) + b"\n")
        return event

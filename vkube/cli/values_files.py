"""``-f values.yaml`` files: read, deep-merged in order (later files win, as with Helm) and
validated against the syncer's schema before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vkube.cli.output import CLIError, read_user_file


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_files(paths: list[str], *, check: bool = True) -> dict[str, Any]:
    """The merged user values (only what the files say; defaults are the syncer's).
    ``check=False`` skips the schema check (it imports the syncer, ~0.3 s): the caller runs
    ``validate`` later."""
    import yaml
    from vkube.api import yamlio

    doc: dict[str, Any] = {}
    for p in paths:
        text = read_user_file(p, "values file", "check the path given to -f")
        try:
            data = yamlio.load(text)
        except yaml.YAMLError as e:
            raise CLIError(f"values file {p} is not valid YAML: {e}") from e
        if data is None:
            continue
        if not isinstance(data, dict):
            raise CLIError(f"values file {p} must hold a mapping (e.g. `sync: {{...}}`)")
        doc = merge(doc, data)
    if check:
        validate(doc)
    return doc


def has_flag_values(args: Any) -> bool:
    return bool(getattr(args, "isolate", False) or getattr(args, "pod_security", None) or
                getattr(args, "cpu", None) or getattr(args, "memory", None) or
                getattr(args, "shared", False))


def with_flags(doc: dict[str, Any], args: Any) -> dict[str, Any]:
    """The values with ``create``'s isolation flags on top (flags win over -f files):
    ``--isolate`` = ``isolation.enabled: true``, ``--pod-security LEVEL``, ``--cpu``/``--memory``
    = the quota's CPU and memory figures. A figure without isolation would do nothing: refused."""
    iso: dict[str, Any] = {}
    if getattr(args, "isolate", False):
        iso["enabled"] = True
    if getattr(args, "pod_security", None) == "privileged":
        raise CLIError("--pod-security privileged: isolation always rejects host access, which "
                       "privileged would allow — use --pod-security baseline or restricted, "
                       "or drop --isolate and set sync.pods.hostAccess: allow in a values file")
    if getattr(args, "pod_security", None):
        iso["podSecurityStandard"] = args.pod_security
    quota = {k: getattr(args, k) for k in ("cpu", "memory") if getattr(args, k, None)}
    if quota:
        iso["resourceQuota"] = quota
    if getattr(args, "shared", False):  # --shared = controlPlane.mode: shared
        doc = merge(doc, {"controlPlane": {"mode": "shared"}})
    if not iso:
        return doc
    out = merge(doc, {"isolation": iso})
    if not (out.get("isolation") or {}).get("enabled"):
        flag = "--cpu" if getattr(args, "cpu", None) else \
            "--memory" if getattr(args, "memory", None) else "--pod-security"
        raise CLIError(f"{flag} sets a figure of isolation, which is off — add --isolate "
                       f"(or isolation.enabled: true in a values file)")
    validate(out)
    return out


def leaf_keys(doc: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the scalar/list values of a values document."""
    if not isinstance(doc, dict) or not doc:
        return [prefix] if prefix else []
    out: list[str] = []
    for k, v in doc.items():
        out += leaf_keys(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def dropped_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys the old values set and the new ones do not (``--upgrade -f`` replaces values)."""
    have = set(leaf_keys(new))
    return [k for k in leaf_keys(old)
            if k not in have and not any(h.startswith(k + ".") for h in have)]


def validate(doc: dict[str, Any]) -> None:
    from vkube.syncer.values import ValuesError, parse_values

    try:
        parse_values(doc)
    except ValuesError as e:
        raise CLIError(f"invalid values: {e} — every key and its accepted values: `vkube values`") from e


def write(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not values:  # the common case, without importing yaml (~10 ms) before create's spawn
        path.write_text("{}\n")
        return
    from vkube.api import yamlio

    path.write_text(yamlio.dump(values, sort_keys=False))

"""``-f values.yaml`` files: read, deep-merged in order (later files win, as with Helm) and
validated against the syncer's schema before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vkube.cli.output import CLIError


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

    doc: dict[str, Any] = {}
    for p in paths:
        try:
            data = yaml.safe_load(Path(p).expanduser().read_text())
        except FileNotFoundError as e:
            raise CLIError(f"values file {p} not found — check the path given to -f") from e
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


def validate(doc: dict[str, Any]) -> None:
    from vkube.syncer.values import ValuesError, parse_values

    try:
        parse_values(doc)
    except ValuesError as e:
        raise CLIError(f"invalid values: {e} — see `vkube create --help`") from e


def write(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not values:  # the common case, without importing yaml (~10 ms) before create's spawn
        path.write_text("{}\n")
        return
    import yaml

    path.write_text(yaml.safe_dump(values, sort_keys=False))

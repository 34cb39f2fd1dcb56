"""YAML bodies are bounded before they expand (go-yaml's alias ratio, the size limit, a
self-containing anchor), and ``format: byte`` fields are refused at Go's base64 offset."""

from __future__ import annotations

import pytest

from vkube.api import errors
from vkube.api.typecheck import base64_error
from vkube.api.yamldecode import load_yaml

LIMIT = 3 * 1024 * 1024


def _nested(levels: int, width: int) -> bytes:
    lines = ["a0: &a0 [" + ",".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines).encode()


def test_alias_bomb_is_refused_without_expanding() -> None:
    with pytest.raises(errors.BadRequest) as err:
        load_yaml(_nested(9, 10), max_bytes=LIMIT)  # 10**9 scalars if expanded
    assert err.value.message == "error converting YAML to JSON: yaml: document contains excessive aliasing"


def test_moderate_aliasing_decodes() -> None:
    # up to 100 aliased nodes are never refused, and a few thousand real nodes allow many more
    body = load_yaml(b"base: &b {k: v}\n" + b"".join(b"i%d: *b\n" % i for i in range(30)), max_bytes=LIMIT)
    assert body.docs[0]["i29"] == {"k": "v"} and len(body.nodes) == 1
    assert load_yaml(_nested(3, 10), max_bytes=LIMIT).docs[0]["a2"][9][9][9] == "x"


def test_expansion_past_the_size_limit_is_413() -> None:
    raw = b"s: &s " + b"y" * 100_000 + b"\nl: [" + b",".join([b"*s"] * 40) + b"]\n"
    with pytest.raises(errors.RequestEntityTooLarge):
        load_yaml(raw, max_bytes=LIMIT)
    assert len(load_yaml(raw, max_bytes=10 * LIMIT).docs[0]["l"]) == 40


def test_self_containing_anchor_and_bad_yaml_are_400() -> None:
    with pytest.raises(errors.BadRequest, match="contains itself"):
        load_yaml(b"a: &x [1, *x]\n", max_bytes=LIMIT)
    with pytest.raises(errors.BadRequest, match="error converting YAML to JSON"):
        load_yaml(b"a: [unclosed\n", max_bytes=LIMIT)


@pytest.mark.parametrize("text,offset", [
    ("", None), ("YWJj", None), ("YWI=", None), ("YQ==", None), ("YWJj\nZGVm", None),
    ("Y", 0), ("YWJ", 0), ("YQ=", 3), ("YQ=x", 2), ("a===", 1), ("=abc", 0),
    ("not base64!", 3), ("YWJjZA", 4), ("YQ==YQ==", 4),
])
def test_base64_errors_at_gos_offset(text: str, offset: int | None) -> None:
    expected = None if offset is None else f"illegal base64 data at input byte {offset}"
    assert base64_error(text) == expected

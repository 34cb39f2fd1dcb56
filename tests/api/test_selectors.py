import pytest

from vkube.api.errors import BadRequest
from vkube.api.selectors import (
    label_selector_from_dict, parse_field_selector, parse_label_selector, selector_to_string,
)

LABELS = {"app": "web", "tier": "frontend", "n": "5"}


@pytest.mark.parametrize("sel,match", [
    ("", True), ("app=web", True), ("app==web", True), ("app!=web", False), ("app!=db", True),
    ("missing!=x", True), ("app in (web,db)", True), ("app notin (web)", False),
    ("app", True), ("!app", False), ("!missing", True), ("app=web,tier=backend", False),
    ("app=web, tier in (frontend)", True), ("n>4", True), ("n<4", False), ("missing in (x)", False),
])
def test_label_selector_matches(sel, match):
    assert parse_label_selector(sel).matches(LABELS) is match


@pytest.mark.parametrize("bad", ["app=web=x", "app in web", "app in (a", "=x", "app=web,", "a b", "in (x", "a/b/c=x", "a=b c"])
def test_label_selector_syntax_errors_name_the_selector(bad):
    with pytest.raises(BadRequest) as info:
        parse_label_selector(bad)
    assert bad in info.value.message
    assert info.value.code == 400


def test_label_selector_from_dict():
    sel = label_selector_from_dict({"matchLabels": {"app": "web"},
                                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]},
                                                         {"key": "gone", "operator": "DoesNotExist"}]})
    assert sel.matches(LABELS)
    assert not sel.matches({"app": "web"})
    assert str(sel) == "app=web,!gone,tier in (frontend)"
    assert not label_selector_from_dict(None).matches(LABELS)  # nil selects nothing
    assert label_selector_from_dict({}).matches(LABELS)  # empty selects everything
    with pytest.raises(BadRequest):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})


def test_selector_to_string():
    assert selector_to_string({"b": "2", "a": "1"}) == "a=1,b=2"  # ReplicationController map
    assert selector_to_string({"matchLabels": {"app": "web"}}) == "app=web"
    assert selector_to_string("x=y") == "x=y"


def test_field_selector():
    sel = parse_field_selector("status.phase=Running,spec.nodeName!=n1")
    assert sel.fields == ("status.phase", "spec.nodeName")
    assert sel.matches({"status.phase": "Running", "spec.nodeName": "n2"})
    assert not sel.matches({"status.phase": "Running", "spec.nodeName": "n1"})
    assert parse_field_selector("metadata.name==a\\,b").requirements[0].value == "a,b"
    assert parse_field_selector("").empty
    assert parse_field_selector("spec.nodeName=").matches({"spec.nodeName": ""})


@pytest.mark.parametrize("bad", ["foo", "=x", "a in (b)"])
def test_field_selector_errors(bad):
    with pytest.raises(BadRequest) as info:
        parse_field_selector(bad)
    assert "invalid selector" in info.value.message

"""Name, label and selector translation: pure golden tests."""

import re

import pytest

from vkube.syncer.translate import (
    ANN_NAME,
    ANN_NAMESPACE,
    ANN_UID,
    LABEL_MANAGED_BY,
    LABEL_NAMESPACE,
    Translator,
    decode_label_key,
    encode_label_key,
    fit_name,
)

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_KEY = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

tr = Translator("team-a", "vkube-team-a")


def test_short_names_are_readable():
    assert tr.host_name("nginx", "demo") == "nginx-x-demo-x-team-a"
    assert tr.host_cluster_name("fast") == "fast-x-team-a"


@pytest.mark.parametrize("limit", [63, 253])
def test_long_names_are_cut_hashed_and_valid(limit):
    name = "a" * 60 + "-b." + "c" * 200
    out = tr.host_name(name[: limit + 5], "ns", limit=limit)
    assert len(out) <= limit
    assert DNS_SUBDOMAIN.match(out)
    # deterministic, and distinct names give distinct results even with a shared prefix
    assert out == tr.host_name(name[: limit + 5], "ns", limit=limit)
    assert out != tr.host_name(name[: limit + 4], "ns", limit=limit)


def test_cut_never_leaves_a_dash_or_dot_before_the_hash():
    full = "x" * 52 + "-" + "y" * 20
    out = fit_name(full, 63)
    assert len(out) <= 63 and "--" not in out and DNS_SUBDOMAIN.match(out)
    out = fit_name("a" * 52 + "." + "b" * 30, 63)
    assert ".-" not in out and DNS_SUBDOMAIN.match(out)


def test_host_metadata_marks_the_owner_and_points_back():
    vobj = {"metadata": {"name": "web", "namespace": "demo", "uid": "u-1",
                         "labels": {"app": "web", "vkube.io/managed-by": "evil"},
                         "annotations": {"note": "x", "vkube.io/object-name": "spoof"}}}
    meta = tr.host_metadata(vobj)
    assert meta["name"] == "web-x-demo-x-team-a"
    assert meta["namespace"] == "vkube-team-a"
    assert meta["labels"] == {"app": "web", LABEL_MANAGED_BY: "team-a", LABEL_NAMESPACE: "demo"}
    assert meta["annotations"] == {"note": "x", ANN_NAME: "web", ANN_NAMESPACE: "demo",
                                   ANN_UID: "u-1"}
    host = {"metadata": meta}
    assert tr.is_owned(host)
    assert tr.virtual_ref(host) == ("demo", "web")
    assert Translator("other", "vkube-other").virtual_ref(host) is None
    assert tr.virtual_ref({"metadata": {"name": "x", "annotations": {ANN_NAME: "y"}}}) is None


@pytest.mark.parametrize("key", ["app", "tier", "app.kubernetes.io/name", "a" * 63,
                                 "example.com/" + "b" * 63, "pod-template-hash"])
def test_label_keys_are_valid_and_reversible(key):
    hk = encode_label_key(key)
    assert LABEL_KEY.match(hk), hk
    assert decode_label_key(hk, {key: "v"}) == key
    assert encode_label_key(key, kind="n") != hk


def test_label_key_encoding_is_injective():
    keys = ["app", "App", "a/app", "b/app", "l-app", "lh-x", "x" * 61, "x" * 62, "x" * 63]
    encoded = {encode_label_key(k) for k in keys}
    assert len(encoded) == len(keys)
    assert encode_label_key("app") == "vkube.io/l-app"


def test_selector_translation_adds_owner_terms():
    sel = {"matchLabels": {"app": "web"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]}
    out = tr.translate_selector(sel, "demo")
    assert out == {
        "matchLabels": {"vkube.io/l-app": "web", LABEL_MANAGED_BY: "team-a",
                        LABEL_NAMESPACE: "demo"},
        "matchExpressions": [{"key": "vkube.io/l-tier", "operator": "In", "values": ["fe"]}],
    }
    assert tr.translate_selector_map({"app": "web"}, "demo") == {
        "vkube.io/l-app": "web", LABEL_MANAGED_BY: "team-a", LABEL_NAMESPACE: "demo"}
    assert tr.translate_selector_map({}, "demo") is None


def test_selected_pods_match_exactly():
    """A translated selector matches the translated labels of exactly the same pods."""
    pods = {"a": ("demo", {"app": "web"}), "b": ("other", {"app": "web"}),
            "c": ("demo", {"app": "db"}), "d": ("demo", {"app": "web", "x.io/t": "1"})}

    def host_labels(ns, labels):
        out = tr.translate_labels(labels)
        out.update(tr.owner_labels(ns))
        return out

    sel = tr.translate_selector_map({"app": "web"}, "demo")
    chosen = {n for n, (ns, lbl) in pods.items()
              if all(host_labels(ns, lbl).get(k) == v for k, v in sel.items())}
    assert chosen == {"a", "d"}


def test_namespace_labels_always_carry_the_name():
    out = tr.namespace_labels({"team": "x"}, "demo")
    assert out[encode_label_key("kubernetes.io/metadata.name", kind="n")] == "demo"
    assert out["vkube.io/n-team"] == "x"


def test_string_selector_translation():
    out = tr.translate_label_selector_string("app=web,tier in (a,b),!old", "demo")
    assert out.startswith("vkube.io/l-app=web,vkube.io/l-tier in (a,b),")
    assert "!vkube.io/l-old" in out and f"{LABEL_NAMESPACE}=demo" in out


def test_host_names_are_injective_whatever_the_separators():
    """Every pair of (namespace, name) a tenant can make gets its own host name: ``-x-`` in
    names and namespaces (a namespace holding it, or starting with ``x-``) cannot line two
    objects up, also when both names end in a hash."""
    pairs = [("a", "b-x-c-x-d"), ("a-x-b", "c-x-d"), ("a-x-b-x-c", "d"), ("a", "x-b"),
             ("a-x", "b"), ("a-x-x", "b"), ("s", "n-x-m"), ("s-x-n", "m"), ("s-x-n-x-m", "x")]
    for limit in (63, 253):
        names = {tr.host_name(n, ns, limit=limit) for n, ns in pairs}
        assert len(names) == len(pairs), limit
        tokens = {tr.token_secret_name(ns, n) for n, ns in pairs}
        assert len(tokens) == len(pairs)
    assert tr.host_name("a", "b-x-c-x-d") != tr.host_name("a-x-b", "c-x-d")


def test_token_secret_names_never_meet_translated_names():
    """The token Secret of ``ns/sa`` ends in ``-token``: no translated virtual object's name
    (ending ``-x-VC`` or in a hash) is ever one, and it stays a valid name when cut."""
    assert tr.token_secret_name("m", "s-x-n") == "s-x-n-x-m-x-team-a-token"
    assert tr.token_secret_name("n-x-m", "s") != tr.token_secret_name("m", "s-x-n")
    long = tr.token_secret_name("ns", "s" * 253)
    assert len(long) <= 253 and long.endswith("-token") and DNS_SUBDOMAIN.match(long)
    assert tr.host_name("s-x-n-x-m-x-team-a-token", "ns") != tr.token_secret_name("m", "s-x-n")


def test_cluster_scoped_names_differ_across_virtual_clusters():
    """Host cluster-scoped objects are shared by every virtual cluster of the host: ``a-x-b``
    of ``c`` and ``a`` of ``b-x-c`` (or ``a-x`` of ``c`` and ``a`` of ``x-c``) differ."""
    c, bxc, xc = Translator("c", "h"), Translator("b-x-c", "h"), Translator("x-c", "h")
    assert c.host_cluster_name("a-x-b") != bxc.host_cluster_name("a")
    assert c.host_cluster_name("a-x") != xc.host_cluster_name("a")
    assert bxc.host_cluster_name("a") == "a-x-b-x-c"
    for t in (c, bxc, xc):
        assert DNS_SUBDOMAIN.match(t.host_cluster_name("a-x-b"))


def test_cluster_scoped_names_cannot_be_squatted_with_crafted_cluster_names():
    """A tenant picking its cluster's name (``b-x-c-HASH``) and an object name cannot make the
    host name of another cluster's object: readable names (``NAME-x-VC``) read back as one
    (name, cluster) pair, every other name holds no ``-x-`` at all and ends in an 80-bit
    digest of the pair — whatever the limit, names and clusters made of the separator's
    letters included."""
    import itertools

    victim = Translator("c", "h").host_cluster_name("a-x-b")
    assert "-x-" not in victim and victim.startswith("a-")
    squat = victim.removeprefix("a-x-") if victim.startswith("a-x-") else "b-x-" + victim
    assert Translator(squat[:63], "h").host_cluster_name("a") != victim
    # a name cut at the limit is opaque too: no readable name of another cluster is it
    long = "n" * 250
    cut = Translator("c", "h").host_cluster_name(long)
    assert "-x-" not in cut and len(cut) <= 253
    letters = ["a", "x", "a-x", "x-a", "a-x-a", "a-x-x", "x-x", "a-xa", "ax", "a-x-b-x-c"]
    pairs = list(itertools.product(letters, letters))
    for limit in (253, 63, 24):
        names = {Translator(vc, "h").host_cluster_name(n, limit=limit) for n, vc in pairs}
        assert len(names) == len(pairs), limit
        for n, vc in pairs:
            out = Translator(vc, "h").host_cluster_name(n, limit=limit)
            assert len(out) <= limit and DNS_SUBDOMAIN.match(out), (n, vc, out)
            if "-x-" in out:  # readable: the first separator splits it back
                assert out.split("-x-", 1) == [n, vc]


def test_owns_checks_the_exact_virtual_object():
    meta = tr.host_metadata({"metadata": {"name": "web", "namespace": "demo", "uid": "u"}})
    hobj = {"metadata": meta}
    assert tr.owns(hobj, "demo", "web")
    assert not tr.owns(hobj, "demo", "other") and not tr.owns(hobj, "other", "web")
    assert not Translator("team-b", "h").owns(hobj, "demo", "web")
    cmeta = tr.host_metadata({"metadata": {"name": "fast"}})
    assert tr.owns({"metadata": cmeta}, None, "fast")

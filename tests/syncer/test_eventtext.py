"""``virtual_text``: every host word a host component may write in an event message, made
virtual; whole tokens only, each once (a replacement is not rewritten again)."""

from __future__ import annotations

import pytest

from vkube.syncer.eventtext import virtual_text
from vkube.syncer.translate import Translator

TR = Translator(vc="team-1", host_namespace="vkube-team-1")
HPOD, HUID, VUID = "crash-x-default-x-team-1", "393005a2-1111-4222-8333-444455556666", "c517aa00-1111-4222-8333-444455556666"
KNOWN = {HPOD: "crash", HUID: VUID}


@pytest.mark.parametrize(("host", "virtual"), [
    (f"Back-off restarting failed container crash in pod {HPOD}_vkube-team-1({HUID})",
     f"Back-off restarting failed container crash in pod crash_default({VUID})"),
    (f"Successfully assigned vkube-team-1/{HPOD} to node-1", "Successfully assigned default/crash to node-1"),
    ('MountVolume.SetUp failed for volume "cfg" : configmap "cfg-x-default-x-team-1" not found',
     'MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found'),
    ('storageclass.storage.k8s.io "fast-x-team-1" not found', 'storageclass.storage.k8s.io "fast" not found'),
    ("pod a-x-b-x-c-x-team-1 in vkube-team-1.", "pod a-x-b in default."),  # names may hold -x-
    # not this cluster's, not whole tokens: untouched
    ("x-vkube-team-1 vkube-team-12 web-x-default-x-team-10 crash-x-default-x-team-1-token",
     "x-vkube-team-1 vkube-team-12 web-x-default-x-team-10 crash-x-default-x-team-1-token"),
    ("Stopping container crash", "Stopping container crash"),
])
def test_host_words_become_virtual(host: str, virtual: str) -> None:
    assert virtual_text(host, TR, "default", KNOWN) == virtual


def test_a_hashed_host_name_known_to_the_caller() -> None:
    hashed = "very-long-name-x-default-x-team-1-0123456789"
    assert virtual_text(f"Created pod {hashed}", TR, "default", {hashed: "very-long-name"}) == \
        "Created pod very-long-name"


def test_token_scan_agrees_with_one_pattern() -> None:
    """The token scan (no pattern per message) replaces exactly what one compiled pattern of
    every word would: random messages built of this cluster's and others' words, dots,
    dashes and punctuation."""
    import random

    from vkube.syncer.eventtext import _virtual_text_compiled

    words = [HPOD, HUID, "vkube-team-1", "vkube-team-12", "cfg-x-default-x-team-1",
             "fast-x-team-1", "a-x-b-x-c-x-team-1", "web-x-default-x-team-10", "crash", "x",
             "team-1", "-x-", "Node.v1", "pod", "1.2", "a.b-x-ns-x-team-1", "UPPER-x-team-1"]
    seps = [" ", ".", "-", "/", "_", "(", ")", '"', ":", ", ", "", "\n"]
    rnd = random.Random(19)
    exact = {**KNOWN, "vkube-team-1": "default"}
    for _ in range(3000):
        text = "".join(rnd.choice(words) + rnd.choice(seps) for _ in range(rnd.randint(1, 8)))
        assert virtual_text(text, TR, "default", KNOWN) == _virtual_text_compiled(text, TR, exact), text

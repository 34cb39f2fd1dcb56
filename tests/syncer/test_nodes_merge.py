"""Three-way merge of node labels and taints: tenant edits survive host updates."""

from vkube.syncer.nodes import merge_taints, merge_three_way


def test_host_changes_flow_in_and_tenant_edits_stay():
    last = {"zone": "a", "disk": "hdd", "gone": "x"}
    current = {"zone": "a", "disk": "ssd", "gone": "x", "mine": "1"}  # tenant: disk, mine
    host = {"zone": "b", "disk": "hdd", "new": "y"}
    assert merge_three_way(current, host, last) == {"zone": "b", "disk": "ssd", "new": "y",
                                                    "mine": "1"}


def test_tenant_removal_of_a_label_is_reapplied_only_when_host_changes_it():
    last = {"zone": "a"}
    assert merge_three_way({}, {"zone": "a"}, last) == {"zone": "a"}


def test_taints_merge_by_key_and_effect():
    t = lambda k, v="", e="NoSchedule": {"key": k, "value": v, "effect": e}  # noqa: E731
    last = [t("a"), t("b", "1")]
    current = [t("a"), t("b", "2"), t("mine")]
    host = [t("b", "1"), t("c")]
    out = merge_taints(current, host, last)
    assert out == [t("b", "2"), t("c"), t("mine")]

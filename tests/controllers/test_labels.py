from vkube.controllers import labels


def test_selector_forms() -> None:
    lab = {"app": "web", "tier": "fe"}
    assert labels.matches(None, lab)
    assert labels.matches({"app": "web"}, lab)
    assert not labels.matches({"app": "db"}, lab)
    sel = {"matchLabels": {"app": "web"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                {"key": "gone", "operator": "DoesNotExist"}]}
    assert labels.matches(sel, lab)
    assert not labels.matches({"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                                     "values": ["fe"]}]}, lab)
    assert labels.matches({}, lab)
    s = labels.to_string(sel)
    assert s == "app=web,!gone,tier in (be,fe)"  # requirements sorted by key, as Kubernetes prints them
    assert labels.matches(s, lab) and not labels.matches(s, {"app": "web"})
    assert labels.matches("app,tier notin (x), app!=db", lab)

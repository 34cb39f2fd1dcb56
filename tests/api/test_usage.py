"""The embedded host's simulated usage model (``vkube.api.usage``)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from vkube.api.usage import UsageError, container_usage, pod_usage


def pod(annotations: dict | None = None, **requests: str) -> dict:
    return {"metadata": {"name": "p", "annotations": annotations or {}},
            "spec": {"containers": [{"name": n, "resources": {"requests": {"cpu": v, "memory": "100Mi"}}}
                                    for n, v in requests.items()]}}


def test_default_is_a_tenth_of_the_request_or_a_floor():
    assert container_usage(pod(app="500m"), "cpu") == {"app": Fraction(1, 20)}
    bare = {"metadata": {}, "spec": {"containers": [{"name": "x"}]}}
    assert container_usage(bare, "cpu") == {"x": Fraction(1, 1000)}
    assert container_usage(bare, "memory") == {"x": 4 * 1024 * 1024}


def test_pod_wide_usage_is_split_by_requests():
    usage = container_usage(pod({"vkube.io/cpu-usage": "400m"}, app="300m", log="100m"), "cpu")
    assert usage == {"app": Fraction(3, 10), "log": Fraction(1, 10)}


def test_per_container_and_percentages():
    p = pod({"vkube.io/cpu-usage": "app=80%,log=5m"}, app="500m", log="100m")
    assert container_usage(p, "cpu") == {"app": Fraction(2, 5), "log": Fraction(1, 200)}
    p = pod({"vkube.io/memory-usage": "50%"}, app="1")
    assert container_usage(p, "memory") == {"app": 50 * 1024 * 1024}


def test_metrics_server_units():
    assert pod_usage(pod({"vkube.io/cpu-usage": "250m"}, app="1")) == [
        {"name": "app", "usage": {"cpu": "250000000n", "memory": "10240Ki"}}]


@pytest.mark.parametrize("value, message", [
    ("lots", "vkube.io/cpu-usage: 'lots' is not a quantity (e.g. 250m, 1Gi, 80%)"),
    ("-1", "vkube.io/cpu-usage: '-1' must not be negative"),
    ("app", "vkube.io/cpu-usage: 'app' is not a quantity (e.g. 250m, 1Gi, 80%)"),
    ("app=1,=2", "vkube.io/cpu-usage: '=2' is not NAME=QUANTITY"),
    ("x%", "vkube.io/cpu-usage: 'x%' is not a percentage"),
])
def test_bad_annotations_name_the_annotation(value, message):
    with pytest.raises(UsageError) as exc:
        container_usage(pod({"vkube.io/cpu-usage": value}, app="1"), "cpu")
    assert str(exc.value) == message

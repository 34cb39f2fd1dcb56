import pytest

from vkube.api import errors
from vkube.api.ipalloc import (NodePortAllocator, ServiceIPAllocator, ips_in_use,
                                       node_ports_in_use)


def test_cluster_ip_allocation_is_collision_free_and_reserves_first() -> None:
    a = ServiceIPAllocator("10.0.0.0/29", seed=1)  # usable .1-.6; .1 reserved for kubernetes
    assert a.kubernetes_ip == "10.0.0.1"
    used: set[str] = set()
    for _ in range(5):
        used.add(a.allocate(used))
    assert used == {f"10.0.0.{i}" for i in range(2, 7)}
    with pytest.raises(errors.InternalError):
        a.allocate(used)
    assert a.allocate(used, "10.0.0.1") == "10.0.0.1"
    with pytest.raises(errors.Invalid) as ei:
        a.allocate(used, "10.0.0.3")
    assert "already allocated" in ei.value.message
    assert ei.value.causes[0]["field"] == "spec.clusterIPs"
    with pytest.raises(errors.Invalid):
        a.allocate(set(), "10.1.0.3")
    with pytest.raises(errors.Invalid):
        a.allocate(set(), "not-an-ip")


def test_default_range_and_restart_reads_existing() -> None:
    a = ServiceIPAllocator()
    assert a.kubernetes_ip == "10.96.0.1"
    svcs = [{"spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"]}},
            {"spec": {"clusterIP": "None"}}, {"spec": {"clusterIPs": ["10.100.3.4"]}}]
    used = ips_in_use(svcs)
    assert used == {"10.96.0.1", "10.100.3.4"}
    ip = a.allocate(used)
    assert a.contains(ip) and ip not in used


def test_node_ports() -> None:
    a = NodePortAllocator("30000-30002", seed=3)
    used: set[int] = set()
    for _ in range(3):
        used.add(a.allocate(used))
    assert used == {30000, 30001, 30002}
    with pytest.raises(errors.InternalError):
        a.allocate(used)
    with pytest.raises(errors.Invalid):
        a.allocate(set(), 29999)
    with pytest.raises(errors.Invalid):
        a.allocate({30001}, 30001)
    assert node_ports_in_use([{"spec": {"ports": [{"nodePort": 30005}, {"port": 80}],
                                        "healthCheckNodePort": 30006}}]) == {30005, 30006}


def test_pdb_scaled_values_round_up() -> None:
    from vkube.controllers.pdb import scaled
    assert scaled("50%", 3) == 2 and scaled("10%", 10) == 1 and scaled(2, 10) == 2


def test_service_ip_families_dual_stack() -> None:
    import ipaddress

    import pytest

    from vkube.api import errors
    from vkube.api.ipalloc import ServiceIPFamilies

    dual = ServiceIPFamilies("10.96.0.0/12,fd00:10:96::/112", seed=1)
    spec = {"ipFamilyPolicy": "RequireDualStack"}
    dual.allocate(spec, set())
    assert spec["ipFamilies"] == ["IPv4", "IPv6"] and spec["clusterIP"] == spec["clusterIPs"][0]
    assert [ipaddress.ip_address(i).version for i in spec["clusterIPs"]] == [4, 6]
    six = {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6"]}
    dual.allocate(six, set())
    assert six["ipFamilies"] == ["IPv6", "IPv4"]
    one = {"ipFamilies": ["IPv6"]}
    dual.allocate(one, set())
    assert one["ipFamilyPolicy"] == "SingleStack" and len(one["clusterIPs"]) == 1
    asked = {"clusterIPs": ["fd00:10:96::99"]}
    dual.allocate(asked, set())
    assert asked["clusterIP"] == "fd00:10:96::99" and asked["ipFamilies"] == ["IPv6"]
    with pytest.raises(errors.Invalid) as e:
        dual.allocate({"ipFamilies": ["IPv4"], "clusterIPs": ["fd00:10:96::5"]}, set())
    assert e.value.causes[0]["field"] == "spec.clusterIPs[0]"

    v4 = ServiceIPFamilies("10.96.0.0/12")
    prefer = {"ipFamilyPolicy": "PreferDualStack"}
    v4.allocate(prefer, set())
    assert prefer["ipFamilies"] == ["IPv4"] and len(prefer["clusterIPs"]) == 1
    with pytest.raises(errors.Invalid) as e:
        v4.allocate({"ipFamilyPolicy": "RequireDualStack"}, set())
    assert e.value.causes[0]["field"] == "spec.ipFamilyPolicy"
    with pytest.raises(errors.Invalid) as e:
        v4.allocate({"ipFamilies": ["IPv6"]}, set())
    assert e.value.causes[0]["field"] == "spec.ipFamilies[0]"
    assert "not configured on this cluster" in e.value.causes[0]["message"]
    with pytest.raises(ValueError):
        ServiceIPFamilies("10.96.0.0/12,10.100.0.0/16")


def test_service_ip_families_refuse_duplicates() -> None:
    import pytest

    from vkube.api import errors
    from vkube.api.ipalloc import ServiceIPFamilies

    dual = ServiceIPFamilies("10.96.0.0/12,fd00:10:96::/112", seed=1)
    for spec, field in (({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv6"]},
                         "spec.ipFamilies[1]"),
                        ({"ipFamilyPolicy": "RequireDualStack", "clusterIPs": ["10.96.0.9", "10.96.0.10"]},
                         "spec.clusterIPs"),
                        ({"clusterIPs": ["10.96.0.9", "fd00:10:96::9"]}, "spec.clusterIPs[1]")):
        with pytest.raises(errors.Invalid) as e:
            dual.allocate(spec, set())
        assert e.value.causes[0]["field"] == field, (spec, e.value.causes)

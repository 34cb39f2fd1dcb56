"""`vkube delete` of a cluster on PostgreSQL or etcd says the store's data was left (it is the
user's database) and how to remove it; a cluster on its own SQLite or in the shared server
has nothing left to say."""

from __future__ import annotations

from vkube.cli.ops import store_left_behind
from vkube.cli.state import ClusterState


def _st(store: str, **kw: object) -> ClusterState:
    values = {"enableHA": True, "replicas": 3, "controlPlane": {"store": store}} if store else {}
    return ClusterState(name="ha", namespace="vkube-ha", host_kubeconfig="k", values=values, **kw)


def test_postgres_note_names_the_tables_and_hides_the_password():
    note = store_left_behind(_st("postgres://vk:s3cret@127.0.0.1:5432/vkube"))
    assert note is not None and "s3cret" not in note
    assert "ha's objects are still in the store postgres://vk@127.0.0.1:5432/vkube" in note
    assert note.endswith("psql 'postgres://vk@127.0.0.1:5432/vkube' -c 'DROP TABLE kv, meta'")
    assert "\n" not in note


def test_etcd_note_names_the_key_prefix():
    note = store_left_behind(_st("etcd://127.0.0.1:2379,127.0.0.1:22379/team-a"))
    assert note is not None and "keys under '/team-a/'" in note
    assert note.endswith("etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379 del --prefix "
                         "'/team-a/'")
    bare = store_left_behind(_st("etcd://127.0.0.1:2379"))
    assert bare is not None and bare.endswith("del --prefix '/'")


def test_nothing_to_say_for_sqlite_and_shared():
    assert store_left_behind(_st("")) is None
    assert store_left_behind(_st("sqlite")) is None
    shared = ClusterState(name="s", namespace="vkube-s", host_kubeconfig="k",
                          values={"controlPlane": {"mode": "shared"}})
    assert store_left_behind(shared) is None


def test_create_refuses_a_store_another_cluster_uses(tmp_path):
    """Two clusters on one database (or etcd prefix) would see each other's objects and both
    sync them to the host: ``vkube create`` refuses before starting anything, naming the
    owner; another database or prefix is fine."""
    import json

    from tests.cli.conftest import make_user

    u = make_user(tmp_path)
    owner = _st("etcd://127.0.0.1:1/team-a")
    d = u.home / "clusters" / "ha"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"name": "ha", "namespace": "vkube-ha",
                                              "hostKubeconfig": "k", "values": owner.values}))
    for store in ("etcd://127.0.0.1:1/team-a", "etcd://127.0.0.1:1/team-a/"):
        values = tmp_path / "v.yaml"
        values.write_text(json.dumps({"controlPlane": {"store": store}}))
        r = u.vkube("create", "e1", "-f", str(values), check=False)
        assert r.returncode == 1, r.stderr
        assert r.stderr.startswith("error: controlPlane.store etcd://127.0.0.1:1/team-a is "
                                   "already the store of virtual cluster 'ha'"), r.stderr
        assert not (u.home / "clusters" / "e1").exists()

"""The node address in k3s's datastore: kine rows (JSON, Kubernetes protobuf, deletions) and etcd member URLs."""

from __future__ import annotations

import sqlite3

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import (
    datastore_kind,
    etcd_member_ips,
    sqlite_node_ips,
)
from k3s_files import kine_db, node_json, node_protobuf_like


def test_sqlite_node_record_json_protobuf_and_deletion(tmp_path):
    db = tmp_path / "state.db"
    kine_db(
        str(db),
        [
            ("/registry/minions/node1", node_json("172.17.0.3"), 0),
            ("/registry/minions/node1", node_protobuf_like("172.17.0.9"), 0),
            ("/registry/minions/gone", node_json("172.17.0.50"), 0),
            ("/registry/minions/gone", b"", 1),
            ("/registry/namespaces/default", node_json("1.1.1.1"), 0),
        ],
    )
    assert sqlite_node_ips(str(db), "node1") == (["172.17.0.9"], None)
    # Unknown name: every live node (the deleted one is gone).
    assert sqlite_node_ips(str(db), "other") == (["172.17.0.9"], None)


def test_sqlite_without_kine_table_is_an_error_message(tmp_path):
    db = tmp_path / "state.db"
    sqlite3.connect(str(db)).close()
    ips, error = sqlite_node_ips(str(db), "node1")
    assert ips == [] and "cannot read node records" in error


def test_etcd_member_urls(tmp_path):
    (tmp_path / "config").write_text(
        '{"initial-advertise-peer-urls":"https://172.17.0.3:2380",'
        '"listen-peer-urls":"https://127.0.0.1:2380,https://172.17.0.3:2380"}'
    )
    assert etcd_member_ips(str(tmp_path)) == (["172.17.0.3"], None)


def test_datastore_kind_from_the_etcd_directory_or_cluster_init(tmp_path):
    assert datastore_kind(str(tmp_path), {}) == "sqlite"
    assert datastore_kind(str(tmp_path), {}, installed=False) is None
    assert datastore_kind(str(tmp_path), {"cluster-init": True}) == "etcd"
    assert datastore_kind(str(tmp_path), {"cluster-init": "false"}) == "sqlite"
    (tmp_path / "server" / "db" / "etcd").mkdir(parents=True)
    assert datastore_kind(str(tmp_path), {}) == "etcd"

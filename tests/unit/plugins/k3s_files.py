"""Files a k3s server leaves on disk, built for tests: serving certificates (from the shared test
CA, waitlib_tls), a kine SQLite table with node rows as JSON or Kubernetes protobuf, and
kubeconfigs."""

import base64
import json
import sqlite3


def serving_cert(ca, ips):
    """A k3s-like serving certificate (kube-apiserver) with these IP SANs."""
    return ca.issue("kube-apiserver", ips=ips, dns=("kubernetes", "localhost"))[0]


def kine_db(path, rows):
    """A kine table as k3s's SQLite datastore holds it; rows = [(name, value_bytes, deleted)]."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER,"
        " create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)"
    )
    for name, value, deleted in rows:
        conn.execute(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
            " VALUES (?, 0, ?, 0, 0, 0, ?, NULL)",
            (name, deleted, value),
        )
    conn.commit()
    conn.close()


def node_json(ip):
    return json.dumps(
        {
            "kind": "Node",
            "metadata": {"name": "node1", "annotations": {"k3s.io/internal-ip": ip}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "node1"}]},
        }
    ).encode()


def node_protobuf_like(ip):
    """The bytes Kubernetes protobuf puts around a NodeAddress: length-prefixed type then address."""
    return b"k8s\x00\n\x0c\n\x02v1\x12\x04Node" + b"\n\nInternalIP\x12" + bytes([len(ip)]) + ip.encode() + b"\x1a\x00"


def kubeconfig(server, ca_pem, token="secret-token"):
    ca = base64.b64encode(ca_pem).decode()
    return (
        f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n"
        f"    server: {server}\n  name: default\ncontexts:\n- context: {{cluster: default, user: default}}\n"
        f"  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    token: {token}\n"
    )

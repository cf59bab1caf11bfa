"""The stand-in's nodes in kine as Kubernetes protobuf (kine #36): the `k8s\\x00` envelope, a
round trip of the fields the stand-in keeps, and the collection's drift reader finding the
InternalIP in the bytes (module_utils/k3s/datastore.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "standins" / "k3s"))
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import (  # noqa: E402
    ips_from_node_record,
)
from k3s_standin.protobuf import decode_node, encode_node  # noqa: E402

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "box",
        "uid": "0b9f3c1e-1111-4222-8333-944455556666",
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "labels": {"kubernetes.io/hostname": "box", "node-role.kubernetes.io/control-plane": "true"},
        "annotations": {"k3s.io/internal-ip": "10.77.0.5"},
    },
    "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": "k3s://box"},
    "status": {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "lastHeartbeatTime": "2026-01-02T03:04:35Z",
                "lastTransitionTime": "2026-01-02T03:04:35Z",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        ],
        "addresses": [{"type": "InternalIP", "address": "10.77.0.5"}, {"type": "Hostname", "address": "box"}],
        "nodeInfo": {"kubeletVersion": "v1.32.11+k3s1", "architecture": "amd64"},
    },
}


def test_node_round_trips_through_the_k8s_envelope():
    blob = encode_node(NODE)
    # magic, then runtime.Unknown field 1 (TypeMeta: apiVersion v1, kind Node)
    assert blob.startswith(b"k8s\x00\n\n\n\x02v1\x12\x04Node\x12")
    assert decode_node(blob) == NODE


def test_drift_reader_finds_the_internal_ip_in_the_protobuf():
    moved = dict(NODE, metadata=dict(NODE["metadata"], annotations={}))
    assert ips_from_node_record(encode_node(moved)) == ["10.77.0.5"]

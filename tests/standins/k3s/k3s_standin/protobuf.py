"""k3s stand-in: Kubernetes protobuf for node objects in kine (see the package docstring).

kine stores core objects the way the apiserver encodes them: the magic `k8s\\x00`, then a
runtime.Unknown message (typeMeta, raw) whose raw is the object's protobuf (kine #36;
../shared/facts/k3s-and-vpn.md). Field numbers are those of k8s.io/api/core/v1/generated.proto
and apimachinery's meta/v1 and runtime generated.proto. Encoded here: ObjectMeta name, uid,
creationTimestamp, labels, annotations; NodeSpec podCIDR, providerID, podCIDRs; NodeStatus
conditions, addresses, nodeInfo. Other fields of a node are not kept.
"""

from __future__ import annotations

import datetime

MAGIC = b"k8s\x00"
META = {"name": 1, "uid": 5, "creationTimestamp": 8, "labels": 11, "annotations": 12}
SPEC = {"podCIDR": 1, "providerID": 3, "podCIDRs": 7}
STATUS = {"conditions": 4, "addresses": 5, "nodeInfo": 7}
CONDITION = {"type": 1, "status": 2, "lastHeartbeatTime": 3, "lastTransitionTime": 4, "reason": 5, "message": 6}
ADDRESS = {"type": 1, "address": 2}
NODE_INFO = {
    "machineID": 1,
    "systemUUID": 2,
    "bootID": 3,
    "kernelVersion": 4,
    "osImage": 5,
    "containerRuntimeVersion": 6,
    "kubeletVersion": 7,
    "kubeProxyVersion": 8,
    "operatingSystem": 9,
    "architecture": 10,
}
TIMES = ("creationTimestamp", "lastHeartbeatTime", "lastTransitionTime")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _time(text: str) -> bytes:
    stamp = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return _varint(1 << 3) + _varint(int(stamp.timestamp()))


def _message(obj: dict, numbers: dict) -> bytes:
    out = b""
    for key, number in numbers.items():
        value = obj.get(key)
        if value is None:
            continue
        if key in TIMES:
            out += _field(number, _time(value))
        elif isinstance(value, dict):  # map<string,string>: repeated entries {key=1, value=2}
            for k in sorted(value):
                out += _field(number, _field(1, k.encode()) + _field(2, str(value[k]).encode()))
        elif isinstance(value, list):
            for item in value:
                out += _field(number, item.encode() if isinstance(item, str) else b"")
        else:
            out += _field(number, str(value).encode())
    return out


def encode_node(node: dict) -> bytes:
    status = node.get("status", {})
    body = (
        _field(1, _message(node.get("metadata", {}), META))
        + _field(2, _message(node.get("spec", {}), SPEC))
        + _field(
            3,
            b"".join(_field(4, _message(c, CONDITION)) for c in status.get("conditions", []))
            + b"".join(_field(5, _message(a, ADDRESS)) for a in status.get("addresses", []))
            + (_field(7, _message(status["nodeInfo"], NODE_INFO)) if "nodeInfo" in status else b""),
        )
    )
    type_meta = _field(1, b"v1") + _field(2, b"Node")
    return MAGIC + _field(1, type_meta) + _field(2, body)


def _fields(data: bytes):
    """(number, value) of a message: varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unexpected wire type {wire}")
        yield number, value


def _read_varint(data: bytes, pos: int):
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _decode(data: bytes, numbers: dict, lists=(), maps=()) -> dict:
    names = {v: k for k, v in numbers.items()}
    out: dict = {}
    for number, value in _fields(data):
        key = names.get(number)
        if key is None:
            continue
        if key in TIMES:
            seconds = dict(_fields(value)).get(1, 0)
            out[key] = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif key in maps:
            entry = dict(_fields(value))
            out.setdefault(key, {})[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
        elif key in lists:
            out.setdefault(key, []).append(value.decode())
        else:
            out[key] = value.decode()
    return out


def decode_node(blob: bytes) -> dict:
    if not blob.startswith(MAGIC):
        raise ValueError("not Kubernetes protobuf (no k8s\\x00 prefix)")
    unknown = dict(_fields(blob[len(MAGIC) :]))
    node: dict = {"apiVersion": "v1", "kind": "Node", "metadata": {}, "spec": {}, "status": {}}
    for number, value in _fields(unknown[2]):
        if number == 1:
            node["metadata"] = _decode(value, META, maps=("labels", "annotations"))
        elif number == 2:
            node["spec"] = _decode(value, SPEC, lists=("podCIDRs",))
        elif number == 3:
            status = node["status"]
            for sub, payload in _fields(value):
                if sub == 4:
                    status.setdefault("conditions", []).append(_decode(payload, CONDITION))
                elif sub == 5:
                    status.setdefault("addresses", []).append(_decode(payload, ADDRESS))
                elif sub == 7:
                    status["nodeInfo"] = _decode(payload, NODE_INFO)
    return node

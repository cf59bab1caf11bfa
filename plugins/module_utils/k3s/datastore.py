# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The node address k3s recorded in its datastore: the kine node row (SQLite; JSON or Kubernetes
protobuf, kine #36) or the embedded etcd member URLs (read-only)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import sqlite3

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import is_ip, scalar
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import bounded_argv


def datastore_kind(data_dir, config, installed=True):
    """``etcd`` when server/db/etcd exists or config.yaml asks for ``cluster-init``, ``sqlite`` for
    an installed server otherwise, else None. The one judgement of which datastore k3s runs."""
    cluster_init = str(scalar(config.get("cluster-init")) or "").lower() in ("true", "yes", "1")
    if os.path.isdir(os.path.join(data_dir, "server", "db", "etcd")) or cluster_init:
        return "etcd"
    return "sqlite" if installed else None


IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


def ips_from_node_record(blob):
    """InternalIP addresses in a node object, stored as JSON or as Kubernetes protobuf.

    Protobuf NodeAddress is `type` then `address` as length-prefixed strings, so the address
    follows "InternalIP" within a few bytes; JSON may order the keys either way. The
    `k3s.io/internal-ip` annotation is not read: k3s patches it at every start
    (pkg/agent/run.go), so it shows the configured address even while the InternalIP the cluster
    uses is stale (k3s #12844); reading both hid that drift.
    """
    if isinstance(blob, bytes):
        text = blob.decode("latin-1")
    else:
        text = str(blob)
    found = []
    patterns = (
        r"InternalIP[\"']?.{0,24}?(?:address[\"']?\s*:\s*[\"']?)?(\d{1,3}(?:\.\d{1,3}){3})",
        r"address[\"']?\s*:\s*[\"'](\d{1,3}(?:\.\d{1,3}){3})[\"']\s*,\s*[\"']type[\"']\s*:\s*[\"']InternalIP",
    )
    for pattern in patterns:
        for match in re.finditer(pattern, text, re.S):
            ip = match.group(1)
            if is_ip(ip) and ip not in found:
                found.append(ip)
    return found


def kine_rows(db_path, query, what):
    """(rows, error) of ``query`` on a kine datastore opened read-only; ``what`` names the rows in
    the error."""
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=2)
    except sqlite3.Error as exc:
        return [], "cannot open %s: %s" % (db_path, exc)
    try:
        return conn.execute(query).fetchall(), None
    except sqlite3.Error as exc:
        return [], "cannot read %s from %s: %s" % (what, db_path, exc)
    finally:
        conn.close()


def sqlite_nodes(db_path):
    """({node name: [InternalIP]}, error) from the newest kine row of each node."""
    if not os.path.isfile(db_path):
        return {}, None
    rows, error = kine_rows(
        db_path,
        "SELECT name, value, deleted FROM kine WHERE name LIKE '/registry/minions/%' ORDER BY id",
        "node records",
    )
    if error:
        return {}, error
    latest = {}
    for name, value, deleted in rows:
        # kine appends a row per revision; the newest decides, and a deletion removes the node.
        if deleted:
            latest.pop(name, None)
        else:
            latest[name] = value
    prefix = "/registry/minions/"
    return dict((name[len(prefix) :], ips_from_node_record(value or b"")) for name, value in latest.items()), None


def registry_resource(name):
    """The resource a kine key belongs to: ``pods`` for /registry/pods/<ns>/<name>, and
    ``<group>/<resource>`` for the keys stored under an API group (CRDs, APIServices, custom
    resources: /registry/k3s.cattle.io/addons/<ns>/<name>). None for a key that is no object
    (/registry/health)."""
    parts = name.split("/")
    if len(parts) < 4 or parts[:2] != ["", "registry"] or not parts[2]:
        return None
    if "." in parts[2]:
        return "%s/%s" % (parts[2], parts[3]) if len(parts) > 4 and parts[3] else None
    return parts[2]


def sqlite_object_counts(db_path):
    """({resource: live objects}, error) in a kine datastore: the newest row of each /registry key,
    counted unless it is a deletion (what the datastore holds, not its history)."""
    if not os.path.isfile(db_path):
        return {}, "no datastore at %s" % db_path
    rows, error = kine_rows(
        db_path,
        "SELECT k.name, k.deleted FROM kine k JOIN (SELECT MAX(id) AS id FROM kine WHERE name LIKE '/registry/%' "
        "GROUP BY name) newest ON k.id = newest.id",
        "the objects",
    )
    if error:
        return {}, error
    counts = {}
    for name, deleted in rows:
        resource = registry_resource(name)
        if resource and not deleted:
            counts[resource] = counts.get(resource, 0) + 1
    return counts, None


def api_node_names(runner, k3s_binary, kubeconfig):
    """(node names, error) as the API lists them: embedded etcd's bbolt file cannot be read
    while k3s holds it, so with etcd the nodes are only known while k3s serves. ``runner``:
    run_command and get_bin_path (an AnsibleModule, host.LocalRunner)."""
    argv = bounded_argv(runner.get_bin_path, 10, k3s_binary, "kubectl", "--kubeconfig", kubeconfig, "get", "nodes",
                        "-o", "name")  # fmt: skip
    rc, out, err = runner.run_command(argv)
    if rc != 0:
        return [], "cannot list the nodes through the API (%s): %s" % (" ".join(argv[2:]), (err or out).strip()[-300:])
    return sorted(line.split("/", 1)[-1] for line in out.split() if line.strip()), None


def sqlite_node_ips(db_path, node_name):
    """(ips, error): the InternalIPs of the node (or of every node if the name is absent)."""
    nodes, error = sqlite_nodes(db_path)
    values = [nodes[node_name]] if node_name in nodes else list(nodes.values())
    ips = []
    for value in values:
        for ip in value:
            if ip not in ips:
                ips.append(ip)
    return ips, error


def etcd_member_ips(etcd_dir):
    """Non-loopback IPs in the URLs k3s writes to server/db/etcd/config at every start (its own
    listen and advertise URLs from the current node-ip). Not the member list inside etcd's data:
    during the "not a member" hang this file already shows the new address, and only the journal
    names the old peer URL (unit.py ``etcd_member_mismatch``)."""
    path = os.path.join(etcd_dir, "config")
    if not os.path.isfile(path):
        return [], None
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        return [], "cannot read %s: %s" % (path, exc)
    ips = []
    keys = (
        "initial-advertise-peer-urls",
        "advertise-client-urls",
        "listen-peer-urls",
        "listen-client-urls",
        "initial-cluster",
    )
    for key in keys:
        for match in re.finditer(r"[\"']?%s[\"']?\s*:\s*[\"']?([^\n\"']*)" % re.escape(key), text):
            for ip in IPV4.findall(match.group(1)):
                if not ipaddress.ip_address(ip).is_loopback and ip not in ips:
                    ips.append(ip)
    return ips, None

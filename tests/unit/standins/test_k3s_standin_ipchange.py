"""IP change on the node address, and etcd snapshots (k3s #9879, #5880, #12844, #11388). Embedded
etcd after an address change and --cluster-reset: test_k3s_standin_etcd.py.

127.0.0.x addresses are all assigned on lo, so moving node-ip between 127.0.0.2 and
127.0.0.3 is an IP change; 198.51.100.7 (TEST-NET-2) is on no interface here and is
only ever bound to locally (which fails), never contacted.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from kubernetes import client, config

STANDIN = Path(__file__).resolve().parents[2] / "standins" / "k3s" / "k3s_standin"
UNASSIGNED = "198.51.100.7"
NODE_KEY = "/registry/minions/standin-node"
NPC_FATAL = (
    "Failed to start networking: unable to initialize network policy controller: error getting node subnet: "
    "failed to find interface with specified node ip"
)


def node_ips(k3s) -> list[str]:
    with config.new_client_from_config(config_file=str(k3s.kubeconfig)) as c:
        nodes = client.CoreV1Api(c).list_node().items
    return [a.address for n in nodes for a in n.status.addresses if a.type == "InternalIP"]


def node_record(k3s) -> tuple[str, list[str], bytes]:
    """(k3s.io/internal-ip annotation, InternalIP addresses, raw kine value) of the node."""
    node = k3s.latest(NODE_KEY)
    internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    with k3s.db() as conn:
        raw = conn.execute("SELECT value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (NODE_KEY,)).fetchone()[0]
    return node["metadata"]["annotations"]["k3s.io/internal-ip"], internal, raw


def test_sqlite_restart_on_a_new_held_address_moves_the_node_address(k3s):
    """node-ip changed to an address the host holds: the agent patches k3s.io/internal-ip at every
    start (pkg/agent/run.go configureNode) and the k3s cloud provider builds the InternalIP from it
    (pkg/cloudprovider), so the Node object follows node-ip; k3s runs on."""
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    assert node_record(k3s)[:2] == ("127.0.0.2", ["127.0.0.2"])
    k3s.base_config("127.0.0.3")
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert "Annotations and labels have been set successfully on node: standin-node" in started.log
    annotation, internal, raw = node_record(k3s)
    assert (annotation, internal) == ("127.0.0.3", ["127.0.0.3"])
    assert node_ips(k3s) == ["127.0.0.3"]
    assert raw.startswith(b"k8s\x00\n\n\n\x02v1\x12\x04Node")  # protobuf in kine (kine #36)
    assert b"127.0.0.2" not in raw
    assert k3s.stop(started) == 0
    assert "level=fatal" not in started.log


def test_stale_internal_ip_hook_models_k3s_12844(k3s):
    """K3S_STANDIN_STALE_INTERNAL_IP=1: the regression fixed in the Sept 2025 releases; the
    annotation is patched, the InternalIP stays what it was (k3s #5880, #1977, #2827 reports)."""
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    k3s.base_config("127.0.0.3")
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="0", K3S_STANDIN_STALE_INTERNAL_IP="1")
    assert node_record(k3s)[:2] == ("127.0.0.3", ["127.0.0.2"])
    assert node_ips(k3s) == ["127.0.0.2"]
    assert k3s.stop(started) == 0
    assert "level=fatal" not in started.log


def test_sqlite_node_ip_gone_is_a_crash_loop(k3s):
    """k3s #9879, #6969, #12639: node-ip on no interface any more; the Node's InternalIP follows it,
    kube-router finds no interface holding it: READY, then the fatal error, exit 1."""
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    k3s.base_config(UNASSIGNED)
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert started.proc.wait(timeout=60) == 1
    assert NPC_FATAL in started.log
    assert node_record(k3s)[:2] == (UNASSIGNED, [UNASSIGNED])


def test_network_policy_crash_is_keyed_on_the_node_objects_internal_ip(k3s):
    """kube-router looks up the Node object's InternalIP, not config.yaml's node-ip."""
    k3s.base_config(UNASSIGNED)
    first = k3s.start(K3S_STANDIN_CRASH_DELAY="0")
    assert first.proc.wait(timeout=60) == 1  # registered with InternalIP 198.51.100.7, then died
    # A held node-ip, but with the stale InternalIP (k3s #12844) the Node still names the lost address.
    k3s.base_config("127.0.0.2")
    stale = k3s.up(K3S_STANDIN_CRASH_DELAY="0", K3S_STANDIN_STALE_INTERNAL_IP="1")
    assert stale.proc.wait(timeout=60) == 1
    assert NPC_FATAL in stale.log
    assert node_record(k3s)[:2] == ("127.0.0.2", [UNASSIGNED])
    # The other way round: node-ip lost, the stale InternalIP still held: kube-router is content.
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up(K3S_STANDIN_CRASH_DELAY="0")) == 0  # the fixed behaviour moves it back
    k3s.base_config(UNASSIGNED)
    runs = k3s.up(K3S_STANDIN_CRASH_DELAY="0", K3S_STANDIN_STALE_INTERNAL_IP="1")
    time.sleep(1)
    assert runs.proc.poll() is None, runs.log
    assert node_record(k3s)[:2] == (UNASSIGNED, ["127.0.0.2"])
    assert k3s.stop(runs) == 0


def test_disable_network_policy_skips_the_crash(k3s):
    k3s.base_config(UNASSIGNED, extra="disable-network-policy: true\n")
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    time.sleep(1)
    assert started.proc.poll() is None, started.log
    assert k3s.stop(started) == 0
    assert NPC_FATAL not in started.log


def test_unassigned_node_ip_crashes_even_on_first_start(k3s):
    k3s.base_config(UNASSIGNED)
    started = k3s.start(K3S_STANDIN_CRASH_DELAY="0")
    assert started.proc.wait(timeout=60) == 1
    assert NPC_FATAL in started.log


def test_same_ip_restart_is_healthy(k3s):
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert node_ips(k3s) == ["127.0.0.2"]
    assert k3s.stop(started) == 0
    assert "level=fatal" not in started.log


def test_kubectl_delete_node_then_restart_recovers_sqlite(k3s):
    """k3s #5880 under the stale-InternalIP regression (k3s #12844): in the window the API serves,
    delete the node; the restart re-registers it."""
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    k3s.base_config("127.0.0.3")
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="300", K3S_STANDIN_STALE_INTERNAL_IP="1")
    assert node_ips(k3s) == ["127.0.0.2"]  # drift is visible through the API
    result = k3s.run("kubectl", "delete", "node", "standin-node")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'node "standin-node" deleted'
    k3s.stop(started)
    healed = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert node_ips(k3s) == ["127.0.0.3"]
    assert k3s.stop(healed) == 0
    assert "level=fatal" not in healed.log


def test_etcd_snapshot_save_and_ls(k3s):
    k3s.base_config("127.0.0.2", extra="cluster-init: true\n")
    started = k3s.up()
    server = f"--etcd-server=https://127.0.0.1:{k3s.port}"
    default = k3s.run("etcd-snapshot", "save", "--data-dir", str(k3s.data), server)
    assert default.returncode == 0, default.stderr
    path = default.stdout.strip()
    assert re.fullmatch(re.escape(str(k3s.data)) + r"/server/db/snapshots/on-demand-standin-node-\d{10}", path)
    with sqlite3.connect(path) as conn:  # a consistent copy of the datastore
        assert (
            conn.execute("SELECT count(*) FROM kine WHERE name = '/registry/minions/standin-node'").fetchone()[0] >= 1
        )
    other = k3s.root / "backups"
    named = k3s.run(
        "etcd-snapshot", "save", "--name", "pre-recover", "--dir", str(other), "--data-dir", str(k3s.data), server
    )
    assert named.returncode == 0, named.stderr
    assert re.fullmatch(re.escape(str(other)) + r"/pre-recover-standin-node-\d{10}", named.stdout.strip())
    # Config keys etcd-snapshot does not know are warned about, as k3s does (#11388 output).
    assert "Unknown flag --node-ip found in config.yaml, skipping" in named.stderr
    listing = k3s.run("etcd-snapshot", "ls", "--data-dir", str(k3s.data), server)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["Name", "Location", "Size", "Created"]
    assert any(line.startswith("on-demand-standin-node-") for line in lines[1:])
    k3s.stop(started)


def test_etcd_snapshot_with_sqlite_fails(k3s_running):
    result = k3s_running.run(
        "etcd-snapshot",
        "save",
        "--data-dir",
        str(k3s_running.data),
        f"--etcd-server=https://127.0.0.1:{k3s_running.port}",
    )
    assert result.returncode == 1
    assert 'level=fatal msg="see server log for details: etcd datastore disabled"' in result.stderr
    assert not (k3s_running.data / "server/db/snapshots").exists()


def test_etcd_snapshot_needs_token_and_running_server(k3s):
    missing = k3s.run("etcd-snapshot", "save", "--data-dir", str(k3s.data))
    assert missing.returncode == 1
    assert f"open {k3s.data}/server/token: no such file or directory" in missing.stderr
    k3s.base_config("127.0.0.2", extra="cluster-init: true\n")
    assert k3s.stop(k3s.up()) == 0
    down = k3s.run("etcd-snapshot", "save", "--data-dir", str(k3s.data), f"--etcd-server=https://127.0.0.1:{k3s.port}")
    assert down.returncode == 1
    assert f"dial tcp 127.0.0.1:{k3s.port}: connect: connection refused" in down.stderr

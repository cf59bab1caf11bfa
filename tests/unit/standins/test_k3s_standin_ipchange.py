"""IP change, embedded etcd, cluster-reset and etcd snapshots (k3s #9879, #5880, #4296, #11388).

127.0.0.x addresses are all assigned on lo, so moving node-ip between 127.0.0.2 and
127.0.0.3 is an IP change; 198.51.100.7 (TEST-NET-2) is on no interface here and is
only ever bound to locally (which fails), never contacted.
"""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

STANDIN = Path(__file__).resolve().parents[2] / "standins" / "k3s" / "k3s_standin"
UNASSIGNED = "198.51.100.7"
NPC_FATAL = (
    "Failed to start networking: unable to initialize network policy controller: error getting node subnet: "
    "failed to find interface with specified node ip"
)


def node_ips(k3s) -> list[str]:
    with config.new_client_from_config(config_file=str(k3s.kubeconfig)) as c:
        nodes = client.CoreV1Api(c).list_node().items
    return [a.address for n in nodes for a in n.status.addresses if a.type == "InternalIP"]


def test_sqlite_restart_on_a_new_held_address_keeps_the_stale_node_address(k3s):
    """k3s #5880 (#1977, #2827): node-ip changed to an address the host holds; k3s runs on, and the
    node object keeps the old InternalIP (protobuf in kine) until it is deleted."""
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    k3s.base_config("127.0.0.3")
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert node_ips(k3s) == ["127.0.0.2"]
    assert k3s.latest("/registry/minions/standin-node")["status"]["addresses"][0]["address"] == "127.0.0.2"
    with k3s.db() as conn:
        raw = conn.execute("SELECT value FROM kine WHERE name = '/registry/minions/standin-node'").fetchone()[0]
    assert raw.startswith(b"k8s\x00\n\n\n\x02v1\x12\x04Node")
    assert k3s.stop(started) == 0
    assert "level=fatal" not in started.log


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
    """k3s #5880: in the window the API serves, delete the node; the restart re-registers it."""
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    k3s.base_config("127.0.0.3")
    started = k3s.up(K3S_STANDIN_CRASH_DELAY="300")
    assert node_ips(k3s) == ["127.0.0.2"]  # drift is visible through the API
    result = k3s.run("kubectl", "delete", "node", "standin-node")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'node "standin-node" deleted'
    k3s.stop(started)
    healed = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert node_ips(k3s) == ["127.0.0.3"]
    assert k3s.stop(healed) == 0
    assert "level=fatal" not in healed.log


def test_etcd_layout_and_peer_bind_failure(k3s):
    k3s.base_config("127.0.0.2", extra="cluster-init: true\n")
    assert k3s.stop(k3s.up()) == 0
    assert (k3s.data / "server/db/etcd/member/snap/db").is_file()
    assert "listen-peer-urls: https://127.0.0.2:2380" in (k3s.data / "server/db/etcd/config").read_text()
    assert not (k3s.data / "server/db/state.db").exists()
    # The host lost the configured address: etcd cannot bind its peer listener (rke2 #5651).
    k3s.base_config(UNASSIGNED)  # cluster-init dropped: k3s keeps etcd once server/db/etcd exists
    started = k3s.start()
    assert not started.ready
    assert started.proc.wait(timeout=60) == 1
    assert f"listen tcp {UNASSIGNED}:2380: bind: cannot assign requested address" in started.log
    assert "level=fatal" in started.log


def test_etcd_on_a_new_address_never_ready_until_cluster_reset(k3s, tmp_path):
    """k3s #7558, #2732: the member list holds the old peer URL; k3s loops on "not a member of the
    etcd cluster" without notifying or exiting; --cluster-reset rewrites the member (k3s #4296)."""
    k3s.base_config("127.0.0.2", extra="cluster-init: true\n")
    assert k3s.stop(k3s.up()) == 0
    k3s.base_config("127.0.0.3")
    messages, rc, log = watch_never_ready(k3s, tmp_path, K3S_STANDIN_NEVER_READY_INTERVAL="0.2")
    assert messages == [] and rc == 0
    lines = [line for line in log.splitlines() if "not a member of the etcd cluster" in line]
    assert len(lines) >= 2, log
    assert "=https://127.0.0.2:2380], expect: " in lines[0] and lines[0].endswith('=https://127.0.0.3:2380"')
    reset = k3s.run("server", "--data-dir", str(k3s.data), "--cluster-reset")
    assert reset.returncode == 0, reset.stderr
    assert "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now" in reset.stderr
    member = k3s.latest("/k3s-standin/etcd/member")
    assert member["peerURL"] == "https://127.0.0.3:2380"
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


def test_never_ready_mode_loops_without_notifying_until_stopped(k3s, tmp_path):
    """K3S_STANDIN_NEVER_READY: embedded etcd's "not a member of the etcd cluster" loop after an
    address change (k3s #7558, #2732): no READY=1, no API, no exit until SIGTERM."""
    k3s.base_config("127.0.0.2", "cluster-init: true\n")
    messages, rc, log = watch_never_ready(
        k3s, tmp_path, K3S_STANDIN_NEVER_READY="1", K3S_STANDIN_NEVER_READY_INTERVAL="0.2"
    )
    assert messages == []
    assert rc == 0
    lines = [line for line in log.splitlines() if "not a member of the etcd cluster" in line]
    assert len(lines) >= 2, log
    assert "expect: " in lines[0] and "=https://127.0.0.2:2380" in lines[0]
    assert not (k3s.data / "server" / "tls").exists(), "it never got as far as serving"


def watch_never_ready(k3s, tmp_path, **extra):
    """(sd_notify messages, exit status after SIGTERM, log) of a server left running for 2 s."""
    sock_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.settimeout(0.2)
    log_path = tmp_path / "never-ready.log"
    env = k3s.cmd_env(NOTIFY_SOCKET=str(sock_path), **extra)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(STANDIN), "server", "--data-dir", str(k3s.data)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    messages = []
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                messages.append(notify.recv(256))
            except TimeoutError:
                pass
        assert proc.poll() is None, log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        notify.close()
    return messages, rc, log_path.read_text()

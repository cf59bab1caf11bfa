"""Embedded etcd after an address change, and `--cluster-reset`, as the k3s source has them
(pkg/etcd/etcd.go, pkg/cluster/managed.go, pkg/daemons/executor, pkg/daemons/control/deps;
../shared/facts/k3s-and-vpn.md, "Read from the k3s and nordvpn-linux sources").

127.0.0.x addresses are all assigned on lo, so moving node-ip between 127.0.0.2 and 127.0.0.3 is an
IP change; 198.51.100.7 (TEST-NET-2) is on no interface here and is only ever bound to locally
(which fails), never contacted.
"""

from __future__ import annotations

import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from kubernetes import client, config

STANDIN = Path(__file__).resolve().parents[2] / "standins" / "k3s" / "k3s_standin"
UNASSIGNED = "198.51.100.7"
NODE_KEY = "/registry/minions/standin-node"
MEMBER_KEY = "/k3s-standin/etcd/member"
RESET_DONE = (
    "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
    "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"
)
# Fast resets where a test does not measure the ~15 s a real one takes (three 5-s waits).
FAST_RESET = {"K3S_STANDIN_RESET_INTERVAL": "0"}


def node_ips(k3s) -> list[str]:
    with config.new_client_from_config(config_file=str(k3s.kubeconfig)) as c:
        nodes = client.CoreV1Api(c).list_node().items
    return [a.address for n in nodes for a in n.status.addresses if a.type == "InternalIP"]


def member_name(k3s) -> str:
    return (k3s.data / "server/db/etcd/name").read_text()


def etcd_config(k3s) -> dict[str, str]:
    """The top-level scalar keys of server/db/etcd/config."""
    text = (k3s.data / "server/db/etcd/config").read_text()
    return dict(re.findall(r"^([a-z-]+): (.+)$", text, re.M))


def serving_cert_ips(k3s) -> set[str]:
    cert = x509.load_pem_x509_certificate((k3s.data / "server/tls/serving-kube-apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def node_rows(k3s) -> list[tuple[int, bytes]]:
    with k3s.db() as conn:
        return conn.execute("SELECT id, value FROM kine WHERE name = ? ORDER BY id", (NODE_KEY,)).fetchall()


def etcd_server(k3s, ip: str = "127.0.0.2") -> None:
    """An embedded-etcd server that ran once at ip, stopped."""
    k3s.base_config(ip, extra="cluster-init: true\n")
    assert k3s.stop(k3s.up()) == 0


def watch_never_ready(k3s, tmp_path, seconds: float = 2.0, *args: str, **extra):
    """(sd_notify messages, exit status after SIGTERM, log) of a server left running for a while."""
    sock_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.settimeout(0.2)
    log_path = tmp_path / f"never-ready-{time.monotonic_ns()}.log"
    env = k3s.cmd_env(NOTIFY_SOCKET=str(sock_path), **extra)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(STANDIN), "server", "--data-dir", str(k3s.data), *args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    messages = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                messages.append(notify.recv(256))
            except TimeoutError:
                pass
        assert proc.poll() is None, log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        # Bounds a hang only: on the loaded CI machine (two scenarios beside the unit tests) the
        # stand-in once took over 30 s to act on SIGTERM while writing its certificates.
        rc = proc.wait(timeout=120)
        notify.close()
        sock_path.unlink(missing_ok=True)
    return messages, rc, log_path.read_text()


def not_member_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "not a member of the etcd cluster" in line]


def test_etcd_config_is_written_like_k3s_and_the_name_is_kept(k3s):
    """executor.ETCDConfig.ToConfigFile: loopback plus node-ip listeners; the initial-cluster options
    only when the cluster is new (ETCD.newCluster); the member name from ETCD.setName is kept."""
    etcd_server(k3s)
    name = member_name(k3s)
    assert re.fullmatch(r"standin-node-[0-9a-f]{8}", name)
    assert stat.S_IMODE((k3s.data / "server/db/etcd/name").stat().st_mode) == 0o600
    first = etcd_config(k3s)
    assert first["listen-peer-urls"] == "https://127.0.0.1:2380,https://127.0.0.2:2380"
    assert first["listen-client-urls"] == "https://127.0.0.1:2379,https://127.0.0.2:2379"
    assert first["advertise-client-urls"] == "https://127.0.0.2:2379"
    assert first["initial-cluster"] == f"{name}=https://127.0.0.2:2380"
    assert first["initial-cluster-state"] == "new"
    assert first["name"] == name
    assert "force-new-cluster" not in first
    started = k3s.up()
    assert "Starting etcd for existing cluster member" in started.log
    assert k3s.stop(started) == 0
    again = etcd_config(k3s)
    assert member_name(k3s) == name
    assert "initial-cluster" not in again and "initial-cluster-state" not in again
    assert again["listen-peer-urls"] == "https://127.0.0.1:2380,https://127.0.0.2:2380"


def test_etcd_hang_after_an_address_change_shows_the_new_address_everywhere_but_the_member(k3s, tmp_path):
    """k3s #7558, #2732 as the source has it: the certificates are re-issued for the new SANs
    (deps.GenServerDeps) and etcd/config is written with the new node-ip (ToConfigFile) before etcd
    starts; only the member list keeps the old peer URL, so the readiness test fails every 5 s
    (Embedded.ETCD: "Failed to test etcd connection: %v", ETCD.Test's membershipError). No READY=1,
    no exit until SIGTERM, exit 0."""
    etcd_server(k3s, "127.0.0.2")
    name = member_name(k3s)
    assert "127.0.0.2" in serving_cert_ips(k3s)
    k3s.base_config("127.0.0.3")  # cluster-init dropped: k3s keeps etcd once server/db/etcd exists
    messages, rc, log = watch_never_ready(k3s, tmp_path, K3S_STANDIN_NEVER_READY_INTERVAL="0.2")
    assert messages == [] and rc == 0
    lines = not_member_lines(log)
    assert len(lines) >= 2, log
    expected = (
        "Failed to test etcd connection: this server is a not a member of the etcd cluster. "
        f"Found [{name}=https://127.0.0.2:2380], expect: {name}=https://127.0.0.3:2380"
    )
    assert all(f'level=info msg="{expected}"' in line for line in lines), lines[0]
    assert "Failed to test data store connection" not in log
    # Everything k3s writes before etcd starts names the new address...
    cfg = etcd_config(k3s)
    assert cfg["listen-peer-urls"] == "https://127.0.0.1:2380,https://127.0.0.3:2380"
    assert cfg["advertise-client-urls"] == "https://127.0.0.3:2379"
    assert "127.0.0.2" not in (k3s.data / "server/db/etcd/config").read_text()
    ips = serving_cert_ips(k3s)
    assert "127.0.0.3" in ips and "127.0.0.2" not in ips
    # ...only the member list (etcd's data) keeps the old peer URL.
    assert k3s.latest(MEMBER_KEY)["peerURL"] == "https://127.0.0.2:2380"
    assert not (k3s.data / "server/db/reset-flag").exists()


def test_etcd_peer_bind_failure_comes_after_the_config_is_written(k3s):
    """The host lost the configured address: etcd/config already names it, then etcd cannot bind
    its peer listener (rke2 #5651); exit 1 before serving."""
    etcd_server(k3s, "127.0.0.2")
    assert (k3s.data / "server/db/etcd/member/snap/db").is_file()
    assert not (k3s.data / "server/db/state.db").exists()
    k3s.base_config(UNASSIGNED)
    started = k3s.start()
    assert not started.ready
    assert started.proc.wait(timeout=60) == 1
    assert (
        'level=fatal msg="starting kubernetes: preparing server: start managed database: '
        f'listen tcp {UNASSIGNED}:2380: bind: cannot assign requested address"'
    ) in started.log
    assert etcd_config(k3s)["listen-peer-urls"] == f"https://127.0.0.1:2380,https://{UNASSIGNED}:2380"
    assert UNASSIGNED in serving_cert_ips(k3s)


def test_cluster_reset_writes_the_flag_updates_the_member_and_never_touches_nodes(k3s):
    """pkg/etcd/etcd.go ETCD.Reset: a new member name, server/db/reset-flag, etcd/config for a forced
    new cluster on loopback, the member's peer URL updated to node-ip, k3s's message, exit 0. The
    Node object is not edited: the next normal start's agent patches k3s.io/internal-ip and the
    cloud provider sets the InternalIP from it."""
    etcd_server(k3s, "127.0.0.2")
    old_name = member_name(k3s)
    k3s.base_config("127.0.0.3")
    rows = node_rows(k3s)
    reset = k3s.run("server", "--data-dir", str(k3s.data), "--cluster-reset", **FAST_RESET)
    assert reset.returncode == 0, reset.stderr
    assert f'level=info msg="{RESET_DONE}"' in reset.stderr
    assert "Starting etcd for new cluster, cluster-reset=true" in reset.stderr
    flag = k3s.data / "server/db/reset-flag"
    assert flag.read_bytes() == b""
    assert stat.S_IMODE(flag.stat().st_mode) == 0o600
    name = member_name(k3s)
    assert name != old_name and re.fullmatch(r"standin-node-[0-9a-f]{8}", name)
    member = k3s.latest(MEMBER_KEY)
    assert member == {"metadata": {"name": name}, "peerURL": "https://127.0.0.3:2380"}
    cfg = etcd_config(k3s)
    assert cfg["force-new-cluster"] == "true"
    assert cfg["listen-peer-urls"] == "https://127.0.0.1:2380"
    assert cfg["advertise-client-urls"] == "https://127.0.0.1:2379"
    assert cfg["initial-cluster"] == f"{name}=https://127.0.0.3:2380"
    assert node_rows(k3s) == rows, "--cluster-reset must not edit the Node object"
    node = k3s.latest(NODE_KEY)
    assert node["metadata"]["annotations"]["k3s.io/internal-ip"] == "127.0.0.2"
    assert {"type": "InternalIP", "address": "127.0.0.2"} in node["status"]["addresses"]

    # With the flag present a second reset is refused (pkg/cluster/managed.go Cluster.start).
    again = k3s.run("server", "--data-dir", str(k3s.data), "--cluster-reset", **FAST_RESET)
    assert again.returncode == 1
    assert (
        'level=fatal msg="starting kubernetes: preparing server: start managed database: Managed etcd cluster '
        "membership was previously reset, please remove the cluster-reset flag and start k3s normally. If you "
        f'need to perform another cluster reset, you must first manually delete the file at {flag}"'
    ) in again.stderr
    assert flag.exists() and member_name(k3s) == name and node_rows(k3s) == rows

    # The next normal start removes the flag; the agent, not the reset, moves the node.
    healed = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert not flag.exists()
    assert node_ips(k3s) == ["127.0.0.3"]
    assert k3s.latest(NODE_KEY)["metadata"]["annotations"]["k3s.io/internal-ip"] == "127.0.0.3"
    cfg = etcd_config(k3s)
    assert "force-new-cluster" not in cfg
    assert cfg["listen-peer-urls"] == "https://127.0.0.1:2380,https://127.0.0.3:2380"
    assert k3s.stop(healed) == 0
    assert "level=fatal" not in healed.log


def test_interrupted_cluster_reset_leaves_the_flag_and_the_old_peer_url(k3s, tmp_path):
    """ETCD.Reset writes the reset-flag before etcd starts and updates the peer URL only on its 5-s
    ticker: killed in between, the flag stays (a second reset is refused) and the member keeps the
    old peer URL, so the next normal start clears the flag and hangs on "not a member"."""
    etcd_server(k3s, "127.0.0.2")
    k3s.base_config("127.0.0.3")
    flag = k3s.data / "server/db/reset-flag"
    log_path = tmp_path / "reset.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(STANDIN), "server", "--data-dir", str(k3s.data), "--cluster-reset"],
            stdout=log, stderr=subprocess.STDOUT, env=k3s.cmd_env(K3S_STANDIN_RESET_INTERVAL="60"),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not not_member_lines(log_path.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flag.exists(), log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    name = member_name(k3s)
    assert RESET_DONE not in log_path.read_text()
    assert k3s.latest(MEMBER_KEY)["peerURL"] == "https://127.0.0.2:2380"
    assert etcd_config(k3s)["force-new-cluster"] == "true"

    refused = k3s.run("server", "--data-dir", str(k3s.data), "--cluster-reset", **FAST_RESET)
    assert refused.returncode == 1
    assert "Managed etcd cluster membership was previously reset" in refused.stderr

    messages, rc, log = watch_never_ready(k3s, tmp_path, K3S_STANDIN_NEVER_READY_INTERVAL="0.2")
    assert messages == [] and rc == 0
    assert not flag.exists(), "a normal start clears the reset-flag"
    assert f"Found [{name}=https://127.0.0.2:2380], expect: {name}=https://127.0.0.3:2380" in not_member_lines(log)[0]

    # With the flag gone, a reset runs to the end and the server comes up at the new address.
    reset = k3s.run("server", "--data-dir", str(k3s.data), "--cluster-reset", **FAST_RESET)
    assert reset.returncode == 0, reset.stderr
    healed = k3s.up(K3S_STANDIN_CRASH_DELAY="0")
    assert node_ips(k3s) == ["127.0.0.3"]
    assert k3s.stop(healed) == 0


def test_never_ready_hook_loops_without_notifying_until_stopped(k3s, tmp_path):
    """K3S_STANDIN_NEVER_READY: the same loop on any datastore and address (the recovery's hang
    tests). As in k3s, the certificates and etcd/config are written before the loop starts."""
    k3s.base_config("127.0.0.2", "cluster-init: true\n")
    messages, rc, log = watch_never_ready(
        k3s, tmp_path, K3S_STANDIN_NEVER_READY="1", K3S_STANDIN_NEVER_READY_INTERVAL="0.2"
    )
    assert messages == [] and rc == 0
    lines = not_member_lines(log)
    assert len(lines) >= 2, log
    name = member_name(k3s)
    assert f"Found [{name}=https://10.0.0.1:2380], expect: {name}=https://127.0.0.2:2380" in lines[0]
    assert lines[0].split("msg=")[1].startswith('"Failed to test etcd connection: ')
    assert "127.0.0.2" in serving_cert_ips(k3s)
    assert etcd_config(k3s)["advertise-client-urls"] == "https://127.0.0.2:2379"
    assert not k3s.kubeconfig.exists(), "it never got as far as serving"


def test_never_ready_hook_on_sqlite(k3s, tmp_path):
    k3s.base_config("127.0.0.2")
    assert k3s.stop(k3s.up()) == 0
    messages, rc, log = watch_never_ready(
        k3s, tmp_path, 1.0, K3S_STANDIN_NEVER_READY="1", K3S_STANDIN_NEVER_READY_INTERVAL="0.2"
    )
    assert messages == [] and rc == 0
    assert "expect: standin-node-" in not_member_lines(log)[0]
    assert not (k3s.data / "server/db/etcd").exists()

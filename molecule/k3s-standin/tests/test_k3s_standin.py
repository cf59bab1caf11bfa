"""The k3s stand-in under systemd: unit settings, readiness, pods that outlive `systemctl stop`
and the crash loop after an IP change.

Tests run in file order; the IP-change test goes last and restores the network
and a healthy k3s in its finalizer. All traffic stays inside the test host.
"""

from __future__ import annotations

import re

import pytest

NEW_ADDR = "10.77.0.5/24"
# Bounded polling loops run inside the test host; they wait for a state, they
# do not assert how long it took.
POLL = "for i in $(seq 1 {n}); do {cond} && exit 0; sleep 0.5; done; exit 1"


def show(host, *props: str) -> dict[str, str]:
    out = host.check_output("systemctl show k3s " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_check_mode_changes_nothing(converge_in_check_mode):
    converge_in_check_mode.assert_no_changes("check-mode run")


def test_unit_has_install_script_settings(host):
    props = show(
        host, "Type", "Restart", "RestartUSec", "KillMode", "Delegate", "TimeoutStartUSec", "LimitNOFILE", "ExecStart"
    )
    assert props["Type"] == "notify"
    assert props["Restart"] == "always"
    assert props["RestartUSec"] == "5s"
    assert props["KillMode"] == "process"
    assert props["Delegate"] == "yes"
    assert props["TimeoutStartUSec"] == "infinity"
    assert props["LimitNOFILE"] == "1048576"
    assert "path=/usr/local/bin/k3s ; argv[]=/usr/local/bin/k3s server ;" in props["ExecStart"]


def test_binary_version_and_symlinks(host):
    assert host.check_output("/usr/local/bin/k3s --version").startswith("k3s version v1.32.11+k3s1 (")
    assert host.file("/usr/local/bin/k3s").linked_to == "/usr/local/bin/k3s-v1.32.11+k3s1"
    assert host.file("/usr/local/bin/kubectl").linked_to == "/usr/local/bin/k3s-v1.32.11+k3s1"


def test_start_returns_only_once_the_api_serves(host):
    # No retry after `systemctl start`: with Type=notify it returns after READY=1,
    # so the very first request must be answered.
    cmd = host.run("systemctl stop k3s && systemctl start k3s && curl -sfk https://127.0.0.1:6443/readyz")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout == "ok"
    assert host.service("k3s").is_running
    kubeconfig = host.file("/etc/rancher/k3s/k3s.yaml")
    assert kubeconfig.mode == 0o600
    assert "server: https://127.0.0.1:6443" in kubeconfig.content_string


def test_node_is_ready_on_the_node_ip(host):
    ready = host.run(POLL.format(n=120, cond=NODE_READY))
    assert ready.rc == 0, host.run("kubectl get nodes -o wide").stdout
    node_ip = re.search(r"^node-ip: (\S+)$", host.file("/etc/rancher/k3s/config.yaml").content_string, re.M).group(1)
    wide = host.check_output("kubectl get nodes -o wide")
    row = wide.splitlines()[1].split()
    assert row[1] == "Ready"
    assert row[5] == node_ip


NODE_READY = "kubectl get nodes | awk 'NR > 1 {print $2}' | grep -qx Ready"
SHIMS = "pgrep -f '^/usr/bin/python3 /var/lib/rancher/k3s/data/[^/]+/bin/containerd-shim-runc-v2 ' | sort"
# coredns, local-path-provisioner, metrics-server (traefik is disabled).
PODS = 3


def runtime_mounts(host) -> list[str]:
    out = host.check_output("findmnt -rn -o TARGET")
    return sorted(m for m in out.splitlines() if m.startswith(("/run/k3s/", "/var/lib/kubelet/")))


def test_pods_run_with_mounts_links_and_chains(host):
    """What a running k3s leaves on the host (k3s #1965, #1042): shims from data/*/bin, their
    container processes in a cgroup below k3s.service, rootfs and emptyDir mounts, the CNI
    namespaces and links, and the KUBE-/CNI-/FLANNEL chains."""
    running = host.run(POLL.format(n=120, cond=f"[ $({SHIMS} | wc -l) -eq {PODS} ]"))
    assert running.rc == 0, host.run(SHIMS).stdout
    mounts = runtime_mounts(host)
    assert len([m for m in mounts if m.startswith("/run/k3s/containerd/")]) == PODS, mounts
    assert len([m for m in mounts if "/volumes/kubernetes.io~empty-dir/" in m]) == PODS, mounts
    assert host.check_output(f"findmnt -rn -o FSTYPE --target {mounts[0]}") == "tmpfs"
    for shim in host.check_output(SHIMS).split():
        child = host.check_output(f"pgrep -P {shim}")
        cgroup = host.check_output(f"cat /proc/{child}/cgroup")
        assert re.search(r"/k3s\.service/kubepods/pod[0-9a-f-]+/[0-9a-f]{64}$", cgroup, re.M), cgroup
    assert host.run("ip link show cni0").rc == 0
    assert host.run("ip link show flannel.1").rc == 0
    assert len(host.check_output("ip netns list").split("\n")) == PODS
    assert len(host.check_output("ip -o link show master cni0").splitlines()) == PODS
    for table, chain in (("filter", "KUBE-FORWARD"), ("filter", "FLANNEL-FWD"), ("nat", "CNI-HOSTPORT-DNAT")):
        assert host.run(f"iptables -w -t {table} -S {chain}").rc == 0, chain


def test_pods_survive_systemctl_stop(host):
    """KillMode=process: `systemctl stop k3s` stops k3s, not its pods (k3s #2624); the next start
    finds the shims running and starts no second copy."""
    before = host.check_output(SHIMS)
    mounts = runtime_mounts(host)
    host.run_expect([0], "systemctl stop k3s")
    assert not host.service("k3s").is_running
    assert host.check_output(SHIMS) == before
    assert runtime_mounts(host) == mounts
    since = host.check_output("date +%s")
    host.run_expect([0], "systemctl start k3s")
    journal = f"journalctl -u k3s --since=@{since} --no-pager -o cat"
    found = host.run(POLL.format(n=120, cond=f"{journal} | grep -q 'is still running'"))
    assert found.rc == 0, host.check_output(journal)
    assert host.check_output(SHIMS) == before


def test_node_turns_ready_after_the_start_delay(host):
    """A new node is NotReady until kubelet and CNI are up (k3s #4340: tens of seconds; the
    scenario shortens it), then Ready."""
    # One shell command: `systemctl start` returns at READY=1, the status is read right after.
    out = host.check_output(
        "systemctl stop k3s && rm -rf /var/lib/rancher/k3s/server/db && systemctl start k3s && kubectl get nodes"
    )
    assert out.splitlines()[1].split()[1] == "NotReady", out
    ready = host.run(POLL.format(n=120, cond=NODE_READY))
    assert ready.rc == 0, host.run("kubectl get nodes -o wide").stdout


def test_node_is_stored_as_kubernetes_protobuf(host):
    """kine keeps core objects as Kubernetes protobuf (kine #36), which the drift check reads."""
    raw = host.check_output(
        "sqlite3 /var/lib/rancher/k3s/server/db/state.db "
        "\"SELECT hex(value) FROM kine WHERE name LIKE '/registry/minions/%' ORDER BY id DESC LIMIT 1\""
    )
    assert bytes.fromhex(raw).startswith(b"k8s\x00\n\n\n\x02v1\x12\x04Node")


@pytest.fixture
def moved_ip(host):
    """Move eth0 to NEW_ADDR (deleting the old address), restore everything afterwards."""
    old = host.check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n1")
    gateway = host.check_output("ip -4 route show default | awk '{print $3}' | head -n1")
    assert old and gateway, "eth0 has no IPv4 address or default route"
    host.run_expect([0], f"ip addr add {NEW_ADDR} dev eth0 && ip addr del {old} dev eth0")
    yield old
    host.run(f"ip addr add {old} dev eth0")
    host.run(f"ip route replace default via {gateway} dev eth0")
    host.run(f"ip addr del {NEW_ADDR} dev eth0")
    host.run("systemctl reset-failed k3s; systemctl restart k3s")


def test_ip_change_then_restart_crash_loops(host, moved_ip):
    before = int(show(host, "NRestarts")["NRestarts"])
    host.run_expect([0], "systemctl restart k3s")
    # k3s comes up, then dies on the node IP it can no longer find; Restart=always loops.
    looping = host.run(POLL.format(n=120, cond="systemctl status k3s --no-pager | grep -q 'activating (auto-restart)'"))
    status = host.run("systemctl status k3s --no-pager").stdout
    assert looping.rc == 0, status
    assert "status=1/FAILURE" in status
    grown = host.run(POLL.format(n=120, cond=f"[ $(systemctl show k3s -p NRestarts --value) -gt {before} ]"))
    assert grown.rc == 0, show(host, "NRestarts", "ActiveState", "SubState")
    journal = host.check_output("journalctl -u k3s --no-pager -o cat")
    assert "failed to find interface with specified node ip" in journal
    assert "level=fatal" in journal


def test_restored_ip_makes_k3s_healthy_again(host):
    # Runs after the IP-change finalizer put the old address back and restarted k3s.
    ready = host.run(POLL.format(n=120, cond="curl -sfk https://127.0.0.1:6443/readyz >/dev/null"))
    assert ready.rc == 0, host.run("systemctl status k3s --no-pager").stdout
    assert show(host, "ActiveState")["ActiveState"] == "active"

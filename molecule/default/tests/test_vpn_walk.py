"""A laptop's week on the converged host: the VPN takes the default route, the LAN moves.

Issue 13: with NordVPN connected and the LAN on a new subnet, recover.yml rebuilt k3s on the LAN
address, and the next routine site.yml moved node-ip onto the tunnel (the k3s role took Ansible's
default-route fact, which names the tunnel) and broke the cluster. Walk: tunnel holding the
default route in the main table → site.yml; tunnel default route in policy table 205 with the
real client's rules → site.yml; LAN address change → recover.yml → site.yml. node-ip stays on the
LAN interface throughout, each site.yml changes nothing, the node is Ready at the LAN address and
the workers are healthy.

The tunnel is a veth named nordlynx with NordLynx's address (10.5.0.2/16), routes and rules as
nordvpn-linux 5.x sets them (shared/facts/k3s-and-vpn.md, "NordVPN while connected"). Runs after
test_site.py (file order) on the host it converged. Routes are only looked up (`ip route get`),
never used: no traffic leaves the test host.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from testhost import app_kubeconfig, eth0_ip, flat, health, k3s_config, sh, switch_ip, wait_until

REPO = Path(__file__).resolve().parents[3]
RECOVER = str(REPO / "playbooks" / "recover.yml")
TUNNEL, TUNNEL_IP = "nordlynx", "10.5.0.2"
NEW_IP, NEW_GW = "10.77.0.5", "10.77.0.1"
WORKERS = ("k8s-worker", "pod-monitor")
STATE: dict = {}


def route_dev(host, destination: str = "1.1.1.1") -> str:
    """The device the kernel would use (a lookup only; nothing is sent)."""
    return json.loads(sh(host, f"ip -j -4 route get {destination}"))[0]["dev"]


def assert_lan_node_and_app(host, lan_ip: str) -> None:
    config = k3s_config(host)
    assert (config["node-ip"], config["flannel-iface"]) == (lan_ip, "eth0"), config
    assert TUNNEL_IP not in config["tls-san"], config["tls-san"]
    node = json.loads(sh(host, "k3s kubectl get nodes -o json"))["items"][0]["status"]
    assert {c["type"]: c["status"] for c in node["conditions"]}["Ready"] == "True"
    assert [a["address"] for a in node["addresses"] if a["type"] == "InternalIP"] == [lan_ip]
    assert app_kubeconfig(host)["clusters"][0]["cluster"]["server"] == f"https://{lan_ip}:6443"
    for worker in WORKERS:
        wait_until(lambda w=worker: health(host, w)["Status"] == "healthy", f"{worker} healthy", limit=120)
    assert json.loads(sh(host, "curl -sk https://localhost/api/v1/health/live"))["status"] == "ok"


def rerun_site(ansible_playbook, what: str):
    start = time.monotonic()
    run = ansible_playbook("converge.yml")
    print(f"\nWALK {what}: site.yml {time.monotonic() - start:.1f}s, changed={run.total('changed')}")
    run.assert_no_changes(f"site.yml {what}")
    return run


def test_walk_1_tunnel_holds_the_default_route_in_the_main_table(host, ansible_playbook):
    lan_ip = eth0_ip(host)
    STATE["lan_ip"] = lan_ip
    STATE["gateway"] = json.loads(sh(host, "ip -j -4 route show default"))[0]["gateway"]
    sh(
        host,
        f"ip link add {TUNNEL} type veth peer name {TUNNEL}-peer && ip addr add {TUNNEL_IP}/16 dev {TUNNEL} && "
        f"ip link set {TUNNEL}-peer up && ip link set {TUNNEL} up && ip route replace default dev {TUNNEL}",
    )
    assert route_dev(host) == TUNNEL
    rerun_site(ansible_playbook, "with the tunnel's default route in the main table")
    assert_lan_node_and_app(host, lan_ip)


def test_walk_2_tunnel_default_route_in_policy_table_205(host, ansible_playbook):
    """nordvpn-linux 5.x: main table untouched, `default dev nordlynx` in table 205, selected by
    `not fwmark 0xe1f1 lookup 205` after `lookup main suppress_prefixlength 0`."""
    sh(
        host,
        f"ip route replace default via {STATE['gateway']} dev eth0 && "
        f"ip route add default dev {TUNNEL} table 205 && "
        "ip rule add from all lookup main suppress_prefixlength 0 pref 32764 && "
        "ip rule add not from all fwmark 0xe1f1 lookup 205 pref 32765",
    )
    assert json.loads(sh(host, "ip -j -4 route show default"))[0]["dev"] == "eth0"
    assert route_dev(host) == TUNNEL, "the policy rule must send traffic into the tunnel, as the real client does"
    rerun_site(ansible_playbook, "with the tunnel's default route in table 205")
    assert_lan_node_and_app(host, STATE["lan_ip"])


def test_walk_3_lan_change_recover_then_site_agrees(host, ansible_playbook):
    old = switch_ip(host, NEW_IP, NEW_GW)
    assert old == STATE["lan_ip"]
    assert route_dev(host) == TUNNEL
    start = time.monotonic()
    run = ansible_playbook(RECOVER, "-e", "k3s_recover_confirm=true")
    print(f"\nWALK recover.yml after the LAN change: {time.monotonic() - start:.1f}s")
    assert run.returncode == 0, run.output[-4000:]
    assert f"k3s recovered: node Ready at {NEW_IP} (flannel-iface eth0)" in flat(run.output)
    assert_lan_node_and_app(host, NEW_IP)
    recovered = sh(host, "sha256sum /etc/rancher/k3s/config.yaml")
    rerun_site(ansible_playbook, "after the recovery")
    assert sh(host, "sha256sum /etc/rancher/k3s/config.yaml") == recovered, "site.yml rewrote the recovered config"
    assert_lan_node_and_app(host, NEW_IP)

"""Drift assessment: host address parsing and the findings over gathered facts (pure)."""

from __future__ import annotations

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import (
    assess,
    default_route,
    host_addresses,
)
from hostnet import LO, docker0, nic, tunnel

LINKS = [
    LO,
    dict(nic("eth0", "10.77.0.5/24"), addr_info=nic("eth0", "10.77.0.5/24")["addr_info"]
         + [{"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]),
    *docker0("172.18.0.1/16"),
    tunnel("nordlynx", "10.5.0.2/32"),
]  # fmt: skip


def test_host_addresses_keep_global_addresses_and_mark_tunnels_and_bridges():
    addrs = {a["address"]: a for a in host_addresses(LINKS)}
    assert set(addrs) == {"10.77.0.5", "172.18.0.1", "10.5.0.2"}
    assert addrs["10.5.0.2"]["tunnel"] is True
    assert addrs["10.77.0.5"]["tunnel"] is False
    assert addrs["172.18.0.1"]["tunnel"] is True, "docker0 never carries the node address"


def test_default_route_on_vpn_tunnel_is_marked():
    route = default_route(LINKS, [{"dst": "default", "dev": "nordlynx", "flags": []}])
    assert route == {"interface": "nordlynx", "tunnel": True}
    route = default_route(LINKS, [{"dst": "default", "dev": "eth0", "gateway": "10.77.0.1", "flags": []}])
    assert route == {"interface": "eth0", "tunnel": False}


def test_a_node_ip_on_the_tunnel_is_drift_even_while_assigned():
    """A config.yaml a tunnel-bound rerun once wrote: the address is on the host, but the policy
    never chooses a tunnel, so the recovery moves the node back to the LAN."""
    found = assess(facts(config_ip="10.5.0.2", node_address_reason="eth0 carries the default route"))
    assert checks(found) == ["config_node_ip_policy"]
    assert "10.5.0.2" in found[0]["message"] and "10.77.0.5" in found[0]["message"]


def test_no_usable_address_names_the_pins():
    found = assess(
        facts(expected_ip=None, node_address_error="No usable IPv4 address ... Set k3s_node_ip or k3s_node_interface.")
    )
    assert "node_ip_available" in checks(found)
    assert "k3s_node_ip" in next(f for f in found if f["check"] == "node_ip_available")["message"]


def facts(**overrides):
    base = {
        "config_file": "/etc/rancher/k3s/config.yaml",
        "config_ip": "10.77.0.5",
        "config_ip_file": "/etc/rancher/k3s/config.yaml",
        "expected_ip": "10.77.0.5",
        "addresses": host_addresses(LINKS),
        "interfaces": ["lo", "eth0", "docker0", "nordlynx"],
        "default_route": {"interface": "eth0", "tunnel": False},
        "flannel_iface": "eth0",
        "recommended_iface": "eth0",
        "recorded_tls": ["10.77.0.5"],
        "recorded_datastore": ["10.77.0.5"],
        "datastore": "sqlite",
        "kubeconfigs": [{"path": "/app", "exists": True, "server": "https://10.77.0.5:6443",
                         "server_host": "10.77.0.5", "ca_matches": True}],
        "service": {"active_state": "active", "sub_state": "running", "n_restarts": 0},
        "crash_looping": False,
    }  # fmt: skip
    base.update(overrides)
    return base


def checks(findings, severity="drift"):
    return sorted(f["check"] for f in findings if f["severity"] == severity)


def test_converged_host_has_no_findings():
    assert assess(facts()) == []


def test_ip_change_is_found_everywhere_it_shows():
    found = assess(
        facts(
            config_ip="172.17.0.3",
            recorded_tls=["172.17.0.3"],
            recorded_datastore=["172.17.0.3"],
            kubeconfigs=[{"path": "/app", "exists": True, "server": "https://172.17.0.3:6443",
                          "server_host": "172.17.0.3", "ca_matches": True}],
            crash_looping=True,
        )
    )  # fmt: skip
    assert checks(found) == ["config_node_ip_on_host", "datastore_node_ip", "kubeconfig_server", "tls_san"]
    assert checks(found, "warning") == ["service_running"]
    message = next(f for f in found if f["check"] == "config_node_ip_on_host")["message"]
    assert "172.17.0.3" in message and "/etc/rancher/k3s/config.yaml" in message


def test_config_already_rewritten_but_tls_stale_is_drift():
    assert checks(assess(facts(recorded_tls=["172.17.0.3"]))) == ["tls_san"]


def test_loopback_and_hostname_servers_are_not_compared():
    kcs = [
        {"path": "/a", "exists": True, "server": "https://127.0.0.1:6443", "server_host": "127.0.0.1"},
        {"path": "/b", "exists": True, "server": "https://host.docker.internal:6443",
         "server_host": "host.docker.internal"},
        {"path": "/c", "exists": False, "server": None, "server_host": None},
    ]  # fmt: skip
    assert assess(facts(kubeconfigs=kcs)) == []


def test_stale_ca_in_a_kubeconfig_is_drift():
    kcs = [{"path": "/home/u/.kube/config", "exists": True, "server": "https://127.0.0.1:6443",
            "server_host": "127.0.0.1", "ca_matches": False}]  # fmt: skip
    assert checks(assess(facts(kubeconfigs=kcs))) == ["kubeconfig_ca"]


def test_vpn_default_route_is_only_a_warning():
    found = assess(facts(default_route={"interface": "nordlynx", "gateway": None, "tunnel": True}))
    assert checks(found) == [] and checks(found, "warning") == ["default_route_tunnel"]


def test_missing_flannel_interface_is_drift():
    assert checks(assess(facts(flannel_iface="enp0s3"))) == ["flannel_iface_exists"]

"""The node-address policy over the host layouts a laptop or server goes through.

Each layout is what `ip -j addr show` and `ip -j -4 route show table main` print on such a host
(NordVPN's layout from nordvpn-linux 5.x: tunnel device, default route in policy table 205, main
table untouched; see shared/facts/k3s-and-vpn.md, "NordVPN while connected").
"""

from __future__ import annotations

import json

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
    flannel_iface_for,
    read_network,
)
from hostnet import LO, device, docker0, host_only_adapter, multipath, nic, tunnel, uplink


def link(name, *addrs, state="UP"):
    """A NIC (``state`` DOWN: carrier lost, address kept)."""
    return nic(name, *addrs, carrier=state == "UP")


ETH0 = link("eth0", "192.168.1.20/24")
NORDLYNX = tunnel("nordlynx", "10.5.0.2/16")
# Our test hosts model the tunnel with a veth pair in one namespace (nordvpn stand-in README).
NORDLYNX_VETH = device("nordlynx", "veth", "10.5.0.2/16")
DOCKER0 = docker0()
MAIN_ETH0 = [
    {"dst": "default", "gateway": "192.168.1.1", "dev": "eth0", "metric": 100},
    {"dst": "192.168.1.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "192.168.1.20"},
]


def flat(links):
    out = []
    for item in links:
        out.extend(item if isinstance(item, list) else [item])
    return out


def choose(links, routes=None, **kwargs):
    return choose_node_address([LO, *flat(links)], MAIN_ETH0 if routes is None else routes, **kwargs)


def test_nordlynx_connected_default_route_in_table_205():
    # The main table keeps eth0's default route; the tunnel's lives in table 205 and is not read.
    choice = choose([ETH0, NORDLYNX, DOCKER0])
    assert (choice["address"], choice["interface"], choice["source"]) == ("192.168.1.20", "eth0", "default_route")
    assert choice["candidates"] == ["192.168.1.20"]


def test_tunnel_holding_the_default_route_in_the_main_table():
    routes = [
        {"dst": "default", "dev": "nordlynx", "metric": 0},
        {"dst": "192.168.1.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"},
    ]
    choice = choose([ETH0, NORDLYNX_VETH], routes)
    assert (choice["address"], choice["interface"], choice["source"]) == ("192.168.1.20", "eth0", "interface")


def test_openvpn_nordtun_with_def1_routes():
    nordtun = tunnel("nordtun", "10.7.0.2/24", kind="tun")
    routes = MAIN_ETH0 + [{"dst": "0.0.0.0/1", "dev": "nordtun"}, {"dst": "128.0.0.0/1", "dev": "nordtun"}]
    assert choose([nordtun, ETH0], routes)["address"] == "192.168.1.20"


def test_nordwhisper_qtun_is_a_tunnel():
    assert choose([link("qtun", "10.8.0.2/16"), ETH0])["interface"] == "eth0"


def test_wireguard_by_kind_whatever_its_name():
    wg = tunnel("wg0", "10.66.0.2/24")
    custom = tunnel("office", "10.67.0.2/24")
    routes = [{"dst": "default", "dev": "wg0"}, {"dst": "default", "dev": "office", "metric": 5}]
    choice = choose([wg, custom, ETH0], routes)
    assert choice["interface"] == "eth0"
    reasons = {s["interface"]: s["excluded"] for s in choice["seen"]}
    assert reasons["wg0"] == reasons["office"] == "point-to-point tunnel"


def test_tailscale_and_cgnat_addresses_never_qualify():
    tailscale = tunnel("tailscale0", "100.101.102.103/32", kind="tun")
    meshnet_like = link("eth1", "100.64.3.4/10")
    choice = choose([tailscale, meshnet_like, ETH0])
    assert choice["address"] == "192.168.1.20"
    assert "100.64.0.0/10" in {s["interface"]: s["excluded"] for s in choice["seen"]}["eth1"]


def test_docker_k3s_and_libvirt_devices_never_qualify():
    devices = [
        DOCKER0,
        device("br-3f2a9c1d", "bridge", "172.20.0.1/24"),
        device("veth1a2b3c", "veth", "169.254.0.9/16", master="br-3f2a9c1d", netnsid=3),
        device("cni0", "bridge", "10.42.0.1/24"),
        device("vethc0ffee", "veth", master="cni0", netnsid=4),
        device("flannel.1", "vxlan", "10.42.0.0/32"),
        device("kube-ipvs0", "dummy", "10.43.0.1/32"),
        device("virbr0", "bridge", "192.168.122.1/24"),
        device("virbr0-nic", "tun", master="virbr0"),
    ]
    routes = [{"dst": "default", "dev": "cni0", "metric": 0}, *MAIN_ETH0]
    choice = choose([*devices, ETH0], routes)
    assert (choice["address"], choice["interface"]) == ("192.168.1.20", "eth0")
    reasons = {s["interface"]: s["excluded"] for s in choice["seen"]}
    assert reasons["cni0"].startswith("bridge without a physical port")
    assert reasons["flannel.1"] == "virtual device (vxlan)"


def test_two_nics_the_main_default_route_with_the_lowest_metric_wins():
    wlan = link("wlan0", "10.20.30.40/24")
    routes = [
        {"dst": "default", "gateway": "10.20.30.1", "dev": "wlan0", "metric": 600},
        {"dst": "default", "gateway": "192.168.1.1", "dev": "eth0", "metric": 100},
    ]
    assert choose([wlan, ETH0], routes)["interface"] == "eth0"
    assert choose([wlan, ETH0], [{"dst": "default", "dev": "wlan0", "metric": 600}])["interface"] == "wlan0"


def test_recorded_address_still_present_is_kept_although_the_route_moved():
    wlan = link("wlan0", "10.20.30.40/24")
    choice = choose([wlan, ETH0], MAIN_ETH0, recorded=["10.20.30.40"])
    assert (choice["address"], choice["source"]) == ("10.20.30.40", "recorded")
    assert "still assigned to wlan0" in choice["reason"]


def test_recorded_address_gone_falls_back_to_the_lan_and_says_so():
    choice = choose([ETH0, NORDLYNX], MAIN_ETH0, recorded=["172.17.0.3"])
    assert (choice["address"], choice["source"]) == ("192.168.1.20", "default_route")
    assert "172.17.0.3 is no longer assigned" in choice["reason"]


def test_recorded_address_on_the_tunnel_is_not_kept():
    """A config.yaml a tunnel-bound run once wrote: the node goes back to the LAN."""
    choice = choose([ETH0, NORDLYNX], MAIN_ETH0, recorded=["10.5.0.2"])
    assert choice["address"] == "192.168.1.20"
    assert "on a tunnel or virtual device" in choice["reason"]


def test_explicit_pins_win_and_a_pin_may_even_name_a_tunnel():
    assert choose([ETH0, NORDLYNX], node_ip="10.5.0.2")["source"] == "node_ip"
    wlan = link("wlan0", "10.20.30.40/24", "10.20.30.41/24")
    choice = choose([ETH0, wlan], node_interface="wlan0", recorded=["192.168.1.20"])
    assert (choice["address"], choice["source"]) == ("10.20.30.40", "node_interface")


def test_explicit_node_ip_not_on_the_host_names_the_variable():
    with pytest.raises(NodeAddressError, match=r"^k3s_node_ip 192\.168\.9\.9 is not .* eth0 192\.168\.1\.20"):
        choose([ETH0], node_ip="192.168.9.9")


def test_explicit_interface_missing_or_without_ipv4_names_the_variable():
    with pytest.raises(NodeAddressError, match=r"^k3s_node_interface enp9s0 is not an interface of this host"):
        choose([ETH0], node_interface="enp9s0")
    with pytest.raises(NodeAddressError, match=r"^k3s_node_interface eth1 has no global IPv4 address"):
        choose([ETH0, link("eth1")], node_interface="eth1")


def test_nothing_usable_names_both_pins_and_lists_what_was_seen():
    with pytest.raises(NodeAddressError) as info:
        choose([NORDLYNX, DOCKER0], [{"dst": "default", "dev": "nordlynx"}])
    message = str(info.value)
    assert "k3s_node_ip" in message and "k3s_node_interface" in message
    assert "nordlynx 10.5.0.2 (point-to-point tunnel)" in message
    assert "docker0 172.17.0.1 (bridge without a physical port" in message


def test_a_link_that_is_down_does_not_qualify():
    down = link("eth1", "10.9.9.9/24", state="DOWN")
    assert choose([down, ETH0], [])["address"] == "192.168.1.20"


def test_flannel_follows_the_node_address_unless_named():
    choice = choose([ETH0])
    assert flannel_iface_for(choice) == "eth0"
    assert flannel_iface_for(choice, "eth9") == "eth9"


def test_read_network_parses_ip_json_and_reports_a_failing_ip():
    calls = []

    def run(argv):
        calls.append(argv)
        if "addr" in argv:
            return 0, json.dumps([LO, ETH0]), ""
        return 0, json.dumps(MAIN_ETH0), ""

    links, routes = read_network(run)
    assert [item["ifname"] for item in links] == ["lo", "eth0"] and routes == MAIN_ETH0
    assert calls == [["ip", "-d", "-j", "addr", "show"], ["ip", "-j", "-4", "route", "show", "table", "main"]]
    with pytest.raises(NodeAddressError, match="ip -d -j addr show failed: boom"):
        read_network(lambda argv: (1, "", "boom"))


def test_a_lan_bridge_with_a_physical_port_qualifies_whatever_its_name():
    """br0 / br-lan over eth0 (a server bridging its NIC for VMs): the old name list excluded
    every br-*, so a host whose LAN is br-lan had no node address."""
    for name in ("br0", "br-lan"):
        layout = [nic("eth0", master=name), device(name, "bridge", "192.168.1.30/24")]
        choice = choose(layout, [{"dst": "default", "dev": name, "metric": 0}])
        assert (choice["address"], choice["interface"], choice["source"]) == ("192.168.1.30", name, "default_route")


def test_host_only_adapters_without_hardware_never_qualify():
    """vmnet8 / vboxnet0 have no link kind; the host names every NIC's bus, and they have none."""
    layout = [host_only_adapter("vmnet8", "172.16.5.1/24"), host_only_adapter("vboxnet0", "192.168.56.1/24")]
    with pytest.raises(NodeAddressError, match="no hardware behind it"):
        choose([*layout, link("wlan0")], [])
    assert choose([*layout, ETH0], [])["interface"] == "eth0"


def test_multipath_default_route_is_read_per_next_hop():
    wlan = link("wlan0", "10.20.30.40/24")
    choice = choose([wlan, ETH0], [multipath("wlan0")])
    assert (choice["interface"], choice["source"]) == ("wlan0", "default_route")


def test_a_recorded_address_on_a_link_without_carrier_stays_with_a_warning():
    """Cable pulled, ifupdown keeps the address, Wi-Fi holds the default route: no move."""
    down = link("eth0", "192.168.1.20/24", state="DOWN")
    wlan = link("wlan0", "10.20.30.40/24")
    choice = choose([down, wlan], [{"dst": "default", "dev": "wlan0", "metric": 600}], recorded=["192.168.1.20"])
    assert (choice["address"], choice["source"]) == ("192.168.1.20", "recorded")
    assert choice["warnings"] == ["eth0 holds k3s's address 192.168.1.20 but has no carrier now"]


def test_a_container_uplink_veth_qualifies_and_a_veth_pair_does_not():
    choice = choose([uplink("eth0", "172.18.0.5/16"), NORDLYNX_VETH], [{"dst": "default", "dev": "eth0"}])
    assert choice["address"] == "172.18.0.5"
    assert {s["interface"]: s["excluded"] for s in choice["seen"]}["nordlynx"] == "virtual device (veth)"

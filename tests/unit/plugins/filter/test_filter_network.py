"""Filters cidr_overlaps, cidr_networks, cidr_within and route_overlaps (plugins/filter/network.py), called directly."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.network import (
    FilterModule,
    cidr_networks,
    cidr_overlaps,
    cidr_within,
    route_overlaps,
)

K3S = ["10.42.0.0/16", "10.43.0.0/16"]


def test_filters_are_registered_under_their_names():
    assert FilterModule().filters() == {
        "cidr_overlaps": cidr_overlaps,
        "cidr_networks": cidr_networks,
        "cidr_within": cidr_within,
        "route_overlaps": route_overlaps,
    }


# --- cidr_networks, cidr_within (role nordvpn: the node's subnet, what LAN discovery lets through) -------------

PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def test_networks_clear_host_bits_keep_order_and_drop_repeats():
    assert cidr_networks(["192.168.1.20/24", "10.42.0.0/16", "10.42.7.9/16", "172.17.0.3"]) == [
        "192.168.1.0/24",
        "10.42.0.0/16",
        "172.17.0.3/32",
    ]


@pytest.mark.parametrize(
    ("cidr", "network"),
    [("0.0.0.0/0", "0.0.0.0/0"), ("255.255.255.255/1", "128.0.0.0/1"), ("10.77.0.5/31", "10.77.0.4/31")],
)
def test_network_edges(cidr, network):
    assert cidr_networks([cidr]) == [network]


@pytest.mark.parametrize("bad", ["10.42.0.0/33", "10.256.0.0/16", "eth0", "", None])
def test_networks_name_a_bad_entry(bad):
    with pytest.raises(AnsibleFilterError, match=r"cidr_networks input\[1\] is not an IPv4 address or CIDR"):
        cidr_networks(["10.0.0.0/8", bad])


def test_networks_refuse_a_string():
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        cidr_networks("10.0.0.0/8")


def test_within_keeps_the_cidrs_inside_a_range_as_given():
    needed = ["10.42.0.0/16", "172.20.0.0/14", "203.0.113.0/24", "10.0.0.0/7", "172.17.0.9/16"]
    assert cidr_within(needed, PRIVATE) == ["10.42.0.0/16", "172.20.0.0/14", "172.17.0.9/16"]


@pytest.mark.parametrize(
    ("cidr", "inside", "address_inside"),
    [
        ("10.0.0.0/8", True, True),  # the whole range itself
        ("10.0.0.0/7", False, True),  # starts private, reaches 11.255.255.255: private to the client
        ("9.255.255.255/32", False, False),  # one address before 10.0.0.0/8
        ("172.15.0.0/16", False, False),
        ("172.0.0.0/8", False, False),  # covers 172.16/12 but starts outside it
        ("192.168.255.0/24", True, True),  # the last /24 inside
        ("169.254.0.0/16", True, True),
    ],
)
def test_within_edges_and_address_only(cidr, inside, address_inside):
    assert (cidr_within([cidr], PRIVATE) == [cidr]) is inside
    assert (cidr_within([cidr], PRIVATE, address_only=True) == [cidr]) is address_inside


def test_within_names_bad_input():
    with pytest.raises(AnsibleFilterError, match=r"cidr_within ranges\[0\] is not an IPv4 CIDR"):
        cidr_within(["10.0.0.0/8"], ["10.0.0.0"])
    with pytest.raises(AnsibleFilterError, match=r"cidr_within input\[0\] is not an IPv4 CIDR"):
        cidr_within(["nope"], PRIVATE)


# --- cidr_overlaps (role docker: address pools vs. ranges to avoid) ---------------------------------------------


def test_pools_clear_of_the_avoid_ranges_give_nothing():
    assert cidr_overlaps(["172.20.0.0/14", "192.168.100.0/24"], K3S + ["10.0.0.0/10"]) == []


def test_each_overlapping_pair_is_returned_in_input_order():
    assert cidr_overlaps(["10.0.0.0/8", "172.20.0.0/14", "10.43.128.0/17"], K3S) == [
        ["10.0.0.0/8", "10.42.0.0/16"],
        ["10.0.0.0/8", "10.43.0.0/16"],
        ["10.43.128.0/17", "10.43.0.0/16"],
    ]


@pytest.mark.parametrize(
    ("pool", "avoid", "overlaps"),
    [
        ("10.41.255.0/24", "10.42.0.0/16", False),  # ends one address before
        ("10.42.255.0/24", "10.42.0.0/16", True),  # last /24 inside
        ("10.44.0.0/16", "10.43.0.0/16", False),  # starts one address after
        ("0.0.0.0/0", "203.0.113.7/32", True),  # everything covers a host
        ("10.5.0.0/16", "10.0.0.0/10", True),  # NordLynx's 10.5.0.2/16 inside NordVPN's /10
        ("10.64.0.0/16", "10.0.0.0/10", False),  # 10.0.0.0/10 ends at 10.63.255.255
    ],
)
def test_range_edges(pool, avoid, overlaps):
    assert (cidr_overlaps([pool], [avoid]) == [[pool, avoid]]) is overlaps


def test_host_bits_are_ignored_and_the_cidr_is_returned_as_given():
    # 10.42.7.9/16 is the range 10.42.0.0/16; the old Jinja counted from 10.42.7.9 instead.
    assert cidr_overlaps(["10.42.7.9/16"], ["10.42.0.0/24"]) == [["10.42.7.9/16", "10.42.0.0/24"]]


def test_empty_lists_give_nothing():
    assert cidr_overlaps([], K3S) == []
    assert cidr_overlaps(["10.0.0.0/8"], []) == []


@pytest.mark.parametrize(
    ("cidrs", "others", "message"),
    [
        ("10.0.0.0/8", K3S, "cidr_overlaps input must be a list of IPv4 CIDRs, got str"),
        (["10.0.0.0/8"], {"a": 1}, "cidr_overlaps others must be a list of IPv4 CIDRs, got dict"),
        (["10.0.0.0"], K3S, "cidr_overlaps input[0] is not an IPv4 CIDR"),
        (["10.0.0.0/8", "10.0.0.0/33"], K3S, "cidr_overlaps input[1] is not an IPv4 CIDR"),
        (["256.0.0.0/8"], K3S, "cidr_overlaps input[0] is not an IPv4 CIDR"),
        (["fd00::/8"], K3S, "cidr_overlaps input[0] is not an IPv4 CIDR"),
        (["10.0.0.0/8"], [None], "cidr_overlaps others[0] is not an IPv4 CIDR"),
    ],
)
def test_bad_cidr_input_fails_naming_the_value(cidrs, others, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cidr_overlaps(cidrs, others)


# --- route_overlaps (role nordvpn: routes through the tunnel vs. the k3s CIDRs) ----------------------------------
# Routes as `ip -4 -j route show table all` prints them (iproute2 6.1): `type` is left out for unicast and `table`
# for main.

MAIN_DEFAULT = {"dst": "default", "gateway": "172.17.0.1", "dev": "eth0", "flags": []}
MAIN_LAN = {
    "dst": "172.17.0.0/16",
    "dev": "eth0",
    "protocol": "kernel",
    "scope": "link",
    "prefsrc": "172.17.0.2",
    "flags": [],
}
# What a connected NordLynx client adds (nordvpn-linux 5.x): its address 10.5.0.2/16 and the default route in
# policy table 205; the main table is left alone.
TUNNEL_SUBNET = {
    "dst": "10.5.0.0/16",
    "dev": "nordlynx",
    "protocol": "kernel",
    "scope": "link",
    "prefsrc": "10.5.0.2",
    "flags": [],
}
TABLE_205_DEFAULT = {"dst": "default", "dev": "nordlynx", "table": "205", "scope": "link", "flags": []}
TUNNEL_LOCAL = [
    {
        "type": "local",
        "dst": "10.5.0.2",
        "dev": "nordlynx",
        "table": "local",
        "protocol": "kernel",
        "scope": "host",
        "prefsrc": "10.5.0.2",
        "flags": [],
    },
    {
        "type": "broadcast",
        "dst": "10.5.255.255",
        "dev": "nordlynx",
        "table": "local",
        "protocol": "kernel",
        "scope": "link",
        "prefsrc": "10.5.0.2",
        "flags": [],
    },
]
CONNECTED = [MAIN_DEFAULT, MAIN_LAN, TUNNEL_SUBNET, TABLE_205_DEFAULT, *TUNNEL_LOCAL]


def route(dst, dev="nordlynx", **extra):
    return {"dst": dst, "dev": dev, "scope": "link", "flags": [], **extra}


def test_connected_client_without_overlap_reports_nothing():
    # The false positive this filter exists to avoid: `default dev nordlynx table 205` covers every address, but it
    # is the tunnel's whole-internet route, not a route over the k3s ranges.
    assert route_overlaps(CONNECTED, K3S, "nordlynx") == []


def test_connected_client_without_overlap_as_text_lines():
    lines = [
        "default via 172.17.0.1 dev eth0 ",
        "172.17.0.0/16 dev eth0 proto kernel scope link src 172.17.0.2 ",
        "10.5.0.0/16 dev nordlynx proto kernel scope link src 10.5.0.2 ",
        "default dev nordlynx table 205 scope link ",
        "local 10.5.0.2 dev nordlynx table local proto kernel scope host src 10.5.0.2 ",
        "broadcast 10.5.255.255 dev nordlynx table local proto kernel scope link src 10.5.0.2 ",
    ]
    assert route_overlaps(lines, K3S, "nordlynx") == []


def test_real_overlap_in_the_main_table_is_reported():
    # NordVPN 3.20.0 (nordvpn-linux #762).
    assert route_overlaps([*CONNECTED, route("10.0.0.0/10")], K3S, "nordlynx") == [
        "10.0.0.0/10 dev nordlynx overlaps 10.42.0.0/16",
        "10.0.0.0/10 dev nordlynx overlaps 10.43.0.0/16",
    ]


def test_overlap_in_policy_table_205_is_reported_with_its_table():
    routes = [*CONNECTED, route("10.0.0.0/10", table="205")]
    assert route_overlaps(routes, K3S, "nordlynx") == [
        "10.0.0.0/10 dev nordlynx table 205 overlaps 10.42.0.0/16",
        "10.0.0.0/10 dev nordlynx table 205 overlaps 10.43.0.0/16",
    ]


def test_overlap_in_the_older_clients_table_51820_as_a_text_line():
    lines = ["default dev nordlynx table 51820 scope link", "10.42.0.0/16 dev nordlynx table 51820 scope link"]
    assert route_overlaps(lines, K3S, "nordlynx") == ["10.42.0.0/16 dev nordlynx table 51820 overlaps 10.42.0.0/16"]


def test_def1_halves_are_whole_internet_routes():
    # OpenVPN's redirect-gateway def1 (NordVPN's OpenVPN technology, tunnel nordtun).
    routes = [MAIN_DEFAULT, route("0.0.0.0/1", "nordtun"), route("128.0.0.0/1", "nordtun")]
    assert route_overlaps(routes, K3S, "nordtun") == []
    assert route_overlaps(["0.0.0.0/1 dev nordtun scope link", "128.0.0.0/1 dev nordtun"], K3S, "nordtun") == []


def test_a_slash_two_is_not_whole_internet_and_is_reported():
    assert route_overlaps([route("0.0.0.0/2")], K3S, "nordlynx") == [
        "0.0.0.0/2 dev nordlynx overlaps 10.42.0.0/16",
        "0.0.0.0/2 dev nordlynx overlaps 10.43.0.0/16",
    ]


def test_ipv6_routes_are_ignored():
    routes = [
        {"dst": "fd00::/8", "dev": "nordlynx", "metric": 1024, "pref": "medium", "flags": []},
        {"dst": "::/0", "dev": "nordlynx", "table": "205", "metric": 1024, "flags": []},
        {"dst": "default", "dev": "nordlynx", "family": "inet6", "table": "205", "flags": []},
        "fe80::/64 dev nordlynx proto kernel metric 256 pref medium",
    ]
    assert route_overlaps(routes, K3S, "nordlynx") == []


def test_routes_through_other_interfaces_are_not_reported():
    routes = [route("10.42.0.0/24", "cni0"), route("10.0.0.0/10", "eth0"), "10.43.0.0/16 dev nordlynx0 scope link"]
    assert route_overlaps(routes, K3S, "nordlynx") == []


def test_local_and_broadcast_entries_are_not_routes_into_the_tunnel():
    # The tunnel's own address inside a protected range: the main table's kernel route is what carries traffic.
    routes = [
        {"type": "local", "dst": "10.42.0.2", "dev": "nordlynx", "table": "local", "flags": []},
        {"type": "broadcast", "dst": "10.42.255.255", "dev": "nordlynx", "table": "local", "flags": []},
    ]
    assert route_overlaps(routes, K3S, "nordlynx") == []
    assert route_overlaps([*routes, route("10.42.0.0/16")], K3S, "nordlynx") == [
        "10.42.0.0/16 dev nordlynx overlaps 10.42.0.0/16"
    ]


def test_host_route_and_multipath_next_hop():
    multipath = {
        "dst": "10.43.0.0/20",
        "flags": [],
        "nexthops": [{"gateway": "172.17.0.1", "dev": "eth0"}, {"dev": "nordlynx", "weight": 1}],
    }
    assert route_overlaps([route("10.42.3.4"), multipath], K3S, "nordlynx") == [
        "10.42.3.4 dev nordlynx overlaps 10.42.0.0/16",
        "10.43.0.0/20 dev nordlynx overlaps 10.43.0.0/16",
    ]


def test_the_same_overlap_is_reported_once():
    assert route_overlaps([route("10.42.0.0/16"), "10.42.0.0/16 dev nordlynx"], ["10.42.0.0/16"], "nordlynx") == [
        "10.42.0.0/16 dev nordlynx overlaps 10.42.0.0/16"
    ]


def test_empty_route_list_and_blank_lines():
    assert route_overlaps([], K3S, "nordlynx") == []
    assert route_overlaps(["", "   "], K3S, "nordlynx") == []


@pytest.mark.parametrize(
    ("routes", "cidrs", "interface", "message"),
    [
        ("default dev nordlynx table 205", K3S, "nordlynx", "input must be a list of routes"),
        ({"dst": "default"}, K3S, "nordlynx", "input must be a list of routes"),
        (None, K3S, "nordlynx", "input must be a list of routes"),
        ([42], K3S, "nordlynx", r"input\[0\] must be a route"),
        ([{"dev": "nordlynx"}], K3S, "nordlynx", r"input\[0\] has no destination"),
        (["local"], K3S, "nordlynx", r"input\[0\] has no destination"),
        (["10.0.0.0/10 dev"], K3S, "nordlynx", r"input\[0\] ends in 'dev' without a value"),
        ([route("10.0.0.0/33")], K3S, "nordlynx", r"input\[0\] has a destination that is not IPv4"),
        ([route("nowhere")], K3S, "nordlynx", r"input\[0\] has a destination that is not IPv4"),
        ([], ["10.42.0.0"], "nordlynx", r"cidrs\[0\] is not an IPv4 CIDR"),
        ([], "10.42.0.0/16", "nordlynx", "cidrs must be a list of IPv4 CIDRs"),
        ([], K3S, "", "interface must be an interface name"),
        ([], K3S, None, "interface must be an interface name"),
    ],
)
def test_bad_route_input_fails_with_a_message(routes, cidrs, interface, message):
    with pytest.raises(AnsibleFilterError, match="route_overlaps " + message):
        route_overlaps(routes, cidrs, interface)


# Captured from `ip -4 -json route show table all` (iproute2 6.1, the systemd test-host image) after a veth named
# nordlynx got 10.5.0.2/16, `ip rule add not fwmark 0xe1f1 table 205`, `ip route add default dev nordlynx table 205`,
# `ip route add 10.0.0.0/10 dev nordlynx table 205` and the def1 halves 0.0.0.0/1 and 128.0.0.0/1 in main.
CAPTURED = (
    '[{"dst":"default","dev":"nordlynx","table":"205","scope":"link","flags":[]},'
    '{"dst":"10.0.0.0/10","dev":"nordlynx","table":"205","scope":"link","flags":[]},'
    '{"dst":"0.0.0.0/1","dev":"nordlynx","scope":"link","flags":[]},'
    '{"dst":"default","gateway":"172.17.0.1","dev":"eth0","flags":[]},'
    '{"dst":"10.5.0.0/16","dev":"nordlynx","protocol":"kernel","scope":"link","prefsrc":"10.5.0.2","flags":[]},'
    '{"dst":"128.0.0.0/1","dev":"nordlynx","scope":"link","flags":[]},'
    '{"dst":"172.17.0.0/16","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"172.17.0.2","flags":[]},'
    '{"type":"local","dst":"10.5.0.2","dev":"nordlynx","table":"local","protocol":"kernel","scope":"host",'
    '"prefsrc":"10.5.0.2","flags":[]},'
    '{"type":"broadcast","dst":"10.5.255.255","dev":"nordlynx","table":"local","protocol":"kernel","scope":"link",'
    '"prefsrc":"10.5.0.2","flags":[]},'
    '{"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local","protocol":"kernel","scope":"host",'
    '"prefsrc":"127.0.0.1","flags":[]}]'
)


def test_captured_ip_json_output():
    routes = json.loads(CAPTURED)
    assert route_overlaps(routes, K3S, "nordlynx") == [
        "10.0.0.0/10 dev nordlynx table 205 overlaps 10.42.0.0/16",
        "10.0.0.0/10 dev nordlynx table 205 overlaps 10.43.0.0/16",
    ]
    without_762 = [r for r in routes if r["dst"] != "10.0.0.0/10"]
    assert route_overlaps(without_762, K3S, "nordlynx") == []

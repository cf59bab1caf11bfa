"""Properties of the node-address policy over generated link and route layouts (Hypothesis).

Layouts mix the devices a laptop or server has (tests/unit/plugins/hostnet.py): NICs with and
without carrier, a container's uplink veth, veth pairs, LAN bridges over a NIC, host-only
bridges, tunnels, dummies, VXLAN, host-only adapters without hardware; addresses from LAN and
CGNAT ranges; default routes in the main table on any of them, single or multipath.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    CGNAT,
    NodeAddressError,
    choose_node_address,
)
from hostnet import LO, default, device, host_only_adapter, multipath, nic, tunnel, uplink
from hypothesis import given, settings
from hypothesis import strategies as st

KINDS = ("nic", "nic_down", "uplink", "veth_pair", "lan_bridge", "host_bridge", "tunnel", "dummy", "vxlan", "adapter")
# Devices that may carry the node address (a NIC without carrier only while k3s records it).
LAN_KINDS = ("nic", "nic_down", "uplink", "lan_bridge")


def build(kind, index, cidrs):
    name = f"{kind[:4]}{index}"
    if kind == "nic":
        return [nic(name, *cidrs)]
    if kind == "nic_down":
        return [nic(name, *cidrs, carrier=False)]
    if kind == "uplink":
        return [uplink(name, *cidrs)]
    if kind == "veth_pair":
        return [device(name, "veth", *cidrs)]
    if kind == "lan_bridge":
        return [nic(f"port{index}", master=name), device(name, "bridge", *cidrs)]
    if kind == "host_bridge":
        return [device(name, "bridge", *cidrs), device(f"vp{index}", "veth", master=name, netnsid=index)]
    if kind == "tunnel":
        return [tunnel(name, *cidrs)]
    if kind == "adapter":
        return [host_only_adapter(name, *cidrs)]
    return [device(name, kind, *cidrs)]


address = st.one_of(
    st.builds(lambda a, b: f"192.168.{a}.{b}/24", st.integers(0, 255), st.integers(1, 254)),
    st.builds(lambda a, b: f"10.{a}.0.{b}/16", st.integers(0, 255), st.integers(1, 254)),
    st.builds(lambda a, b: f"100.{64 + a}.0.{b}/10", st.integers(0, 63), st.integers(1, 254)),
)


@st.composite
def hosts(draw):
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    # Every host has its hardware NIC, if only a Wi-Fi card not yet associated: the kernel then
    # names a bus for it, which tells a driver's host-only adapter (no bus) apart.
    taken, links, lan = set(), [LO, nic("wlan9", carrier=False)], {"wlan9": "nic_down"}
    for index, kind in enumerate(kinds):
        cidrs = [c for c in draw(st.lists(address, max_size=2)) if c.split("/")[0] not in taken]
        taken.update(c.split("/")[0] for c in cidrs)
        group = build(kind, index, cidrs)
        links.extend(group)
        lan[group[-1]["ifname"]] = kind
    names = list(lan)
    routes = []
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        routes.append(default(name, metric=draw(st.integers(0, 1000))))
    if len(names) > 1 and draw(st.booleans()):
        routes.append(multipath(*draw(st.lists(st.sampled_from(names), min_size=2, max_size=3, unique=True))))
    assigned = [a["local"] for link in links for a in link["addr_info"] if a["scope"] == "global"]
    recorded = draw(st.lists(st.sampled_from(assigned), max_size=1)) if assigned and draw(st.booleans()) else []
    return links, routes, lan, recorded


def owner(links, address):
    return next(link for link in links if any(a["local"] == address for a in link["addr_info"]))


def try_choose(links, routes, recorded):
    try:
        return choose_node_address(links, routes, recorded=recorded)
    except NodeAddressError:
        return None


@settings(max_examples=300, deadline=None)
@given(hosts())
def test_the_choice_is_a_lan_address_never_cgnat_tunnel_or_host_only(host):
    links, routes, lan, recorded = host
    choice = try_choose(links, routes, recorded)
    if choice is None:
        # Nothing chosen only when no LAN link with carrier (or recorded) holds a non-CGNAT address.
        for link in links:
            kind = lan.get(link["ifname"])
            for a in link["addr_info"]:
                if a["scope"] != "global" or ipaddress.ip_address(a["local"]) in CGNAT:
                    continue
                assert kind not in ("nic", "uplink", "lan_bridge"), (link, choice)
                assert not (kind == "nic_down" and a["local"] in recorded)
        return
    assert ipaddress.ip_address(choice["address"]) not in CGNAT
    kind = lan[choice["interface"]]
    assert kind in LAN_KINDS, (kind, choice)
    if kind == "nic_down":
        assert choice["source"] == "recorded"
    assert owner(links, choice["address"])["ifname"] == choice["interface"]


@settings(max_examples=200, deadline=None)
@given(hosts(), st.randoms(use_true_random=False))
def test_the_choice_does_not_depend_on_link_order(host, rnd):
    links, routes, _lan, recorded = host
    shuffled = list(links)
    rnd.shuffle(shuffled)
    first, second = try_choose(links, routes, recorded), try_choose(shuffled, routes, recorded)
    assert (first and (first["address"], first["source"])) == (second and (second["address"], second["source"]))


@settings(max_examples=200, deadline=None)
@given(hosts())
def test_the_recorded_address_wins_while_it_is_on_a_lan_link(host):
    links, routes, lan, recorded = host
    if not recorded:
        return
    kind = lan.get(owner(links, recorded[0])["ifname"])
    if kind not in LAN_KINDS or ipaddress.ip_address(recorded[0]) in CGNAT:
        return
    choice = choose_node_address(links, routes, recorded=recorded)
    assert (choice["address"], choice["source"]) == (recorded[0], "recorded")

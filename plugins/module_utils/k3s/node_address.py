# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The node-address policy: which IPv4 address k3s serves on, and why.

One pure function, ``choose_node_address``, decides for every caller: the k3s role (through the
``k3s_config`` module), drift detection (``k3s_drift``), the recovery (``k3s_rebuild`` through
the recover role) and the drift watcher installed on the host. Two copies of this policy once
disagreed: the role took Ansible's default-route fact, which is the VPN tunnel while NordVPN is
connected (its default route lives in policy table 205, so ``ip route get`` answers with the
tunnel), and a routine ``site.yml`` moved a freshly recovered node onto the tunnel.

Order:
1. an explicit address (``k3s_node_ip``), which must be assigned on the host;
2. an explicit interface (``k3s_node_interface``), whose first global IPv4 address is used;
3. the address k3s already records (config.yaml's ``node-ip``), while it is still assigned to a
   LAN interface, with or without carrier: a healthy node is not moved because a route moved or
   a cable was pulled (k3s #5880: changing a node's address is not well supported; k3s #9879:
   servers want static addresses);
4. the global IPv4 address of a physical/LAN interface with carrier, judged from the interfaces
   and the main routing table only (NordVPN never changes the main table; its default route is
   in a policy table), preferring the interface of the main table's default route (multipath
   routes read per next hop). Tunnels, veth pairs, dummies, host-only bridges (a bridge without
   a physical port) and adapters without hardware never qualify, judged by the kernel's link
   kind (`ip -d -j`), not by name (flannel would follow them, k3s #12459), nor CGNAT addresses
   (100.64.0.0/10: Tailscale, NordVPN Meshnet).

Standard library only: the watcher on the host imports this file as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json

# Carrier-grade NAT space: Tailscale and NordVPN Meshnet addresses, never a LAN.
CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Link types of layer-3 tunnels (WireGuard and tun devices report "none").
TUNNEL_LINK_TYPES = ("none", "ppp", "tunnel", "wireguard", "ipip", "gre", "sit")
# Kinds (`ip -d -j`, linkinfo.info_kind) of devices that never are the LAN: container and CNI
# pairs, k3s's kube-ipvs0, flannel.1, tunnels of every VPN (NordLynx and WireGuard, OpenVPN,
# Tailscale and ZeroTier tun/tap), IPsec. A name list grew with every product (vmnet8, lxdbr0,
# podman0, ...) and excluded a LAN bridge called br-lan; the kernel's kind does not.
VIRTUAL_KINDS = (
    "dummy", "vxlan", "geneve", "tun", "wireguard", "ipip", "gre", "gretap", "ip6gre", "ip6gretap", "sit",
    "ip6tnl", "vti", "vti6", "xfrm", "ifb", "nlmon", "vrf", "bareudp", "erspan", "veth",
)  # fmt: skip
# Kinds stacked on a physical NIC: a bridge with such a port bridges the LAN (br0, br-lan).
LAN_STACK_KINDS = ("vlan", "bond", "team", "macvlan", "ipvlan", "macsec")
# operstate of a link without carrier (cable pulled, Wi-Fi not associated).
DOWN_STATES = ("DOWN", "LOWERLAYERDOWN")

NODE_IP_VAR = "k3s_node_ip"
NODE_INTERFACE_VAR = "k3s_node_interface"


class NodeAddressError(Exception):
    """No address can be chosen; the message names the variable to set and what was seen."""


def link_kind(link):
    return (link.get("linkinfo") or {}).get("info_kind")


def is_physical_port(link):
    """A bridge port that brings the LAN in: a NIC (no kind) or a VLAN/bond on one."""
    kind = link_kind(link)
    return kind is None or kind in LAN_STACK_KINDS


def excluded_reason(link, links=()):
    """Why a link can never carry the node address, or None. ``links``: every link of the host
    (`ip -d -j addr show`), to see a bridge's ports and whether the host reports parent devices.
    Carrier is not judged here (``is_down``): a link that lost its carrier keeps its address with
    ifupdown and static set-ups, and the node stays on it."""
    name = link.get("ifname") or ""
    kind = link_kind(link)
    if link.get("link_type") == "loopback" or name == "lo":
        return "loopback"
    if "POINTOPOINT" in (link.get("flags") or ()) or link.get("link_type") in TUNNEL_LINK_TYPES:
        return "point-to-point tunnel"
    if kind == "bridge":
        if any(other.get("master") == name and is_physical_port(other) for other in links):
            return None
        return "bridge without a physical port (host-only: containers, VMs)"
    if kind == "veth":
        # The other end in another network namespace and no bridge above it: this namespace's
        # uplink (k3s in an LXD/Incus or Docker container). A pair inside one namespace, or a
        # bridge port, is a container's or CNI's plumbing.
        if link.get("link_netnsid") is not None and not link.get("master"):
            return None
        return "virtual device (veth)"
    if kind in VIRTUAL_KINDS:
        return "virtual device (%s)" % kind
    if kind is None and "parentbus" not in link and any("parentbus" in other for other in links):
        # The host names each NIC's bus (iproute2 with kernel >= 5.14); a device without one is a
        # driver's host-only adapter (VMware vmnet*, VirtualBox vboxnet*), which has no kind.
        return "no hardware behind it (host-only adapter)"
    return None


def is_down(link):
    return link.get("operstate") in DOWN_STATES or "NO-CARRIER" in (link.get("flags") or ())


def global_ipv4(links):
    """[(interface, address, prefix, link)] of global-scope IPv4 addresses in `ip -j addr` order."""
    out = []
    for link in links:
        for addr in link.get("addr_info") or ():
            if addr.get("family") == "inet" and addr.get("scope", "global") == "global" and addr.get("local"):
                out.append((link.get("ifname"), addr["local"], addr.get("prefixlen"), link))
    return out


def address_excluded_reason(address):
    ip = ipaddress.ip_address("%s" % address)
    if ip in CGNAT:
        return "CGNAT address 100.64.0.0/10 (Tailscale, Meshnet)"
    if ip.is_loopback or ip.is_link_local:
        return "loopback or link-local"
    return None


def main_default_metrics(main_routes):
    """{interface: lowest metric} of IPv4 default routes in the main table; a multipath route
    (``nexthops``, no ``dev``) counts for each of its devices. A route the kernel marks
    ``linkdown`` (its device lost the carrier) carries nothing."""
    metrics = {}
    for route in main_routes or ():
        if route.get("dst") not in ("default", "0.0.0.0/0") or route.get("table", "main") != "main":
            continue
        metric = route.get("metric", 0)
        hops = route.get("nexthops") or [route]
        for hop in hops:
            dev = hop.get("dev")
            if "linkdown" in (hop.get("flags") or ()) or "linkdown" in (route.get("flags") or ()):
                continue
            if dev and (dev not in metrics or metric < metrics[dev]):
                metrics[dev] = metric
    return metrics


def describe(seen):
    parts = []
    for entry in seen:
        note = entry["excluded"] or ("link down" if entry.get("down") else None)
        parts.append("%s %s%s" % (entry["interface"], entry["address"], " (%s)" % note if note else ""))
    return ", ".join(parts) or "none"


def observe(links):
    """Every global IPv4 address with its link's verdict: ``excluded`` (never the node's),
    ``down`` (no carrier now)."""
    seen = []
    for iface, address, prefix, link in global_ipv4(links):
        seen.append(
            dict(
                interface=iface,
                address=address,
                prefix=prefix,
                excluded=excluded_reason(link, links) or address_excluded_reason(address),
                down=is_down(link),
            )
        )
    return seen


def choose_node_address(links, main_routes, node_ip=None, node_interface=None, recorded=()):
    """Choose k3s's node address.

    ``links``: parsed ``ip -d -j addr show``; ``main_routes``: parsed ``ip -j -4 route show table
    main``; ``node_ip`` / ``node_interface``: the user's pins; ``recorded``: addresses k3s already
    records, most authoritative first. Returns a dict with ``address``, ``interface``,
    ``source`` (node_ip, node_interface, recorded, default_route, interface), ``reason``,
    ``warnings``, ``candidates`` and ``seen``. ``source`` ``interface`` means no usable link holds
    the main table's default route: a guess an unattended caller must not act on (a late Wi-Fi
    at boot or resume). The result does not depend on the order of ``links``. Raises
    NodeAddressError naming the variable to set.
    """
    seen = observe(links)
    lan = [s for s in seen if not s["excluded"]]
    usable = [s for s in lan if not s["down"]]

    def result(entry, source, reason, warnings=()):
        return dict(
            address=entry["address"],
            interface=entry["interface"],
            source=source,
            reason=reason,
            warnings=list(warnings),
            candidates=sorted(u["address"] for u in usable),
            seen=seen,
        )

    if node_ip:
        for entry in seen:
            if entry["address"] == node_ip:
                return result(entry, "node_ip", "%s %s is set explicitly" % (NODE_IP_VAR, node_ip))
        raise NodeAddressError(
            "%s %s is not an IPv4 address assigned on this host (IPv4 addresses seen: %s). k3s records the node "
            "address in its datastore and certificates, so it must be an address of this host (k3s #9879)."
            % (NODE_IP_VAR, node_ip, describe(seen))
        )
    if node_interface:
        names = [link.get("ifname") for link in links]
        for entry in seen:
            if entry["interface"] == node_interface:
                return result(
                    entry,
                    "node_interface",
                    "the first IPv4 address of %s %s" % (NODE_INTERFACE_VAR, node_interface),
                )
        raise NodeAddressError(
            "%s %s %s (interfaces: %s; IPv4 addresses seen: %s)."
            % (
                NODE_INTERFACE_VAR,
                node_interface,
                "has no global IPv4 address" if node_interface in names else "is not an interface of this host",
                ", ".join(sorted(n for n in names if n)) or "none",
                describe(seen),
            )
        )
    for address in recorded or ():
        for entry in lan:
            if entry["address"] == address:
                # Carrier loss keeps the address (ifupdown, static): moving the node would wipe
                # it for a cable pulled for a minute (k3s #5880, #9879).
                warnings = (
                    ["%s holds k3s's address %s but has no carrier now" % (entry["interface"], address)]
                    if entry["down"]
                    else []
                )
                return result(
                    entry,
                    "recorded",
                    "k3s already uses %s and it is still assigned to %s" % (address, entry["interface"]),
                    warnings,
                )
    metrics = main_default_metrics(main_routes)
    # Position within a link breaks ties (its primary address first); link order does not.
    ranked = sorted(
        usable,
        key=lambda e: (e["interface"] not in metrics, metrics.get(e["interface"], 0), e["interface"]),
    )
    if ranked:
        entry = ranked[0]
        if entry["interface"] in metrics:
            reason = "%s carries the main routing table's default route" % entry["interface"]
            source = "default_route"
        else:
            reason = (
                "%s is the first LAN interface by name with an IPv4 address (no usable default route in the main "
                "table)" % (entry["interface"])
            )
            source = "interface"
        gone = [a for a in (recorded or ()) if a not in [u["address"] for u in lan]]
        if gone:
            reason += "; the recorded address %s is %s" % (
                ", ".join(gone),
                "on a tunnel or virtual device" if any(s["address"] in gone for s in seen) else "no longer assigned",
            )
        return result(entry, source, reason)
    raise NodeAddressError(
        "No usable IPv4 address for the k3s node: no LAN interface with carrier has one (tunnels, virtual "
        "devices, host-only bridges and 100.64.0.0/10 never qualify). Set %s or %s. IPv4 addresses seen: %s."
        % (NODE_IP_VAR, NODE_INTERFACE_VAR, describe(seen))
    )


def flannel_iface_for(choice, flannel_iface=None):
    """flannel follows the default route unless told (k3s #12459, #12056, #1365): the interface
    that carries the node address, unless the user named another."""
    return flannel_iface or choice["interface"]


def read_network(run_command):
    """(links, main_routes) from `ip -j`; ``run_command(argv)`` returns (rc, stdout, stderr)."""
    # -d: the link kinds and bridge ports that tell a LAN from a host-only device.
    rc, out, err = run_command(["ip", "-d", "-j", "addr", "show"])
    if rc != 0:
        raise NodeAddressError("ip -d -j addr show failed: %s" % (err or out).strip())
    links = json.loads(out or "[]")
    rc, out, err = run_command(["ip", "-j", "-4", "route", "show", "table", "main"])
    routes = json.loads(out or "[]") if rc == 0 else []
    return links, routes

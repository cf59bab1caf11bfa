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
   LAN interface: a healthy node is not moved because a route moved (k3s #5880: changing a
   node's address is not well supported; k3s #9879: servers want static addresses);
4. the global IPv4 address of a physical/LAN interface, judged from the interfaces and the
   main routing table only (NordVPN never changes the main table; its default route is in a
   policy table), preferring the interface of the main table's default route. Tunnels and
   virtual devices never qualify (flannel would follow them, k3s #12459), nor CGNAT addresses
   (100.64.0.0/10: Tailscale, NordVPN Meshnet).

Standard library only: the watcher on the host imports this file as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import ipaddress
import json

# Device names that are never the LAN: VPN tunnels (NordLynx, NordVPN OpenVPN, NordWhisper,
# OpenVPN, WireGuard, Tailscale, ZeroTier, PPP, IPsec) and virtual devices of Docker, libvirt,
# k3s/flannel/CNI.
EXCLUDED_INTERFACES = (
    "lo",
    "nordlynx",
    "nordtun",
    "qtun",
    "tun*",
    "tap*",
    "wg*",
    "tailscale*",
    "zt*",
    "ppp*",
    "ipsec*",
    "docker0",
    "br-*",
    "veth*",
    "cni0",
    "flannel*",
    "kube-*",
    "virbr*",
    "vxlan*",
)
# Carrier-grade NAT space: Tailscale and NordVPN Meshnet addresses, never a LAN.
CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Link types of layer-3 tunnels (WireGuard and tun devices report "none").
TUNNEL_LINK_TYPES = ("none", "ppp", "tunnel", "wireguard", "ipip", "gre", "sit")

NODE_IP_VAR = "k3s_node_ip"
NODE_INTERFACE_VAR = "k3s_node_interface"


class NodeAddressError(Exception):
    """No address can be chosen; the message names the variable to set and what was seen."""


def excluded_reason(link):
    """Why a link can never carry the node address, or None."""
    name = link.get("ifname") or ""
    for pattern in EXCLUDED_INTERFACES:
        if fnmatch.fnmatchcase(name, pattern):
            return "loopback" if name == "lo" else "tunnel or virtual device (%s)" % pattern
    if "POINTOPOINT" in (link.get("flags") or ()) or link.get("link_type") in TUNNEL_LINK_TYPES:
        return "point-to-point tunnel"
    if link.get("operstate") == "DOWN":
        return "link down"
    return None


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
    """{interface: lowest metric} of IPv4 default routes in the main table."""
    metrics = {}
    for route in main_routes or ():
        if route.get("dst") not in ("default", "0.0.0.0/0") or route.get("table", "main") != "main":
            continue
        dev = route.get("dev")
        metric = route.get("metric", 0)
        if dev and (dev not in metrics or metric < metrics[dev]):
            metrics[dev] = metric
    return metrics


def describe(seen):
    parts = []
    for entry in seen:
        note = " (%s)" % entry["excluded"] if entry["excluded"] else ""
        parts.append("%s %s%s" % (entry["interface"], entry["address"], note))
    return ", ".join(parts) or "none"


def choose_node_address(links, main_routes, node_ip=None, node_interface=None, recorded=()):
    """Choose k3s's node address.

    ``links``: parsed ``ip -j addr show``; ``main_routes``: parsed ``ip -j -4 route show table
    main``; ``node_ip`` / ``node_interface``: the user's pins; ``recorded``: addresses k3s already
    records, most authoritative first. Returns a dict with ``address``, ``interface``,
    ``source`` (node_ip, node_interface, recorded, default_route, interface), ``reason``,
    ``candidates`` and ``seen``. Raises NodeAddressError naming the variable to set.
    """
    seen = []
    for iface, address, prefix, link in global_ipv4(links):
        seen.append(
            dict(
                interface=iface,
                address=address,
                prefix=prefix,
                excluded=excluded_reason(link) or address_excluded_reason(address),
            )
        )
    usable = [s for s in seen if not s["excluded"]]

    def result(entry, source, reason):
        return dict(
            address=entry["address"],
            interface=entry["interface"],
            source=source,
            reason=reason,
            candidates=[u["address"] for u in usable],
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
                ", ".join(n for n in names if n) or "none",
                describe(seen),
            )
        )
    for address in recorded or ():
        for entry in usable:
            if entry["address"] == address:
                return result(
                    entry,
                    "recorded",
                    "k3s already uses %s and it is still assigned to %s" % (address, entry["interface"]),
                )
    metrics = main_default_metrics(main_routes)
    ranked = sorted(
        enumerate(usable),
        key=lambda pair: (pair[1]["interface"] not in metrics, metrics.get(pair[1]["interface"], 0), pair[0]),
    )
    if ranked:
        entry = ranked[0][1]
        if entry["interface"] in metrics:
            reason = "%s carries the main routing table's default route" % entry["interface"]
            source = "default_route"
        else:
            reason = (
                "%s is the first LAN interface with an IPv4 address (no usable default route in the main table)"
                % (entry["interface"])
            )
            source = "interface"
        gone = [a for a in (recorded or ()) if a not in [u["address"] for u in usable]]
        if gone:
            reason += "; the recorded address %s is %s" % (
                ", ".join(gone),
                "on a tunnel or virtual device" if any(s["address"] in gone for s in seen) else "no longer assigned",
            )
        return result(entry, source, reason)
    raise NodeAddressError(
        "No usable IPv4 address for the k3s node: no LAN interface has one (tunnels, virtual devices and "
        "100.64.0.0/10 never qualify). Set %s or %s. IPv4 addresses seen: %s."
        % (NODE_IP_VAR, NODE_INTERFACE_VAR, describe(seen))
    )


def flannel_iface_for(choice, flannel_iface=None):
    """flannel follows the default route unless told (k3s #12459, #12056, #1365): the interface
    that carries the node address, unless the user named another."""
    return flannel_iface or choice["interface"]


def read_network(run_command):
    """(links, main_routes) from `ip -j`; ``run_command(argv)`` returns (rc, stdout, stderr)."""
    rc, out, err = run_command(["ip", "-j", "addr", "show"])
    if rc != 0:
        raise NodeAddressError("ip -j addr show failed: %s" % (err or out).strip())
    links = json.loads(out or "[]")
    rc, out, err = run_command(["ip", "-j", "-4", "route", "show", "table", "main"])
    routes = json.loads(out or "[]") if rc == 0 else []
    return links, routes

# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""IPv4 range overlap filters (docs: cidr_overlaps.yml, route_overlaps.yml beside this file).

cidr_overlaps: which CIDRs of one list overlap which of another (role docker: address pools vs.
the ranges they must avoid). cidr_networks: the networks of addresses and CIDRs (role nordvpn: the
node address's subnet, the ranges it allowlists). cidr_within: which CIDRs lie inside one of some
ranges (role nordvpn: what LAN discovery already lets through, what the client calls private).
route_overlaps: which routes through one interface overlap protected
CIDRs (role nordvpn: NordVPN 3.20.0 routes 10.0.0.0/10 via nordlynx over k3s's 10.42.0.0/16 and
10.43.0.0/16, nordvpn-linux #762).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/(\d{1,2}))?$")

# Route types `ip route` prints before the destination; a route without one is unicast.
_ROUTE_TYPES = frozenset(
    ["unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable", "prohibit", "throw", "nat"]
)

# Routes this wide cover the whole internet rather than a LAN range: `default` (/0) and the two
# halves 0.0.0.0/1 + 128.0.0.0/1 that OpenVPN's redirect-gateway def1 installs. Every VPN sends
# the internet through its tunnel with them, and the longer prefixes of the host's own networks
# (cni0, flannel.1, docker bridges, the LAN) win over them; a connected NordVPN client keeps its
# `default dev nordlynx` in policy table 205 (51820 in older clients), where it is the route
# that makes the VPN work at all, not a clash with k3s.
WHOLE_INTERNET_MAX_PREFIX = 1


def _span(text, prefix_required):
    """(first, last, prefix) of an IPv4 address or CIDR as integers; None when it is not one.

    Octets are read as decimal numbers (leading zeros allowed), host bits are cleared.
    """
    if not isinstance(text, str):
        return None
    match = _IPV4.match(text.strip())
    if not match or (prefix_required and match.group(5) is None):
        return None
    octets = [int(g) for g in match.groups()[:4]]
    prefix = 32 if match.group(5) is None else int(match.group(5))
    if any(o > 255 for o in octets) or prefix > 32:
        return None
    address = ((octets[0] * 256 + octets[1]) * 256 + octets[2]) * 256 + octets[3]
    size = 2 ** (32 - prefix)
    first = address - address % size
    return first, first + size - 1, prefix


def _cidr_list(value, what):
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise AnsibleFilterError("%s must be a list of IPv4 CIDRs, got %s" % (what, type(value).__name__))
    spans = []
    for index, item in enumerate(value):
        span = _span(item, prefix_required=True)
        if span is None:
            raise AnsibleFilterError("%s[%d] is not an IPv4 CIDR (like 10.42.0.0/16): %r" % (what, index, item))
        spans.append((item, span))
    return spans


def _overlap(a, b):
    # Two ranges overlap when each one's first address is not past the other's last.
    return a[0] <= b[1] and b[0] <= a[1]


def cidr_overlaps(cidrs, others):
    """Pairs [cidr, other] for every CIDR of `cidrs` that overlaps one of `others`, in input order."""
    mine = _cidr_list(cidrs, "cidr_overlaps input")
    theirs = _cidr_list(others, "cidr_overlaps others")
    return [[cidr, other] for cidr, span in mine for other, other_span in theirs if _overlap(span, other_span)]


def _text(span):
    first, _last, prefix = span
    return "%d.%d.%d.%d/%d" % (first >> 24, (first >> 16) & 255, (first >> 8) & 255, first & 255, prefix)


def cidr_networks(cidrs):
    """The network CIDR of each address or CIDR (host bits cleared, a bare address is a /32), in
    input order, each network once."""
    if isinstance(cidrs, (str, bytes, Mapping)) or not isinstance(cidrs, Sequence):
        raise AnsibleFilterError("cidr_networks input must be a list of IPv4 CIDRs, got %s" % type(cidrs).__name__)
    networks = []
    for index, item in enumerate(cidrs):
        span = _span(item, prefix_required=False)
        if span is None:
            raise AnsibleFilterError(
                "cidr_networks input[%d] is not an IPv4 address or CIDR (like 192.168.1.20/24): %r" % (index, item)
            )
        network = _text(span)
        if network not in networks:
            networks.append(network)
    return networks


def cidr_within(cidrs, ranges, address_only=False):
    """The CIDRs (as given, in input order) that lie inside one of `ranges`.

    With `address_only`, a CIDR counts when its network address lies inside one of `ranges`, which
    is how the NordVPN client decides that a subnet is private (netip IsPrivate on the address).
    """
    mine = _cidr_list(cidrs, "cidr_within input")
    theirs = _cidr_list(ranges, "cidr_within ranges")
    found = []
    for cidr, span in mine:
        last = span[0] if address_only else span[1]
        if any(r[0] <= span[0] and last <= r[1] for _range, r in theirs):
            found.append(cidr)
    return found


def _route_from_text(line, index):
    words = line.split()
    if not words:
        return None
    route_type = "unicast"
    if words[0] in _ROUTE_TYPES:
        route_type, words = words[0], words[1:]
    if not words:
        raise AnsibleFilterError("route_overlaps input[%d] has no destination: %r" % (index, line))
    route = {"dst": words[0], "type": route_type, "devs": [], "table": "main"}
    for position, word in enumerate(words[1:-1], start=1):
        if word == "dev":
            route["devs"].append(words[position + 1])
        elif word == "table":
            route["table"] = words[position + 1]
    if words[-1] in ("dev", "table"):
        raise AnsibleFilterError("route_overlaps input[%d] ends in %r without a value: %r" % (index, words[-1], line))
    return route


def _route_from_json(entry, index):
    # `ip -j route` leaves out type (unicast) and table (main) when they are the default.
    dst = entry.get("dst")
    if not isinstance(dst, str) or not dst:
        raise AnsibleFilterError("route_overlaps input[%d] has no destination (dst): %r" % (index, dict(entry)))
    devs = [entry.get("dev")]
    for hop in entry.get("nexthops") or []:
        if isinstance(hop, Mapping):
            devs.append(hop.get("dev"))
    return {
        "dst": dst,
        "type": str(entry.get("type") or "unicast"),
        "devs": [d for d in devs if d],
        "table": str(entry.get("table") or "main"),
        "family": entry.get("family"),
    }


def route_overlaps(routes, cidrs, interface):
    """'<dst> dev <interface>[ table <t>] overlaps <cidr>' for each route through `interface` over `cidrs`.

    `routes` is what `ip -j route show table all` prints (parsed), or lines of `ip -o route show
    table all`. Only unicast IPv4 routes count (local and broadcast entries are the interface's
    own addresses); whole-internet routes (prefix length 0 or 1) are ignored, see
    WHOLE_INTERNET_MAX_PREFIX.
    """
    if isinstance(routes, (str, bytes, Mapping)) or not isinstance(routes, Sequence):
        raise AnsibleFilterError(
            "route_overlaps input must be a list of routes (parsed `ip -j route` output or `ip -o route` lines), got %s"
            % type(routes).__name__
        )
    protected = _cidr_list(cidrs, "route_overlaps cidrs")
    if not isinstance(interface, str) or not interface:
        raise AnsibleFilterError("route_overlaps interface must be an interface name, got %r" % (interface,))
    found = []
    for index, entry in enumerate(routes):
        if isinstance(entry, Mapping):
            route = _route_from_json(entry, index)
        elif isinstance(entry, str):
            route = _route_from_text(entry, index)
        else:
            raise AnsibleFilterError(
                "route_overlaps input[%d] must be a route (mapping or `ip -o route` line), got %s"
                % (index, type(entry).__name__)
            )
        if route is None or interface not in route["devs"] or route["type"] != "unicast":
            continue
        dst = route["dst"]
        if route.get("family") == "inet6" or ":" in dst:
            continue  # IPv6: nordvpn_protected_cidrs are IPv4 ranges
        span = (0, 2**32 - 1, 0) if dst == "default" else _span(dst, prefix_required=False)
        if span is None:
            raise AnsibleFilterError("route_overlaps input[%d] has a destination that is not IPv4: %r" % (index, dst))
        if span[2] <= WHOLE_INTERNET_MAX_PREFIX:
            continue
        where = "" if route["table"] == "main" else " table " + route["table"]
        for cidr, cidr_span in protected:
            if _overlap(span, cidr_span):
                text = "%s dev %s%s overlaps %s" % (dst, interface, where, cidr)
                if text not in found:
                    found.append(text)
    return found


class FilterModule:
    """IPv4 range overlap filters."""

    def filters(self):
        return {
            "cidr_overlaps": cidr_overlaps,
            "cidr_networks": cidr_networks,
            "cidr_within": cidr_within,
            "route_overlaps": route_overlaps,
        }

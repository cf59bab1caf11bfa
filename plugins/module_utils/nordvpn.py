# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""What the NordVPN client says about itself and how its settings are brought to what the nordvpn
role wants: ``nordvpn status`` and ``nordvpn settings`` as printed by nordvpn-linux 3.x-5.x
(cli/cli_status.go, cli/cli_settings.go), whether its daemon answers at all, what must reach past
the VPN, and the setters in a safe order.

The one parser of the client's output: module nordvpn_settings (role nordvpn) and host_status use
it. Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

# What the client prints when its daemon is not there: the socket file is missing ("Couldn't
# find /run/nordvpn/nordvpnd.sock", older "... not found"), or nobody answers on it ("We couldn't
# reach System Daemon.", older "Whoops! Cannot reach System Daemon."); nordvpn-linux cli/cli.go,
# internal/errors.go.
DAEMON_DOWN_PATTERNS = ("System Daemon", "nordvpnd.sock", "background service isn't running")
# "Key: value" lines; the client starts some with a dash or spaces in older versions.
KEY_VALUE = re.compile(r"^[\s-]*([A-Za-z][A-Za-z0-9 ._/-]*?):\s*(.*?)\s*$")
# The allowlist follows the settings: "Allowlisted ports:", then "Allowlisted subnets:", each with
# one indented entry per line (cli/cli_settings.go displayAllowlist); older clients say
# "Whitelisted".
LIST_HEADER = re.compile(r"^(?:Allowlisted|Whitelisted) (subnets|ports):\s*$")
# One run of allowlisted ports: `  %*d (%s)` or `  %*d - %*d (%s)` with the protocols joined by
# "|", e.g. "           53 (UDP|TCP)" (displayAllowlist).
PORT_RUN = re.compile(r"^ +([0-9]+)(?: - +([0-9]+))? \(([A-Z|]+)\)\s*$")
PROTOCOLS = ("UDP", "TCP")
# NordVPN 5.x drops DNS to private ranges while connected or with the kill switch on, ahead of
# every allowlist accept, unless port 53 of that protocol is allowlisted (daemon/firewall/nft/
# nft.go addLanDNSDrop, defaultDNSPort).
DNS_PORT = 53
# Private and link-local IPv4 ranges: LAN discovery lets them through (networker/
# lan_discovery.go), and the client refuses to allowlist a subnet whose address lies in one while
# LAN discovery is on, and drops such subnets from the allowlist when LAN discovery is turned on
# (daemon/rpc_set_allowlist.go, rpc_set_lan_discovery.go: netip IsPrivate or
# IsLinkLocalUnicast of the prefix's address). The role checks its users' subnets on the
# controller against the same list (roles/nordvpn/vars/main.yml nordvpn__private_ranges).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
# The client answers a value it already has with an error (exit 1): "LAN discovery is already set
# to disabled." (cli/messages.go SetLANDiscoveryAlreadyEnabled, ALREADY_SET), "Subnet %s is
# already on the allowlist." (AllowlistAddSubnetExistsError), "Port %d (%s) is already on the
# allowlist." (AllowlistAddPortExistsError). Nothing to do, not a failure.
NO_OP = ("is already set", "is already on the allowlist")
# The exit status of coreutils' timeout when the command ran out of time.
TIMED_OUT = 124


class NordVPNError(Exception):
    """A step the client refused or a state the module cannot work with; ``done`` lists what was
    changed before it."""

    def __init__(self, message, done=()):
        super(NordVPNError, self).__init__(message)
        self.done = list(done)


def daemon_down(text):
    """Whether the client's output says its daemon does not answer."""
    return any(pattern in (text or "") for pattern in DAEMON_DOWN_PATTERNS)


def settings_failure(service, rc, said, timeout=None):
    """The message for a ``nordvpn settings`` that failed: the daemon named when it does not
    answer, else the exit status; then what the client said."""
    said = (said or "").strip()
    if daemon_down(said):
        head = (
            "The NordVPN client is installed but its daemon does not answer: start it with `systemctl enable "
            "--now %s` (%s.service) and rerun." % (service, service)
        )
    elif rc == TIMED_OUT and timeout:
        head = "`nordvpn settings` did not answer within %d s (exit %d)." % (timeout, rc)
    else:
        head = "`nordvpn settings` failed (exit %d)." % rc
    return "%s The client said: %s" % (head, said)


def _pairs(text):
    found = {}
    for line in (text or "").splitlines():
        match = KEY_VALUE.match(line)
        if match and match.group(2):
            found.setdefault(match.group(1).strip(), match.group(2))
    return found


def parse_status(text):
    """``nordvpn status``: ``status`` (Connected, Disconnected, Connecting, or None when the line
    is missing), ``connected``, ``server``, ``hostname``, ``technology``, ``protocol``, ``uptime``."""
    pairs = _pairs(text)
    status = pairs.get("Status")
    return dict(
        status=status,
        connected=(status or "").lower() == "connected",
        server=pairs.get("Server") or pairs.get("Current server"),
        hostname=pairs.get("Hostname"),
        technology=pairs.get("Current technology") or pairs.get("Technology"),
        protocol=pairs.get("Current protocol") or pairs.get("Protocol"),
        uptime=pairs.get("Uptime"),
    )


def parse_settings(text):
    """``nordvpn settings``: ``lan_discovery`` (enabled, disabled, or None on a client too old to
    know it), ``firewall``, ``kill_switch``, ``technology``, ``allowlisted_subnets`` (the
    tab-indented CIDRs under "Allowlisted subnets:") and ``allowlisted_ports`` (the runs under
    "Allowlisted ports:", each ``start``, ``end`` and ``protocols``)."""
    pairs = _pairs(text)
    subnets, ports, block = [], [], None
    for line in (text or "").splitlines():
        header = LIST_HEADER.match(line)
        if header:
            block = header.group(1)
        elif block and re.match(r"^\s+\S", line):
            if block == "subnets":
                subnets.append(line.strip())
            else:
                run = PORT_RUN.match(line)
                if run:
                    start = int(run.group(1))
                    ports.append(dict(start=start, end=int(run.group(2) or start), protocols=run.group(3).split("|")))
        else:
            block = None
    lan = (pairs.get("LAN Discovery") or "").split()
    return dict(
        lan_discovery=lan[0] if lan else None,
        firewall=pairs.get("Firewall"),
        kill_switch=pairs.get("Kill Switch"),
        technology=pairs.get("Technology"),
        allowlisted_subnets=subnets,
        allowlisted_ports=ports,
    )


def port_protocols(settings, port):
    """The protocols (UDP, TCP) for which ``port`` is allowlisted in parsed settings."""
    found = []
    for run in settings.get("allowlisted_ports") or []:
        if run["start"] <= port <= run["end"]:
            found.extend(p for p in run["protocols"] if p not in found)
    return found


# ------------------------------------------------------------------ what must reach past the VPN


def ipv4_network(text):
    """The IPv4 network of an address or CIDR (host bits cleared, a bare address is a /32), as
    ``a.b.c.d/n``; octets are read as decimal numbers. Raises ValueError."""
    match = re.match(r"^\s*(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/(\d{1,2}))?\s*$", "%s" % text)
    if not match:
        raise ValueError("%r is not an IPv4 address or CIDR (like 10.42.0.0/16)" % (text,))
    octets = [int(g) for g in match.groups()[:4]]
    prefix = 32 if match.group(5) is None else int(match.group(5))
    if any(o > 255 for o in octets) or prefix > 32:
        raise ValueError("%r is not an IPv4 address or CIDR (like 10.42.0.0/16)" % (text,))
    address = ((octets[0] * 256 + octets[1]) * 256 + octets[2]) * 256 + octets[3]
    return "%s" % ipaddress.IPv4Network((address, prefix), strict=False)


def _private(network, address_only):
    net = ipaddress.IPv4Network(network)
    for text in PRIVATE_RANGES:
        private = ipaddress.IPv4Network(text)
        if net.network_address in private and (address_only or net.broadcast_address in private):
            return True
    return False


def reach_plan(reach, lan_discovery):
    """What must reach past a connected client and what of it to allowlist.

    ``reach``: [(source, [addresses or CIDRs])], the source naming where they come from (for the
    messages); ``lan_discovery``: whether LAN discovery will be on. Returns ``needs`` ([(source,
    [networks])]), ``uncovered`` (the networks LAN discovery does not let through: all of them
    with it off, else those not inside a private range; these are allowlisted) and ``refused``
    ([(network, source)]: uncovered networks whose address is private, which the client refuses
    while LAN discovery is on). Raises ValueError for an entry that is not IPv4.
    """
    needs, needed = [], []
    for source, cidrs in reach:
        networks = []
        for cidr in cidrs:
            network = ipv4_network(cidr)
            if network not in networks:
                networks.append(network)
            if network not in needed:
                needed.append(network)
        needs.append((source, networks))
    if not lan_discovery:
        return dict(needs=needs, uncovered=needed, refused=[])
    uncovered = [n for n in needed if not _private(n, address_only=False)]
    refused = [
        (n, source) for source, networks in needs for n in networks if n in uncovered and _private(n, address_only=True)
    ]
    return dict(needs=needs, uncovered=uncovered, refused=refused)


def refused_message(refused):
    """The failure for ranges that must reach past the VPN but that the client refuses to allowlist
    while LAN discovery is on (the role's words: it names the role's variables)."""
    return (
        "%s must reach past the VPN but cannot be allowlisted while nordvpn_lan_discovery is true: the client "
        'refuses private subnets then ("Allowlisting a private subnet is not available while local network '
        'discovery is turned on.") and LAN discovery lets through only %s, not all of these. Narrow them to those '
        "ranges, or set nordvpn_lan_discovery=false (the role then allowlists them)."
        % (" ".join("%s (%s)" % (network, source) for network, source in refused), ", ".join(PRIVATE_RANGES))
    )


def needs_message(needs, uncovered, lan_discovery):
    """One line: what k3s and the stack need past the VPN, what LAN discovery lets through and
    what is allowlisted."""
    text = "k3s and the stack need %s. " % "; ".join(
        "%s (%s)" % (", ".join(networks), source) for source, networks in needs
    )
    if lan_discovery:
        text += "LAN discovery lets %s through. " % ("the rest" if uncovered else "them all")
    else:
        text += "LAN discovery is off. "
    if uncovered:
        text += "Allowlisted: %s." % ", ".join(uncovered)
    return text.strip()


# ------------------------------------------------------------------ bringing the settings over


def _word(flag):
    return "enabled" if flag else "disabled"


def plan_changes(before, lan_discovery=None, subnets=(), dns=False):
    """What differs from parsed settings ``before``: ``lan_discovery`` (the value to set, or None),
    ``subnets`` (to add, in order, each once; none is ever removed) and ``dns`` (the protocols for
    which port 53 is still to be allowlisted)."""
    wanted = None if lan_discovery is None else _word(lan_discovery)
    have = before["allowlisted_subnets"]
    missing = []
    for subnet in subnets:
        if subnet not in have and subnet not in missing:
            missing.append(subnet)
    dns_have = port_protocols(before, DNS_PORT)
    return dict(
        lan_discovery=wanted if wanted is not None and before["lan_discovery"] != wanted else None,
        subnets=missing,
        dns=[p for p in PROTOCOLS if p not in dns_have] if dns else [],
    )


def describe_plan(before, planned, check_mode):
    """One line per change, in the words of a real run or of check mode."""
    lines = []
    if planned["lan_discovery"]:
        lines.append(
            ("LAN Discovery is %s; a real run sets it to %s." if check_mode else "LAN Discovery was %s; set to %s.")
            % (before["lan_discovery"], planned["lan_discovery"])
        )
    if planned["subnets"]:
        lines.append(
            ("A real run adds %s to the NordVPN allowlist." if check_mode else "Added %s to the NordVPN allowlist.")
            % ", ".join(planned["subnets"])
        )
    if planned["dns"]:
        lines.append(
            (
                "A real run adds port 53 (%s) to the NordVPN allowlist."
                if check_mode
                else "Added port 53 (%s) to the NordVPN allowlist."
            )
            % ", ".join(planned["dns"])
        )
    return lines


def predict(before, planned):
    """The settings after ``planned``, as the daemon would leave them: turning LAN discovery on
    drops the private subnets from the allowlist (daemon/rpc_set_lan_discovery.go)."""
    after = dict(before)
    subnets = list(before["allowlisted_subnets"])
    if planned["lan_discovery"]:
        after["lan_discovery"] = planned["lan_discovery"]
        if planned["lan_discovery"] == "enabled":
            kept = []
            for subnet in subnets:
                try:
                    private = _private(ipv4_network(subnet), address_only=True)
                except ValueError:
                    private = False
                if not private:
                    kept.append(subnet)
            subnets = kept
    after["allowlisted_subnets"] = subnets + [s for s in planned["subnets"] if s not in subnets]
    ports = [dict(run) for run in before.get("allowlisted_ports") or []]
    ports.extend(dict(start=DNS_PORT, end=DNS_PORT, protocols=[p]) for p in planned["dns"])
    after["allowlisted_ports"] = ports
    return after


def _said(rc, out):
    return (out or "").strip() or "(no output, exit %d)" % rc


def apply(run, before, planned):
    """Run the setters ``planned`` asks for; ``run(args)`` runs ``nordvpn <args>`` and returns (rc,
    output). Returns the steps done, each ``dict(args=, rc=, output=)``; raises NordVPNError.

    Turning LAN discovery off and allowlisting run back to back in this one call: in between the
    client's firewall drops LAN traffic while connected (nftables default-deny, 5.x), which may
    carry the very connection this module came over. When an addition fails then, LAN discovery is
    turned back on so the host stays reachable, and the error says so.
    """
    done = []

    def step(args):
        rc, out = run(args)
        done.append(dict(args=list(args), rc=rc, output=(out or "").strip()))
        if rc == 0 or any(text in (out or "") for text in NO_OP):
            return None
        return "`nordvpn %s` failed (exit %d): %s" % (" ".join(args), rc, _said(rc, out))

    lan_off = planned["lan_discovery"] == "disabled" and before["lan_discovery"] == "enabled"
    if planned["lan_discovery"]:
        failed = step(["set", "lan-discovery", planned["lan_discovery"]])
        if failed:
            raise NordVPNError(failed, done)
    for subnet in planned["subnets"]:
        failed = step(["allowlist", "add", "subnet", subnet])
        if not failed:
            continue
        if not lan_off:
            raise NordVPNError(failed, done)
        rc, out = run(["set", "lan-discovery", "enabled"])
        done.append(dict(args=["set", "lan-discovery", "enabled"], rc=rc, output=(out or "").strip()))
        if rc == 0 or any(text in (out or "") for text in NO_OP):
            raise NordVPNError("%s. Turned LAN discovery back on: allowlisting %s failed." % (failed, subnet), done)
        raise NordVPNError(
            "%s. Turning LAN discovery back on failed too (exit %d): %s. LAN discovery is OFF: while the client is "
            "connected its firewall drops LAN traffic that is not allowlisted." % (failed, rc, _said(rc, out)),
            done,
        )
    # The client refuses the whole request when one protocol already has the port ("Port 53
    # (UDP|TCP) is already on the allowlist.", daemon/rpc_set_allowlist.go arePortsValid): one
    # protocol at a time.
    for protocol in planned["dns"]:
        failed = step(["allowlist", "add", "port", "%d" % DNS_PORT, "protocol", protocol])
        if failed:
            raise NordVPNError(failed, done)
    return done

"""NordVPN Linux client STAND-IN for offline tests. Never installed for users.

One program, two roles, run through the two sh wrappers beside it:
  nordvpn   the CLI: `settings`, `status`, `connect [tag]` (alias `c`),
            `disconnect` (alias `d`), `set lan-discovery|technology|autoconnect`,
            `allowlist add|remove subnet <CIDR>` (alias `whitelist`), `version`
  nordvpnd  the daemon (this program with --daemon): listens on
            /run/nordvpn/nordvpnd.sock, keeps the settings in a JSON state file
            (/var/lib/nordvpn/standin-settings.json) and, while connected, changes
            the host's network with `ip` (iproute2) and `nft` (nftables) as the
            real nordvpnd 5.x does through netlink.

Modelled on nordvpn-linux 5.x (NordSecurity/nordvpn-linux, HEAD of 2026, tag 5.3.0).
Behaviours modelled, each taken from that public source (file cited) or an issue:
- `nordvpn settings` prints the 5.x layout, one `Key: value` line per setting with
  booleans as enabled/disabled: Technology, Protocol (OpenVPN only), Firewall,
  `Firewall Mark: 0xe1f1`, Routing, User Consent, Kill Switch, Threat Protection
  Lite, Obfuscate (OpenVPN only), Notify, Tray, Auto-connect, Meshnet, DNS,
  `LAN Discovery: ...`, Virtual Location, Post-quantum VPN (NordLynx only), ARP
  Ignore; then `Allowlisted subnets:` and one tab-indented CIDR per line, only
  when there are any (cli/cli_settings.go: Settings, displayAllowlist).
- Booleans accepted by `set`: 1 true enable on enabled / 0 false disable off
  disabled (cli/messages.go: MsgSetBoolDescription; nstrings.BoolFromString).
- `set lan-discovery`: "LAN Discovery has been successfully set to 'enabled'."
  exit 0; same value again: "LAN discovery is already set to enabled." exit 1
  (the CLI returns ALREADY_SET as an error; cli/cli_set_lan_discovery.go,
  cli/messages.go MsgSetSuccess / SetLANDiscoveryAlreadyEnabled). Enabling it
  drops private and link-local subnets from the allowlist and then first prints
  SetLANDiscoveryAllowlistReset (daemon/rpc_set_lan_discovery.go). While
  connected the routing rules and the firewall follow at once
  (networker/networker.go SetLanDiscovery, SetAllowlist).
- `allowlist add subnet`: success / "is already on the allowlist" / private
  subnet refused while LAN discovery is on ("Allowlisting a private subnet is not
  available while local network discovery is turned on.") / invalid CIDR gives
  the argument-parsing error, and so does an IPv6 subnet (isSubnetValid: only
  IPv4); `remove subnet`: success / "is not on the allowlist"
  (cli/cli_allowlist_add_subnet.go, cli_allowlist_remove_subnet.go,
  daemon/rpc_set_allowlist.go containsPrivateNetwork: netip IsPrivate or
  IsLinkLocalUnicast). While connected: rules and firewall sets follow at once
  (networker/networker.go SetAllowlist).
- `set technology nordlynx|openvpn` (case-insensitive): "Technology has been
  successfully set to 'OpenVPN'." plus, while connected, "You're connected to
  the VPN. Please reconnect to apply the setting." (the new technology is used
  from the next connect); same value: "Technology is already set to 'NordLynx'."
  exit 0 (cli/cli_set_technology.go, daemon/rpc_set_technology.go,
  config/technology.go TechNameToUpperCamelCase, cli/messages.go SetReconnect,
  MsgAlreadySet).
- `set autoconnect on|off [tag]`: "Auto-connect has been successfully set to
  'enabled'."; turning it off when off: "Auto-connect is already set to
  'disabled'." exit 0; an unknown tag: "The specified server does not exist."
  exit 1 (cli/cli_set_autoconnect.go, daemon/rpc_set_autoconnect.go). At daemon
  start, auto-connect on means connect (cmd/daemon/main.go `if cfg.AutoConnect`
  -> daemon/jobs.go StartAutoConnect).
- `connect [tag]`: "Connecting to <name> (<hostname>)" then "You are connected
  to <name> (<hostname>)!", exit 0 (cli/cli_connect.go, client/messages.go
  ConnectStart, internal/message.go ConnectSuccess; the data sent is name,
  hostname and "" or " - Virtual": daemon/rpc_connect.go). Arguments that parse
  as booleans are dropped and the rest is joined and lower-cased into the tag
  (cli/cli.go parseConnectArgs). Unknown tag: "The specified server does not
  exist." exit 1 (internal/message.go TagNonexistentErrorMessage,
  daemon/servers.go). Connecting while connected reconnects: the tunnel device
  and the table-205 route are replaced, the rules stay, and the same two lines
  are printed (networker/networker.go Start -> restart). A failure prints "We
  couldn't connect you to the VPN. Please check your internet connection and try
  again. If the issue persists, contact our customer support." exit 1
  (client/messages.go ConnectCantConnect) after undoing everything
  (networker/networker.go failureRecover); a tunnel device that already exists
  is such a failure (daemon/vpn/nordlynx/kernel_space.go ErrTunnelAlreadyExists).
- `disconnect`: "You are disconnected from NordVPN." plus "How would you rate your
  connection quality on a scale from 1 (poor) to 5 (excellent)? Type 'nordvpn
  rate [1-5]'."; not connected: "You are not connected to NordVPN."; exit 0 both
  (cli/cli_disconnect.go, internal/message.go DisconnectSuccess, cli/messages.go
  DisconnectNotConnected, DisconnectConnectionRating; daemon/rpc_disconnect.go).
- `status`: "Status: Disconnected", or "Status: Connected", "Server:",
  "Hostname:", "IP:", "Country:", "City:", "Current technology: NORDLYNX|OPENVPN",
  "Current protocol: UDP", "Post-quantum VPN: Disabled", "Transfer: <rx>
  received, <tx> sent" only when a counter is not zero, "Uptime: <durafmt>"
  (cli/cli_status.go, daemon/rpc_status.go, cli/uint64.go uint64ToHumanBytes,
  github.com/hako/durafmt String). The counters are the tunnel device's.
- Tunnel device: NordLynx `nordlynx` with 10.5.0.2/16 (daemon/vpn/nordlynx/
  nordlynx.go InterfaceName, DefaultPrefix; /16 since PR #886) and MTU = MTU of
  the main table's default-route device - 80, or 1500 without a default route
  (daemon/vpn/mtu.go, nordlynx.go WireguardHeaderSize); OpenVPN `nordtun`
  (daemon/vpn/openvpn/config.go InterfaceName) with 10.7.0.5/24: the address is
  pushed by NordVPN's server, the source has none; 10.7.0.5/24 is one NordVPN
  pushed (haugene/docker-transmission-openvpn #1383 log: "ip addr add dev tun0
  10.7.0.5/24"), and nordtun is on 10.7.x per nordvpn-linux #29. The real
  devices are WireGuard / tun; this kernel has neither `wireguard` nor (in test
  hosts) /dev/net/tun, so the stand-in creates a veth pair `<dev>` +
  `<dev>-peer` and keeps the peer DOWN: nothing sent into the "tunnel" leaves
  the host (the kernel drops it at the veth), and nothing real is reached.
- Routing (daemon/routes/iprule/iprule.go, daemon/routes/rule.go,
  daemon/routes/netlink/netlink.go, networker/networker.go start): the main
  table is not changed (only the kernel's own prefix route of the tunnel
  address appears there); `default dev <tun> scope link` goes into table 205, or
  the next id no IPv4 route uses; `ip rule`s, each at the highest free priority
  below the `from all lookup main` rule (32766), in this order:
  `not from all fwmark 0xe1f1 lookup 205` (reused if present),
  `from all lookup main suppress_prefixlength 0` plus `suppress_ifgroup 57841`
  when LAN discovery is off (removed and re-added on every setup), and one
  `to <subnet> lookup main` per allowlisted subnet (one per network), LAN
  discovery adding 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16
  and 224.0.0.251/32 to that list (networker/lan_discovery.go,
  internal/constants.go LocalNetworks, MDNSSubnet). The interfaces that carry a
  main-table IPv4 default route get ifgroup 57841 (0xe1f1); their old group is
  restored when routing is cleaned up (daemon/routes/ifgroup/ifgroup.go,
  daemon/device/device.go DefaultRouteInterfaces).
- Firewall (daemon/firewall/nft/nft.go, daemon/firewall/service.go,
  daemon/firewall/nft/testdata/TestVPNRuleset/vpn_only.golden,
  subnet_allowlisted.golden): `table inet nordvpn`, rebuilt whole in one nft
  transaction on every change: set lan_ranges (constant, interval), set
  allowlist_subnets when the allowlist (with the LAN discovery ranges) is not
  empty, chains input (filter, policy drop: lo, ct mark 0xe1f1, the tunnel,
  jump allowlist_input), allowlist_input (saddr in the allowlist), output
  (route hook, priority mangle, policy drop: lo, ct mark 0xe1f1, meta mark 0xe1f1
  -> ct mark, LAN DNS drop, daddr in the allowlist -> mark 0xe1f1, the tunnel),
  forward (filter, policy drop: to the tunnel, established from the tunnel, LAN
  DNS drop, allowlist both ways). Deleted on disconnect (an empty firewall
  config is flushed: service.go IsEmpty, networker.go configureFirewall).
- Daemon stop disconnects (cmd/daemon/main.go: rpc.DoDisconnect on the signal);
  settings persist in the state file, the connection does not: after a restart
  the client is connected again only through auto-connect.
- Daemon not running: the socket file is missing -> "Couldn't find
  /run/nordvpn/nordvpnd.sock. To fix the issue, you may need to reinstall the
  app." plus the "background service isn't running" hint; socket present but
  nobody listening -> "We couldn't reach System Daemon."; exit 1 either way
  (cli/cli.go cmd.action, cli/cli_ping.go, internal/errors.go, internal/constants.go).
- Errors, like the real client's `color.Red` output, go to stdout; the exit
  status is 1 for every error, 0 otherwise (cmd/cli/main.go).

Not modelled: logging in (the stand-in acts logged in), the real server list
(a fixed four-server catalogue below, addresses from TEST-NET-1), server groups,
"Connecting" as a visible state, `You are already connected to NordVPN.` (the CLI
has the message for CodeVPNRunning but no daemon code sends it, 3.16.0..HEAD),
rp_filter, IPv6 blocking, ARP ignore and DNS changes, the pre-connect firewall
pass and the firewall flush while disconnected (kill switch off), port ranges,
NordWhisper, meshnet, socket activation (nordvpnd.socket), the `nordvpn` group
permission check. The README lists these with reasons, and has the table of the
LAN DNS drop, allowlisted ports and kill switch behaviours with their sources
(`allowlist add|remove port`, `set killswitch`, `nordvpnd --killswitch-mode`:
daemon/firewall/nft/nft.go addLanDNSDrop, networker/networker.go setKillSwitch,
daemon/jobs.go StartKillSwitch/StopKillSwitch, cmd/daemon/main.go ksMode).

Stand-in only knobs (environment): NORDVPND_SOCKET (socket path),
NORDVPND_STATE (state file), NORDVPN_STANDIN_NORDLYNX_PREFIX (prefix length of
the nordlynx address, default 16; 10 reproduces 3.20.0's `10.0.0.0/10 dev
nordlynx` main-table route of nordvpn-linux #762); the wrappers read
NORDVPN_STANDIN (program path).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VERSION = "5.3.0"
SOCKET = os.environ.get("NORDVPND_SOCKET", "/run/nordvpn/nordvpnd.sock")
STATE = os.environ.get("NORDVPND_STATE", "/var/lib/nordvpn/standin-settings.json")
PREFIX_KNOB = "NORDVPN_STANDIN_NORDLYNX_PREFIX"
# internal/systemd.go IsSystemShutdown; a knob for the unit tests.
NOLOGIN = os.environ.get("NORDVPND_NOLOGIN", "/run/nologin")

TRUE_WORDS = ("1", "true", "enable", "on", "enabled")
FALSE_WORDS = ("0", "false", "disable", "off", "disabled")

# Daemon reply codes (internal/codes.go).
CODE_SUCCESS = 1000
CODE_CONNECTING = 1001
CODE_CONNECTED = 1002
CODE_DISCONNECTED = 1003
CODE_NOTHING_TO_DO = 2000
CODE_VPN_NOT_RUNNING = 2003
CODE_FAILURE = 3000
CODE_TAG_NONEXISTING = 3033
CODE_PRIVATE_SUBNET_LAN_DISCOVERY = 3040
CODE_ALLOWLIST_INVALID_SUBNET = 3044
CODE_ALLOWLIST_SUBNET_NOOP = 3045
CODE_ALLOWLIST_PORT_OUT_OF_RANGE = 3046
CODE_ALLOWLIST_PORT_NOOP = 3047
CODE_KILLSWITCH_ERROR = 3023
ALREADY_SET = "ALREADY_SET"
CONFIGURED = "DISCOVERY_CONFIGURED"
CONFIGURED_RESET = "DISCOVERY_CONFIGURED_ALLOWLIST_RESET"

# Client messages (cli/messages.go, client/messages.go, internal/message.go,
# internal/errors.go, cli/cli.go).
MSG_SET_SUCCESS = "{} has been successfully set to '{}'."
MSG_ALREADY_SET = "{} is already set to '{}'."
MSG_SET_RECONNECT = "You're connected to the VPN. Please reconnect to apply the setting."
MSG_LAN_ALREADY = "LAN discovery is already set to {}."
MSG_LAN_RESET = "Turning on local network discovery will remove your private subnets from the allowlist."
MSG_ADD_EXISTS = "Subnet {} is already on the allowlist."
MSG_ADD_SUCCESS = "Subnet {} has been successfully added to the allowlist."
MSG_ADD_LAN = "Allowlisting a private subnet is not available while local network discovery is turned on."
MSG_REMOVE_MISSING = "Subnet {} is not on the allowlist."
MSG_REMOVE_SUCCESS = "Subnet {} has been deleted from the allowlist."
MSG_PORT_EXISTS = "Port {} ({}) is already on the allowlist."
MSG_PORT_ADDED = "Port {} ({}) has been successfully added to the allowlist."
MSG_PORT_MISSING = "Port {} ({}) is not on the allowlist."
MSG_PORT_REMOVED = "Port {} ({}) has been deleted from the allowlist."
MSG_PORT_RANGE = "Port {} value is out of range [{} - {}]."
MSG_CONNECT_START = "Connecting to {} ({}){}"
MSG_CONNECT_SUCCESS = "You are connected to {} ({}){}!"
MSG_CONNECT_FAILED = (
    "We couldn't connect you to the VPN. Please check your internet connection and try again. "
    "If the issue persists, contact our customer support."
)
MSG_TAG_NONEXISTENT = "The specified server does not exist."
MSG_DISCONNECTED = "You are disconnected from NordVPN."
MSG_RATE = "How would you rate your connection quality on a scale from 1 (poor) to 5 (excellent)? Type '{} rate [1-5]'."
MSG_NOT_CONNECTED = "You are not connected to NordVPN."
MSG_ARG_COUNT = (
    "The command you entered has an incorrect number of arguments. Run '{} --help' to view available options."
)
MSG_ARG_PARSE = "The command you entered is not valid. Run '{} --help' to view available options."
MSG_NO_COMMAND = "Command '{}' doesn't exist."
MSG_UNHANDLED = "Something went wrong. Please try again. If the problem persists, contact our customer support."
MSG_CONN_REFUSED = "We couldn't reach System Daemon."
MSG_SOCKET_NOT_FOUND = "Couldn't find {}. To fix the issue, you may need to reinstall the app."
MSG_SERVICE_NOT_RUNNING = (
    'The NordVPN background service isn\'t running. Execute the "systemctl enable --now nordvpnd" command '
    "with root privileges to start the background service. If you're using NordVPN in an environment without "
    'systemd (a container, for example), use the "/etc/init.d/nordvpn start" command.'
)

# Network constants of the real daemon.
FWMARK = 0xE1F1  # config default FirewallMark; shown as `Firewall Mark: 0xe1f1`
IFGROUP = 0xE1F1  # daemon/routes/ifgroup/ifgroup.go Group (57841)
FIRST_TABLE_ID = 205  # daemon/routes/rule.go defaultCustomRoutingTableID
MAIN_RULE_PRIORITY_FALLBACK = 32766
LOCAL_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")  # internal/constants.go
MDNS_SUBNET = "224.0.0.251/32"  # internal/constants.go MDNSSubnet
DNS_PORT = 53  # daemon/firewall/nft/nft.go defaultDNSPort
PORT_MIN, PORT_MAX = 1, 65535  # internal/constants.go AllowlistMinPort, AllowlistMaxPort
WIREGUARD_HEADER = 80  # daemon/vpn/nordlynx/nordlynx.go WireguardHeaderSize
DEFAULT_MTU = 1500  # daemon/vpn/mtu.go defaultMTU
TECHNOLOGIES = {
    # name: (device, address, display name)
    "NORDLYNX": ("nordlynx", "10.5.0.2/16", "NordLynx"),
    "OPENVPN": ("nordtun", "10.7.0.5/24", "OpenVPN"),
}
TABLE_NAMES = {"local": 255, "main": 254, "default": 253}

# Stand-in server catalogue (the real client asks api.nordvpn.com). Names and
# host names have the real shape ("Romania #71 (ro71.nordvpn.com)"); the
# addresses are from TEST-NET-1 (RFC 5737) and are never contacted.
SERVERS = (
    {"code": "de", "country": "Germany", "city": "Frankfurt", "number": 507, "ip": "192.0.2.11"},
    {"code": "nl", "country": "Netherlands", "city": "Amsterdam", "number": 842, "ip": "192.0.2.12"},
    {"code": "us", "country": "United States", "city": "New York", "number": 9321, "ip": "192.0.2.13"},
    {"code": "ro", "country": "Romania", "city": "Bucharest", "number": 71, "ip": "192.0.2.14"},
)


def label(flag: bool) -> str:
    return "enabled" if flag else "disabled"


def log(*parts: object) -> None:
    print("nordvpnd stand-in:", *parts, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- settings


def load_state() -> dict:
    try:
        state = json.loads(Path(STATE).read_text())
    except FileNotFoundError:
        state = {}
    state.setdefault("lan_discovery", False)
    state.setdefault("subnets", [])
    state.setdefault("technology", "NORDLYNX")
    state.setdefault("autoconnect", False)
    state.setdefault("autoconnect_tag", "")
    state.setdefault("killswitch", False)
    state.setdefault("ports", {})
    for proto in ("UDP", "TCP"):
        state["ports"].setdefault(proto, [])
    return state


def save_state(state: dict) -> None:
    path = Path(STATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def is_private(cidr: str) -> bool:
    # Go's netip Addr.IsPrivate (10/8, 172.16/12, 192.168/16, fc00::/7) or
    # IsLinkLocalUnicast (169.254/16, fe80::/10), on the prefix's address.
    addr = ipaddress.ip_network(cidr, strict=False).network_address
    if addr.version == 4:
        nets = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
    else:
        nets = ("fc00::/7", "fe80::/10")
    return any(addr in ipaddress.ip_network(net) for net in nets)


def parse_prefix(text: str) -> str | None:
    # netip.ParsePrefix: address/bits, host bits allowed; canonical form kept as given.
    if "/" not in text:
        return None
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return text


def find_server(tag: str) -> dict | None:
    """The server for a connect tag: '' (recommended), country, code, city, 'country city' or host tag."""
    if not tag:
        return SERVERS[0]
    wanted = tag.lower().replace("_", " ").strip()
    for server in SERVERS:
        country, city = server["country"].lower(), server["city"].lower()
        names = {country, server["code"], city, f"{country} {city}", f"{server['code']} {city}"}
        names.add(f"{server['code']}{server['number']}")
        if wanted in names:
            return server
    return None


def server_data(server: dict) -> list[str]:
    # daemon/rpc_connect.go: []string{Name, Hostname, virtualServer}
    name = f"{server['country']} #{server['number']}"
    return [name, f"{server['code']}{server['number']}.nordvpn.com", ""]


# ----------------------------------------------------------------- network (daemon side)


class NetError(Exception):
    pass


def run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode < 0:
        # Killed by a signal meant for the daemon (a stop signal sent to its whole
        # process group or cgroup): run it once more, the teardown must finish.
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise NetError(f"`{' '.join(argv)}` failed: {detail}")
    return proc.stdout


def ip_json(*args: str) -> list:
    out = run(["ip", "-j", *args]).strip()
    return json.loads(out) if out else []


def quietly(what: str, action, *args) -> None:
    """Teardown step: log and carry on, so one failure never leaves the rest behind."""
    try:
        action(*args)
    except (NetError, OSError, ValueError) as exc:
        log(f"{what}: {exc}")


def table_id(name: str | None) -> int | None:
    if name is None:
        return TABLE_NAMES["main"]
    if name.isdigit():
        return int(name)
    return TABLE_NAMES.get(name)


def default_route_devices() -> list[str]:
    """Devices with an IPv4 default route in the main table (daemon/device/device.go DefaultRouteInterfaces)."""
    devices: list[str] = []
    for route in ip_json("-4", "route", "show", "table", "main"):
        if route.get("dst") in ("default", "0.0.0.0/0") and route.get("dev") and route["dev"] not in devices:
            devices.append(route["dev"])
    return devices


def link(dev: str) -> dict | None:
    try:
        found = ip_json("-s", "link", "show", "dev", dev)
    except NetError:
        return None
    return found[0] if found else None


def rule_priority() -> int:
    """Highest free priority below the `from all lookup main` rule (iprule.go findRulePriorityCandidate)."""
    rules = ip_json("-4", "rule", "show")
    used = {rule["priority"] for rule in rules}
    prio = 0
    for rule in rules:
        prio = rule["priority"]
        if rule.get("table") == "main" and rule.get("src") == "all" and set(rule) <= {"priority", "src", "table"}:
            break
    if prio == 0:
        raise NetError("unable to calculate ip rule priority id")
    while True:
        prio -= 1
        if prio == 0:
            raise NetError("unable to calculate rule priority id")
        if prio not in used:
            return prio


def custom_table_id() -> int:
    """First table id from 205 up that no IPv4 route uses (iprule.go calculateCustomTableID)."""
    used = {table_id(route.get("table")) for route in ip_json("-4", "route", "show", "table", "all")}
    tid = FIRST_TABLE_ID
    while tid in used:
        tid += 1
        if tid > 60000:
            raise NetError("unable to calculate custom table id")
    return tid


def is_fwmark_rule(rule: dict) -> bool:
    mark = rule.get("fwmark")
    return "not" in rule and mark is not None and int(mark.split("/")[0], 16) == FWMARK


def is_suppress_rule(rule: dict) -> bool:
    return rule.get("table") == "main" and rule.get("suppress_prefixlen") == 0 and "not" not in rule


class Router:
    """Policy routing of the real daemon (daemon/routes/iprule/iprule.go Router + ifgroup.NetlinkManager)."""

    def __init__(self) -> None:
        self.table: int | None = None
        self.allow_rules: dict[str, int] = {}
        self.ifgroup_set = False
        self.ifgroup_backup: dict[int, str] = {}

    def set_ifgroups(self) -> None:
        if self.ifgroup_set:
            return
        links = [link(dev) for dev in default_route_devices()]
        for found in links:
            if found:
                self.ifgroup_backup[found["ifindex"]] = str(found.get("group", "default"))
        for found in links:
            if found:
                run(["ip", "link", "set", "dev", found["ifname"], "group", str(IFGROUP)])
        self.ifgroup_set = True

    def unset_ifgroups(self) -> None:
        if not self.ifgroup_set:
            return
        # Like ifgroup.go Unset: the devices that carry a default route now get
        # their saved group back (0 when none was saved).
        for dev in default_route_devices():
            found = link(dev)
            if found:
                group = self.ifgroup_backup.get(found["ifindex"], "0")
                run(["ip", "link", "set", "dev", dev, "group", group])
        self.ifgroup_backup = {}
        self.ifgroup_set = False

    def setup(self, lan_discovery: bool, subnets: list[str]) -> None:
        """SetupRoutingRules(enableLocal=true, lanDiscovery, subnets)."""
        self.set_ifgroups()
        try:
            fwmark_rules = [rule for rule in ip_json("-4", "rule", "show") if is_fwmark_rule(rule)]
            if fwmark_rules:
                self.table = table_id(fwmark_rules[0]["table"])
            else:
                prio = rule_priority()
                self.table = custom_table_id()
                run(
                    [
                        "ip",
                        "-4",
                        "rule",
                        "add",
                        "pref",
                        str(prio),
                        "not",
                        "fwmark",
                        hex(FWMARK),
                        "table",
                        str(self.table),
                    ]
                )
            # enableLocalTraffic: drop an existing suppress rule, add it anew.
            self.remove_suppress_rule()
            suppress = ["table", "main", "suppress_prefixlength", "0"]
            if not lan_discovery:
                suppress += ["suppress_ifgroup", str(IFGROUP)]
            run(["ip", "-4", "rule", "add", "pref", str(rule_priority()), *suppress])
            self.remove_allow_rules()
            for subnet in subnets:
                net = str(ipaddress.ip_network(subnet, strict=False))
                if net in self.allow_rules:
                    continue
                prio = rule_priority()
                run(["ip", "-4", "rule", "add", "pref", str(prio), "to", net, "table", "main"])
                self.allow_rules[net] = prio
        except NetError:
            # iprule.go SetupRoutingRules' deferred recovery.
            quietly("removing suppress rule", self.remove_suppress_rule)
            quietly("removing fwmark rule", self.remove_fwmark_rule)
            self.remove_allow_rules()
            raise

    def remove_suppress_rule(self) -> None:
        for rule in ip_json("-4", "rule", "show"):
            if is_suppress_rule(rule):
                run(
                    [
                        "ip",
                        "-4",
                        "rule",
                        "del",
                        "pref",
                        str(rule["priority"]),
                        "table",
                        "main",
                        "suppress_prefixlength",
                        "0",
                    ]
                )
                return

    def remove_fwmark_rule(self) -> None:
        run(["ip", "-4", "rule", "del", "not", "fwmark", hex(FWMARK)])

    def remove_allow_rules(self) -> None:
        for net, prio in self.allow_rules.items():
            quietly(
                "removing allowlist rule",
                run,
                ["ip", "-4", "rule", "del", "pref", str(prio), "to", net, "table", "main"],
            )
        self.allow_rules = {}

    def cleanup(self) -> None:
        """CleanupRouting."""
        quietly("removing suppress rule", self.remove_suppress_rule)
        quietly("removing fwmark rule", self.remove_fwmark_rule)
        self.remove_allow_rules()
        quietly("restoring ifgroups", self.unset_ifgroups)
        self.table = None


def nft_ruleset(tunnel: str, allowlist: list[str], ports: dict | None = None, killswitch: bool = False) -> str:
    """`table inet nordvpn` (daemon/firewall/nft/nft.go configure; TestVPNRuleset goldens).

    `tunnel` is the tunnel device while connected, "" without one (kill switch only);
    `ports` maps "UDP"/"TCP" to allowlisted port numbers.
    """
    t = "inet nordvpn"
    mark = f"0x{FWMARK:08x}"
    ports = ports or {}
    udp, tcp = sorted(set(ports.get("UDP", []))), sorted(set(ports.get("TCP", [])))
    # service.go IsVpnOrKillSwitchSet: default-deny and the LAN DNS drop.
    deny = killswitch or bool(tunnel)
    policy = "drop" if deny else "accept"
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}"]
    lines.append(
        f"add set {t} lan_ranges {{ type ipv4_addr; flags constant,interval; "
        f"elements = {{ {', '.join(LOCAL_NETWORKS)} }}; }}"
    )
    nets = [str(net) for net in ipaddress.collapse_addresses(ipaddress.ip_network(s, strict=False) for s in allowlist)]
    if nets:
        lines.append(
            f"add set {t} allowlist_subnets {{ type ipv4_addr; flags constant,interval; "
            f"elements = {{ {', '.join(nets)} }}; }}"
        )
    # addAllowlistPorts: one interval set per protocol that has ports.
    for name, numbers in (("tcp_allowlist", tcp), ("udp_allowlist", udp)):
        if numbers:
            lines.append(
                f"add set {t} {name} {{ type inet_service; flags constant,interval; "
                f"elements = {{ {', '.join(map(str, numbers))} }}; }}"
            )
    # addLanDNSDrop: dropped ahead of every allowlist accept, per protocol unless
    # port 53 of that protocol is allowlisted (config.Allowlist.Ports.TCP[53], .UDP[53]).
    dns_drop = []
    if deny and DNS_PORT not in tcp:
        dns_drop.append('ip daddr @lan_ranges tcp dport 53 drop comment "block to LAN DNS for TCP"')
    if deny and DNS_PORT not in udp:
        dns_drop.append('ip daddr @lan_ranges udp dport 53 drop comment "block to LAN DNS for UDP"')

    def chain(name: str, head: str, rules: list[str]) -> None:
        lines.append(f"add chain {t} {name} {{ {head} }}" if head else f"add chain {t} {name}")
        lines.extend(f"add rule {t} {name} {rule}" for rule in rules)

    input_rules = [
        'iifname "lo" accept comment "local to local"',
        f'ct mark {mark} accept comment "response for sockets with SO_MARK"',
    ]
    if tunnel:
        input_rules.append(f'iifname "{tunnel}" accept comment "traffic from the tunnel"')
    chain("input", f"type filter hook input priority filter; policy {policy};", input_rules)
    if nets or tcp or udp:
        allow_in = ['ip saddr @allowlist_subnets accept comment "allowlist IPs to local"'] if nets else []
        if tcp:
            allow_in.append('tcp dport @tcp_allowlist accept comment "to local TCP ports"')
        if udp:
            allow_in.append('udp dport @udp_allowlist accept comment "to local UDP ports"')
        chain("allowlist_input", "", allow_in)
        # nft.go matches `iifname != <tunnel>`; without a tunnel that is `!= ""`, which
        # every packet matches and nft's text syntax refuses: a plain jump.
        match = f'iifname != "{tunnel}" ' if tunnel else ""
        lines.append(f'add rule {t} input {match}jump allowlist_input comment "allowlist to local"')
    output = [
        'oifname "lo" accept comment "local to loopback"',
        f'ct mark {mark} accept comment "VPN transport continuation"',
        f'meta mark {mark} ct mark set meta mark accept comment "mark connection for socket with SO_MARK"',
        *dns_drop,
    ]
    if nets:
        output.append(f'ip daddr @allowlist_subnets meta mark set {mark} accept comment "local to allowlist IPs"')
    if tcp:
        output.append(f'tcp sport @tcp_allowlist meta mark set {mark} accept comment "from allowlist TCP ports"')
    if udp:
        output.append(f'udp sport @udp_allowlist meta mark set {mark} accept comment "from allowlist UDP ports"')
    if tunnel:
        output.append(f'oifname "{tunnel}" accept comment "local to VPN"')
    chain("output", f"type route hook output priority mangle; policy {policy};", output)
    forward = []
    if tunnel:
        forward += [
            f'oifname "{tunnel}" accept comment "traffic to VPN"',
            f'iifname "{tunnel}" ct state established,related accept comment "response to connections inside tunnel"',
        ]
    forward += dns_drop
    if nets:
        forward += [
            'ip daddr @allowlist_subnets accept comment "internet to allowlist IPs"',
            "ip saddr @allowlist_subnets ct state established,related accept"
            ' comment "allow responses to allowlist IPs"',
        ]
    chain("forward", f"type filter hook forward priority filter; policy {policy};", forward)
    if tunnel and (tcp or udp):
        # addAllowlistNat: replies from allowlisted ports leave with the right source address.
        nat = []
        if udp:
            nat.append(
                f'oifname != "{tunnel}" udp sport @udp_allowlist masquerade'
                ' comment "fix source IP for UDP allowlist ports"'
            )
        if tcp:
            nat.append(
                f'oifname != "{tunnel}" tcp sport @tcp_allowlist masquerade'
                ' comment "fix source IP for TCP allowlist ports"'
            )
        chain("allowlist_nat", "type nat hook postrouting priority srcnat; policy accept;", nat)
    return "\n".join(lines) + "\n"


def firewall_configure(tunnel: str, allowlist: list[str], ports: dict | None = None, killswitch: bool = False) -> None:
    run(["nft", "-f", "-"], stdin=nft_ruleset(tunnel, allowlist, ports, killswitch))


def firewall_flush() -> None:
    # nft.go Flush: add + delete the table in one batch, so a missing table is no error.
    run(["nft", "-f", "-"], stdin="add table inet nordvpn\ndelete table inet nordvpn\n")


def with_lan_subnets(subnets: list[str], lan_discovery: bool) -> list[str]:
    """networker/lan_discovery.go addLANDiscoverySubnets."""
    result = list(subnets)
    if lan_discovery:
        result += [net for net in (*LOCAL_NETWORKS, MDNS_SUBNET) if net not in result]
    return result


def nordlynx_address() -> str:
    knob = os.environ.get(PREFIX_KNOB, "")
    if not knob:
        return TECHNOLOGIES["NORDLYNX"][1]
    bits = int(knob)
    if not 1 <= bits <= 32:
        raise NetError(f"{PREFIX_KNOB}={knob}: not a prefix length 1..32")
    return f"10.5.0.2/{bits}"


class Networker:
    """The parts of networker/networker.go Combined that VPN connections touch."""

    def __init__(self) -> None:
        self.router = Router()
        self.connection: dict | None = None
        self.routes: list[tuple[str, int]] = []  # (device, table) of `default dev <device> table <id>`
        self.allowlist: list[str] = []
        self.ports: dict[str, list[int]] = {"UDP": [], "TCP": []}
        self.lan_discovery = False
        self.killswitch = False
        self.network_set = False

    def load(self, state: dict) -> None:
        """What NewCombined gets at daemon start (cmd/daemon/main.go): cfg.LanDiscovery and
        cfg.AutoConnectData.Allowlist as stored, WITHOUT the LAN discovery ranges (those are
        added only by setAllowlist / SetAllowlist, i.e. at connect or at a settings change)."""
        self.lan_discovery = state["lan_discovery"]
        self.allowlist = list(state["subnets"])
        self.ports = {proto: list(state["ports"][proto]) for proto in ("UDP", "TCP")}

    def firewall(self, tunnel: str) -> None:
        """configureFirewall: the table for the VPN and/or the kill switch; neither (IsEmpty): flushed."""
        if tunnel or self.killswitch:
            firewall_configure(tunnel, self.allowlist, self.ports, self.killswitch)
        else:
            firewall_flush()

    def set_killswitch(self, enabled: bool) -> None:
        """SetKillSwitch / UnsetKillSwitch: KS plus the networker's allowlist as it stands now."""
        self.killswitch = enabled
        self.firewall(self.connection["device"] if self.connection else "")

    # -- tunnel device (daemon/vpn/nordlynx, daemon/vpn/openvpn stand-ins)
    def start_tunnel(self, technology: str) -> str:
        dev, address, _protocol = TECHNOLOGIES[technology]
        if technology == "NORDLYNX":
            address = nordlynx_address()
        if link(dev) is not None:
            raise NetError(f"tunnel device {dev} already exists")  # ErrTunnelAlreadyExists
        peer = f"{dev}-peer"
        run(["ip", "link", "add", dev, "type", "veth", "peer", "name", peer])
        try:
            run(["ip", "addr", "add", address, "dev", dev])
            run(["ip", "link", "set", "dev", dev, "up"])
            if technology == "NORDLYNX":
                run(["ip", "link", "set", "dev", dev, "mtu", str(self.tunnel_mtu())])
        except NetError:
            quietly("deleting tunnel", run, ["ip", "link", "del", dev])
            raise
        return dev

    @staticmethod
    def tunnel_mtu() -> int:
        devices = default_route_devices()
        found = link(devices[0]) if devices else None
        return found["mtu"] - WIREGUARD_HEADER if found else DEFAULT_MTU

    @staticmethod
    def stop_tunnel(dev: str) -> None:
        if link(dev) is not None:
            run(["ip", "link", "del", dev])

    # -- routes in the policy table (daemon/routes/netlink Router)
    def add_default_route(self, dev: str) -> None:
        table = self.router.table
        run(["ip", "-4", "route", "add", "default", "dev", dev, "scope", "link", "table", str(table)])
        self.routes.append((dev, table))

    def flush_routes(self) -> None:
        for dev, table in self.routes:
            quietly("deleting route", run, ["ip", "-4", "route", "del", "default", "dev", dev, "table", str(table)])
        self.routes = []

    # -- networker.go
    def start(self, technology: str, subnets: list[str], lan_discovery: bool) -> str:
        for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
            if shutil.which(tool) is None:
                raise NetError(
                    f"the `{tool}` command is not installed (Debian package {package}); "
                    "the stand-in needs it to build the tunnel, routes and firewall"
                )
        self.lan_discovery = lan_discovery
        self.allowlist = list(subnets)
        dev = None
        try:
            dev = self.start_tunnel(technology)
            self.router.setup(lan_discovery, subnets)
            self.set_allowlist_rules(subnets)  # configureNetwork -> setNetwork
            self.network_set = True
            self.add_default_route(dev)
            self.firewall(dev)
        except (NetError, OSError, ValueError):
            self.failure_recover(dev)
            raise
        return dev

    def failure_recover(self, dev: str | None) -> None:
        self.router.cleanup()
        self.flush_routes()
        if dev:
            quietly("deleting tunnel", self.stop_tunnel, dev)
        self.network_set = False
        if shutil.which("nft"):
            # failureRecover: the firewall without a tunnel (kept, default-deny, with the kill switch).
            quietly("removing firewall", self.firewall, "")
        self.connection = None

    def restart(self, technology: str) -> str:
        """Start while connected: new tunnel, route and firewall interface; the rules stay."""
        old = self.connection["device"]
        self.flush_routes()
        dev = None
        try:
            self.stop_tunnel(old)
            dev = self.start_tunnel(technology)
            self.add_default_route(dev)
            self.firewall(dev)
        except (NetError, OSError, ValueError):
            self.failure_recover(dev)
            raise
        return dev

    def stop(self) -> None:
        dev = self.connection["device"]
        self.router.cleanup()
        self.flush_routes()
        quietly("deleting tunnel", self.stop_tunnel, dev)
        self.network_set = False
        # networker.go stop: configureFirewall without the tunnel; with the kill switch on the
        # table stays (default-deny, the allowlist as it was while connected).
        quietly("removing firewall", self.firewall, "")
        self.connection = None

    def set_allowlist_rules(self, subnets: list[str]) -> None:
        """setAllowlist: rules for the allowlist plus, with LAN discovery, the LAN ranges."""
        allowlist = with_lan_subnets(subnets, self.lan_discovery)
        self.router.setup(self.lan_discovery, allowlist)
        self.allowlist = allowlist

    def set_allowlist(self, subnets: list[str], ports: dict[str, list[int]]) -> None:
        self.ports = {proto: list(ports[proto]) for proto in ("UDP", "TCP")}
        if self.network_set:
            self.set_allowlist_rules(subnets)
            self.firewall(self.connection["device"])
        else:
            self.allowlist = with_lan_subnets(subnets, self.lan_discovery)
            if self.killswitch:
                self.firewall("")

    def set_lan_discovery(self, enabled: bool) -> None:
        self.lan_discovery = enabled
        if self.connection:
            try:
                self.router.setup(enabled, self.allowlist)
            except NetError as exc:
                log("failed to set routing rules up after changing lan discovery:", exc)


class Daemon:
    def __init__(self) -> None:
        self.netw = Networker()

    def connect(self, tag: str, send) -> None:
        state = load_state()
        server = find_server(tag)
        if server is None:
            send({"error": MSG_TAG_NONEXISTENT})
            return
        data = server_data(server)
        send({"type": CODE_CONNECTING, "data": data})
        technology = state["technology"]
        try:
            if self.netw.connection:
                dev = self.netw.restart(technology)
            else:
                # networker.go Start gets the stored allowlist, ports included.
                self.netw.ports = {proto: list(state["ports"][proto]) for proto in ("UDP", "TCP")}
                dev = self.netw.start(technology, state["subnets"], state["lan_discovery"])
        except (NetError, OSError, ValueError) as exc:
            log("connect failed:", exc)
            send({"type": CODE_FAILURE, "data": data, "standin_detail": str(exc)})
            return
        self.netw.connection = {
            "device": dev,
            "technology": technology,
            "server": server,
            "data": data,
            "started": time.time(),
        }
        send({"type": CODE_CONNECTED, "data": data})

    def disconnect(self) -> bool:
        if not self.netw.connection:
            return False
        self.netw.stop()
        return True

    def status(self) -> dict:
        conn = self.netw.connection
        if not conn:
            return {"state": "Disconnected"}
        stats = (link(conn["device"]) or {}).get("stats64", {})
        server = conn["server"]
        return {
            "state": "Connected",
            "name": conn["data"][0],
            "hostname": conn["data"][1],
            "ip": server["ip"],
            "country": server["country"],
            "city": server["city"],
            "technology": conn["technology"],
            "protocol": "UDP",
            "rx": stats.get("rx", {}).get("bytes", 0),
            "tx": stats.get("tx", {}).get("bytes", 0),
            "uptime": int(time.time() - conn["started"]),
        }

    def autoconnect(self) -> None:
        state = load_state()
        if not state["autoconnect"]:
            return
        replies: list[dict] = []
        self.connect(state["autoconnect_tag"], replies.append)
        log("auto-connect:", json.dumps(replies[-1]))

    def handle(self, request: dict, send) -> None:
        state = load_state()
        op = request.get("op")
        if op == "ping":
            send({"type": CODE_SUCCESS})
        elif op == "settings":
            send({"type": CODE_SUCCESS, **state})
        elif op == "connect":
            self.connect(str(request.get("tag", "")), send)
        elif op == "disconnect":
            send({"type": CODE_DISCONNECTED if self.disconnect() else CODE_VPN_NOT_RUNNING})
        elif op == "status":
            send(self.status())
        elif op == "set_lan_discovery":
            send(self.set_lan_discovery(state, bool(request.get("enabled"))))
        elif op in ("allowlist_add_subnet", "allowlist_remove_subnet"):
            send(self.allowlist_subnet(state, op == "allowlist_remove_subnet", str(request.get("subnet", ""))))
        elif op == "set_technology":
            technology = str(request.get("technology"))
            if state["technology"] == technology:
                send({"type": CODE_NOTHING_TO_DO})
            else:
                state["technology"] = technology
                save_state(state)
                send({"type": CODE_SUCCESS, "connected": self.netw.connection is not None})
        elif op == "set_autoconnect":
            send(self.set_autoconnect(state, bool(request.get("enabled")), str(request.get("tag", ""))))
        elif op == "set_killswitch":
            send(self.set_killswitch(state, bool(request.get("enabled"))))
        elif op in ("allowlist_add_port", "allowlist_remove_port"):
            protocols = [str(proto) for proto in request.get("protocols", [])]
            send(self.allowlist_port(state, op == "allowlist_remove_port", int(request.get("port", 0)), protocols))
        else:
            send({"type": CODE_FAILURE})

    def set_lan_discovery(self, state: dict, enabled: bool) -> dict:
        if state["lan_discovery"] == enabled:
            return {"error": ALREADY_SET}
        status = CONFIGURED
        if enabled:
            kept = [s for s in state["subnets"] if not is_private(s)]
            if len(kept) != len(state["subnets"]):
                status = CONFIGURED_RESET
            state["subnets"] = kept
        self.netw.set_lan_discovery(enabled)
        try:
            self.netw.set_allowlist(state["subnets"], state["ports"])
        except NetError as exc:
            log("failed to set allowlist:", exc)
            return {"type": CODE_FAILURE}
        state["lan_discovery"] = enabled
        save_state(state)
        return {"status": status}

    def allowlist_subnet(self, state: dict, remove: bool, subnet: str) -> dict:
        if state["lan_discovery"] and parse_prefix(subnet) and is_private(subnet):
            return {"type": CODE_PRIVATE_SUBNET_LAN_DISCOVERY}
        if parse_prefix(subnet) is None or ipaddress.ip_network(subnet, strict=False).version != 4:
            return {"type": CODE_ALLOWLIST_INVALID_SUBNET}
        present = subnet in state["subnets"]
        if present != remove:
            return {"type": CODE_ALLOWLIST_SUBNET_NOOP}
        state["subnets"] = [s for s in state["subnets"] if s != subnet] if remove else state["subnets"] + [subnet]
        try:
            self.netw.set_allowlist(state["subnets"], state["ports"])
        except NetError as exc:
            log("failed to set allowlist:", exc)
            return {"type": CODE_FAILURE}
        save_state(state)
        return {"type": CODE_SUCCESS}

    def allowlist_port(self, state: dict, remove: bool, port: int, protocols: list[str]) -> dict:
        """daemon/rpc_set_allowlist.go getNewAllowlist + arePortsValid: UDP first, then TCP; a
        protocol that already has (add) or lacks (remove) the port makes the whole request a no-op."""
        if not PORT_MIN <= port <= PORT_MAX:
            return {"type": CODE_ALLOWLIST_PORT_OUT_OF_RANGE}
        ports = {proto: list(state["ports"][proto]) for proto in ("UDP", "TCP")}
        for proto in ("UDP", "TCP"):
            if proto not in protocols:
                continue
            if (port in ports[proto]) != remove:
                return {"type": CODE_ALLOWLIST_PORT_NOOP}
            ports[proto] = [p for p in ports[proto] if p != port] if remove else sorted([*ports[proto], port])
        try:
            self.netw.set_allowlist(state["subnets"], ports)
        except NetError as exc:
            log("failed to set allowlist:", exc)
            return {"type": CODE_FAILURE}
        state["ports"] = ports
        save_state(state)
        return {"type": CODE_SUCCESS}

    def set_killswitch(self, state: dict, enabled: bool) -> dict:
        """daemon/rpc_set_killswitch.go: the same value is CodeNothingToDo; the firewall follows at once."""
        if state["killswitch"] == enabled:
            return {"type": CODE_NOTHING_TO_DO}
        try:
            self.netw.set_killswitch(enabled)
        except NetError as exc:
            log("setting the kill switch:", exc)
            return {"type": CODE_KILLSWITCH_ERROR}
        state["killswitch"] = enabled
        save_state(state)
        return {"type": CODE_SUCCESS}

    def start_killswitch(self) -> None:
        """cmd/daemon/main.go -> daemon/jobs.go StartKillSwitch: with the kill switch on, its table
        with the networker's allowlist as NewCombined got it (stored subnets and ports, no LAN
        discovery ranges), before auto-connect."""
        state = load_state()
        self.netw.load(state)
        if state["killswitch"]:
            try:
                self.netw.set_killswitch(True)
            except NetError as exc:
                log("starting killswitch:", exc)

    def stop_killswitch(self) -> None:
        """daemon/jobs.go StopKillSwitch at daemon stop: the table goes, unless the system shuts
        down (internal/systemd.go IsSystemShutdown: /run/nologin exists), when it stays."""
        if not load_state()["killswitch"]:
            return
        if Path(NOLOGIN).exists():
            log("detected system reboot - do not remove killswitch protection.")
            return
        quietly("unsetting killswitch", self.netw.set_killswitch, False)

    def set_autoconnect(self, state: dict, enabled: bool, tag: str) -> dict:
        if not state["autoconnect"] and not enabled:
            return {"type": CODE_NOTHING_TO_DO}
        if enabled and find_server(tag) is None:
            return {"error": MSG_TAG_NONEXISTENT}
        state["autoconnect"] = enabled
        state["autoconnect_tag"] = tag if enabled else ""
        save_state(state)
        return {"type": CODE_SUCCESS}


def daemon() -> int:
    path = Path(SOCKET)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o770)
    server.listen(8)
    nordvpnd = Daemon()
    flags = {"busy": False, "stopping": False}

    def stop(_signum, _frame):
        # A stop while a request runs waits for it: a half-built connection
        # would otherwise escape the teardown below.
        flags["stopping"] = True
        if not flags["busy"]:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # Inside the try: a stop right after this line must still remove the socket.
        flags["busy"] = True
        nordvpnd.start_killswitch()
        nordvpnd.autoconnect()
        flags["busy"] = False
        print(f"nordvpnd stand-in {VERSION} listening on {path}", flush=True)
        while not flags["stopping"]:
            conn, _peer = server.accept()
            flags["busy"] = True
            with conn, conn.makefile("rwb") as stream:

                def send(reply: dict, stream=stream) -> None:
                    stream.write(json.dumps(reply).encode() + b"\n")
                    stream.flush()

                try:
                    nordvpnd.handle(json.loads(stream.readline() or b"{}"), send)
                except (ValueError, OSError) as exc:
                    log("request failed:", exc)
                    try:
                        send({"type": CODE_FAILURE})
                    except OSError:
                        pass
            flags["busy"] = False
    finally:
        flags["busy"] = True
        server.close()
        # cmd/daemon/main.go: the daemon disconnects before it exits.
        if nordvpnd.netw.connection:
            nordvpnd.disconnect()
        nordvpnd.stop_killswitch()
        # The daemon removes its socket on a clean stop, so a stopped service
        # reads as "socket not found" to the client, as with the real nordvpnd.
        if path.exists():
            path.unlink()


# ----------------------------------------------------------------- client side


class ClientExit(Exception):
    def __init__(self, code: int, *lines: str):
        super().__init__(code)
        self.code = code
        self.lines = lines


def open_daemon(request: dict):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(SOCKET)
    except FileNotFoundError as exc:
        sock.close()
        raise ClientExit(1, MSG_SOCKET_NOT_FOUND.format(SOCKET), MSG_SERVICE_NOT_RUNNING) from exc
    except OSError as exc:
        sock.close()
        raise ClientExit(1, MSG_CONN_REFUSED) from exc
    stream = sock.makefile("rwb")
    stream.write(json.dumps(request).encode() + b"\n")
    stream.flush()
    return sock, stream


def call(request: dict) -> dict:
    sock, stream = open_daemon(request)
    with sock, stream:
        line = stream.readline()
    if not line:
        raise ClientExit(1, MSG_CONN_REFUSED)
    return json.loads(line)


def parse_bool(text: str) -> bool | None:
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def connect_tag(args: list[str]) -> str:
    # cli/cli.go parseConnectArgs: drop boolean-looking args, join, lower-case.
    return " ".join(arg for arg in args if parse_bool(arg) is None).lower()


def cmd_settings(args: list[str]) -> list[str]:
    reply = call({"op": "settings"})
    openvpn = reply["technology"] == "OPENVPN"
    lines = [f"Technology: {reply['technology']}"]
    if openvpn:
        lines.append("Protocol: UDP")
    lines += [
        "Firewall: enabled",
        f"Firewall Mark: {hex(FWMARK)}",
        "Routing: enabled",
        "User Consent: disabled",
        f"Kill Switch: {label(reply['killswitch'])}",
        "Threat Protection Lite: disabled",
    ]
    if openvpn:
        lines.append("Obfuscate: disabled")
    lines += [
        "Notify: disabled",
        "Tray: enabled",
        f"Auto-connect: {label(reply['autoconnect'])}",
        "Meshnet: disabled",
        "DNS: disabled",
        f"LAN Discovery: {label(reply['lan_discovery'])}",
        "Virtual Location: enabled",
    ]
    if reply["technology"] == "NORDLYNX":
        lines.append("Post-quantum VPN: disabled")
    lines.append("ARP Ignore: disabled")
    lines += port_lines(reply["ports"])
    if reply["subnets"]:
        lines.append("Allowlisted subnets:")
        lines.extend(f"\t{subnet}" for subnet in reply["subnets"])
    return lines


def port_lines(ports: dict[str, list[int]]) -> list[str]:
    """cli/cli_settings.go displayAllowlist: `Allowlisted ports:`, then runs of consecutive ports
    with the same protocols, `  %*d (%s)` or `  %*d - %*d (%s)`, protocols `UDP|TCP`, `UDP`, `TCP`."""
    udp, tcp = ports.get("UDP", []), ports.get("TCP", [])
    every = sorted([*udp, *tcp])  # duplicates kept, as append(udpPorts, tcpPorts...)
    if not every:
        return []
    runs: list[list] = []  # [start, end, protocols]
    for port in every:
        protos = [name for name, have in (("UDP", udp), ("TCP", tcp)) if port in have]
        if not runs or protos != runs[-1][2] or port - runs[-1][1] > 1:
            runs.append([port, port, protos])
        runs[-1][1] = port
    width = len(str(every[-1]))
    lines = ["Allowlisted ports:"]
    for start, end, protos in runs:
        text = "|".join(protos)
        if start == end:
            lines.append(f"  {start:>{width * 2 + 3}} ({text})")
        else:
            lines.append(f"  {start:>{width}} - {end:>{width}} ({text})")
    return lines


def human_bytes(count: int) -> str:
    # cli/uint64.go uint64ToHumanBytes
    if count < 1024:
        return f"{count} B"
    base = count.bit_length() // 10
    return f"{count / (1 << (base * 10)):.2f} {' KMGTPE'[base]}iB"


def human_duration(seconds: int) -> str:
    # github.com/hako/durafmt String() of a duration truncated to whole seconds.
    days_total = seconds // 86400
    left = days_total % 365
    weeks = 52 if 364 <= left < 365 else left // 7
    parts = (
        (days_total // 365, "years"),
        (weeks, "weeks"),
        (left % 7, "days"),
        (seconds // 3600 % 24, "hours"),
        (seconds // 60 % 60, "minutes"),
        (seconds % 60, "seconds"),
    )
    words = [f"{value} {unit if value > 1 else unit[:-1]}" for value, unit in parts if value]
    return " ".join(words) or "0 seconds"


def cmd_status(args: list[str]) -> list[str]:
    reply = call({"op": "status"})
    lines = [f"Status: {reply['state']}"]
    if reply["state"] != "Connected":
        return lines
    lines += [
        f"Server: {reply['name']}",
        f"Hostname: {reply['hostname']}",
        f"IP: {reply['ip']}",
        f"Country: {reply['country']}",
        f"City: {reply['city']}",
        f"Current technology: {reply['technology']}",
        f"Current protocol: {reply['protocol']}",
        "Post-quantum VPN: Disabled",
    ]
    if reply["rx"] or reply["tx"]:
        lines.append(f"Transfer: {human_bytes(reply['rx'])} received, {human_bytes(reply['tx'])} sent")
    lines.append(f"Uptime: {human_duration(reply['uptime'])}")
    return lines


def cmd_connect(args: list[str]) -> list[str]:
    sock, stream = open_daemon({"op": "connect", "tag": connect_tag(args)})
    failed: str | None = None
    with sock, stream:
        for line in stream:
            reply = json.loads(line)
            code = reply.get("type")
            if "error" in reply:
                failed = reply["error"]
            elif code == CODE_CONNECTING:
                print(MSG_CONNECT_START.format(*reply["data"]), flush=True)
            elif code == CODE_CONNECTED:
                print(MSG_CONNECT_SUCCESS.format(*reply["data"]), flush=True)
            elif code == CODE_FAILURE:
                failed = MSG_CONNECT_FAILED
                if reply.get("standin_detail"):
                    # Stand-in only: the reason, on stderr so stdout stays the real client's.
                    print(f"nordvpn stand-in: connect failed: {reply['standin_detail']}", file=sys.stderr)
    if failed:
        raise ClientExit(1, failed)
    return []


def cmd_disconnect(args: list[str]) -> list[str]:
    reply = call({"op": "disconnect"})
    if reply.get("type") == CODE_VPN_NOT_RUNNING:
        return [MSG_NOT_CONNECTED]
    if reply.get("type") == CODE_DISCONNECTED:
        return [MSG_DISCONNECTED, MSG_RATE.format("nordvpn")]
    raise ClientExit(1, MSG_UNHANDLED)


def one_bool_argument(name: str, args: list[str]) -> bool:
    """The argument of a `nordvpn set <setting> on|off` that takes exactly one, with the client's
    usage errors; then the daemon must answer (its ping), as before every setting call."""
    if len(args) != 1:
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    enabled = parse_bool(args[0])
    if enabled is None:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    call({"op": "ping"})
    return enabled


def cmd_set_lan_discovery(args: list[str]) -> list[str]:
    enabled = one_bool_argument("nordvpn set lan-discovery", args)
    reply = call({"op": "set_lan_discovery", "enabled": enabled})
    if reply.get("error") == ALREADY_SET:
        raise ClientExit(1, MSG_LAN_ALREADY.format(label(enabled)))
    if reply.get("type") == CODE_FAILURE:
        raise ClientExit(1, MSG_UNHANDLED)
    lines = [MSG_LAN_RESET] if reply.get("status") == CONFIGURED_RESET else []
    return [*lines, MSG_SET_SUCCESS.format("LAN Discovery", label(enabled))]


def cmd_set_technology(args: list[str]) -> list[str]:
    name = "nordvpn set technology"
    if not args:
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    technology = args[0].upper()
    if len(args) > 1 or technology not in TECHNOLOGIES:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    call({"op": "ping"})
    reply = call({"op": "set_technology", "technology": technology})
    display = TECHNOLOGIES[technology][2]
    if reply.get("type") == CODE_NOTHING_TO_DO:
        return [MSG_ALREADY_SET.format("Technology", display)]
    lines = [MSG_SET_SUCCESS.format("Technology", display)]
    return lines + [MSG_SET_RECONNECT] if reply.get("connected") else lines


def cmd_set_autoconnect(args: list[str]) -> list[str]:
    name = "nordvpn set autoconnect"
    if not args:
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    enabled = parse_bool(args[0])
    if enabled is None:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    call({"op": "ping"})
    reply = call({"op": "set_autoconnect", "enabled": enabled, "tag": connect_tag(args)})
    if "error" in reply:
        raise ClientExit(1, reply["error"])
    if reply.get("type") == CODE_NOTHING_TO_DO:
        return [MSG_ALREADY_SET.format("Auto-connect", label(enabled))]
    return [MSG_SET_SUCCESS.format("Auto-connect", label(enabled))]


def cmd_allowlist_subnet(action: str, args: list[str]) -> list[str]:
    name = f"nordvpn allowlist {action} subnet"
    if len(args) != 1:
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    subnet = args[0]
    call({"op": "ping"})
    reply = call({"op": f"allowlist_{action}_subnet", "subnet": subnet})
    code = reply.get("type")
    if code == CODE_PRIVATE_SUBNET_LAN_DISCOVERY:
        raise ClientExit(1, MSG_ADD_LAN)
    if code == CODE_ALLOWLIST_INVALID_SUBNET:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    if code == CODE_ALLOWLIST_SUBNET_NOOP:
        raise ClientExit(1, (MSG_ADD_EXISTS if action == "add" else MSG_REMOVE_MISSING).format(subnet))
    if code != CODE_SUCCESS:
        raise ClientExit(1, MSG_UNHANDLED)
    return [(MSG_ADD_SUCCESS if action == "add" else MSG_REMOVE_SUCCESS).format(subnet)]


def cmd_set_killswitch(args: list[str]) -> list[str]:
    # cli/cli_set_killswitch.go: success green, the current value yellow (exit 0 both).
    enabled = one_bool_argument("nordvpn set killswitch", args)
    reply = call({"op": "set_killswitch", "enabled": enabled})
    if reply.get("type") == CODE_NOTHING_TO_DO:
        return [MSG_ALREADY_SET.format("Kill Switch", label(enabled))]
    if reply.get("type") != CODE_SUCCESS:
        raise ClientExit(1, MSG_UNHANDLED)
    return [MSG_SET_SUCCESS.format("Kill Switch", label(enabled))]


def cmd_allowlist_port(action: str, args: list[str]) -> list[str]:
    """cli/cli_allowlist_add_port.go, cli_allowlist_remove_port.go: `<port> [protocol TCP|UDP]`;
    without a protocol both."""
    name = f"nordvpn allowlist {action} port"
    if not (len(args) == 1 or (len(args) == 3 and args[1] == "protocol")):
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    try:
        port = int(args[0], 10)
    except ValueError:
        raise ClientExit(1, MSG_ARG_PARSE.format(name)) from None
    if len(args) == 1:
        protocols = ["UDP", "TCP"]
    elif args[2] in ("UDP", "TCP"):
        protocols = [args[2]]
    else:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    shown = "|".join(protocols)  # getProtocolStr: UDP|TCP, UDP or TCP
    call({"op": "ping"})
    reply = call({"op": f"allowlist_{action}_port", "port": port, "protocols": protocols})
    code = reply.get("type")
    if code == CODE_ALLOWLIST_PORT_OUT_OF_RANGE:
        raise ClientExit(1, MSG_PORT_RANGE.format(port, PORT_MIN, PORT_MAX))
    if code in (CODE_ALLOWLIST_PORT_NOOP, CODE_FAILURE):
        raise ClientExit(1, (MSG_PORT_EXISTS if action == "add" else MSG_PORT_MISSING).format(port, shown))
    if code != CODE_SUCCESS:
        raise ClientExit(1, MSG_UNHANDLED)
    return [(MSG_PORT_ADDED if action == "add" else MSG_PORT_REMOVED).format(port, shown)]


def client(argv: list[str]) -> int:
    try:
        lines = dispatch(argv)
    except ClientExit as exc:
        for line in exc.lines:
            print(line)
        return exc.code
    for line in lines:
        print(line)
    return 0


def dispatch(argv: list[str]) -> list[str]:
    if not argv or argv[0] in ("-h", "--help", "help"):
        return [f"Welcome to NordVPN Linux client app!\nVersion {VERSION}"]
    if argv[0] in ("-v", "--version"):
        return [f"NordVPN Version {VERSION}"]
    command, rest = argv[0], argv[1:]
    simple = {
        "settings": cmd_settings,
        "status": cmd_status,
        "connect": cmd_connect,
        "c": cmd_connect,
        "disconnect": cmd_disconnect,
        "d": cmd_disconnect,
    }
    if command in simple:
        call({"op": "ping"})
        return simple[command](rest)
    if command == "version":
        call({"op": "ping"})
        return [f"NordVPN Version {VERSION}"]
    setters = {"lan-discovery": cmd_set_lan_discovery, "technology": cmd_set_technology}
    setters["autoconnect"] = cmd_set_autoconnect
    setters["killswitch"] = cmd_set_killswitch
    if command in ("set", "s") and rest and rest[0] in setters:
        return setters[rest[0]](rest[1:])
    if command in ("allowlist", "whitelist") and rest[:2] in (["add", "subnet"], ["remove", "subnet"]):
        return cmd_allowlist_subnet(rest[0], rest[2:])
    if command in ("allowlist", "whitelist") and rest[:2] in (["add", "port"], ["remove", "port"]):
        return cmd_allowlist_port(rest[0], rest[2:])
    raise ClientExit(1, MSG_NO_COMMAND.format(" ".join(argv)))


def killswitch_mode() -> int:
    """`nordvpnd --killswitch-mode` (nordvpnd-killswitch.service, before network-pre.target):
    with the kill switch on, its table with NOTHING allowlisted (cmd/daemon/main.go:
    firewall.NewConfig(firewall.WithKillSwitch(true)), no allowlist, no LAN ranges), then exit 0
    whatever happened (errors are only logged)."""
    print("Daemon running in killswitch mode", flush=True)
    if load_state()["killswitch"]:
        print("Enabling killswitch", flush=True)
        try:
            firewall_configure("", [], None, True)
        except (NetError, OSError) as exc:
            log("killswitch mode:", exc)
    print("Killswitch mode daemon stopping, waiting for internet", flush=True)
    return 0


def main() -> int:
    if sys.argv[1:] == ["--daemon"]:
        return daemon()
    if sys.argv[1:] == ["--daemon", "--killswitch-mode"]:
        return killswitch_mode()
    return client(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""The NordVPN stand-in connected: tunnel device, policy routing, ifgroups and nftables like nordvpn-linux 5.x.

Every test runs the daemon inside a network namespace of its own (the
nordvpn_host fixture: `eth0` 192.168.77.2/24, default route via the "LAN"
namespace's 192.168.77.1), so nothing here touches the machine's own routing or
firewall. Expected rules, routes and rulesets are the real daemon's (files cited
in the stand-in's header): daemon/routes/iprule/iprule.go, daemon/routes/ifgroup,
daemon/firewall/nft/nft.go and its TestVPNRuleset goldens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import NORDVPN_DIR

SERVER = "Germany #507 (de507.nordvpn.com)"
CANT_CONNECT = (
    "We couldn't connect you to the VPN. Please check your internet connection and try again. "
    "If the issue persists, contact our customer support."
)
DEFAULT_RULES = [(0, "from all lookup local"), (32766, "from all lookup main"), (32767, "from all lookup default")]
FWMARK_RULE = (32765, "not from all fwmark 0xe1f1 lookup 205")
SUPPRESS_IFGROUP = (32764, "from all lookup main suppress_prefixlength 0 suppress_ifgroup 57841")
SUPPRESS = (32764, "from all lookup main suppress_prefixlength 0")
LAN_RULES = [
    # networker/lan_discovery.go appends LocalNetworks then the mDNS address.
    "from all to 10.0.0.0/8 lookup main",
    "from all to 172.16.0.0/12 lookup main",
    "from all to 192.168.0.0/16 lookup main",
    "from all to 169.254.0.0/16 lookup main",
    "from all to 224.0.0.251 lookup main",
]
LAN_RANGES = ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]
# Only a lookup: `ip route get` sends nothing. TEST-NET-2 address.
OUTSIDE = "198.51.100.7"

# Sends one UDP datagram, optionally bound to a device; prints "sent" or "error <errno>".
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 3:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[3].encode())
try:
    s.sendto(b"nordvpn-standin-test", (sys.argv[1], int(sys.argv[2])))
    print("sent")
except OSError as exc:
    print("error", exc.errno)
"""
# Receives one datagram on the LAN side; prints "ready", then what arrived.
RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.168.77.1", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(120)  # a bound for a hung test, not a timing assertion
print(s.recv(100).decode(), flush=True)
"""
PORT = 40977
NORDVPND = NORDVPN_DIR / "nordvpnd"


def rules(host) -> list[tuple[int, str]]:
    found = []
    for line in host.sh("ip", "-4", "rule", "show").splitlines():
        prio, _colon, text = line.partition(":")
        found.append((int(prio), " ".join(text.split())))
    return found


def routes(host, table: str) -> list[str]:
    result = subprocess.run(
        ["ip", "-n", host.netns, "-4", "route", "show", "table", table], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "FIB table does not exist" in result.stderr:
        return []  # a table is created by its first route and goes with its last
    assert result.returncode == 0, result.stderr
    return [" ".join(line.split()) for line in result.stdout.splitlines()]


def link(host, dev: str) -> dict | None:
    result = subprocess.run(
        ["ip", "-n", host.netns, "-j", "-d", "addr", "show", "dev", dev], capture_output=True, text=True, check=False
    )
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def nft_tables(host) -> list[str]:
    return host.sh("nft", "list", "tables").splitlines()


def nft_table(host) -> dict:
    """`table inet nordvpn` as chains (type, hook, prio, policy) and sets (elements)."""
    data = json.loads(host.sh("nft", "-j", "list", "table", "inet", "nordvpn"))["nftables"]
    chains, sets = {}, {}
    for item in data:
        if "chain" in item:
            chain = item["chain"]
            chains[chain["name"]] = tuple(chain.get(key) for key in ("type", "hook", "prio", "policy"))
        if "set" in item:
            elems = []
            for elem in item["set"].get("elem", []):
                prefix = elem.get("prefix") if isinstance(elem, dict) else None
                elems.append(f"{prefix['addr']}/{prefix['len']}" if prefix else str(elem))
            sets[item["set"]["name"]] = (item["set"].get("flags"), sorted(elems))
    return {"chains": chains, "sets": sets, "text": host.sh("nft", "list", "table", "inet", "nordvpn")}


def send(host, dest: str, dev: str | None = None, port: int = PORT) -> str:
    argv = [sys.executable, "-c", SEND, dest, str(port)] + ([dev] if dev else [])
    return host.sh(*argv).strip()


def lan_receives(host, dev: str | None = "eth0", port: int = PORT) -> str:
    """Send a datagram from the host to the LAN and return what the LAN side got."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", host.lan, sys.executable, "-c", RECEIVE, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout.readline().strip() == "ready", receiver.stderr.read()
        assert send(host, "192.168.77.1", dev, port) == "sent"
        out, err = receiver.communicate(timeout=180)
        assert receiver.returncode == 0, err
        return out.strip()
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def connect(host, *args: str) -> str:
    result = host.run("connect", *args)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{host.log.read_text()}"
    return result.stdout


def assert_nothing_left(host, main_before: list[str]) -> None:
    assert link(host, "nordlynx") is None
    assert link(host, "nordlynx-peer") is None
    assert link(host, "nordtun") is None
    assert rules(host) == DEFAULT_RULES
    assert routes(host, "205") == []
    assert routes(host, "main") == main_before
    assert link(host, "eth0")["group"] == "default"
    assert nft_tables(host) == []


# ----------------------------------------------------------------- connect, status, disconnect


def test_connect_prints_the_clients_lines_and_status_shows_the_connection(nordvpn_host):
    assert connect(nordvpn_host) == f"Connecting to {SERVER}\nYou are connected to {SERVER}!\n"
    status = nordvpn_host.run("status")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[:9] == [
        "Status: Connected",
        "Server: Germany #507",
        "Hostname: de507.nordvpn.com",
        "IP: 192.0.2.11",
        "Country: Germany",
        "City: Frankfurt",
        "Current technology: NORDLYNX",
        "Current protocol: UDP",
        "Post-quantum VPN: Disabled",
    ]
    # durafmt: "0 seconds", "5 seconds", "1 minute 2 seconds", ...
    assert re.fullmatch(r"Uptime: \d+ (seconds?|minutes?( \d+ seconds?)?)", lines[-1]), lines[-1]
    # Transfer is printed only when the tunnel moved bytes; the stand-in's tunnel peer is down.
    stats = json.loads(nordvpn_host.sh("ip", "-s", "-j", "link", "show", "dev", "nordlynx"))[0]["stats64"]
    assert (stats["rx"]["bytes"], stats["tx"]["bytes"]) == (0, 0)
    assert len(lines) == 10, lines


@pytest.mark.parametrize(
    ("args", "server"),
    [
        (("nl",), "Netherlands #842 (nl842.nordvpn.com)"),
        (("United_States",), "United States #9321 (us9321.nordvpn.com)"),
        (("ro71",), "Romania #71 (ro71.nordvpn.com)"),
        (("Germany", "Frankfurt"), "Germany #507 (de507.nordvpn.com)"),
    ],
)
def test_connect_to_a_country_server_or_city(nordvpn_host, args, server):
    assert connect(nordvpn_host, *args) == f"Connecting to {server}\nYou are connected to {server}!\n"
    assert f"Server: {server.split(' (')[0]}" in nordvpn_host.ok("status").splitlines()


def test_unknown_server_fails_and_builds_nothing(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    result = nordvpn_host.run("connect", "atlantis")
    assert (result.returncode, result.stdout) == (1, "The specified server does not exist.\n")
    assert_nothing_left(nordvpn_host, main_before)
    assert nordvpn_host.ok("status") == "Status: Disconnected\n"


def test_disconnect_prints_both_lines_and_removes_everything(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    connect(nordvpn_host)
    nordvpn_host.ok("set", "lan-discovery", "on")
    result = nordvpn_host.run("disconnect")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "You are disconnected from NordVPN.",
        "How would you rate your connection quality on a scale from 1 (poor) to 5 (excellent)? "
        "Type 'nordvpn rate [1-5]'.",
    ]
    assert_nothing_left(nordvpn_host, main_before)
    assert nordvpn_host.ok("status") == "Status: Disconnected\n"
    assert nordvpn_host.ok("disconnect") == "You are not connected to NordVPN.\n"


def test_connect_while_connected_reconnects(nordvpn_host):
    connect(nordvpn_host)
    rules_before = rules(nordvpn_host)
    server = "Netherlands #842 (nl842.nordvpn.com)"
    assert connect(nordvpn_host, "nl") == f"Connecting to {server}\nYou are connected to {server}!\n"
    assert "Server: Netherlands #842" in nordvpn_host.ok("status").splitlines()
    assert rules(nordvpn_host) == rules_before
    assert routes(nordvpn_host, "205") == ["default dev nordlynx scope link linkdown"]
    assert nft_table(nordvpn_host)["chains"]["output"][3] == "drop"


# ----------------------------------------------------------------- tunnel device and routing


def test_nordlynx_device_address_and_mtu(nordvpn_host):
    connect(nordvpn_host)
    dev = link(nordvpn_host, "nordlynx")
    assert [(a["local"], a["prefixlen"]) for a in dev["addr_info"] if a["family"] == "inet"] == [("10.5.0.2", 16)]
    # daemon/vpn/mtu.go: MTU of the default-route device minus the WireGuard header (80).
    assert dev["mtu"] == link(nordvpn_host, "eth0")["mtu"] - 80
    # The veth peer that stands in for the far end stays down: nothing leaves through it.
    assert "UP" not in link(nordvpn_host, "nordlynx-peer")["flags"]


def test_main_table_is_unchanged_and_the_tunnel_route_is_in_table_205(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    assert nordvpn_host.sh("ip", "-4", "route", "get", OUTSIDE).split()[1:3] == ["via", "192.168.77.1"]
    connect(nordvpn_host)
    # Only the kernel's prefix route of the tunnel address appears in main.
    added = "10.5.0.0/16 dev nordlynx proto kernel scope link src 10.5.0.2 linkdown"
    assert sorted(routes(nordvpn_host, "main")) == sorted([*main_before, added])
    assert routes(nordvpn_host, "205") == ["default dev nordlynx scope link linkdown"]
    # What `ansible_default_ipv4` reads: the tunnel; the daemon's own marked traffic: eth0.
    assert nordvpn_host.sh("ip", "-4", "route", "get", OUTSIDE).split()[:5] == [
        OUTSIDE,
        "dev",
        "nordlynx",
        "table",
        "205",
    ]
    marked = nordvpn_host.sh("ip", "-4", "route", "get", OUTSIDE, "mark", "0xe1f1").split()
    assert marked[1:5] == ["via", "192.168.77.1", "dev", "eth0"]


def test_rules_and_ifgroup_without_lan_discovery(nordvpn_host):
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.9/24")  # same network: one rule
    assert link(nordvpn_host, "eth0")["group"] == "default"
    connect(nordvpn_host)
    assert rules(nordvpn_host) == sorted(
        [*DEFAULT_RULES, FWMARK_RULE, SUPPRESS_IFGROUP, (32763, "from all to 203.0.113.0/24 lookup main")]
    )
    assert link(nordvpn_host, "eth0")["group"] == "57841"
    assert link(nordvpn_host, "nordlynx")["group"] == "default"
    # eth0's own subnet is suppressed in main (ifgroup), so it goes into the tunnel too.
    assert nordvpn_host.sh("ip", "-4", "route", "get", "192.168.77.1").split()[1:3] == ["dev", "nordlynx"]
    assert nordvpn_host.sh("ip", "-4", "route", "get", "203.0.113.7").split()[1:3] == ["via", "192.168.77.1"]


def test_priorities_and_table_id_skip_ones_in_use(nordvpn_host):
    nordvpn_host.sh("ip", "-4", "rule", "add", "pref", "32765", "from", "198.51.100.0/24", "table", "main")
    nordvpn_host.sh("ip", "-4", "route", "add", "198.51.100.0/24", "dev", "eth0", "table", "205")
    connect(nordvpn_host)
    assert rules(nordvpn_host) == sorted(
        [
            *DEFAULT_RULES,
            (32765, "from 198.51.100.0/24 lookup main"),
            (32764, "not from all fwmark 0xe1f1 lookup 206"),
            (32763, "from all lookup main suppress_prefixlength 0 suppress_ifgroup 57841"),
        ]
    )
    assert routes(nordvpn_host, "206") == ["default dev nordlynx scope link linkdown"]
    nordvpn_host.ok("disconnect")
    assert rules(nordvpn_host) == sorted([*DEFAULT_RULES, (32765, "from 198.51.100.0/24 lookup main")])
    assert routes(nordvpn_host, "205") == ["198.51.100.0/24 dev eth0 scope link"]
    assert routes(nordvpn_host, "206") == []


def test_ifgroup_of_eth0_is_restored_on_disconnect(nordvpn_host):
    nordvpn_host.sh("ip", "link", "set", "dev", "eth0", "group", "7")
    connect(nordvpn_host)
    assert link(nordvpn_host, "eth0")["group"] == "57841"
    nordvpn_host.ok("disconnect")
    assert link(nordvpn_host, "eth0")["group"] == "7"


# ----------------------------------------------------------------- firewall


def test_firewall_is_default_deny_while_connected(nordvpn_host):
    assert nft_tables(nordvpn_host) == []
    connect(nordvpn_host)
    assert nft_tables(nordvpn_host) == ["table inet nordvpn"]
    table = nft_table(nordvpn_host)
    assert table["chains"] == {
        "input": ("filter", "input", 0, "drop"),
        "output": ("route", "output", -150, "drop"),
        "forward": ("filter", "forward", 0, "drop"),
    }
    assert table["sets"] == {"lan_ranges": (["constant", "interval"], LAN_RANGES)}
    for line in (
        'iifname "lo" accept comment "local to local"',
        'ct mark 0x0000e1f1 accept comment "response for sockets with SO_MARK"',
        'iifname "nordlynx" accept comment "traffic from the tunnel"',
        'meta mark 0x0000e1f1 ct mark set meta mark accept comment "mark connection for socket with SO_MARK"',
        'ip daddr @lan_ranges udp dport 53 drop comment "block to LAN DNS for UDP"',
        'oifname "nordlynx" accept comment "local to VPN"',
        'iifname "nordlynx" ct state established,related accept comment "response to connections inside tunnel"',
    ):
        assert line in table["text"], line


def test_allowlisted_subnets_get_a_set_and_their_rules(nordvpn_host):
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    connect(nordvpn_host)
    table = nft_table(nordvpn_host)
    assert table["sets"]["allowlist_subnets"] == (["constant", "interval"], ["203.0.113.0/24"])
    assert set(table["chains"]) == {"input", "allowlist_input", "output", "forward"}
    assert table["chains"]["allowlist_input"] == (None, None, None, None)
    for line in (
        'iifname != "nordlynx" jump allowlist_input comment "allowlist to local"',
        'ip saddr @allowlist_subnets accept comment "allowlist IPs to local"',
        'ip daddr @allowlist_subnets meta mark set 0x0000e1f1 accept comment "local to allowlist IPs"',
        'ip daddr @allowlist_subnets accept comment "internet to allowlist IPs"',
    ):
        assert line in table["text"], line


def test_default_deny_cuts_eth0_until_disconnect(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    connect(nordvpn_host)
    # Output policy drop: a socket bound to eth0 gets EPERM (1) from the kernel.
    assert send(nordvpn_host, "192.168.77.1", "eth0") == "error 1"
    nordvpn_host.ok("disconnect")
    assert_nothing_left(nordvpn_host, main_before)
    assert lan_receives(nordvpn_host) == "nordvpn-standin-test"


def test_lan_discovery_toggled_while_connected_updates_rules_and_firewall(nordvpn_host):
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    connect(nordvpn_host)
    assert nordvpn_host.ok("set", "lan-discovery", "on") == "LAN Discovery has been successfully set to 'enabled'.\n"
    allow = ["from all to 203.0.113.0/24 lookup main", *LAN_RULES]
    assert rules(nordvpn_host) == sorted(
        [*DEFAULT_RULES, FWMARK_RULE, SUPPRESS, *((32763 - i, rule) for i, rule in enumerate(allow))]
    )
    assert link(nordvpn_host, "eth0")["group"] == "57841"
    flags, elems = nft_table(nordvpn_host)["sets"]["allowlist_subnets"]
    assert elems == sorted([*LAN_RANGES, "203.0.113.0/24", "224.0.0.251"])
    assert nordvpn_host.sh("ip", "-4", "route", "get", "192.168.77.1").split()[1:3] == ["dev", "eth0"]
    assert lan_receives(nordvpn_host, dev=None) == "nordvpn-standin-test"

    assert nordvpn_host.ok("set", "lan-discovery", "off") == "LAN Discovery has been successfully set to 'disabled'.\n"
    assert rules(nordvpn_host) == sorted(
        [*DEFAULT_RULES, FWMARK_RULE, SUPPRESS_IFGROUP, (32763, "from all to 203.0.113.0/24 lookup main")]
    )
    assert nft_table(nordvpn_host)["sets"]["allowlist_subnets"][1] == ["203.0.113.0/24"]
    assert send(nordvpn_host, "192.168.77.1", "eth0") == "error 1"


def test_allowlist_changes_while_connected(nordvpn_host):
    connect(nordvpn_host)
    assert "allowlist_subnets" not in nft_table(nordvpn_host)["sets"]
    nordvpn_host.ok("allowlist", "add", "subnet", "198.51.100.0/24")
    assert (32763, "from all to 198.51.100.0/24 lookup main") in rules(nordvpn_host)
    assert nft_table(nordvpn_host)["sets"]["allowlist_subnets"][1] == ["198.51.100.0/24"]
    nordvpn_host.ok("allowlist", "remove", "subnet", "198.51.100.0/24")
    assert rules(nordvpn_host) == sorted([*DEFAULT_RULES, FWMARK_RULE, SUPPRESS_IFGROUP])
    assert "allowlist_subnets" not in nft_table(nordvpn_host)["sets"]


# ----------------------------------------------------------------- technology, restarts, failures


def test_openvpn_uses_nordtun_and_a_technology_change_waits_for_reconnect(nordvpn_host):
    nordvpn_host.ok("set", "technology", "openvpn")
    connect(nordvpn_host)
    dev = link(nordvpn_host, "nordtun")
    assert [(a["local"], a["prefixlen"]) for a in dev["addr_info"] if a["family"] == "inet"] == [("10.7.0.5", 24)]
    assert link(nordvpn_host, "nordlynx") is None
    assert routes(nordvpn_host, "205") == ["default dev nordtun scope link linkdown"]
    assert 'oifname "nordtun" accept comment "local to VPN"' in nft_table(nordvpn_host)["text"]
    assert "Current technology: OPENVPN" in nordvpn_host.ok("status").splitlines()

    changed = nordvpn_host.ok("set", "technology", "nordlynx")
    assert changed.splitlines() == [
        "Technology has been successfully set to 'NordLynx'.",
        "You're connected to the VPN. Please reconnect to apply the setting.",
    ]
    assert link(nordvpn_host, "nordtun") is not None
    connect(nordvpn_host)
    assert link(nordvpn_host, "nordtun") is None
    assert link(nordvpn_host, "nordlynx") is not None
    assert routes(nordvpn_host, "205") == ["default dev nordlynx scope link linkdown"]
    assert 'oifname "nordlynx" accept' in nft_table(nordvpn_host)["text"]
    assert "Current technology: NORDLYNX" in nordvpn_host.ok("status").splitlines()


def test_daemon_stop_disconnects_and_settings_survive_a_restart(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    nordvpn_host.ok("set", "lan-discovery", "on")
    nordvpn_host.ok("set", "technology", "openvpn")
    connect(nordvpn_host)
    assert nordvpn_host.stop() == 0
    assert not nordvpn_host.sock.exists()
    assert_nothing_left(nordvpn_host, main_before)
    nordvpn_host.start()
    # Auto-connect is off: the restarted daemon stays disconnected, settings kept.
    assert nordvpn_host.ok("status") == "Status: Disconnected\n"
    lines = nordvpn_host.ok("settings").splitlines()
    assert lines[0] == "Technology: OPENVPN"
    assert "LAN Discovery: enabled" in lines
    assert lines[lines.index("Allowlisted subnets:") + 1 :] == ["\t203.0.113.0/24"]
    assert link(nordvpn_host, "nordtun") is None


def test_autoconnect_connects_when_the_daemon_starts(nordvpn_host):
    nordvpn_host.ok("set", "autoconnect", "on", "nl")
    assert nordvpn_host.stop() == 0
    nordvpn_host.start()
    status = nordvpn_host.ok("status").splitlines()
    assert status[:2] == ["Status: Connected", "Server: Netherlands #842"]
    assert link(nordvpn_host, "nordlynx") is not None
    assert FWMARK_RULE in rules(nordvpn_host)
    assert nft_tables(nordvpn_host) == ["table inet nordvpn"]
    nordvpn_host.ok("set", "autoconnect", "off")
    assert nordvpn_host.stop() == 0
    nordvpn_host.start()
    assert nordvpn_host.ok("status") == "Status: Disconnected\n"
    assert link(nordvpn_host, "nordlynx") is None


def test_connect_without_nft_fails_clearly_and_builds_nothing(nordvpn_host, tmp_path):
    main_before = routes(nordvpn_host, "main")
    assert nordvpn_host.stop() == 0
    bin_dir = tmp_path / "bin-without-nft"
    bin_dir.mkdir()
    (bin_dir / "ip").symlink_to(shutil.which("ip"))
    nordvpn_host.start(PATH=str(bin_dir))
    result = nordvpn_host.run("connect")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"Connecting to {SERVER}", CANT_CONNECT]
    assert "nordvpn stand-in: connect failed:" in result.stderr
    assert "`nft`" in result.stderr
    assert "nftables" in result.stderr
    assert_nothing_left(nordvpn_host, main_before)


def test_an_existing_tunnel_device_fails_the_connect(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    nordvpn_host.sh("ip", "link", "add", "nordlynx", "type", "veth", "peer", "name", "nordlynx-left")
    result = nordvpn_host.run("connect")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"Connecting to {SERVER}", CANT_CONNECT]
    assert link(nordvpn_host, "nordlynx") is not None
    nordvpn_host.sh("ip", "link", "del", "nordlynx")
    assert_nothing_left(nordvpn_host, main_before)
    assert nordvpn_host.ok("status") == "Status: Disconnected\n"


def test_prefix_knob_reproduces_the_3_20_0_route_over_10_0_0_0_10(nordvpn_host):
    # Default 5.x /16: with LAN discovery k3s's 10.42.0.0/16 stays on eth0.
    nordvpn_host.ok("set", "lan-discovery", "on")
    connect(nordvpn_host)
    assert nordvpn_host.sh("ip", "-4", "route", "get", "10.42.0.1").split()[1:3] == ["via", "192.168.77.1"]
    nordvpn_host.ok("disconnect")
    assert nordvpn_host.stop() == 0
    nordvpn_host.start(NORDVPN_STANDIN_NORDLYNX_PREFIX="10")
    connect(nordvpn_host)
    # nordvpn-linux #762: "10.0.0.0/10 dev nordlynx proto kernel scope link src 10.5.0.2" in main.
    assert "10.0.0.0/10 dev nordlynx proto kernel scope link src 10.5.0.2 linkdown" in routes(nordvpn_host, "main")
    assert nordvpn_host.sh("ip", "-4", "route", "get", "10.42.0.1").split()[1:3] == ["dev", "nordlynx"]


def test_root_namespace_is_never_used_for_connect(nordvpn_client):
    # The plain fixture refuses `connect` outright: it would cut the test machine off.
    with pytest.raises(pytest.fail.Exception, match="nordvpn_host"):
        nordvpn_client.run("connect")
    assert os.environ.get("NORDVPN_STANDIN_NORDLYNX_PREFIX") is None


# ----------------------------------------------------------------- LAN DNS, allowlisted ports, kill switch

DNS_DROPS = [
    'ip daddr @lan_ranges tcp dport 53 drop comment "block to LAN DNS for TCP"',
    'ip daddr @lan_ranges udp dport 53 drop comment "block to LAN DNS for UDP"',
]


def killswitch_mode(host) -> subprocess.CompletedProcess:
    """`nordvpnd --killswitch-mode` in the host namespace, as nordvpnd-killswitch.service runs it."""
    return subprocess.run(
        ["ip", "netns", "exec", host.netns, str(NORDVPND), "--killswitch-mode"],
        env=host.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_lan_dns_is_dropped_with_lan_discovery_until_port_53_is_allowlisted(nordvpn_host):
    # nft.go addLanDNSDrop: ahead of the allowlist (LAN discovery's ranges) accept.
    nordvpn_host.ok("set", "lan-discovery", "on")
    connect(nordvpn_host)
    assert lan_receives(nordvpn_host, dev=None) == "nordvpn-standin-test"  # LAN discovery: other ports pass
    assert send(nordvpn_host, "192.168.77.1", port=53) == "error 1"  # output drop: EPERM
    for line in DNS_DROPS:
        assert line in nft_table(nordvpn_host)["text"], line
    nordvpn_host.ok("allowlist", "add", "port", "53", "protocol", "UDP")
    text = nft_table(nordvpn_host)["text"]
    assert DNS_DROPS[0] in text and DNS_DROPS[1] not in text  # per protocol
    assert lan_receives(nordvpn_host, dev=None, port=53) == "nordvpn-standin-test"


def test_dns_port_allowlisted_for_both_protocols_matches_the_golden(nordvpn_host):
    # testdata/TestVPNRuleset/DNS_port_allowlisted_for_both_protocols.golden
    nordvpn_host.ok("allowlist", "add", "port", "53")
    connect(nordvpn_host)
    table = nft_table(nordvpn_host)
    assert table["sets"]["tcp_allowlist"] == (["constant", "interval"], ["53"])
    assert table["sets"]["udp_allowlist"] == (["constant", "interval"], ["53"])
    assert set(table["chains"]) == {"input", "allowlist_input", "output", "forward", "allowlist_nat"}
    assert table["chains"]["allowlist_nat"] == ("nat", "postrouting", 100, "accept")
    for line in DNS_DROPS:
        assert line not in table["text"], line
    for line in (
        'iifname != "nordlynx" jump allowlist_input comment "allowlist to local"',
        'tcp dport @tcp_allowlist accept comment "to local TCP ports"',
        'udp dport @udp_allowlist accept comment "to local UDP ports"',
        'tcp sport @tcp_allowlist meta mark set 0x0000e1f1 accept comment "from allowlist TCP ports"',
        'udp sport @udp_allowlist meta mark set 0x0000e1f1 accept comment "from allowlist UDP ports"',
        'oifname != "nordlynx" udp sport @udp_allowlist masquerade comment "fix source IP for UDP allowlist ports"',
    ):
        assert line in table["text"], line
    # Without LAN discovery the LAN is behind the tunnel anyway: port 53 alone opens nothing.
    assert send(nordvpn_host, "192.168.77.1", dev="eth0", port=53) == "error 1"


def test_kill_switch_while_disconnected_is_default_deny(nordvpn_host):
    main_before = routes(nordvpn_host, "main")
    assert nordvpn_host.ok("set", "killswitch", "on") == "Kill Switch has been successfully set to 'enabled'.\n"
    assert nordvpn_host.ok("set", "killswitch", "on") == "Kill Switch is already set to 'enabled'.\n"
    assert "Kill Switch: enabled" in nordvpn_host.ok("settings").splitlines()
    # testdata/TestVPNRuleset/kill_switch_only.golden
    table = nft_table(nordvpn_host)
    assert table["chains"] == {
        "input": ("filter", "input", 0, "drop"),
        "output": ("route", "output", -150, "drop"),
        "forward": ("filter", "forward", 0, "drop"),
    }
    for line in DNS_DROPS:
        assert line in table["text"], line
    assert "nordlynx" not in table["text"]
    assert send(nordvpn_host, "192.168.77.1", "eth0") == "error 1"
    assert nordvpn_host.ok("set", "killswitch", "off") == "Kill Switch has been successfully set to 'disabled'.\n"
    assert_nothing_left(nordvpn_host, main_before)
    assert lan_receives(nordvpn_host) == "nordvpn-standin-test"


def test_kill_switch_at_daemon_start_has_no_lan_discovery_ranges_until_connect(nordvpn_host):
    nordvpn_host.ok("set", "lan-discovery", "on")
    nordvpn_host.ok("allowlist", "add", "port", "53")
    nordvpn_host.ok("set", "killswitch", "on")
    # Set while the daemon runs: SetAllowlist put the LAN ranges into the networker's allowlist.
    assert "allowlist_subnets" in nft_table(nordvpn_host)["sets"]
    assert nordvpn_host.stop() == 0
    assert nft_tables(nordvpn_host) == []  # StopKillSwitch outside a shutdown removes the table
    nordvpn_host.start()
    # StartKillSwitch: NewCombined got cfg.AutoConnectData.Allowlist (ports, no LAN ranges).
    table = nft_table(nordvpn_host)
    assert "allowlist_subnets" not in table["sets"]
    assert table["sets"]["udp_allowlist"] == (["constant", "interval"], ["53"])
    assert send(nordvpn_host, "192.168.77.1", "eth0") == "error 1"
    # An allowlisted port opens `sport` in output (a local server's replies), not a query to port 53.
    assert send(nordvpn_host, "192.168.77.1", "eth0", port=53) == "error 1"
    connect(nordvpn_host)
    assert "allowlist_subnets" in nft_table(nordvpn_host)["sets"]
    nordvpn_host.ok("disconnect")
    # networker.go stop: the kill switch keeps the table, now with the LAN ranges and no tunnel.
    table = nft_table(nordvpn_host)
    assert table["chains"]["output"][3] == "drop"
    assert "10.0.0.0/8" in table["sets"]["allowlist_subnets"][1]
    assert "nordlynx" not in table["text"]
    assert lan_receives(nordvpn_host) == "nordvpn-standin-test"


def test_killswitch_mode_blocks_everything_before_the_daemon_and_exits(nordvpn_host, tmp_path):
    nologin = tmp_path / "nologin"
    nordvpn_host.ok("set", "lan-discovery", "on")
    nordvpn_host.ok("allowlist", "add", "port", "53")
    nordvpn_host.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    nordvpn_host.ok("set", "killswitch", "on")
    assert nordvpn_host.stop() == 0
    nordvpn_host.start(NORDVPND_NOLOGIN=str(nologin))
    nologin.touch()  # shutdown in progress (internal/systemd.go IsSystemShutdown)
    assert nordvpn_host.stop() == 0
    assert nft_tables(nordvpn_host) == ["table inet nordvpn"]  # kept through the shutdown
    nordvpn_host.sh("nft", "delete", "table", "inet", "nordvpn")  # the reboot's fresh kernel
    result = killswitch_mode(nordvpn_host)
    assert result.returncode == 0, result.stderr
    assert "Enabling killswitch" in result.stdout
    assert not nordvpn_host.sock.exists()
    # cmd/daemon/main.go: firewall.NewConfig(WithKillSwitch(true)): nothing allowlisted at all.
    table = nft_table(nordvpn_host)
    assert sorted(table["sets"]) == ["lan_ranges"]
    assert set(table["chains"]) == {"input", "output", "forward"}
    for line in DNS_DROPS:
        assert line in table["text"], line
    assert send(nordvpn_host, "192.168.77.1", "eth0", port=53) == "error 1"
    nordvpn_host.sh("nft", "delete", "table", "inet", "nordvpn")
    nordvpn_host.start()
    nordvpn_host.ok("set", "killswitch", "off")
    assert nft_tables(nordvpn_host) == []
    assert killswitch_mode(nordvpn_host).returncode == 0  # kill switch off: nothing applied
    assert nft_tables(nordvpn_host) == []

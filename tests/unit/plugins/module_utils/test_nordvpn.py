"""module_utils/nordvpn.py and the host status's VPN part, over what nordvpn-linux prints (the
stand-in's README quotes the client's source for each line: tests/standins/nordvpn/README.md).
The same parser serves module nordvpn_settings (role nordvpn): test_nordvpn_settings_logic.py."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils import host_status as hs  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils import nordvpn  # noqa: E402

CONNECTED = """Status: Connected
Server: Germany #507
Hostname: de507.nordvpn.com
IP: 185.130.184.107
Country: Germany
City: Frankfurt
Current technology: NORDLYNX
Current protocol: UDP
Post-quantum VPN: Disabled
Uptime: 1 minute 5 seconds
"""
DISCONNECTED = "Status: Disconnected\n"


def settings(lan="enabled", subnets=()):
    lines = ["Technology: NORDLYNX", "Firewall: enabled", "Firewall Mark: 0xe1f1", "Kill Switch: disabled"]
    lines += ["Auto-connect: disabled", f"LAN Discovery: {lan}", "Virtual Location: enabled", "ARP Ignore: disabled"]
    if subnets:
        lines.append("Allowlisted subnets:")
        lines.extend(f"\t{subnet}" for subnet in subnets)
    return "\n".join(lines) + "\n"


def test_status_connected_and_disconnected():
    status = nordvpn.parse_status(CONNECTED)
    assert status["connected"] is True and status["status"] == "Connected"
    assert (status["server"], status["hostname"], status["technology"]) == (
        "Germany #507",
        "de507.nordvpn.com",
        "NORDLYNX",
    )
    assert nordvpn.parse_status(DISCONNECTED) == dict(
        status="Disconnected", connected=False, server=None, hostname=None, technology=None, protocol=None, uptime=None
    )


def test_settings_lan_discovery_and_the_allowlist_block_only():
    parsed = nordvpn.parse_settings(settings("disabled", ["10.42.0.0/16", "10.43.0.0/16"]) + "Meshnet: disabled\n")
    assert parsed["lan_discovery"] == "disabled" and parsed["firewall"] == "enabled"
    assert parsed["allowlisted_subnets"] == ["10.42.0.0/16", "10.43.0.0/16"]
    # Older clients call it the whitelist.
    old = "LAN Discovery: enabled\nWhitelisted subnets:\n\t192.168.0.0/16\n"
    assert nordvpn.parse_settings(old)["allowlisted_subnets"] == ["192.168.0.0/16"]
    assert nordvpn.parse_settings("Technology: OPENVPN\n")["lan_discovery"] is None


def test_a_daemon_that_does_not_answer():
    assert nordvpn.daemon_down("We couldn't reach System Daemon.")
    assert nordvpn.daemon_down("Couldn't find /run/nordvpn/nordvpnd.sock")
    assert not nordvpn.daemon_down("Status: Disconnected")
    sec = hs.vpn_section(True, failed="We couldn't reach System Daemon.")
    assert sec["state"] == hs.FAIL and sec["daemon"] is False and "systemctl enable --now nordvpnd" in sec["summary"]


def test_connected_with_lan_discovery_is_ok():
    sec = hs.vpn_section(True, CONNECTED, settings("enabled"))
    assert sec["state"] == hs.OK and sec["connected"] and sec["lan_discovery"] == "enabled"
    assert sec["summary"] == "Connected to Germany #507 (NORDLYNX); LAN discovery enabled; allowlisted: none"


def test_connected_with_lan_discovery_off_and_nothing_allowlisted_fails():
    sec = hs.vpn_section(True, CONNECTED, settings("disabled"))
    assert sec["state"] == hs.FAIL and "site.yml --tags nordvpn" in sec["rows"][0]["text"]
    # Disconnected the firewall lets the LAN through: a warning about the next connect.
    assert hs.vpn_section(True, DISCONNECTED, settings("disabled"))["state"] == hs.WARN
    # The allowlist the role writes with nordvpn_lan_discovery false is fine.
    assert hs.vpn_section(True, CONNECTED, settings("disabled", ["10.42.0.0/16"]))["state"] == hs.OK


def test_no_client_is_no_failure():
    assert hs.vpn_section(False) == dict(
        installed=False, state=hs.NONE, summary="NordVPN client not installed", rows=[]
    )

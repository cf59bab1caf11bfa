"""module_utils/nordvpn.py as module nordvpn_settings uses it: the allowlisted ports in `nordvpn
settings` (cli/cli_settings.go displayAllowlist), what must reach past the VPN, the plan, check
mode's prediction and the setters' order with the LAN discovery rollback (a recording runner)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils import nordvpn  # noqa: E402

# The 5.x layout (the stand-in's, tests/standins/nordvpn/README.md) with ports and subnets.
SETTINGS = """Technology: NORDLYNX
Firewall: enabled
Firewall Mark: 0xe1f1
Routing: enabled
Kill Switch: disabled
LAN Discovery: disabled
Virtual Location: enabled
Post-quantum VPN: disabled
ARP Ignore: disabled
Allowlisted ports:
           22 (TCP)
           53 (UDP|TCP)
   1000 - 1002 (UDP)
Allowlisted subnets:
\t10.42.0.0/16
\t203.0.113.0/24
"""


def test_ports_and_subnets_blocks():
    parsed = nordvpn.parse_settings(SETTINGS)
    assert parsed["allowlisted_ports"] == [
        {"start": 22, "end": 22, "protocols": ["TCP"]},
        {"start": 53, "end": 53, "protocols": ["UDP", "TCP"]},
        {"start": 1000, "end": 1002, "protocols": ["UDP"]},
    ]
    # The port lines are not subnets, nor the subnets ports.
    assert parsed["allowlisted_subnets"] == ["10.42.0.0/16", "203.0.113.0/24"]
    assert [parsed[key] for key in ("lan_discovery", "kill_switch", "technology")] == [
        "disabled",
        "disabled",
        "NORDLYNX",
    ]
    assert nordvpn.port_protocols(parsed, 53) == ["UDP", "TCP"]
    assert nordvpn.port_protocols(parsed, 1001) == ["UDP"]
    assert nordvpn.port_protocols(parsed, 54) == []
    # A range over 53 counts, as the client's firewall reads it.
    ranged = nordvpn.parse_settings("Allowlisted ports:\n   50 -  60 (TCP)\n")
    assert nordvpn.port_protocols(ranged, 53) == ["TCP"]
    assert nordvpn.parse_settings("LAN Discovery: enabled\n")["allowlisted_ports"] == []


def test_ipv4_network_clears_host_bits():
    assert nordvpn.ipv4_network("192.168.77.2/24") == "192.168.77.0/24"
    assert nordvpn.ipv4_network("10.42.0.0/16") == "10.42.0.0/16"
    assert nordvpn.ipv4_network("203.0.113.9") == "203.0.113.9/32"
    for bad in ("10.42.0.0/33", "256.1.1.1/8", "fd00::/8", "10.42/16", ""):
        with pytest.raises(ValueError):
            nordvpn.ipv4_network(bad)


def test_reach_with_lan_discovery_on_allowlists_only_what_it_does_not_cover():
    reach = [
        ("nordvpn_protected_cidrs", ["10.42.0.0/16", "10.43.0.0/16"]),
        ("nordvpn_docker_cidrs", ["172.20.0.0/14", "100.64.0.0/24"]),
        ("node", ["192.168.1.20/24"]),
    ]
    plan = nordvpn.reach_plan(reach, lan_discovery=True)
    assert plan["needs"][2] == ("node", ["192.168.1.0/24"])
    assert plan["uncovered"] == ["100.64.0.0/24"]
    assert plan["refused"] == []
    off = nordvpn.reach_plan(reach, lan_discovery=False)
    assert off["uncovered"] == ["10.42.0.0/16", "10.43.0.0/16", "172.20.0.0/14", "100.64.0.0/24", "192.168.1.0/24"]


def test_a_private_range_wider_than_the_private_ranges_is_refused_with_lan_discovery_on():
    plan = nordvpn.reach_plan([("nordvpn_docker_cidrs", ["10.0.0.0/7"]), ("x", ["192.168.0.0/15"])], True)
    assert plan["refused"] == [("10.0.0.0/7", "nordvpn_docker_cidrs"), ("192.168.0.0/15", "x")]
    message = nordvpn.refused_message(plan["refused"])
    assert message.startswith("10.0.0.0/7 (nordvpn_docker_cidrs) 192.168.0.0/15 (x) must reach past the VPN")
    assert "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16" in message
    assert nordvpn.reach_plan([("x", ["10.0.0.0/7"])], False)["refused"] == []


def test_needs_message():
    needs = [("a", ["10.42.0.0/16"]), ("b", ["203.0.113.0/24"])]
    assert nordvpn.needs_message(needs, ["203.0.113.0/24"], True) == (
        "k3s and the stack need 10.42.0.0/16 (a); 203.0.113.0/24 (b). LAN discovery lets the rest through. "
        "Allowlisted: 203.0.113.0/24."
    )
    assert nordvpn.needs_message(needs[:1], [], True).endswith("LAN discovery lets them all through.")
    assert nordvpn.needs_message(needs[:1], ["10.42.0.0/16"], False).endswith(
        "LAN discovery is off. Allowlisted: 10.42.0.0/16."
    )


def test_plan_only_what_differs():
    before = nordvpn.parse_settings(SETTINGS)
    assert nordvpn.plan_changes(before, False, ["10.42.0.0/16", "203.0.113.0/24"], dns=True) == dict(
        lan_discovery=None, subnets=[], dns=[]
    )
    planned = nordvpn.plan_changes(before, True, ["198.51.100.0/24", "198.51.100.0/24"], dns=True)
    assert planned == dict(lan_discovery="enabled", subnets=["198.51.100.0/24"], dns=[])
    assert nordvpn.plan_changes(before, None, [], dns=False)["lan_discovery"] is None
    bare = nordvpn.parse_settings("LAN Discovery: enabled\n")
    assert nordvpn.plan_changes(bare, True, [], dns=True)["dns"] == ["UDP", "TCP"]


def test_check_mode_words_and_prediction():
    before = nordvpn.parse_settings(SETTINGS)
    planned = dict(lan_discovery="enabled", subnets=["198.51.100.0/24"], dns=["UDP"])
    assert nordvpn.describe_plan(before, planned, check_mode=True) == [
        "LAN Discovery is disabled; a real run sets it to enabled.",
        "A real run adds 198.51.100.0/24 to the NordVPN allowlist.",
        "A real run adds port 53 (UDP) to the NordVPN allowlist.",
    ]
    after = nordvpn.predict(before, planned)
    # Turning LAN discovery on drops the private subnets (daemon/rpc_set_lan_discovery.go).
    assert after["allowlisted_subnets"] == ["203.0.113.0/24", "198.51.100.0/24"]
    assert after["lan_discovery"] == "enabled"
    assert nordvpn.port_protocols(after, 53) == ["UDP", "TCP"]
    assert before["allowlisted_subnets"] == ["10.42.0.0/16", "203.0.113.0/24"], "before is left alone"


class Recorder:
    """Answers `nordvpn <args>` from a table of failures; records every call."""

    def __init__(self, failures=None):
        self.calls = []
        self.failures = failures or {}

    def __call__(self, args):
        self.calls.append(list(args))
        return self.failures.get(tuple(args), (0, "ok"))


ENABLED = dict(lan_discovery="enabled", allowlisted_subnets=[], allowlisted_ports=[])


def test_already_set_answers_are_no_failures():
    run = Recorder(
        {
            ("set", "lan-discovery", "disabled"): (1, "LAN discovery is already set to disabled."),
            ("allowlist", "add", "subnet", "10.42.0.0/16"): (1, "Subnet 10.42.0.0/16 is already on the allowlist."),
            ("allowlist", "add", "port", "53", "protocol", "UDP"): (1, "Port 53 (UDP) is already on the allowlist."),
        }
    )
    planned = dict(lan_discovery="disabled", subnets=["10.42.0.0/16"], dns=["UDP"])
    done = nordvpn.apply(run, ENABLED, planned)
    assert [step["rc"] for step in done] == [1, 1, 1]


def test_rollback_and_its_own_failure_are_told():
    planned = dict(lan_discovery="disabled", subnets=["10.42.0.0/16", "bad"], dns=["UDP"])
    run = Recorder({("allowlist", "add", "subnet", "bad"): (1, "The command you entered is not valid.")})
    with pytest.raises(nordvpn.NordVPNError) as caught:
        nordvpn.apply(run, ENABLED, planned)
    assert str(caught.value).endswith("Turned LAN discovery back on: allowlisting bad failed.")
    assert run.calls[-1] == ["set", "lan-discovery", "enabled"]
    assert ["allowlist", "add", "port", "53", "protocol", "UDP"] not in run.calls
    assert len(caught.value.done) == 4

    broken = Recorder(
        {
            ("allowlist", "add", "subnet", "bad"): (1, "The command you entered is not valid."),
            ("set", "lan-discovery", "enabled"): (1, "We couldn't reach System Daemon."),
        }
    )
    with pytest.raises(nordvpn.NordVPNError) as caught:
        nordvpn.apply(broken, ENABLED, planned)
    assert "Turning LAN discovery back on failed too (exit 1): We couldn't reach System Daemon." in str(caught.value)
    assert "LAN discovery is OFF" in str(caught.value)


def test_a_failure_without_lan_discovery_going_off_is_not_rolled_back():
    planned = dict(lan_discovery=None, subnets=["bad"], dns=[])
    run = Recorder({("allowlist", "add", "subnet", "bad"): (1, "The command you entered is not valid.")})
    with pytest.raises(nordvpn.NordVPNError) as caught:
        nordvpn.apply(run, ENABLED, planned)
    assert str(caught.value) == (
        "`nordvpn allowlist add subnet bad` failed (exit 1): The command you entered is not valid."
    )
    assert run.calls == [["allowlist", "add", "subnet", "bad"]]


def test_settings_failure_messages():
    down = nordvpn.settings_failure("nordvpnd", 1, "Couldn't find /run/nordvpn/nordvpnd.sock.\n")
    assert down == (
        "The NordVPN client is installed but its daemon does not answer: start it with `systemctl enable --now "
        "nordvpnd` (nordvpnd.service) and rerun. The client said: Couldn't find /run/nordvpn/nordvpnd.sock."
    )
    assert nordvpn.settings_failure("nordvpnd", 124, "", 60).startswith("`nordvpn settings` did not answer within 60 s")
    assert nordvpn.settings_failure("nordvpnd", 2, "odd").startswith("`nordvpn settings` failed (exit 2).")

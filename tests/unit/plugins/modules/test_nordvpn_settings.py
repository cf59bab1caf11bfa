"""Module nordvpn_settings against the NordVPN client stand-in (tests/standins/nordvpn), run as
Ansible runs it (JSON arguments on stdin): no client, daemon down, LAN discovery on -> off with
subnets, an allowlist addition that fails (LAN discovery back on), idempotence, check mode.

The stand-in's daemon runs in the test's own namespace and is never asked to connect, so nothing
here changes the machine's network. The module itself runs inside a network namespace of its own
(`eth0` 192.168.77.2/24, default route via 192.168.77.1 in a second namespace): the node address,
whose subnet it allowlists, and the routes it returns come from there. The CLI reaches the daemon
through its unix socket, a file path, across namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO / "collections"
STANDIN = REPO / "tests" / "standins" / "nordvpn"
MODULE = "ansible_collections.integr8scode.provision.plugins.modules.nordvpn_settings"
NEEDS = {"nordvpn_protected_cidrs": ["10.42.0.0/16", "10.43.0.0/16"], "nordvpn_docker_cidrs": ["172.20.0.0/14"]}
NODE_SUBNET = "192.168.77.0/24"
# A PATH without the stand-in; AnsibleModule.get_bin_path also looks in the sbin directories.
BARE_PATH = "/usr/bin:/bin"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and ip (iproute2) for the test's network namespace",
)


class Client:
    """The stand-in's daemon (socket and state under a temp directory) and a way to run the module."""

    def __init__(self, tmp: Path, netns: str):
        self.netns = netns
        self.sock = tmp / "run" / "nordvpnd.sock"
        self.state = tmp / "lib" / "standin-settings.json"
        self.log = tmp / "nordvpnd.log"
        self.env = dict(
            os.environ,
            NORDVPN_STANDIN=str(STANDIN / "nordvpn_standin.py"),
            NORDVPND_SOCKET=str(self.sock),
            NORDVPND_STATE=str(self.state),
            PATH=f"{STANDIN}:{BARE_PATH}",
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [str(STANDIN / "nordvpnd")], env=self.env, stdout=subprocess.PIPE, stderr=log, text=True
            )
        line = self.proc.stdout.readline()
        assert "listening on" in line, f"{line!r}\n{self.log.read_text()}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc.stdout.close()
            self.proc = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        assert args[:1] not in (("connect",), ("c",)), "never connect outside a test host"
        return subprocess.run(
            [str(STANDIN / "nordvpn"), *args], env=self.env, capture_output=True, text=True, check=False, timeout=60
        )

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, f"nordvpn {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def saved(self) -> dict:
        return json.loads(self.state.read_text())

    def module(self, args: dict, check_mode: bool = False, path: str | None = None) -> dict:
        """Run the module in the test's network namespace; its JSON result plus _rc."""
        payload = dict(args, _ansible_check_mode=check_mode)
        env = dict(self.env, PYTHONPATH=f"{COLLECTIONS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        if path is not None:
            env["PATH"] = path
        proc = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-m", MODULE],
            input=json.dumps({"ANSIBLE_MODULE_ARGS": payload}),
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        try:
            result = json.loads(proc.stdout[proc.stdout.index("{") :])
        except ValueError as exc:
            raise AssertionError(f"no JSON (rc={proc.returncode}): {proc.stdout} {proc.stderr}") from exc
        result["_rc"] = proc.returncode
        return result


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture
def host_netns():
    """A network namespace with eth0 192.168.77.2/24 and the default route via 192.168.77.1 (lan0,
    in a second namespace)."""
    host, lan = f"nvset{os.getpid()}h", f"nvset{os.getpid()}l"
    _ip("netns", "add", host)
    try:
        _ip("netns", "add", lan)
        _ip("-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", "lan0", "netns", lan)
        _ip("-n", host, "addr", "add", "192.168.77.2/24", "dev", "eth0")
        _ip("-n", lan, "addr", "add", "192.168.77.1/24", "dev", "lan0")
        for ns, dev in ((host, "eth0"), (host, "lo"), (lan, "lan0"), (lan, "lo")):
            _ip("-n", ns, "link", "set", "dev", dev, "up")
        _ip("-n", host, "route", "add", "default", "via", "192.168.77.1", "dev", "eth0")
        yield host
    finally:
        subprocess.run(["ip", "netns", "del", host], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", lan], check=False, capture_output=True)


@pytest.fixture
def client(tmp_path, host_netns):
    """The stand-in client, its daemon not started."""
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    short = Path(os.environ.get("TMPDIR", "/tmp")) / f"nvset-{os.getpid()}-{tmp_path.name[-20:]}"
    short.mkdir(parents=True, exist_ok=True)
    made = Client(short, host_netns)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def running(client):
    client.start()
    return client


def role_args(**extra) -> dict:
    """The arguments the nordvpn role passes by default."""
    args = dict(
        lan_discovery=True,
        allowlist_subnets=[],
        allowlist_dns=True,
        reach=NEEDS,
        reach_node_subnet=True,
        routes=True,
    )
    args.update(extra)
    return args


def test_no_client_changes_nothing_and_does_not_fail(client):
    if any(Path(d, "nordvpn").exists() for d in BARE_PATH.split(":") + ["/sbin", "/usr/sbin", "/usr/local/sbin"]):
        pytest.skip("this machine has a NordVPN client")
    for check_mode in (False, True):
        result = client.module(role_args(), check_mode=check_mode, path=BARE_PATH)
        assert result["_rc"] == 0, result
        assert (result["installed"], result["changed"], result.get("failed", False)) == (False, False, False)
        assert result["changes"] == [] and result["commands"] == []
        assert "not found" in result["msg"]
        assert "before" not in result and "routes" not in result


def test_daemon_down_fails_naming_the_service(client):
    result = client.module(role_args(daemon_service="nordvpnd"))
    assert result["failed"] and result["installed"]
    msg = result["msg"]
    assert "its daemon does not answer" in msg and "systemctl enable --now nordvpnd" in msg
    assert "nordvpnd.service" in msg
    # The client's own words are passed on (socket file missing, cli/cli.go).
    assert f"Couldn't find {client.sock}" in msg
    # A socket nobody answers on: "We couldn't reach System Daemon."
    client.sock.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(client.sock))
        again = client.module(role_args())
    assert again["failed"] and "We couldn't reach System Daemon." in again["msg"], again["msg"]
    assert "systemctl enable --now nordvpnd" in again["msg"]


def test_only_looking_for_the_client_asks_the_daemon_nothing(client):
    result = client.module({"settings": False, "routes": True})
    assert result["_rc"] == 0 and result["installed"] and not result["changed"], result
    assert result["binary"] == str(STANDIN / "nordvpn")
    assert "before" not in result
    assert any(route.get("dst") == "default" and route.get("dev") == "eth0" for route in result["routes"])


def test_lan_discovery_off_allowlists_the_needs_in_order_then_a_rerun_changes_nothing(running):
    running.ok("set", "lan-discovery", "enabled")
    running.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    args = role_args(lan_discovery=False, allowlist_subnets=["203.0.113.0/24", "198.51.100.0/24"])
    first = running.module(args)
    assert first["_rc"] == 0 and first["changed"], first
    needed = ["10.42.0.0/16", "10.43.0.0/16", "172.20.0.0/14", NODE_SUBNET]
    # LAN discovery off first, then every subnet, then port 53: one execution.
    assert [step["args"] for step in first["commands"]] == [
        ["set", "lan-discovery", "disabled"],
        *(["allowlist", "add", "subnet", subnet] for subnet in ["198.51.100.0/24", *needed]),
        ["allowlist", "add", "port", "53", "protocol", "UDP"],
        ["allowlist", "add", "port", "53", "protocol", "TCP"],
    ]
    assert first["commands"][0]["output"] == "LAN Discovery has been successfully set to 'disabled'."
    assert first["before"]["lan_discovery"] == "enabled"
    assert first["before"]["allowlisted_subnets"] == ["203.0.113.0/24"]
    assert first["after"]["lan_discovery"] == "disabled"
    assert first["after"]["allowlisted_subnets"] == ["203.0.113.0/24", "198.51.100.0/24", *needed]
    assert first["after"]["allowlisted_ports"] == [{"start": 53, "end": 53, "protocols": ["UDP", "TCP"]}]
    assert first["node"]["address"] == "192.168.77.2" and first["node"]["subnet"] == NODE_SUBNET
    assert first["needs"]["the subnet of node address 192.168.77.2 (eth0)"] == [NODE_SUBNET]
    assert first["uncovered"] == needed
    assert first["msg"].startswith("k3s and the stack need 10.42.0.0/16, 10.43.0.0/16 (nordvpn_protected_cidrs); ")
    assert "LAN discovery is off. Allowlisted: " in first["msg"]
    assert first["changes"] == [
        "LAN Discovery was enabled; set to disabled.",
        f"Added 198.51.100.0/24, {', '.join(needed)} to the NordVPN allowlist.",
        "Added port 53 (UDP, TCP) to the NordVPN allowlist.",
    ]
    saved = running.saved()
    assert saved["lan_discovery"] is False
    assert saved["subnets"] == ["203.0.113.0/24", "198.51.100.0/24", *needed]
    assert saved["ports"] == {"UDP": [53], "TCP": [53]}

    second = running.module(args)
    assert second["_rc"] == 0 and not second["changed"], second
    assert second["commands"] == [] and second["changes"] == []
    assert second["before"] == second["after"] == first["after"]


def test_a_failing_allowlist_addition_turns_lan_discovery_back_on(running):
    running.ok("set", "lan-discovery", "enabled")
    # The client refuses an IPv6 subnet (argument-parsing error, exit 1: cli/cli_allowlist_add_subnet.go).
    args = role_args(lan_discovery=False, allowlist_subnets=["198.51.100.0/24", "fd00:42::/56"], reach={})
    result = running.module(args)
    assert result["_rc"] != 0 and result["failed"], result
    assert result["changed"], "LAN discovery went off and on again, 198.51.100.0/24 was added"
    refused = "`nordvpn allowlist add subnet fd00:42::/56` failed (exit 1): The command you entered is not valid."
    assert refused in result["msg"]
    assert result["msg"].endswith("Turned LAN discovery back on: allowlisting fd00:42::/56 failed.")
    assert [step["args"] for step in result["commands"]] == [
        ["set", "lan-discovery", "disabled"],
        ["allowlist", "add", "subnet", "198.51.100.0/24"],
        ["allowlist", "add", "subnet", "fd00:42::/56"],
        ["set", "lan-discovery", "enabled"],
    ]
    saved = running.saved()
    assert saved["lan_discovery"] is True
    # Port 53 comes after the subnets: never reached.
    assert saved["ports"] == {"UDP": [], "TCP": []}


def test_check_mode_reports_and_runs_no_setter(running):
    running.ok("set", "lan-discovery", "enabled")
    before = running.state.read_text()
    result = running.module(role_args(lan_discovery=False), check_mode=True)
    assert result["_rc"] == 0 and result["changed"], result
    assert result["commands"] == []
    assert result["changes"] == [
        "LAN Discovery is enabled; a real run sets it to disabled.",
        f"A real run adds 10.42.0.0/16, 10.43.0.0/16, 172.20.0.0/14, {NODE_SUBNET} to the NordVPN allowlist.",
        "A real run adds port 53 (UDP, TCP) to the NordVPN allowlist.",
    ]
    assert result["after"]["lan_discovery"] == "disabled"
    assert result["after"]["allowlisted_subnets"] == ["10.42.0.0/16", "10.43.0.0/16", "172.20.0.0/14", NODE_SUBNET]
    assert running.state.read_text() == before
    # Converged: check mode reports nothing either.
    assert running.module(role_args(lan_discovery=True))["changed"]
    assert not running.module(role_args(lan_discovery=True), check_mode=True)["changed"]


def test_lan_discovery_on_lets_the_private_needs_through_and_adds_only_the_missing_dns_protocol(running):
    running.ok("allowlist", "add", "port", "53", "protocol", "UDP")
    result = running.module(role_args(allowlist_subnets=["203.0.113.0/24"]))
    assert result["_rc"] == 0 and result["changed"], result
    assert [step["args"] for step in result["commands"]] == [
        ["set", "lan-discovery", "enabled"],
        ["allowlist", "add", "subnet", "203.0.113.0/24"],
        # The client refuses `port 53` as a whole while UDP has it (rpc_set_allowlist.go arePortsValid).
        ["allowlist", "add", "port", "53", "protocol", "TCP"],
    ]
    assert result["uncovered"] == []
    assert result["msg"].endswith("LAN discovery lets them all through.")
    assert running.saved()["lan_discovery"] is True
    assert not running.module(role_args(allowlist_subnets=["203.0.113.0/24"]))["changed"]


def test_a_range_the_client_refuses_with_lan_discovery_on_fails_before_any_change(running):
    before = running.state.read_text() if running.state.exists() else None
    result = running.module(role_args(reach={"nordvpn_docker_cidrs": ["10.0.0.0/7"]}))
    assert result["failed"] and result["commands"] == [], result
    assert result["msg"].startswith(
        "10.0.0.0/7 (nordvpn_docker_cidrs) must reach past the VPN but cannot be allowlisted while "
        "nordvpn_lan_discovery is true"
    )
    assert (running.state.read_text() if running.state.exists() else None) == before


def test_an_unknown_node_interface_fails_naming_the_variable(running):
    result = running.module(role_args(node_interface="nope0"))
    assert result["failed"] and result["commands"] == [], result
    assert "k3s_node_interface nope0 is not an interface of this host" in result["msg"]
    assert "nordvpn_node_interface 'nope0'" in result["msg"]

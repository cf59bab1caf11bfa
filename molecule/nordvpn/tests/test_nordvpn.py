"""Role `nordvpn` against the client stand-in: LAN discovery, allowlist, skip, daemon down, routes (also
with the client connected, with and without 3.20.0's 10.0.0.0/10 route), LAN discovery off, bad input."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import modulecount
import pytest
from testhost import flat

STATE = "/var/lib/nordvpn/standin-settings.json"
ROLE = "integr8scode.provision.nordvpn : "
# The role's one task on the host (module nordvpn_settings): it reports every change.
SETTINGS = ROLE + (
    "Read the NordVPN client's settings and set LAN discovery, the allowlist and port 53 where they differ"
)


def settings(host) -> list[str]:
    result = host.run("nordvpn settings")
    assert result.rc == 0, result.stdout
    return result.stdout.splitlines()


def state(host) -> dict:
    return json.loads(host.file(STATE).content_string)


def test_lan_discovery_is_enabled(host):
    assert "LAN Discovery: enabled" in settings(host)


def test_allowlisted_subnet_is_listed(host):
    lines = settings(host)
    assert "\t203.0.113.0/24" in lines[lines.index("Allowlisted subnets:") + 1 :]


def test_check_mode_changes_nothing(host, converge_in_check_mode):
    # `host` keeps this test in file order (testinfra groups host-parametrized tests).
    assert host.run("nordvpn settings").rc == 0
    converge_in_check_mode.assert_no_changes("check-mode run")


def test_lan_discovery_is_set_once_and_a_rerun_changes_nothing(host, ansible_playbook):
    assert host.run("nordvpn set lan-discovery disabled").rc == 0
    check = ansible_playbook("converge.yml", "--check")
    assert check.returncode == 0, check.output[-3000:]
    assert check.changed_tasks() == [SETTINGS]
    assert "LAN Discovery is disabled; a real run sets it to enabled." in flat(check.output)
    assert "LAN Discovery: disabled" in settings(host), "check mode changed the client"

    first = ansible_playbook("converge.yml")
    assert first.returncode == 0, first.output[-3000:]
    assert first.changed_tasks() == [SETTINGS]
    assert "LAN Discovery was disabled; set to enabled." in flat(first.output)
    assert "LAN Discovery: enabled" in settings(host)

    second = ansible_playbook("converge.yml")
    assert second.returncode == 0, second.output[-3000:]
    assert second.total("changed") == 0, second.changed_tasks()


def counted_run(host, ansible_playbook):
    """converge.yml with the host's module executions counted (molecule/modulecount.py)."""
    counting = modulecount.start(host.backend.host, Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]))
    run = ansible_playbook("converge.yml", *counting)
    return run, modulecount.executions(host.backend.host)


def test_a_no_change_run_is_one_execution_on_the_host_with_and_without_the_client(host, ansible_playbook):
    converged, with_client = counted_run(host, ansible_playbook)
    assert converged.returncode == 0, converged.output[-3000:]
    assert converged.total("changed") == 0, converged.changed_tasks()
    assert host.run("mv /usr/bin/nordvpn /usr/bin/nordvpn.hidden").rc == 0
    try:
        absent, without_client = counted_run(host, ansible_playbook)
    finally:
        assert host.run("mv /usr/bin/nordvpn.hidden /usr/bin/nordvpn").rc == 0
    assert absent.returncode == 0, absent.output[-3000:]
    assert "NordVPN client not found on this host" in flat(absent.output)
    # Module nordvpn_settings: settings, node address and routes in one execution; or finding no client.
    assert (with_client, without_client) == (1, 1)
    for what, run, count in (("with the client", converged, with_client), ("without", absent, without_client)):
        tasks = sum(run.total(key) for key in ("ok", "changed", "skipped", "failed"))
        print(f"\nNORDVPN no-change run {what}: {count} module execution(s) on the host, {tasks} tasks {run.recap}")


def test_missing_allowlist_entry_is_added_again(host, ansible_playbook):
    assert host.run("nordvpn allowlist remove subnet 203.0.113.0/24").rc == 0
    run = ansible_playbook("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.changed_tasks() == [SETTINGS]
    assert "Added 203.0.113.0/24 to the NordVPN allowlist." in flat(run.output)
    assert "203.0.113.0/24" in state(host)["subnets"]


def test_absent_client_is_skipped_with_a_message(host, ansible_playbook):
    assert host.run("mv /usr/bin/nordvpn /usr/bin/nordvpn.hidden").rc == 0
    try:
        run = ansible_playbook("converge.yml")
        check = ansible_playbook("converge.yml", "--check")
    finally:
        assert host.run("mv /usr/bin/nordvpn.hidden /usr/bin/nordvpn").rc == 0
    assert run.returncode == 0, run.output[-3000:]
    assert "NordVPN client not found on this host" in flat(run.output)
    assert run.total("changed") == 0, run.changed_tasks()
    assert check.returncode == 0, check.output[-3000:]
    assert check.total("changed") == 0, check.changed_tasks()
    # Nothing was asked of a client (the module found none): no needs, no changes reported.
    assert "k3s and the stack need" not in flat(run.output)


def test_daemon_down_fails_naming_the_service(host, ansible_playbook):
    assert host.run("systemctl stop nordvpnd.service").rc == 0
    try:
        run = ansible_playbook("converge.yml")
    finally:
        assert host.run("systemctl start nordvpnd.service").rc == 0
    assert run.returncode != 0
    assert "its daemon does not answer" in flat(run.output)
    assert "systemctl enable --now nordvpnd" in flat(run.output)
    assert "nordvpnd.service" in flat(run.output)
    # The client's own words are passed on.
    assert "Couldn't find /run/nordvpn/nordvpnd.sock" in flat(run.output)
    assert run.total("changed") == 0


@contextlib.contextmanager
def nordlynx_route(host, destination: str):
    # A veth stands in for the WireGuard interface (no wireguard link type in
    # this kernel); the route is the one NordVPN 3.20.0 adds (nordvpn-linux #762).
    commands = [
        "ip link add nordlynx type veth peer name nordlynx-peer",
        "ip link set nordlynx up",
        "ip link set nordlynx-peer up",
        f"ip route add {destination} dev nordlynx",
    ]
    for command in commands:
        result = host.run(command)
        assert result.rc == 0, f"{command}: {result.stderr}"
    try:
        yield
    finally:
        host.run("ip link del nordlynx")


def test_overlapping_nordlynx_route_is_reported(host, ansible_playbook):
    with nordlynx_route(host, "10.0.0.0/10"):
        warned = ansible_playbook("converge.yml")
        failed = ansible_playbook("converge.yml", "-e", "nordvpn_route_overlap_fail=true")
    assert warned.returncode == 0, warned.output[-3000:]
    assert "WARNING: NordVPN routes overlap the k3s CIDRs" in flat(warned.output)
    assert "10.0.0.0/10 dev nordlynx overlaps 10.42.0.0/16" in flat(warned.output)
    assert "10.0.0.0/10 dev nordlynx overlaps 10.43.0.0/16" in flat(warned.output)
    assert warned.total("changed") == 0
    assert failed.returncode != 0
    assert "nordvpn_route_overlap_fail is true" in flat(failed.output)


def test_route_that_misses_the_k3s_cidrs_is_not_reported(host, ansible_playbook):
    with nordlynx_route(host, "10.128.0.0/16"):
        run = ansible_playbook("converge.yml", "-e", "nordvpn_route_overlap_fail=true")
    assert run.returncode == 0, run.output[-3000:]
    assert "WARNING: NordVPN routes overlap" not in flat(run.output)


def restart_daemon(host) -> None:
    # nordvpnd.service is Type=simple: `systemctl restart` returns before the daemon listens.
    assert host.run("systemctl restart nordvpnd.service").rc == 0
    for _attempt in range(30):
        if host.run("nordvpn status").rc == 0:
            return
        time.sleep(1)
    raise AssertionError("nordvpnd did not answer within 30 s of its restart")


@contextlib.contextmanager
def connected(host, knobs: str = ""):
    """The stand-in connected (NordLynx), optionally with knobs in its environment file; afterwards
    disconnected, knobs gone and LAN discovery back on (the client then drops private subnets)."""
    if knobs:
        assert host.run(f"printf '%s\\n' '{knobs}' > /etc/default/nordvpnd-standin").rc == 0
        restart_daemon(host)
    result = host.run("nordvpn connect")
    assert result.rc == 0, result.stdout + result.stderr
    try:
        yield
    finally:
        host.run("nordvpn disconnect")
        host.run("nordvpn set lan-discovery enabled")
        if knobs:
            host.run("truncate -s 0 /etc/default/nordvpnd-standin")
            restart_daemon(host)


def test_connected_client_routes_are_not_overlaps(host, ansible_playbook):
    """5.x keeps `default dev nordlynx` in table 205 and only the tunnel's /16 in main: no overlap."""
    with connected(host):
        table = host.run("ip -4 route show table 205").stdout
        main = host.run("ip -4 route show table main").stdout
        run = ansible_playbook("converge.yml", "-e", "nordvpn_route_overlap_fail=true")
    assert "default dev nordlynx" in table, table
    assert "10.5.0.0/16 dev nordlynx" in main, main
    assert run.returncode == 0, run.output[-3000:]
    assert "WARNING: NordVPN routes overlap" not in flat(run.output)
    assert run.total("changed") == 0, run.changed_tasks()


def test_connected_3_20_0_route_over_the_k3s_cidrs_is_reported(host, ansible_playbook):
    """NORDVPN_STANDIN_NORDLYNX_PREFIX=10: 3.20.0's 10.5.0.2/10 puts 10.0.0.0/10 into main (#762)."""
    with connected(host, "NORDVPN_STANDIN_NORDLYNX_PREFIX=10"):
        main = host.run("ip -4 route show table main").stdout
        warned = ansible_playbook("converge.yml")
        failed = ansible_playbook("converge.yml", "-e", "nordvpn_route_overlap_fail=true")
    assert "10.0.0.0/10 dev nordlynx" in main, main
    assert warned.returncode == 0, warned.output[-3000:]
    assert "10.0.0.0/10 dev nordlynx overlaps 10.42.0.0/16" in flat(warned.output)
    assert "10.0.0.0/10 dev nordlynx overlaps 10.43.0.0/16" in flat(warned.output)
    # The tunnel's whole-internet route in table 205 is not an overlap.
    assert "dev nordlynx table 205 overlaps" not in flat(warned.output)
    assert failed.returncode != 0
    assert "nordvpn_route_overlap_fail is true" in flat(failed.output)


def test_lan_discovery_off_allowlists_what_k3s_and_the_stack_need(host, ansible_playbook):
    off = ("-e", "nordvpn_lan_discovery=false")
    node_subnet = host.run("ip -4 -o addr show dev eth0").stdout.split()[3]
    address, prefix = node_subnet.split("/")
    octets = [int(o) for o in address.split(".")]
    number = int.from_bytes(bytes(octets), "big") & (0xFFFFFFFF << (32 - int(prefix)) & 0xFFFFFFFF)
    node_network = ".".join(str(b) for b in number.to_bytes(4, "big")) + "/" + prefix
    needed = ["10.42.0.0/16", "10.43.0.0/16", "172.20.0.0/14", node_network]
    with connected(host):
        check = ansible_playbook("converge.yml", "--check", *off)
        check_state = state(host)
        first = ansible_playbook("converge.yml", *off)
        after_first = state(host)
        second = ansible_playbook("converge.yml", *off)
        custom = ansible_playbook("converge.yml", *off, "-e", '{"k3s_extra_config": {"cluster-cidr": "10.52.0.0/16"}}')
        after_custom = state(host)
    assert check.returncode == 0, check.output[-3000:]
    assert check.changed_tasks() == [SETTINGS]
    assert "LAN Discovery is enabled; a real run sets it to disabled." in flat(check.output)
    assert f"A real run adds {', '.join(needed)} to the NordVPN allowlist." in flat(check.output)
    assert (check_state["lan_discovery"], check_state["subnets"]) == (True, ["203.0.113.0/24"]), check_state
    assert first.returncode == 0, first.output[-3000:]
    # LAN discovery off and the allowlisting in one module execution (the firewall drops the LAN in between).
    assert first.changed_tasks() == [SETTINGS]
    assert "LAN Discovery was enabled; set to disabled." in flat(first.output)
    assert f"Added {', '.join(needed)} to the NordVPN allowlist." in flat(first.output)
    assert after_first["lan_discovery"] is False
    assert sorted(after_first["subnets"]) == sorted(["203.0.113.0/24"] + needed), after_first
    assert second.returncode == 0, second.output[-3000:]
    assert second.total("changed") == 0, second.changed_tasks()
    # The cluster CIDR follows the k3s role's k3s_extra_config.
    assert custom.changed_tasks() == [SETTINGS], custom.output[-3000:]
    assert "Added 10.52.0.0/16 to the NordVPN allowlist." in flat(custom.output)
    assert "10.52.0.0/16" in after_custom["subnets"], after_custom
    # Back on (connected() turned it on): the client dropped the private subnets again.
    assert state(host)["subnets"] == ["203.0.113.0/24"], state(host)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"nordvpn_allowlist_subnets": ["10.42.0.0/16"]}', "no private subnets while nordvpn_lan_discovery is true"),
        ('{"nordvpn_allowlist_subnets": ["10.42.0.0"]}', 'nordvpn_allowlist_subnets = ["10.42.0.0"]: IPv4 CIDRs'),
        ('{"nordvpn_protected_cidrs": ["10.42.0.0/33"]}', 'nordvpn_protected_cidrs = ["10.42.0.0/33"]: IPv4 CIDRs'),
        ('{"nordvpn_interface": "way-too-long-interface"}', "way-too-long-interface'': a network interface name"),
        ('{"nordvpn_docker_cidrs": ["172.20.0.0"]}', 'nordvpn_docker_cidrs = ["172.20.0.0"]'),
        # Starts in 10.0.0.0/8 (private to the client) but reaches past it: LAN discovery does not
        # cover it and the client refuses it while LAN discovery is on.
        (
            '{"nordvpn_docker_cidrs": ["10.0.0.0/7"]}',
            "10.0.0.0/7 (nordvpn_docker_cidrs) must reach past the VPN but cannot be allowlisted while "
            "nordvpn_lan_discovery is true",
        ),
        ('{"nordvpn_node_interface": "nope0"}', "k3s_node_interface nope0 is not an interface of this host"),
        (
            '{"nordvpn_install": true, "nordvpn_apt_key_fingerprint": "abc"}',
            "nordvpn_apt_key_fingerprint = ''abc'': 40 hex digits",
        ),
    ],
)
def test_bad_input_fails_before_the_host_changes(host, ansible_playbook, extra, message):
    assert host.run("nordvpn set lan-discovery disabled").rc == 0
    before = host.file(STATE).content_string
    run = ansible_playbook("converge.yml", "-e", extra)
    after = host.file(STATE).content_string
    assert host.run("nordvpn set lan-discovery enabled").rc == 0
    assert run.returncode != 0
    assert message in flat(run.output), run.output[-3000:]
    assert before == after

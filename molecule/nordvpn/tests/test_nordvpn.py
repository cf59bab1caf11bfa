"""Role `nordvpn` against the client stand-in: LAN discovery, allowlist, skip, daemon down, routes, bad input."""

from __future__ import annotations

import contextlib
import json

import pytest

STATE = "/var/lib/nordvpn/standin-settings.json"
ROLE = "integr8scode.provision.nordvpn : "


def flat(output: str) -> str:
    """The output with line wrapping undone (the yaml callback folds long messages)."""
    return " ".join(output.split())


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
    assert check.changed_tasks() == [ROLE + "Report the LAN discovery change check mode would make"]
    assert "LAN Discovery: disabled" in settings(host), "check mode changed the client"

    first = ansible_playbook("converge.yml")
    assert first.returncode == 0, first.output[-3000:]
    assert first.changed_tasks() == [ROLE + "Run nordvpn set lan-discovery enabled"]
    assert "LAN Discovery: enabled" in settings(host)

    second = ansible_playbook("converge.yml")
    assert second.returncode == 0, second.output[-3000:]
    assert second.total("changed") == 0, second.changed_tasks()


def test_missing_allowlist_entry_is_added_again(host, ansible_playbook):
    assert host.run("nordvpn allowlist remove subnet 203.0.113.0/24").rc == 0
    run = ansible_playbook("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.changed_tasks() == [ROLE + "Run nordvpn allowlist add subnet"]
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
    assert "Read the client's settings" not in flat(run.output)


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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"nordvpn_allowlist_subnets": ["10.42.0.0/16"]}', "nordvpn_allowlist_subnets lists private subnets"),
        ('{"nordvpn_allowlist_subnets": ["10.42.0.0"]}', "must be IPv4 CIDRs"),
        ('{"nordvpn_protected_cidrs": ["10.42.0.0/33"]}', "must be IPv4 CIDRs"),
        ('{"nordvpn_interface": "way-too-long-interface"}', "nordvpn_interface must be"),
        ('{"nordvpn_install": true, "nordvpn_apt_key_fingerprint": "abc"}', "nordvpn_apt_key_fingerprint 40 hex"),
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

"""k3s_config end to end: run as Ansible runs it, against this machine's real `ip` output."""

from __future__ import annotations

import json
import subprocess

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
)


def host_choice():
    links = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, check=True).stdout)
    routes = json.loads(
        subprocess.run(["ip", "-j", "-4", "route", "show", "table", "main"], capture_output=True, check=True).stdout
    )
    try:
        return choose_node_address(links, routes)
    except NodeAddressError as exc:
        pytest.skip(f"this machine has no LAN address for the policy to choose: {exc}")


def test_writes_0600_then_changes_nothing_and_check_mode_writes_nothing(tmp_path, run_module):
    choice = host_choice()
    path = tmp_path / "rancher" / "config.yaml"
    args = {"path": str(path), "disable": ["traefik"], "tls_san": ["box.lan"]}
    planned = run_module("k3s_config", args, check_mode=True)
    assert planned["_rc"] == 0, planned
    assert planned["changed"] is True and planned["differs"] is True and not path.exists()
    first = run_module("k3s_config", args)
    assert first["changed"] is True, first
    assert (first["node_ip"], first["node_interface"]) == (choice["address"], choice["interface"])
    assert first["flannel_iface"] == choice["interface"]
    text = path.read_text()
    assert f"node-ip: {choice['address']}\n" in text and f"flannel-iface: {choice['interface']}\n" in text
    assert path.stat().st_mode & 0o777 == 0o600
    again = run_module("k3s_config", args)
    assert (again["changed"], again["differs"], again["source"], again["recorded"]) == (
        False,
        False,
        "recorded",
        choice["address"],
    )


def test_diff_mode_shows_the_change(tmp_path, run_module):
    host_choice()
    path = tmp_path / "config.yaml"
    path.write_text("node-ip: 192.0.2.250\n")
    result = run_module("k3s_config", {"path": str(path), "_ansible_diff": True}, check_mode=True)
    assert result["diff"]["before"] == "node-ip: 192.0.2.250\n"
    assert result["diff"]["after"].startswith("# Managed by integr8scode.provision")
    assert path.read_text() == "node-ip: 192.0.2.250\n"


def test_a_pin_that_is_not_on_the_host_fails_naming_the_variable_and_writes_nothing(tmp_path, run_module):
    path = tmp_path / "config.yaml"
    result = run_module("k3s_config", {"path": str(path), "node_ip": "198.51.100.254"})
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"].startswith("k3s_node_ip 198.51.100.254 is not an IPv4 address assigned on this host")
    assert not path.exists()


def test_an_unknown_flannel_interface_fails_naming_the_variable(tmp_path, run_module):
    host_choice()
    result = run_module("k3s_config", {"path": str(tmp_path / "c.yaml"), "flannel_iface": "nosuch0"})
    assert result["failed"] is True and result["msg"].startswith("k3s_flannel_iface nosuch0 is not an interface")

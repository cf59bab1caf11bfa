"""k3s_config end to end: run as Ansible runs it, against this machine's real `ip` output; the
run lock is the real one (a directory under tmp_path) held by another RunLock."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import LockHeld, RunLock
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    PINS_NAME,
    render_config,
    role_settings,
    write_pins,
)
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
    pins = tmp_path / "rancher" / PINS_NAME
    args = {"path": str(path), "disable": ["traefik"], "tls_san": ["box.lan"], "lock_path": str(tmp_path / "lock")}
    planned = run_module("k3s_config", args, check_mode=True)
    assert planned["_rc"] == 0, planned
    assert planned["changed"] is True and planned["differs"] is True and not path.exists()
    assert (planned["config_differs"], planned["pins_differs"]) == (True, True) and not pins.exists()
    assert "lock" not in planned
    first = run_module("k3s_config", args)
    assert first["changed"] is True, first
    assert (first["node_ip"], first["node_interface"]) == (choice["address"], choice["interface"])
    assert first["flannel_iface"] == choice["interface"]
    text = path.read_text()
    assert f"node-ip: {choice['address']}\n" in text and f"flannel-iface: {choice['interface']}\n" in text
    assert path.stat().st_mode & 0o777 == 0o600
    # The pins as given (none), not the chosen address: the policy stays free to choose.
    assert first["pins_file"] == str(pins)
    assert first["pins"] == {"node_ip": "", "node_interface": "", "flannel_iface": ""}
    data = json.loads(pins.read_text())
    assert (data["node_ip"], data["config_file"], data["data_dir"]) == ("", str(path), "/var/lib/rancher/k3s")
    assert pins.stat().st_mode & 0o777 == 0o644
    assert first["lock"]["held"] is False and not (tmp_path / "lock").exists()
    again = run_module("k3s_config", args)
    assert (again["changed"], again["differs"], again["source"], again["recorded"]) == (
        False,
        False,
        "recorded",
        choice["address"],
    )
    assert "lock" not in again, "nothing to change takes no lock"


def test_a_changed_pin_alone_rewrites_only_the_pins_file(tmp_path, run_module):
    choice = host_choice()
    path = tmp_path / "config.yaml"
    args = {"path": str(path), "lock_path": str(tmp_path / "lock")}
    run_module("k3s_config", args)
    repinned = run_module("k3s_config", dict(args, node_interface=choice["interface"], _ansible_diff=True))
    assert (repinned["changed"], repinned["config_differs"], repinned["pins_differs"]) == (True, False, True)
    assert [d["after_header"] for d in repinned["diff"]] == [str(tmp_path / PINS_NAME)]
    assert json.loads((tmp_path / PINS_NAME).read_text())["node_interface"] == choice["interface"]


def test_diff_mode_shows_the_change(tmp_path, run_module):
    host_choice()
    path = tmp_path / "config.yaml"
    path.write_text("node-ip: 192.0.2.250\n")
    result = run_module("k3s_config", {"path": str(path), "_ansible_diff": True}, check_mode=True)
    config_diff, pins_diff = result["diff"]
    assert config_diff["before"] == "node-ip: 192.0.2.250\n" and config_diff["after_header"] == str(path)
    assert config_diff["after"].startswith("# Managed by integr8scode.provision")
    assert pins_diff["before"] == "" and pins_diff["after_header"] == str(tmp_path / PINS_NAME)
    assert json.loads(pins_diff["after"])["node_ip"] == ""
    assert path.read_text() == "node-ip: 192.0.2.250\n" and not (tmp_path / PINS_NAME).exists()


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


# --------------------------------------------------------------------------- the run lock


def held_lock(tmp_path, by="recover.yml (ansible-playbook on box)"):
    lock = RunLock(str(tmp_path / "lock"), "20260101T000000Z-42", by)
    lock.acquire()
    return lock


def test_a_lock_held_by_a_recovery_makes_it_wait_then_fail_naming_the_holder_and_change_nothing(tmp_path, run_module):
    host_choice()
    lock = held_lock(tmp_path)
    path = tmp_path / "config.yaml"
    args = {"path": str(path), "lock_path": lock.path, "lock_wait": 1.5}
    started = time.monotonic()
    result = run_module("k3s_config", args)
    assert time.monotonic() - started >= 1.5, "it did not wait"
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"].startswith(
        f"Not written: waited 2s for the run lock: recover.yml (ansible-playbook on box) holds {lock.path} "
        "(run 20260101T000000Z-42, "
    )
    assert "Nothing was changed" in result["msg"] and "k3s_lock_wait" in result["msg"]
    assert result["lock"]["holder"]["by"] == "recover.yml (ansible-playbook on box)"
    assert not path.exists() and not (tmp_path / PINS_NAME).exists()
    # Check mode neither waits for the lock nor takes it.
    started = time.monotonic()
    planned = run_module("k3s_config", dict(args, lock_wait=60), check_mode=True)
    assert planned["_rc"] == 0 and planned["differs"] is True and time.monotonic() - started < 30
    # Released: the same run goes through.
    lock.release()
    done = run_module("k3s_config", args)
    assert done["_rc"] == 0 and done["changed"] is True and path.exists()
    assert not os.path.exists(lock.path)


def test_a_run_that_waited_for_a_recovery_sees_the_recovered_file_and_changes_nothing(tmp_path, run_module):
    """The plan before the lock saw a stale node-ip; the recovery holding the lock rewrote
    config.yaml (and the pins) onto the host's address. Compared under the lock: nothing left."""
    choice = host_choice()
    path = tmp_path / "config.yaml"
    path.write_text("node-ip: 192.0.2.250\n")
    os.chmod(path, 0o600)
    lock = held_lock(tmp_path, by="integr8scode-k3s-drift-check (k3s_recover_watch_mode=recover)")

    def recovery_finishes():
        path.write_text(render_config(role_settings(choice["address"], choice["interface"])))
        write_pins({}, str(path), "/var/lib/rancher/k3s")
        lock.release()

    timer = threading.Timer(1.0, recovery_finishes)
    timer.start()
    try:
        result = run_module("k3s_config", {"path": str(path), "lock_path": lock.path, "lock_wait": 60})
    finally:
        timer.join()
    assert result["_rc"] == 0, result
    assert (result["changed"], result["source"], result["recorded"]) == (False, "recorded", choice["address"])
    assert result["lock"]["waited"] >= 0.9
    assert not os.path.exists(lock.path)


def test_lock_hold_keeps_the_lock_for_the_restart_only_when_config_yaml_changed(tmp_path, run_module):
    host_choice()
    path = tmp_path / "config.yaml"
    args = {"path": str(path), "lock_path": str(tmp_path / "lock"), "lock_hold": True, "lock_owner": "site.yml",
            "lock_wait": 5}  # fmt: skip
    first = run_module("k3s_config", args)
    assert first["lock"]["held"] is True
    owner = json.loads((tmp_path / "lock" / "owner").read_text())
    assert (owner["run_id"], owner["by"]) == (first["lock"]["run_id"], "site.yml")
    # Kept past the module's process, for the default five minutes: other runs wait.
    # started and expires are whole seconds, and the write may cross one.
    assert owner["pid"] is None and 298 <= owner["expires"] - owner["started"] <= 302
    with pytest.raises(LockHeld, match="site.yml holds"):
        RunLock(str(tmp_path / "lock"), "watch-1").acquire()
    # What the restart does (k3s_restart with that run id): take it over and release it.
    restart = RunLock(str(tmp_path / "lock"), first["lock"]["run_id"])
    restart.acquire()
    assert restart.release() is True
    # A pins-only change restarts nothing: the lock is not kept.
    (tmp_path / PINS_NAME).unlink()
    second = run_module("k3s_config", args)
    assert (second["config_differs"], second["pins_differs"], second["lock"]["held"]) == (False, True, False)
    assert not (tmp_path / "lock").exists()

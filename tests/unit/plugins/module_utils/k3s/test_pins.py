"""The node-address pins file (module_utils/k3s/config.py ``write_pins``/``read_pins``): written by
site.yml (k3s_config) and by the recovery (Rebuild.write_config), read by the watcher at every
check. The re-pin scenario runs the real drift check and the real decision through the watcher
over a fake runner (realistic ``ip -d -j`` layouts from hostnet.py); only the recovery itself is
replaced, so a decision to rebuild shows as a recorded call."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from hostnet import Clock, HostRunner, default, nic, prefix
from k3s_files import kine_db, node_json

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (  # noqa: E402
    PINS_NAME,
    ConfigError,
    pins_path,
    read_pins,
    render_config,
    role_settings,
    write_pins,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (  # noqa: E402
    Rebuild,
    validate,
    with_defaults,
)

PIN_A = "192.168.1.20"  # the pin recover.yml rendered into the program
PIN_B = "192.168.1.30"  # the pin the user set since, with site.yml


# --------------------------------------------------------------------------- writer and reader


def test_the_writer_renders_sorted_json_0644_and_a_rerun_changes_nothing(tmp_path):
    config_file = str(tmp_path / "config.yaml")
    changed, before, after = write_pins({"node_ip": PIN_B}, config_file, "/data/k3s")
    assert (changed, before) == (True, None)
    path = tmp_path / PINS_NAME
    assert pins_path(config_file) == str(path) and path.read_text() == after
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.stat().st_uid == 0
    data = json.loads(after)
    assert list(data) == sorted(data)
    assert {k: data[k] for k in data if k != "about"} == {
        "config_file": config_file, "data_dir": "/data/k3s", "flannel_iface": "", "node_interface": "",
        "node_ip": PIN_B,
    }  # fmt: skip
    assert write_pins({"node_ip": PIN_B, "node_interface": None}, config_file, "/data/k3s")[0] is False
    assert write_pins({"node_ip": ""}, config_file, "/data/k3s")[0] is True


def test_the_reader_returns_what_the_writer_wrote_and_none_without_a_file(tmp_path):
    config_file = str(tmp_path / "config.yaml")
    assert read_pins(config_file) is None
    write_pins({"node_interface": "wlan0", "flannel_iface": "eth0"}, config_file, "/var/lib/rancher/k3s")
    assert read_pins(config_file) == {
        "node_ip": "", "node_interface": "wlan0", "flannel_iface": "eth0", "config_file": config_file,
        "data_dir": "/var/lib/rancher/k3s",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not a node-address pins file"),
        ("[1, 2]", "is not a node-address pins file"),
        ('{"node_ip": 5}', "node_ip must be strings"),
    ],
)
def test_a_file_that_is_not_a_pins_file_is_an_error_not_no_pins(tmp_path, content, message):
    (tmp_path / PINS_NAME).write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_pins(str(tmp_path / "config.yaml"))


def test_unknown_pins_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown node-address pins: node_address"):
        write_pins({"node_address": PIN_B}, str(tmp_path / "config.yaml"))
    params = with_defaults(state="rebuilt", run_id="t", node_ip=PIN_B, backup_dir="/b/x", pins={"nodeip": PIN_B})
    assert "pins: unknown keys nodeip (known: node_ip, node_interface, flannel_iface)" in validate(params)


def test_the_recovery_writes_the_same_pins_file_with_config_yaml(tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(render_config(role_settings(PIN_A, "eth0")))
    pins = {"node_ip": "", "node_interface": "eth0", "flannel_iface": ""}
    job = Rebuild(
        with_defaults(state="rebuilt", run_id="t", node_ip=PIN_B, flannel_iface="eth0", backup_dir="/b/x",
                      config_file=str(config_file), data_dir="/data/k3s", pins=pins),
        runner=None,
    )  # fmt: skip
    report = job.write_config()
    assert report["pins"] == pins and report["pins_changed"] is True
    assert f"node-ip: {PIN_B}\n" in config_file.read_text()
    # Byte for byte what site.yml's k3s_config writes for the same pins: neither undoes the other.
    assert (tmp_path / PINS_NAME).read_text() == write_pins(pins, str(config_file), "/data/k3s")[2]
    assert write_pins(pins, str(config_file), "/data/k3s")[0] is False
    # Without pins (an older caller), the file is left as it is.
    job.p["pins"] = None
    assert "pins" not in job.write_config()


# --------------------------------------------------------------------------- the watcher


# Both addresses on the LAN NIC: the user moved the pin from one to the other.
HOST = HostRunner([nic("eth0", f"{PIN_A}/24", f"{PIN_B}/24")], [default("eth0"), prefix("192.168.1.0/24", "eth0")])


def k3s_on(tmp_path, node_ip):
    """config.yaml as the role renders it and the SQLite node row, both at ``node_ip``."""
    etc, data = tmp_path / "etc", tmp_path / "data"
    etc.mkdir(exist_ok=True)
    (data / "server" / "db").mkdir(parents=True, exist_ok=True)
    (etc / "config.yaml").write_text(render_config(role_settings(node_ip, "eth0")))
    db = data / "server" / "db" / "state.db"
    if db.exists():
        db.unlink()
    kine_db(str(db), [("/registry/minions/node1", node_json(node_ip), 0)])
    return str(etc / "config.yaml"), str(data)


def rendered_settings(tmp_path, config_file, data_dir, **pins):
    """k3s_recover__watch_settings as recover.yml rendered them (pins of that time)."""
    settings = dict(
        mode="recover", debounce=20, debounce_rounds=3, max_recoveries=2, state_dir=str(tmp_path / "state"),
        command="", config_file=config_file, data_dir=data_dir, service="k3s", binary="/usr/local/bin/k3s",
        node_name="node1", node_ip="", node_interface="", flannel_iface="",
        admin_kubeconfig=str(tmp_path / "k3s.yaml"), kubeconfig_user="", strategy="wipe",
        backup_root=str(tmp_path / "backups"), pv_paths=[], keep_backups=5, ready_timeout=60, stop_timeout=30,
        stack_dir="", project_name="", compose_files=["docker-compose.yaml"], app_kubeconfig="",
        app_kubeconfig_mode="0600", cert_generator_service="cert-generator", worker_services=["k8s-worker"],
        app_probe_path="/api/v1/namespaces", app_timeout=60, lock_path=str(tmp_path / "lock"),
    )  # fmt: skip
    settings.update(pins)
    return settings


@pytest.fixture
def watcher(tmp_path, monkeypatch, capsys):
    """(build, runs, out): a Watcher over HOST whose recovery is recorded instead of run."""
    clock, runs = Clock(), []

    def execute(job, on_locked=None):
        runs.append(job.p)
        job.result.update(backup={"ok": True, "checked": 9, "pruned": []}, app={"reason": "no app"})
        return job.result

    monkeypatch.setattr(watch, "execute", execute)

    def build(settings):
        return watch.Watcher(settings, HOST, clock=clock, sleep=clock.sleep)

    return build, runs, lambda: capsys.readouterr().out


def test_a_pin_changed_with_site_yml_is_not_drift_to_a_watcher_rendered_with_the_old_one(tmp_path, watcher):
    build, runs, out = watcher
    config_file, data_dir = k3s_on(tmp_path, PIN_B)  # site.yml re-pinned: config.yaml and k3s on B
    write_pins({"node_ip": PIN_B}, config_file, data_dir)  # ... and wrote the pins with it
    assert build(rendered_settings(tmp_path, config_file, data_dir, node_ip=PIN_A)).check() == 0
    assert runs == [], "the watcher rebuilt k3s back onto the old pin"
    assert f"k3s node IP {PIN_B} is the node address (k3s_node_ip {PIN_B} is set" in out()
    status = (tmp_path / "state" / "status").read_text()
    assert f"healthy, node IP {PIN_B}" in status


def test_an_empty_pin_in_the_file_unpins_what_the_program_was_rendered_with(tmp_path, watcher):
    build, runs, out = watcher
    config_file, data_dir = k3s_on(tmp_path, PIN_B)
    write_pins({"node_ip": ""}, config_file, data_dir)
    build(rendered_settings(tmp_path, config_file, data_dir, node_ip=PIN_A)).check()
    assert runs == []
    assert f"k3s node IP {PIN_B} is the node address (k3s already uses {PIN_B}" in out()


def test_without_the_file_the_rendered_pins_hold(tmp_path, watcher):
    build, runs, _out = watcher
    config_file, data_dir = k3s_on(tmp_path, PIN_B)
    build(rendered_settings(tmp_path, config_file, data_dir, node_ip=PIN_A)).check()
    assert [run["node_ip"] for run in runs] == [PIN_A]
    assert runs[0]["pins"] == {"node_ip": PIN_A, "node_interface": "", "flannel_iface": ""}


def test_a_recovery_uses_and_records_the_pins_of_the_file(tmp_path, watcher):
    build, runs, _out = watcher
    config_file, data_dir = k3s_on(tmp_path, "192.168.1.99")  # k3s's recorded address is gone
    write_pins({"node_ip": PIN_B, "flannel_iface": "eth0"}, config_file, data_dir)
    build(rendered_settings(tmp_path, config_file, "/elsewhere", node_ip=PIN_A)).check()
    assert len(runs) == 1
    params = runs[0]
    assert params["node_ip"] == PIN_B and params["data_dir"] == data_dir
    assert params["pins"] == {"node_ip": PIN_B, "node_interface": "", "flannel_iface": "eth0"}
    assert (params["recheck"]["node_ip"], params["recheck"]["data_dir"]) == (PIN_B, data_dir)


def test_an_unreadable_pins_file_stops_the_check_instead_of_judging_with_old_pins(tmp_path, watcher):
    build, runs, out = watcher
    config_file, data_dir = k3s_on(tmp_path, PIN_B)
    Path(pins_path(config_file)).write_text("{half")
    assert build(rendered_settings(tmp_path, config_file, data_dir, node_ip=PIN_A)).check() == 1
    assert runs == [] and "is not a node-address pins file" in out()

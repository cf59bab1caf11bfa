"""module_utils/k3s/watch.py: the watcher's decisions (debounce, flap guard, no usable address,
warn vs recover, the lock held by recover.yml) and its status line, with a fake clock, a fake
``ip -j`` and the drift check and recovery replaced at their seams. The watcher on a real host,
healing an address change, is proven by the recover-sqlite / recover-etcd scenarios."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from hostnet import Clock

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.host import LocalRunner  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import ModuleFailure  # noqa: E402


def links(address):
    return [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": address, "prefixlen": 24, "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
        ]},
    ]  # fmt: skip


class Runner:
    """The host's runner (LocalRunner) with a fake ``ip -j``."""

    get_bin_path = staticmethod(LocalRunner.get_bin_path)
    warn = staticmethod(LocalRunner.warn)

    def __init__(self):
        self.address = "10.0.0.5"

    def run_command(self, argv, cwd=None):
        if argv[:4] == ["ip", "-d", "-j", "addr"]:
            return 0, json.dumps(links(self.address)), ""
        return 0, "[]", ""


def settings(tmp_path, **extra):
    base = dict(
        mode="recover", debounce=20, debounce_rounds=3, max_recoveries=2, state_dir=str(tmp_path / "state"),
        command="", config_file="/etc/rancher/k3s/config.yaml", data_dir="/var/lib/rancher/k3s", service="k3s",
        binary="/usr/local/bin/k3s", node_name="", node_ip="", node_interface="", flannel_iface="",
        admin_kubeconfig="/etc/rancher/k3s/k3s.yaml", kubeconfig_user="", strategy="wipe",
        backup_root=str(tmp_path / "backups"), pv_paths=[], keep_backups=5, ready_timeout=60, stop_timeout=30,
        stack_dir="/opt/Integr8sCode", project_name="custom", compose_files=["docker-compose.yaml"],
        app_kubeconfig="/opt/Integr8sCode/backend/kubeconfig.yaml", app_kubeconfig_mode="0600",
        cert_generator_service="cert-generator", worker_services=["k8s-worker"], app_probe_path="/api/v1/namespaces",
        app_timeout=60, lock_path=str(tmp_path / "lock"),
    )  # fmt: skip
    base.update(extra)
    return base


def drifted(target="10.0.0.5"):
    return {
        "installed": True, "drift": True, "datastore": "sqlite", "data_dir": "/var/lib/rancher/k3s",
        "node_name": "node", "recommended_node_ip": target, "recommended_flannel_iface": "eth0",
        "findings": [{"check": "node_ip_on_host", "severity": "drift", "message": "node-ip 10.9.9.9 is gone"}],
        "node_ip": {"config": "10.9.9.9"},
        "node_address": {"reason": "LAN default route", "error": None, "source": "default_route"},
        "service": {"active_state": "activating"},
    }  # fmt: skip


@pytest.fixture
def made(tmp_path, monkeypatch, capsys):
    clock = Clock()
    runs = []

    def build(result, outcome=None, **extra):
        watcher = watch.Watcher(settings(tmp_path, **extra), Runner(), clock=clock, sleep=clock.sleep)
        monkeypatch.setattr(watcher, "detect", lambda: result)

        def execute(job, on_locked=None):
            runs.append(job.p)
            if outcome == "lock":
                job.result["stage"] = "lock"
                raise ModuleFailure("another k3s recovery holds the lock")
            if outcome == "recheck":
                on_locked()
                job.result["stage"] = "recheck"
                raise ModuleFailure("k3s no longer drifted when the recovery got the lock")
            on_locked()
            if outcome == "fail":
                job.result.update(stage="k3s_ready", backup={"ok": True, "checked": 9})
                raise ModuleFailure("k3s did not report ready")
            job.result.update(backup={"ok": True, "checked": 9, "pruned": []}, workers_ready_at=clock.now,
                              app={"reconnected": True, "kubeconfig_server": "https://10.0.0.5:6443"})  # fmt: skip
            return job.result

        monkeypatch.setattr(watch, "execute", execute)
        return watcher

    build.clock, build.runs, build.out = clock, runs, lambda: capsys.readouterr().out
    return build


def test_address_snapshot_ignores_loopback_and_link_local():
    assert watch.address_snapshot(links("10.0.0.5")) == ["eth0 10.0.0.5/24"]


def test_the_first_look_waits_out_the_debounce_then_recovers_once(made):
    watcher = made(drifted())
    assert watcher.check() == 0
    out = made.out()
    assert "waiting until they are stable for 20s" in out
    assert "recovering k3s onto 10.0.0.5 (LAN default route) with strategy wipe" in out
    assert "recovered: node Ready at 10.0.0.5" in out
    assert len(made.runs) == 1
    params = made.runs[0]
    # Every stack setting reaches the rebuild from the role's variables.
    assert (params["project_name"], params["compose_files"], params["worker_services"]) == (
        "custom", ["docker-compose.yaml"], ["k8s-worker"],
    )  # fmt: skip
    assert params["backup_dir"].startswith(watcher.s["backup_root"]) and params["stop_timeout"] == 30.0


def test_addresses_that_keep_changing_are_never_acted_on(made, monkeypatch):
    watcher = made(drifted())
    runner = watcher.runner

    def sleep(seconds):
        made.clock.now += seconds / 2
        runner.address = f"10.0.{int(made.clock.now % 250)}.5"

    watcher.sleep = sleep
    assert watcher.check() == 0
    assert "kept changing for 3 debounce periods; not acting now" in made.out()
    assert made.runs == []


def test_past_the_flap_limit_it_only_warns_and_says_why(made):
    for _round in range(3):
        made(drifted()).check()
        made.clock.now += 60
    out = made.out()
    assert out.count("recovering k3s onto") == 2
    assert (
        "not recovering automatically: 2 automatic recoveries in the last hour reached the limit "
        "k3s_recover_watch_max_recoveries=2 (the network is flapping)"
    ) in out
    assert len(made.runs) == 2
    made.clock.now += 3600
    made(drifted()).check()
    assert len(made.runs) == 3, "an hour later the guard lets a recovery through again"


def test_no_usable_address_waits_and_never_recovers(made):
    result = drifted(target=None)
    result["node_address"]["error"] = "no LAN address: only a tunnel is up"
    made(result).check()
    assert "there is no usable node address, waiting: no LAN address" in made.out()
    assert made.runs == []


def test_warn_mode_warns_and_does_not_recover(made):
    made(drifted(), mode="warn").check()
    assert "WARNING: k3s drifted after a VPN or IP change: node-ip 10.9.9.9 is gone" in made.out()
    assert made.runs == []


def test_a_lock_held_by_recover_yml_is_not_counted_as_a_recovery(made, tmp_path):
    made(drifted(), outcome="lock").check()
    out = made.out()
    assert "not recovering now: another k3s recovery holds the lock" in out
    assert "recovering k3s onto" not in out
    assert json.loads((tmp_path / "state" / "state.json").read_text()).get("recoveries", []) == []


def test_a_recheck_that_finds_the_host_recovered_is_no_failed_recovery(made, tmp_path):
    """The timer's check and the follower both decided; the first recovered, the second's check
    under the lock finds nothing to do: no failure to a person, no count against the flap limit."""
    assert made(drifted(), outcome="recheck").check() == 0
    out = made.out()
    assert "not recovering: k3s no longer drifted when the recovery got the lock" in out
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state.get("recoveries", []) == [] and not state.get("failed_recovery") and not state.get("last_recovery")
    assert "NEEDS A PERSON" not in (tmp_path / "state" / "status").read_text()


def test_a_failed_recovery_is_recorded_in_the_status_line(made, tmp_path):
    assert made(drifted(), outcome="fail").check() == 1
    assert "the automatic recovery failed (stage k3s_ready): k3s did not report ready" in made.out()
    status = (tmp_path / "state" / "status").read_text()
    assert status.startswith("last check ") and "drifted, recovery failed" in status
    assert "last recovery " in status and "failed at k3s_ready, onto 10.0.0.5, backup " + str(tmp_path) in status
    # The failure's whole message (journal tail) is in state.json, which root alone reads; the
    # status line is for everyone.
    state = tmp_path / "state" / "state.json"
    assert "k3s did not report ready" in json.loads(state.read_text())["last_recovery"]["message"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state" / "status").stat().st_mode) == 0o644


def test_healthy_status_line(made, tmp_path, capsys):
    result = dict(drifted(), drift=False, findings=[])
    made(result).check()
    watch.status(settings(tmp_path))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("last check ") and "healthy, node IP 10.9.9.9; no automatic recovery yet" in line


def test_follow_checks_once_per_burst_and_logs_its_start_and_end(made, tmp_path, monkeypatch):
    """A fake ``ip -o monitor address``: a burst of three events, quiet past the debounce, then it
    ends. The follower checks at start and once after the burst, never per event."""
    monitor = tmp_path / "ip"
    monitor.write_text(
        "#!/bin/sh\n"
        'for a in 10.92.0.5 10.93.0.5 10.94.0.5; do echo "2: eth0    inet $a/24 scope global eth0"; sleep 0.1; done\n'
        "sleep 1.6\n"
    )
    monitor.chmod(0o755)
    watcher = made(dict(drifted(), drift=False, findings=[]), debounce=1)
    monkeypatch.setattr(watcher.runner, "get_bin_path", lambda name, required=False: str(monitor))
    checks = []
    monkeypatch.setattr(watcher, "check", lambda: checks.append(len(checks)))
    assert watcher.follow() == 1
    out = made.out()
    assert len(checks) == 2, out
    assert out.count("address event: 2: eth0 inet 10.92.0.5/24") == 1 and out.count("address event:") == 1
    assert "addresses stable for 1s after 3 address event(s); judging k3s" in out


# ------------------------------------------------------------------ the program's entry point


def test_the_programs_entry_point_dispatches_each_mode(tmp_path, monkeypatch, capsys):
    """integr8scode-k3s-drift-check [--status|--hold BY|--release|--backup|--follow]: main() with the
    settings file's dict, the check, follower and backup replaced at their seams."""
    calls = []

    class Seen:
        def __init__(self, settings_, runner):
            calls.append(("watcher", settings_["mode"], runner))

        def check(self):
            calls.append("check")
            return 5

        def follow(self):
            calls.append("follow")
            return 1

    monkeypatch.setattr(watch, "Watcher", Seen)
    monkeypatch.setattr(watch, "backup", lambda settings_, runner: calls.append(("backup", runner)) or 1)
    s = settings(tmp_path)
    assert watch.main([], s) == 5
    assert watch.main(["--follow"], s) == 1
    assert watch.main(["--backup"], s) == 1
    assert calls == [("watcher", "recover", LocalRunner), "check", ("watcher", "recover", LocalRunner), "follow",
                     ("backup", LocalRunner)]  # fmt: skip
    assert watch.main(["--status"], s) == 0
    assert capsys.readouterr().out == f"no check yet ({tmp_path / 'state'})\n"
    assert watch.main(["--hold", "rollback.yml", "from", "/b/x"], s) == 0
    assert json.loads((tmp_path / "state" / "hold.json").read_text())["by"] == "rollback.yml from /b/x"
    assert watch.main(["--status"], s) == 0
    assert "HELD" in capsys.readouterr().out
    assert watch.main(["--release"], s) == 0 and watch.main(["--release"], s) == 0
    assert capsys.readouterr().out == "released\nnot held\n"
    assert watch.main(["--hold"], s) == 0
    assert json.loads((tmp_path / "state" / "hold.json").read_text())["by"] == "a person"

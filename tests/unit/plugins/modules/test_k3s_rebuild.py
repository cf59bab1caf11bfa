"""k3s_rebuild run as Ansible runs it (JSON args on stdin, a child interpreter): the refusals that
must come before anything changes, state=verified, and the run lock. The rebuild itself (systemd,
k3s, compose) is proven end to end by the recover-sqlite and recover-etcd molecule scenarios."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (  # noqa: E402
    RunLock,
    create_backup,
)


@pytest.fixture
def backup_dir(tmp_path, k3s_files):
    src, conn = k3s_files
    conn.close()
    folder = tmp_path / "backups" / "20260101T000000Z"
    create_backup(
        str(folder),
        [str(src / "config.yaml"), str(src / "server" / "token"), str(src / "server" / "db")],
        datastore="sqlite",
        db_dir=str(src / "server" / "db"),
        required=[str(src / "config.yaml")],
    )
    return folder


def base_args(tmp_path, **extra):
    args = {
        "run_id": "unit",
        "node_ip": "10.77.0.5",
        "backup_dir": str(tmp_path / "backups" / "20260101T120000Z"),
        "data_dir": str(tmp_path / "k3s"),
        "config_file": str(tmp_path / "k3s" / "config.yaml"),
        "lock_path": str(tmp_path / "recover.lock"),
    }
    args.update(extra)
    return args


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"node_ip": "10.0.0.300"}, "node_ip must be an IP address, got '10.0.0.300'"),
        ({"node_ip": None}, "node_ip is required with state=rebuilt"),
        ({"backup_dir": "/var/lib/rancher/k3s/server/db/backup", "data_dir": "/var/lib/rancher/k3s"},
         "backup_dir /var/lib/rancher/k3s/server/db/backup must be outside /var/lib/rancher/k3s/server"),
        ({"stack_dir": "/opt/Integr8sCode"}, "app_kubeconfig is required with stack_dir"),
        ({"ready_timeout": 0}, "ready_timeout must be a positive number of seconds"),
        ({"keep_backups": -1}, "keep_backups must be zero (keep all) or positive"),
        ({"app_probe_path": "api/v1"}, "app_probe_path must start with /"),
        ({"worker_services": []}, "worker_services must name at least one service"),
        ({"backup_paths": ["/var"], "backup_dir": "/var/backups/integr8scode-k3s/20260101T120000Z"},
         "backup_paths (k3s_recover_pv_paths): /var contains the backup root /var/backups/integr8scode-k3s"),
        ({"backup_paths": ["/var/backups/integr8scode-k3s/pv"],
          "backup_dir": "/var/backups/integr8scode-k3s/20260101T120000Z"},
         "backup_paths (k3s_recover_pv_paths): /var/backups/integr8scode-k3s/pv is inside the backup root"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_option(tmp_path, run_module, extra, message):
    result = run_module("k3s_rebuild", base_args(tmp_path, **extra))
    assert result["_rc"] == 1 and result["failed"] is True
    assert message in result["msg"]
    assert not (tmp_path / "recover.lock").exists() and not (tmp_path / "backups").exists()


def test_verified_reports_the_backup_without_changing_it(tmp_path, run_module, backup_dir):
    before = {p: p.read_bytes() for p in backup_dir.rglob("*") if p.is_file()}
    result = run_module("k3s_rebuild", {"state": "verified", "backup_dir": str(backup_dir), "run_id": "v"})
    assert result["_rc"] == 0, result
    assert result["changed"] is False
    assert result["backup"]["ok"] is True and result["backup"]["integrity_check"] == "ok"
    assert result["backup"]["checked"] == 3
    assert {p: p.read_bytes() for p in backup_dir.rglob("*") if p.is_file()} == before


def test_verified_fails_on_a_tampered_backup(tmp_path, run_module, backup_dir):
    copy = next(p for p in backup_dir.rglob("token"))
    copy.write_text("K10abc::server:SECRET\n")  # same size, other bytes
    result = run_module("k3s_rebuild", {"state": "verified", "backup_dir": str(backup_dir), "run_id": "v"})
    assert result["_rc"] == 1 and result["stage"] == "verify"
    assert "did not verify" in result["msg"] and "does not match its sha256" in result["msg"]


def test_restored_in_check_mode_only_verifies(tmp_path, run_module, backup_dir):
    config = tmp_path / "k3s" / "config.yaml"
    config.write_text("node-ip: 10.77.0.5\n")
    args = {"state": "restored", "backup_dir": str(backup_dir), "run_id": "r", "config_file": str(config),
            "data_dir": str(tmp_path / "k3s"), "lock_path": str(tmp_path / "recover.lock")}  # fmt: skip
    result = run_module("k3s_rebuild", args, check_mode=True)
    assert result["_rc"] == 0 and result["changed"] is False and result["backup"]["ok"] is True
    assert config.read_text() == "node-ip: 10.77.0.5\n"


def test_a_held_lock_stops_the_run_before_anything_changes(tmp_path, run_module):
    (tmp_path / "k3s").mkdir()
    (tmp_path / "k3s" / "config.yaml").write_text("node-ip: 172.17.0.3\n")
    RunLock(str(tmp_path / "recover.lock"), "another-run").acquire()
    result = run_module("k3s_rebuild", base_args(tmp_path))
    assert result["_rc"] == 1 and result["stage"] == "lock"
    assert "another k3s recovery holds" in result["msg"] and "another-run" in result["msg"]
    assert not (tmp_path / "backups").exists()
    assert (tmp_path / "k3s" / "config.yaml").read_text() == "node-ip: 172.17.0.3\n"
    owner = json.loads((tmp_path / "recover.lock" / "owner").read_text())
    assert owner["run_id"] == "another-run", "the other run's lock must stay"


def test_check_mode_reports_the_plan_and_changes_nothing(tmp_path, run_module):
    result = run_module("k3s_rebuild", base_args(tmp_path), check_mode=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert "would back up to" in result["msg"] and "10.77.0.5" in result["msg"]
    assert not (tmp_path / "recover.lock").exists() and not (tmp_path / "backups").exists()

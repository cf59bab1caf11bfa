"""The host_status module through its real entry point on a host with none of the parts: every
part says why it is absent, nothing fails, nothing changes, check mode reads the same."""

from __future__ import annotations

import shutil

import pytest


@pytest.mark.skipif(not shutil.which("ip"), reason="needs iproute2's ip with JSON output")
@pytest.mark.parametrize("check_mode", [False, True])
def test_a_host_without_anything_degrades_part_by_part(run_module, tmp_path, check_mode):
    result = run_module(
        "host_status",
        dict(
            config_file=str(tmp_path / "k3s/config.yaml"), data_dir=str(tmp_path / "k3s"),
            admin_kubeconfig=str(tmp_path / "k3s.yaml"), stack_dir=str(tmp_path / "stack"),
            app_kubeconfig=str(tmp_path / "stack/backend/kubeconfig.yaml"), backup_root=str(tmp_path / "backups"),
            watcher_program=str(tmp_path / "integr8scode-k3s-drift-check"),
        ),
        check_mode=check_mode,
    )  # fmt: skip
    assert result["_rc"] == 0 and not result.get("failed"), result
    assert result["changed"] is False
    status = result["status"]
    for part in ("k3s", "compose", "app_token", "watcher", "backup"):
        assert status[part]["state"] == "-", (part, status[part])
    assert status["k3s"]["summary"] == "k3s is not installed (no config.yaml, no server data directory)"
    assert status["compose"]["summary"] == "no stack in %s" % (tmp_path / "stack")
    assert status["backup"]["summary"] == "no backups in %s" % (tmp_path / "backups")
    table = result["table"]
    assert table[1].split()[:2] == ["PART", "STATE"]
    assert [line.split()[0] for line in table[2:-1]] == ["node", "k3s", "compose", "app", "watcher", "backup", "vpn"]


def test_bad_options_fail(run_module):
    result = run_module("host_status", dict(request_timeout=0))
    assert result["failed"] and "request_timeout must be a positive number" in result["msg"]

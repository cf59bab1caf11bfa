"""Restore points and bounded waits, on the host test_recover.py left healthy.

Runs after test_recover.py (file order) and before test_watch.py, in recover-etcd only (skipped
in recover-sqlite with the reason; CI time: the watcher phase runs in recover-sqlite instead): a
scheduled backup of the running datastore (an etcd snapshot, verified; the rollback refuses to
half-restore it; SQLite's online copy is restored by tests/unit's test_backup.py), then a
recovery whose k3s never reports ready (the stand-in's K3S_STANDIN_NEVER_READY mode): it must
fail within k3s_recover_ready_timeout with the unit's journal tail, keep its backup, name the
rollback and delete nothing else. Last, embedded etcd's own "not a member of the etcd cluster"
loop after an address change and a rerun of site.yml's k3s part (k3s #7558, #2732), found in the
journal and recovered by the reset strategy (--cluster-reset, k3s #4296). Durations are printed, not asserted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_recover import datastore
from testhost import (
    CONFIG,
    DATA,
    STACK,
    assert_not_stopped,
    change_address,
    eth0_ip,
    flat,
    scenario_datastore,
    sh,
    unit,
    wait_until,
    wait_worker_up,
)

REPO = Path(__file__).resolve().parents[3]
RECOVER = str(REPO / "playbooks" / "recover.yml")
BACKUPS = "/var/backups/integr8scode-k3s"
DROPIN = "/etc/systemd/system/k3s.service.d/zz-i8c-never-ready.conf"
WORKERS = ("k8s-worker", "pod-monitor")
STATE: dict = {}


@pytest.fixture(autouse=True)
def only_in_the_etcd_scenario(host):
    if scenario_datastore(host) != "etcd":
        pytest.skip(
            "scheduled backups and bounded waits run once, in recover-etcd (the same rebuild.py for both "
            "datastores; SQLite's online copy is unit-tested); the watcher phase runs here instead"
        )


def backups(host) -> list[str]:
    return sh(host, f"ls -1 {BACKUPS}").split()


def manifest_of(host, backup: str) -> dict:
    return json.loads(sh(host, f"cat {backup}/manifest.json"))


def assert_verifies(host, backup: str) -> dict:
    """Every file's sha256 recomputed here (not by the role's helper), and for SQLite the copy's
    PRAGMA integrity_check with the sqlite3 CLI."""
    manifest = manifest_of(host, backup)
    files = manifest["files"]
    sums = sh(host, f"cd {backup} && sha256sum " + " ".join(sorted(files)))
    assert {line.split()[1]: line.split()[0] for line in sums.splitlines()} == {
        rel: entry["sha256"] for rel, entry in files.items()
    }
    if manifest["datastore"] == "sqlite":
        db = f"{backup}/files{DATA}/server/db/state.db"
        query = "PRAGMA integrity_check; SELECT count(*) FROM kine"
        check = sh(host, f"rm -rf /tmp/i8c-check && mkdir /tmp/i8c-check && cp {db}* /tmp/i8c-check/ && "
                         f"sqlite3 /tmp/i8c-check/state.db '{query}'")  # fmt: skip
        assert check.split()[0] == "ok" and int(check.split()[1]) > 0, check
    return manifest


def node_ready_at(host, address: str) -> bool:
    out = host.run("k3s kubectl get nodes -o json")
    if out.rc != 0 or not out.stdout.strip():
        return False
    for node in json.loads(out.stdout)["items"]:
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        if addresses.get("InternalIP") == address and ready.get("Ready") == "True":
            return True
    return False


def rollback(ansible_playbook, backup: str):
    run = ansible_playbook(
        RECOVER, "-e", "k3s_recover_rollback=true", "-e", f"k3s_recover_rollback_from={backup}",
        "-e", "k3s_recover_confirm=true",
    )  # fmt: skip
    assert run.returncode == 0, run.output[-4000:]
    return run


def apply_watch_tasks(host, ansible_playbook, setting: str, unit_name: str) -> None:
    """Only the role's watcher tasks with one setting; ``unit_name`` is then enabled and running."""
    run = ansible_playbook(RECOVER, "--tags", "k3s_recover_watch", "-e", setting)
    assert run.returncode == 0, run.output[-3000:]
    service = host.service(unit_name)
    assert service.is_enabled and service.is_running


# ----------------------------------------------------------------------------- scheduled backup


def test_scheduled_backup_of_the_running_datastore_verifies(host, ansible_playbook):
    apply_watch_tasks(host, ansible_playbook, "k3s_recover_backup_schedule=daily", "integr8scode-k3s-backup.timer")
    assert "OnCalendar=daily" in host.file("/etc/systemd/system/integr8scode-k3s-backup.timer").content_string
    pid = unit(host)["ActiveState"], sh(host, "systemctl show k3s -p MainPID --value").strip()
    before = set(backups(host))
    started = time.monotonic()
    sh(host, "systemctl start integr8scode-k3s-backup.service")
    print(f"\nscheduled backup of the running {datastore(host)} datastore: {time.monotonic() - started:.1f} s")
    new = sorted(set(backups(host)) - before)
    assert len(new) == 1, new
    backup = f"{BACKUPS}/{new[0]}"
    log = flat(sh(host, "journalctl -u integr8scode-k3s-backup.service -o cat --no-pager"))
    assert f"scheduled backup {backup} verified" in log, log[-2000:]
    # k3s kept running: same process, still active.
    assert (unit(host)["ActiveState"], sh(host, "systemctl show k3s -p MainPID --value").strip()) == pid
    manifest = assert_verifies(host, backup)
    assert manifest["meta"]["kind"] == "scheduled"
    if manifest["datastore"] == "etcd":
        snapshots = [r for r in manifest["files"] if r.startswith("etcd-snapshot/scheduled")]
        assert snapshots and all(manifest["files"][r]["size"] > 0 for r in snapshots)
    assert f"files{DATA}/server/token" in manifest["files"] and f"files{CONFIG}" in manifest["files"]
    STATE["scheduled"] = backup


def test_scheduled_backup_restores_through_the_rollback(host, ansible_playbook):
    """The backup is an etcd snapshot, which the rollback refuses to half-restore (it names k3s's
    --cluster-reset-restore-path instead; the stand-in does not model a snapshot restore)."""
    backup = STATE["scheduled"]
    config = host.file(CONFIG).sha256sum
    run = ansible_playbook(
        RECOVER, "-e", "k3s_recover_rollback=true", "-e", f"k3s_recover_rollback_from={backup}",
        "-e", "k3s_recover_confirm=true",
    )  # fmt: skip
    text = flat(run.output)
    assert run.returncode != 0
    assert "holds an etcd snapshot" in text and "--cluster-reset-restore-path" in text, text[-3000:]
    assert host.file(CONFIG).sha256sum == config and unit(host)["ActiveState"] == "active"
    assert "--cluster-reset-restore-path=" in host.file(f"{backup}/RESTORE.txt").content_string


def test_scheduled_backups_can_be_switched_off_again(host, ansible_playbook):
    run = ansible_playbook(RECOVER, "--tags", "k3s_recover_watch")
    assert run.returncode == 0, run.output[-3000:]
    assert not host.file("/etc/systemd/system/integr8scode-k3s-backup.timer").exists


# ----------------------------------------------------------------------------- hang


def test_a_k3s_that_never_reports_ready_fails_the_recovery_within_its_timeout(host, ansible_playbook):
    before = {
        "backups": set(backups(host)),
        "env": host.file(f"{STACK}/.env").sha256sum,
        "volumes": sorted(sh(host, "docker volume ls -q").split()),
        "token": host.file(f"{DATA}/server/token").sha256sum,
    }
    sh(host, f"mkdir -p {DROPIN.rsplit('/', 1)[0]} && printf '[Service]\\nEnvironment=K3S_STANDIN_NEVER_READY=1 "
             f"K3S_STANDIN_NEVER_READY_INTERVAL=2\\n' > {DROPIN} && systemctl daemon-reload")  # fmt: skip
    timeout = 20
    try:
        started = time.monotonic()
        run = ansible_playbook(
            RECOVER, "-e", "k3s_recover_force=true", "-e", "k3s_recover_confirm=true",
            "-e", f"k3s_recover_ready_timeout={timeout}",
            # Retention is tested on its own (test_watch.py); here every older backup must stay.
            "-e", "k3s_recover_keep_backups=50",
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        sh(host, f"rm -f {DROPIN} && systemctl daemon-reload")
    text = flat(run.output)
    print(f"\nhang test: recover.yml failed after {elapsed:.1f} s (k3s_recover_ready_timeout={timeout})")
    assert run.returncode != 0
    assert f"k3s did not report ready within k3s_recover_ready_timeout ({timeout}s)" in text, text[-4000:]
    assert "did not finish within" in text
    assert "not a member of the etcd cluster" in text, "the failure must carry the unit's journal tail"
    # Failed after the wipe: rolled back at once, never left with k3s and the workers stopped.
    assert "ROLLED BACK:" in text and "started again on the previous state" in text, text[-4000:]
    assert "Fix the cause and re-run recover.yml" in text
    new = sorted(set(backups(host)) - before["backups"])
    assert len(new) == 1, new
    backup = f"{BACKUPS}/{new[0]}"
    assert_verifies(host, backup)
    # Nothing but what the wipe deletes (server/db, server/tls, k3s.yaml; all in the backup).
    assert before["backups"] <= set(backups(host)), "an older backup was deleted"
    assert host.file(f"{STACK}/.env").sha256sum == before["env"]
    assert sorted(sh(host, "docker volume ls -q").split()) == before["volumes"]
    assert host.file(f"{DATA}/server/token").sha256sum == before["token"]
    assert host.file(CONFIG).exists
    assert unit(host)["ActiveState"] in ("active", "activating"), "the rollback starts k3s on the previous state"
    assert_not_stopped(host, WORKERS)
    STATE["hang_backup"] = backup


def live_sums(host, manifest: dict, roots: list[str]) -> tuple[dict, dict]:
    """(saved, live) {source: sha256} of every file the backup holds under ``roots``, and of every
    file there now (a file the rollback left behind counts too)."""
    saved = {e["source"]: e["sha256"] for e in manifest["files"].values()
             if any(e["source"] == r or e["source"].startswith(r + "/") for r in roots)}  # fmt: skip
    listing = sh(host, "find " + " ".join(roots) + " -type f -print0 2>/dev/null | xargs -0 -r sha256sum || true")
    live = {line.split(None, 1)[1].strip(): line.split()[0] for line in listing.splitlines() if line.strip()}
    return saved, live


def test_the_rollback_restores_everything_byte_for_byte_and_starts_the_workers(host, ansible_playbook):
    """config.yaml, server/db, server/tls, k3s.yaml and the app's kubeconfig come back exactly as the
    backup holds them (compared with k3s kept from starting, which rewrites its kubeconfig and
    certificates), the workers are restarted on the restored kubeconfig, and k3s serves again."""
    current = eth0_ip(host)
    backup = STATE["hang_backup"]
    manifest = manifest_of(host, backup)
    roots = [CONFIG, f"{DATA}/server/db", f"{DATA}/server/tls", "/etc/rancher/k3s/k3s.yaml",
             f"{STACK}/backend/kubeconfig.yaml"]  # fmt: skip
    # The unit lives in /etc (the installer's), where a runtime mask does not reach: a drop-in
    # whose ExecStartPre fails keeps it from starting.
    no_start = DROPIN.replace("never-ready", "no-start")
    sh(host, f"printf '[Service]\\nExecStartPre=/bin/false\\n' > {no_start} && systemctl daemon-reload")
    try:
        run = ansible_playbook(
            RECOVER, "-e", "k3s_recover_rollback=true", "-e", f"k3s_recover_rollback_from={backup}",
            "-e", "k3s_recover_confirm=true",
        )  # fmt: skip
        assert run.returncode == 0, run.output[-4000:]
        assert "start failed" in flat(run.output), "k3s must have been kept from starting for the comparison"
        saved, live = live_sums(host, manifest, roots)
    finally:
        sh(host, f"rm -f {no_start} && systemctl daemon-reload && systemctl start --no-block k3s.service")
    assert saved and any("/server/db/" in s for s in saved) and any(s.endswith("kubeconfig.yaml") for s in saved)
    assert live == saved, {
        k: (saved.get(k), live.get(k)) for k in set(saved) | set(live) if saved.get(k) != live.get(k)
    }
    assert "restarted " + ", ".join(WORKERS) in flat(run.output)
    wait_until(lambda: node_ready_at(host, current), f"the node Ready at {current} after the rollback")
    for worker in WORKERS:
        wait_worker_up(host, worker)


# ----------------------------------------------------------------------------- etcd's own hang

MOVED_IP, MOVED_GW = "10.99.0.5", "10.99.0.1"


def test_etcd_hang_after_site_yml_on_a_new_address_is_found_and_recovered_by_reset(host, ansible_playbook):
    """The address moves and the user reruns site.yml: its k3s role writes the new node-ip and
    restarts k3s, which rewrites server/db/etcd/config and its serving certificates for the new
    address before etcd starts (pkg/etcd/etcd.go, pkg/daemons/control/deps); only etcd's member
    list keeps the old peer URL, so k3s logs "not a member of the etcd cluster" and stays
    activating without a restart (k3s #7558, #2732). Nothing in the files shows the old address:
    recover.yml must find the hang in the journal of k3s's current process, then the reset
    strategy (--cluster-reset, k3s #4296) brings k3s and the app back at the new address."""
    # And a release with k3s #12844: the node keeps its stale InternalIP after the reset, which the
    # reset strategy must see and fix (delete the node, restart).
    sh(host, "echo K3S_STANDIN_STALE_INTERNAL_IP=1 >> /etc/default/k3s")
    try:
        hang_and_reset(host, ansible_playbook)
    finally:
        sh(host, "sed -i '/^K3S_STANDIN_STALE_INTERNAL_IP=/d' /etc/default/k3s")


def hang_and_reset(host, ansible_playbook):
    old = change_address(host, MOVED_IP, MOVED_GW)
    started = time.monotonic()
    rerun = ansible_playbook(
        str(REPO / "molecule" / "recover-sqlite" / "k3s-rerun.yml"), "-e", '{"k3s_ready_timeout": 15}'
    )
    print(f"\nsite.yml's k3s part on the new address: {time.monotonic() - started:.1f} s, rc {rerun.returncode}")
    # k3s never reports ready: the restart fails (bounded by k3s_ready_timeout), after the write.
    assert rerun.returncode != 0
    assert "Restart k3s" in flat(rerun.output), flat(rerun.output)[-3000:]
    wait_until(
        lambda: "not a member of the etcd cluster" in sh(host, "journalctl -u k3s -n 5 -o cat --no-pager"),
        "k3s looping on the etcd member list",
    )
    state = unit(host)
    assert (state["ActiveState"], state["NRestarts"]) == ("activating", "0"), state
    assert f"node-ip: {MOVED_IP}" in sh(host, f"cat {CONFIG}")
    assert f"https://{MOVED_IP}:2380" in sh(host, f"cat {DATA}/server/db/etcd/config")
    assert old not in sh(host, f"cat {DATA}/server/db/etcd/config")
    started = time.monotonic()
    run = ansible_playbook(RECOVER, "-e", "k3s_recover_strategy=reset", "-e", "k3s_recover_confirm=true")
    print(f"\netcd never-ready, reset strategy: recover.yml {time.monotonic() - started:.1f} s")
    text = flat(run.output)
    assert run.returncode == 0, text[-4000:]
    # (the yaml callback doubles the apostrophe of "etcd's")
    assert f"member list holds {old} while k3s starts on {MOVED_IP}" in text, text[-4000:]
    assert "not a member of the etcd cluster` (k3s #7558" in text
    assert node_ready_at(host, MOVED_IP)
    member = sh(host, f"cat {DATA}/server/db/etcd/config")
    assert f"https://{MOVED_IP}:2380" in member
    for worker in WORKERS:
        wait_worker_up(host, worker)

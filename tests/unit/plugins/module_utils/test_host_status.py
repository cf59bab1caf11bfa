"""module_utils/host_status.py: each part's verdict and the table, over the real owners of each
fact (drift.detect through a fake host, the real ComposeProbe over a fake Docker Engine, real
backups and their manifests, the watcher program's settings file as the role writes it). The table on a
converged test host, and with a stopped worker, is asserted by molecule/stack/tests/test_3a_status.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from hostnet import HostRunner, default, nic, prefix, tunnel
from k3s_files import kine_db, node_json

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils import host_status as hs  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils import programs  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.compose import project  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import detect  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (  # noqa: E402
    judge,
    token_expiry,
)

NOW = 1_800_000_000
NODE = "192.168.1.20"
ETH0 = nic("eth0", NODE + "/24")
LAN_ROUTES = [default("eth0"), prefix("192.168.1.0/24", "eth0")]


# ------------------------------------------------------------------------- node address, k3s


def k3s_host(tmp_path, node_ip=NODE):
    etc = tmp_path / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "config.yaml").write_text(f"node-ip: {node_ip}\nflannel-iface: eth0\n")
    db = tmp_path / "data" / "server" / "db"
    db.mkdir(parents=True, exist_ok=True)
    kine_db(str(db / "state.db"), [("/registry/minions/node1", node_json(node_ip), 0)])
    return dict(
        config_file=str(etc / "config.yaml"), data_dir=str(tmp_path / "data"), service="k3s", node_name="node1",
        node_ip=None, node_interface=None, flannel_iface=None, kubeconfigs=[], hung_start_after=300.0,
    )  # fmt: skip


def drift_of(tmp_path, links, routes=None, unit=None, node_ip=NODE):
    return detect(HostRunner(links, LAN_ROUTES if routes is None else routes, unit), k3s_host(tmp_path, node_ip))[0]


READY = dict(ready=True, nodes=[dict(name="node1", ready=True, internal_ip=[NODE])], message="")


def test_a_converged_node_names_its_address_interface_and_why(tmp_path):
    sec = hs.node_section(drift_of(tmp_path, [ETH0]))
    assert sec["state"] == hs.OK
    assert sec["address"] == NODE and sec["interface"] == "eth0" and sec["source"] == "recorded"
    assert sec["summary"].startswith(f"{NODE} on eth0 (recorded): k3s already uses {NODE}")
    assert sec["rows"] == [] and sec["drift"] is False


def test_a_drifted_node_fails_with_the_findings_and_the_command_that_fixes_it(tmp_path):
    # The LAN moved to 10.20.30.40: the recorded address is gone, the policy picks the new one.
    sec = hs.node_section(drift_of(tmp_path, [nic("eth0", "10.20.30.40/24")], [default("eth0", "10.20.30.1")]))
    assert sec["state"] == hs.FAIL and sec["address"] == "10.20.30.40" and sec["configured"] == NODE
    assert "config.yaml has 192.168.1.20" in sec["summary"]
    assert any(r["name"] == "drift" and "not assigned" in r["text"] for r in sec["rows"])
    assert sec["rows"][-1] == hs.row("fix", hs.FAIL, "ansible-playbook playbooks/recover.yml")


def test_a_drift_the_recovery_refuses_names_why_instead_of_recover_yml(tmp_path):
    params = k3s_host(tmp_path)
    dropins = Path(params["config_file"] + ".d")
    dropins.mkdir()
    (dropins / "50-user.yaml").write_text(f"node-ip: {NODE}\n")
    drift = detect(HostRunner([nic("eth0", "10.20.30.40/24")], [default("eth0", "10.20.30.1")]), params)[0]
    fix = hs.node_section(drift)["rows"][-1]
    assert fix["name"] == "fix" and fix["state"] == hs.FAIL
    assert fix["text"].startswith("recover.yml refuses this host: node-ip is set in %s" % (dropins / "50-user.yaml"))


def test_only_a_tunnel_up_is_a_failure_naming_the_pins(tmp_path):
    sec = hs.node_section(drift_of(tmp_path, [tunnel("nordlynx", "10.5.0.2/16")], []))
    assert sec["state"] == hs.FAIL and sec["address"] is None
    assert "k3s_node_ip" in sec["summary"] and "k3s_node_interface" in sec["summary"]


def test_an_unreadable_host_is_a_warning_not_an_error():
    assert hs.node_section(None, "the ip command (iproute2) is required")["state"] == hs.WARN
    assert hs.k3s_section(None)["state"] == hs.WARN


def test_k3s_active_with_every_node_ready(tmp_path):
    sec = hs.k3s_section(drift_of(tmp_path, [ETH0]), READY)
    assert sec["state"] == hs.OK
    assert sec["summary"] == "k3s active (running); 1 of 1 nodes Ready"
    assert sec["rows"] == [hs.row("node1", hs.OK, f"Ready, InternalIP {NODE}")]


def test_a_not_ready_node_fails_its_row_and_the_part(tmp_path):
    nodes = dict(ready=False, nodes=[dict(name="node1", ready=False, internal_ip=[NODE])], message="node(s) not Ready")
    sec = hs.k3s_section(drift_of(tmp_path, [ETH0]), nodes)
    assert sec["state"] == hs.FAIL and sec["nodes_ready"] == 0
    assert sec["rows"][0]["state"] == hs.FAIL and sec["rows"][0]["text"].startswith("NotReady")
    assert "API: node(s) not Ready" in sec["summary"]


def test_a_crash_looping_unit_fails(tmp_path):
    unit = {"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "7", "MainPID": "0"}
    sec = hs.k3s_section(drift_of(tmp_path, [ETH0], unit=unit), {"skipped": "k3s is activating"})
    assert sec["state"] == hs.FAIL and sec["crash_looping"] is True
    assert "crash-looping" in sec["summary"] and "NRestarts=7" in sec["summary"]


def test_nodes_not_read_for_want_of_the_client_is_a_warning(tmp_path):
    sec = hs.k3s_section(drift_of(tmp_path, [ETH0]), {"skipped": "the kubernetes Python client is missing"})
    assert sec["state"] == hs.WARN and sec["api_error"] == "the kubernetes Python client is missing"


def test_no_k3s_is_no_failure(tmp_path):
    params = dict(k3s_host(tmp_path), config_file=str(tmp_path / "none.yaml"), data_dir=str(tmp_path / "none"))
    drift = detect(HostRunner([ETH0], LAN_ROUTES), params)[0]
    assert hs.k3s_section(drift)["state"] == hs.NONE
    node = hs.node_section(drift)
    assert node["state"] == hs.OK and node["summary"].endswith("(k3s is not installed: the address it would get)")


# ------------------------------------------------------------------------------------ compose


def container(cid, service, status="running", *, health=None, exit_code=0, restarts=0, started="2026-01-01T00:00:00Z",
              policy="unless-stopped", oneshot_of=None):  # fmt: skip
    labels = {project.LABEL_PROJECT: "integr8scode", project.LABEL_SERVICE: service}
    if oneshot_of:
        labels[project.LABEL_DEPENDS_ON] = f"{oneshot_of}:service_completed_successfully:false"
    state = {"Status": status, "ExitCode": exit_code, "StartedAt": started, "Restarting": status == "restarting"}
    if health:
        state["Health"] = {"Status": health, "Log": []}
    return dict(
        Id=cid, Labels=labels, State=state, RestartCount=restarts, HostConfig={"RestartPolicy": {"Name": policy}},
        Config={"Env": ["MONGO_PASSWORD=not-a-real-secret"]},
    )  # fmt: skip


class FakeEngine:
    """The two Engine calls the probe makes: list by label, inspect."""

    def __init__(self, containers):
        self.by_id = {c["Id"]: c for c in containers}
        self.api = self

    def containers(self, all=False, filters=None):  # noqa: A002 - the SDK's signature
        wanted = filters["label"].split("=", 1)[1]
        return [dict(Id=c["Id"], Labels=c["Labels"]) for c in self.by_id.values()
                if c["Labels"][project.LABEL_PROJECT] == wanted]  # fmt: skip

    def inspect_container(self, cid):
        return self.by_id[cid]


def converged(**replace):
    found = {
        "mongo": container("c1", "mongo", health="healthy"),
        "backend": container("c2", "backend", health="healthy", oneshot_of="cert-generator"),
        "k8s-worker": container("c3", "k8s-worker"),
        "cert-generator": container("c4", "cert-generator", "exited", policy="no"),
    }
    found.update(replace)
    return [c for c in found.values() if c is not None]


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A stack directory whose definition names mongo, backend, k8s-worker and cert-generator; the
    Engine holds ``containers``. Returns a function: containers -> compose section."""
    (tmp_path / "stack").mkdir()

    def load_definition(runner, client, project_src=None, project_name=None, files=None):
        assert project_src == str(tmp_path / "stack")
        services = ["backend", "cert-generator", "k8s-worker", "mongo"]
        return project.Definition(project_name or "integr8scode", services, {"cert-generator"}, "test")

    monkeypatch.setattr(project, "load_definition", load_definition)

    def look(containers):
        monkeypatch.setattr(project, "docker_client", lambda host=None: FakeEngine(containers))
        return hs.gather_compose(None, str(tmp_path / "stack"), "", ["docker-compose.yaml"], None)

    return look


def test_a_converged_stack_is_ok_row_by_row(stack):
    sec = stack(converged())
    assert sec["state"] == hs.OK, sec
    assert [r["name"] for r in sec["rows"]] == ["backend", "cert-generator", "k8s-worker", "mongo"]
    assert [r["state"] for r in sec["rows"]] == [hs.OK] * 4
    rows = {r["name"]: r["text"] for r in sec["rows"]}
    assert rows["mongo"] == "running, healthy, restarts 0"
    assert rows["cert-generator"] == "one-shot, exited (exit code 0), restarts 0"
    assert sec["summary"] == f"project integr8scode in {sec['stack_dir']}: 4 of 4 services as they should be"
    assert "not-a-real-secret" not in json.dumps(sec)


def test_a_stopped_worker_is_down_although_its_policy_would_restart_it(stack):
    # `docker stop k8s-worker`: exited 137 with restart policy unless-stopped, which compose_wait's
    # probe waits for; Docker never restarts a stopped container, so the table says it is down.
    sec = stack(converged(**{"k8s-worker": container("c3", "k8s-worker", "exited", exit_code=137)}))
    assert sec["state"] == hs.FAIL
    worker = next(r for r in sec["rows"] if r["name"] == "k8s-worker")
    assert worker == hs.row("k8s-worker", hs.FAIL, "exited (exit code 137), restarts 0: not running")
    assert sec["services"]["k8s-worker"]["state"] == "exited"
    assert sec["summary"].endswith("3 of 4 services as they should be; not: k8s-worker")
    assert [r["state"] for r in sec["rows"] if r["name"] != "k8s-worker"] == [hs.OK] * 3


def test_a_crash_loop_is_a_failure_with_the_probes_reason(stack):
    looping = container("c3", "k8s-worker", "restarting", exit_code=1, restarts=9)
    worker = next(r for r in stack(converged(**{"k8s-worker": looping}))["rows"] if r["name"] == "k8s-worker")
    assert worker["state"] == hs.FAIL and "crash loop" in worker["text"] and "restarts 9" in worker["text"]


def test_a_service_without_a_container_and_one_only_a_profile_started(stack):
    extra = container("c9", "grafana", health="healthy")
    sec = stack(converged(mongo=None, grafana=extra))
    rows = {r["name"]: r for r in sec["rows"]}
    assert rows["mongo"] == hs.row("mongo", hs.FAIL, "no container: not running")
    # Not in the definition (a profile), but a container of the project: shown too.
    assert rows["grafana"]["state"] == hs.OK


def test_an_unhealthy_service_is_a_warning(stack):
    sec = stack(converged(mongo=container("c1", "mongo", health="unhealthy")))
    assert sec["state"] == hs.WARN
    assert next(r for r in sec["rows"] if r["name"] == "mongo")["text"].startswith("running, unhealthy")


def test_no_stack_and_a_stack_never_started(stack, tmp_path):
    assert hs.gather_compose(None, str(tmp_path / "missing"), "", [], None)["state"] == hs.NONE
    sec = stack([])
    assert sec["state"] == hs.FAIL and "has no containers (not started)" in sec["summary"]


def test_an_engine_that_does_not_answer_is_a_failure_with_its_reason(tmp_path, monkeypatch):
    (tmp_path / "stack").mkdir()

    def refused(host=None):
        raise project.DockerException("connection refused")

    monkeypatch.setattr(project, "docker_client", refused)
    sec = hs.gather_compose(None, str(tmp_path / "stack"), "", [], None)
    assert sec["state"] == hs.FAIL and sec["summary"].endswith("connection refused")


# ------------------------------------------------------------------------------------ app token


def jwt(claims):
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def app_kubeconfig(path, token, server=f"https://{NODE}:6443"):
    config = {
        "clusters": [{"name": "k3s", "cluster": {"server": server, "certificate-authority-data": "Y2E="}}],
        "users": [{"name": "app", "user": {"token": token}}],
        "contexts": [{"name": "app", "context": {"cluster": "k3s", "user": "app"}}],
        "current-context": "app",
    }
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    return str(path)


def test_the_token_expiry_is_its_jwt_exp():
    assert token_expiry({"users": [{"user": {"token": jwt({"exp": NOW + 5, "sub": "x"})}}]}) == NOW + 5
    assert token_expiry({"users": [{"user": {"token": "legacy-opaque-token"}}]}) is None
    assert token_expiry({"users": [{"user": {"token": "a.!!!.c"}}]}) is None
    assert token_expiry({}) is None


def test_a_fresh_accepted_token_shows_its_expiry_and_never_itself(tmp_path):
    token = jwt({"exp": NOW + 23 * 3600 + 300})
    config, judged = judge(app_kubeconfig(tmp_path / "kc.yaml", token), NODE)
    sec = hs.token_section(judged["path"], NOW, judged=judged, expires=token_expiry(config), proof=(True, 403, ""))
    assert sec["state"] == hs.OK, sec
    assert sec["summary"] == "expires 2027-01-16T07:05:00Z (in 23h 5m); accepted by the API (403)"
    assert sec["expires_in"] == 23 * 3600 + 300
    assert token not in json.dumps(sec)


def test_an_expired_or_refused_token_fails(tmp_path):
    config, judged = judge(app_kubeconfig(tmp_path / "kc.yaml", jwt({"exp": NOW - 120})), NODE)
    sec = hs.token_section(judged["path"], NOW, judged=judged, expires=token_expiry(config), proof=(False, 401, "x"))
    assert sec["state"] == hs.FAIL and sec["summary"].startswith("EXPIRED 2027-01-15T07:58:00Z (2m ago)")
    assert hs.row("api", hs.FAIL, "the k3s API did not accept the token: 401 x") in sec["rows"]


def test_a_kubeconfig_on_the_old_address_or_missing_fails(tmp_path):
    _config, judged = judge(app_kubeconfig(tmp_path / "kc.yaml", jwt({}), "https://10.9.9.9:6443"), NODE)
    sec = hs.token_section(judged["path"], NOW, judged=judged, proof=(True, 200, ""))
    assert sec["state"] == hs.FAIL and "expected https://192.168.1.20:6443" in sec["rows"][0]["text"]
    _config, judged = judge(str(tmp_path / "absent.yaml"), NODE)
    assert hs.token_section(judged["path"], NOW, judged=judged)["state"] == hs.FAIL
    assert hs.token_section(None, NOW, present=False)["state"] == hs.NONE


# ------------------------------------------------------------------------------------ watcher


def render_program(tmp_path, mode, state_dir):
    """The program as roles/k3s_recover installs it: the launcher under its name and its settings
    file (what is read) in the settings directory (here under tmp_path, see settings_dir)."""
    path = tmp_path / "integr8scode-k3s-drift-check"
    path.write_text("#!/usr/bin/python3\n" + (ROOT / "plugins/module_utils/programs.py").read_text())
    settings = {"mode": mode, "state_dir": str(state_dir), "backup_root": "/b"}
    document = {"library": "/usr/local/lib/x", "entry": "k3s.watch:main", "settings": settings}
    Path(programs.settings_path(str(path))).write_text(json.dumps(document, indent=4))
    return str(path)


@pytest.fixture(autouse=True)
def settings_dir(tmp_path, monkeypatch):
    """The programs' settings directory (/etc/integr8scode-provision on a host) under tmp_path."""
    directory = tmp_path / "etc-integr8scode-provision"
    directory.mkdir()
    monkeypatch.setattr(programs, "SETTINGS_DIR", str(directory))
    return directory


ACTIVE = {"active_state": "active"}


def test_the_installed_programs_mode_and_last_action(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps({
        "last_check": {"at": NOW, "outcome": "healthy, node IP 192.168.1.20"},
        "last_recovery": {"at": NOW - 3600, "outcome": "ok", "node_ip": NODE, "backup": "/b/x", "message": "long"},
    }))  # fmt: skip
    settings = watch.installed_settings(render_program(tmp_path, "recover", state_dir))
    assert settings["mode"] == "recover" and settings["state_dir"] == str(state_dir)
    state, line = watch.read_status(settings["state_dir"])
    sec = hs.watcher_section(settings, state, line, ACTIVE)
    assert sec["state"] == hs.OK and sec["mode"] == "recover"
    assert sec["summary"].startswith("mode recover; last check 2027-01-15T08:00:00Z: healthy, node IP 192.168.1.20")
    assert "last recovery 2027-01-15T07:00:00Z: ok, onto 192.168.1.20, backup /b/x" in sec["summary"]
    assert "message" not in sec["last_recovery"]


def test_a_failed_recovery_a_hold_and_a_stopped_follower(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps({"last_check": {"at": NOW, "outcome": "x"},
                                                      "failed_recovery": {"at": NOW, "stage": "wipe"}}))  # fmt: skip
    watch.hold(str(state_dir), "rollback.yml", clock=lambda: NOW)
    settings = watch.installed_settings(render_program(tmp_path, "warn", state_dir))
    state, line = watch.read_status(str(state_dir))
    sec = hs.watcher_section(settings, state, line, {"active_state": "inactive"})
    assert sec["state"] == hs.FAIL
    assert [(r["name"], r["state"]) for r in sec["rows"]] == [
        ("follower", hs.WARN), ("recovery", hs.FAIL), ("hold", hs.WARN)]  # fmt: skip


def test_no_program_is_mode_off_and_a_damaged_one_says_so(tmp_path):
    assert watch.installed_settings(str(tmp_path / "none")) is None
    assert hs.gather_watcher(HostRunner([ETH0], []), str(tmp_path / "none"))["state"] == hs.NONE
    (tmp_path / "odd").write_text("#!/usr/bin/env python3\nprint('hi')\n")
    sec = hs.gather_watcher(HostRunner([ETH0], []), str(tmp_path / "odd"))
    assert sec["state"] == hs.WARN and f"cannot read {programs.settings_path('odd')}: No such file" in sec["summary"]
    (Path(programs.SETTINGS_DIR) / "odd.json").write_text('{"settings": {}}')
    sec = hs.gather_watcher(HostRunner([ETH0], []), str(tmp_path / "odd"))
    assert sec["state"] == hs.WARN and "does not hold library, entry (module:function) and settings" in sec["summary"]
    off = hs.watcher_section(watch.installed_settings(render_program(tmp_path, "off", tmp_path)), {}, "no check yet")
    assert off["state"] == hs.NONE and off["mode"] == "off"


# ------------------------------------------------------------------------------------ backups


def make_backup(root, name, *, created, content=b"datastore", kind="wipe"):
    directory = root / name
    (directory / "files").mkdir(parents=True)
    (directory / "files" / "state.db").write_bytes(content)
    files = {"files/state.db": {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}}
    manifest = dict(
        files=files, created=created, verified=True, meta={"strategy": kind} if kind else {"kind": "scheduled"}
    )
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_the_newest_backup_that_verifies_and_its_age(tmp_path):
    make_backup(tmp_path, "20270115T060000Z", created="2027-01-15T06:00:00Z")
    newest = make_backup(tmp_path, "20270115T070000Z", created="2027-01-15T07:00:00Z", kind=None)
    sec = hs.gather_backups(str(tmp_path), NOW)
    assert sec["state"] == hs.OK
    assert sec["newest"]["name"] == "20270115T070000Z" and sec["newest"]["age"] == 3600
    assert sec["newest"]["path"] == str(newest) and sec["newest"]["kind"] == "scheduled"
    assert sec["summary"] == (
        f"20270115T070000Z (scheduled), taken 2027-01-15T07:00:00Z (1h 0m ago), verified now: 1 files; 2 in {tmp_path}"
    )


def test_a_newer_backup_that_no_longer_verifies_is_passed_over_and_named(tmp_path):
    make_backup(tmp_path, "20270115T060000Z", created="2027-01-15T06:00:00Z")
    broken = make_backup(tmp_path, "20270115T070000Z", created="2027-01-15T07:00:00Z")
    (broken / "files" / "state.db").write_bytes(b"DATASTORE")
    sec = hs.gather_backups(str(tmp_path), NOW)
    assert sec["state"] == hs.WARN and sec["newest"]["name"] == "20270115T060000Z"
    assert sec["unverified"] == ["20270115T070000Z"]
    assert sec["rows"] == [hs.row("20270115T070000Z", hs.WARN, "newer, does not verify: files/state.db does not "
                                  "match its sha256")]  # fmt: skip


def test_no_backup_verifies_and_no_backups_at_all(tmp_path):
    broken = make_backup(tmp_path / "root", "20270115T070000Z", created="2027-01-15T07:00:00Z")
    (broken / "files" / "state.db").unlink()
    assert hs.gather_backups(str(tmp_path / "root"), NOW)["state"] == hs.FAIL
    assert hs.gather_backups(str(tmp_path / "none"), NOW)["state"] == hs.NONE


# ------------------------------------------------------------------------------------ table


def test_the_table_with_a_stopped_worker(tmp_path, stack):
    sections = {
        "node_address": hs.node_section(drift_of(tmp_path, [ETH0])),
        "compose": stack(converged(**{"k8s-worker": container("c3", "k8s-worker", "exited", exit_code=137)})),
        "vpn": hs.vpn_section(False),
    }
    lines = hs.render("host1", sections, NOW)
    assert lines[0] == "Integr8sCode on host1 at 2027-01-15T08:00:00Z"
    assert lines[1].split() == ["PART", "STATE", "WHAT", "WAS", "SEEN"]
    # Every line's state starts in the same column.
    column = lines[1].index("STATE")
    for line in lines[2:-1]:
        assert line[column - 2 : column] == "  " and line[column] != " ", line
    worker = next(line for line in lines if line.strip().startswith("k8s-worker"))
    assert worker.startswith("  k8s-worker") and worker[column:].startswith("FAIL  exited (exit code 137)")
    assert next(line for line in lines if line.startswith("node address"))[column:].startswith("ok    192.168.1.20")
    assert next(line for line in lines if line.startswith("vpn"))[column:] == "-     NordVPN client not installed"
    # The part's own line is not repeated when its rows say what is wrong.
    assert lines[-1] == "1 problem(s): compose/k8s-worker: exited (exit code 137), restarts 0: not running"


def test_a_healthy_table_says_nothing_is_wrong(tmp_path, stack):
    sections = {"node_address": hs.node_section(drift_of(tmp_path, [ETH0])), "compose": stack(converged())}
    assert hs.render("host1", sections, NOW)[-1] == "0 problem(s): none found"
    assert hs.problems(sections) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h 0m"), (86399, "23h 59m"), (90000, "1d 1h")],
)
def test_durations(seconds, text):
    assert hs.duration(seconds) == text


def test_the_refresh_timers_last_outcome_is_a_row_and_a_failed_one_fails_the_token(tmp_path):
    config, judged = judge(app_kubeconfig(tmp_path / "kc.yaml", jwt({"exp": NOW + 3600})), NODE)
    expires = token_expiry(config)
    never = hs.token_section(judged["path"], NOW, judged=judged, expires=expires, proof=(True, 200, ""))
    assert hs.row("refresh", hs.NONE, "never ran") in never["rows"] and never["state"] == hs.OK
    ok = {"at": NOW - 600, "ok": True, "message": "kubeconfig refreshed", "last_success": NOW - 600}
    sec = hs.token_section(judged["path"], NOW, judged=judged, expires=expires, proof=(True, 200, ""), refresh=ok)
    assert sec["state"] == hs.OK and sec["refresh"].startswith("ok at ")
    failed = {"at": NOW - 60, "ok": False, "message": "cert-generator exited 0 but ...", "last_success": NOW - 600}
    sec = hs.token_section(judged["path"], NOW, judged=judged, expires=expires, proof=(True, 200, ""), refresh=failed)
    assert sec["state"] == hs.FAIL
    assert [r for r in sec["rows"] if r["name"] == "refresh"][0]["text"].startswith("FAILED at ")

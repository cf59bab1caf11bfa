"""playbooks/status.yml, "one look at the host": the table on the converged host (node address
and why, k3s active and its node Ready, every compose service running, the app token's expiry in
the future; no watcher, no backups, no NordVPN in this scenario), the same in check mode with no
change, and a stopped worker shown stopped. The worker is started again and the table is back to
what it was: the tests after this file find the host as the converge left it."""

from __future__ import annotations

import base64
import json
import time

import pytest
from stackhost import PROJECT, app_kubeconfig, containers, node_ip, secret_values
from testhost import wait_until, wait_worker_up

STATUS = "../../playbooks/status.yml"
# The JSON callback: the table as the debug task printed it, and the module's structured result,
# without the line wrapping of the default callback.
AS_JSON = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
WORKER = "k8s-worker"


def look(run, host, *args):
    """(table lines, the module's result, the run) of one status.yml run on ``host``."""
    result = run(STATUS, *args, env=AS_JSON)
    assert result.returncode == 0, result.output[-4000:]
    # The report is the first JSON document of the output (an aggregate callback may print after it).
    report = json.JSONDecoder().raw_decode(result.output[result.output.index("{") :])[0]
    tasks = {task["task"]["name"]: task["hosts"][host.backend.host] for task in report["plays"][0]["tasks"]}
    assert report["stats"][host.backend.host]["changed"] == 0, report["stats"]
    return tasks["Print the table"]["msg"], tasks["Look at the host"], result


def converged_look(run, host):
    """``look`` once the table shows no problem: a worker restarted just before (test_3_refresh, or
    the stop below) counts as ready once it ran compose_wait's stable window without a restart, a
    state it reaches on its own; polled, bounded. The failure shows the last table."""
    seen = {}

    def converged():
        seen["look"] = look(run, host)
        return seen["look"][0][-1] == "0 problem(s): none found"

    try:
        wait_until(converged, "status.yml showing the host as converged", limit=180, interval=2)
    except AssertionError:
        raise AssertionError(seen["look"][0]) from None
    return seen["look"]


def line_of(table, title):
    """The table line of a part (or of a row, title indented by two spaces), from its STATE column."""
    column = table[1].index("STATE")
    found = [line for line in table[2:-1] if line[:column].rstrip() == title]
    assert len(found) == 1, (title, table)
    return found[0][column:]


def service_ids(host, service):
    out = host.check_output(
        f"docker ps -aq --filter label=com.docker.compose.project={PROJECT} "
        f"--filter label=com.docker.compose.service={service}"
    )
    ids = out.split()
    assert ids, f"no container of {service} carries the compose labels"
    return ids


def token_exp(host) -> int:
    """The app token's exp claim, read here to compare with the table (the token is not printed)."""
    token = app_kubeconfig(host)["users"][0]["user"]["token"]
    claims = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"]


def test_the_table_of_the_converged_host(host, ansible_playbook_on_host):
    table, looked, run = converged_look(ansible_playbook_on_host, host)
    status = looked["status"]
    assert table[0].startswith(f"Integr8sCode on {host.backend.host} at ")

    address = node_ip(host)
    assert line_of(table, "node address") == (
        f"ok    {address} on eth0 (recorded): k3s already uses {address} and it is still assigned to eth0"
    )
    assert status["node_address"]["address"] == address and status["node_address"]["drift"] is False

    assert line_of(table, "k3s") == "ok    k3s active (running); 1 of 1 nodes Ready"
    assert line_of(table, f"  {host.check_output('hostname')}") == f"ok    Ready, InternalIP {address}"

    # Every container of the project, found by its compose labels, has its row, running (one-shots:
    # exited 0) with the restart count Docker reports.
    inspected = containers(host)
    services = status["compose"]["services"]
    assert sorted(services) == sorted(inspected), (sorted(services), sorted(inspected))
    for service, info in inspected.items():
        text = line_of(table, f"  {service}")
        assert text.startswith("ok    "), text
        expected = "running" if info["State"]["Status"] == "running" else "exited (exit code 0)"
        assert expected in text and text.endswith(f"restarts {info['RestartCount']}"), (service, text)
    assert WORKER in services and services[WORKER]["state"] == "running"
    assert line_of(table, "compose").startswith(
        f"ok    project {PROJECT} in /opt/Integr8sCode: {len(inspected)} of {len(inspected)} services"
    )

    token = status["app_token"]
    assert token["expires"] == token_exp(host) and token["expires"] > time.time()
    assert token["accepted"] is True
    assert line_of(table, "app token").startswith(f"ok    expires {token['expires_at']} (in ")

    assert line_of(table, "watcher") == "-     not installed (k3s_recover_watch_mode off, no scheduled backups)"
    assert line_of(table, "backup") == "-     no backups in /var/backups/integr8scode-k3s"
    assert line_of(table, "vpn") == "-     NordVPN client not installed"
    for value in secret_values(host):
        assert value not in run.output, f"a secret ({len(value)} characters) appears in the status output"


def test_check_mode_runs_the_same_and_changes_nothing(ansible_playbook_on_host):
    run = ansible_playbook_on_host(STATUS, "--check")
    run.assert_no_changes("status.yml --check")
    assert "0 problem(s): none found" in run.output


@pytest.fixture
def stopped_worker(host):
    """k8s-worker stopped as a person would (`docker stop`), found by its compose labels; started
    again afterwards and waited for until it is up (its token answered 200)."""
    ids = service_ids(host, WORKER)
    host.check_output("docker stop " + " ".join(ids))
    try:
        yield ids
    finally:
        host.check_output("docker start " + " ".join(ids))
        wait_worker_up(host, WORKER)


def test_a_stopped_worker_shows_stopped(host, ansible_playbook_on_host, stopped_worker):
    table, looked, _run = look(ansible_playbook_on_host, host)
    worker = line_of(table, f"  {WORKER}")
    assert worker.startswith("FAIL  exited (exit code "), worker
    assert worker.endswith(": not running"), worker
    compose = looked["status"]["compose"]
    assert compose["state"] == "FAIL" and compose["services"][WORKER]["state"] == "exited"
    assert line_of(table, "compose").endswith(f"; not: {WORKER}")
    # Only the worker: every other service and part stays as it was.
    column = table[1].index("STATE")
    failing = [line[:column].strip() for line in table[2:-1] if line[column:].startswith(("WARN", "FAIL"))]
    assert failing == ["compose", WORKER], table
    assert table[-1].startswith(f"1 problem(s): compose/{WORKER}: exited"), table[-1]


def test_the_worker_is_back(host, ansible_playbook_on_host):
    # After the fixture above started it again: running, and the table is the converged one.
    for cid in service_ids(host, WORKER):
        assert host.check_output(f"docker inspect -f '{{{{.State.Status}}}}' {cid}") == "running"
    table, _looked, _run = converged_look(ansible_playbook_on_host, host)
    assert line_of(table, f"  {WORKER}").startswith("ok    running"), table

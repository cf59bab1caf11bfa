# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Reconnecting Integr8sCode to k3s: re-run cert-generator, judge the kubeconfig it wrote, start
the workers that read it, prove its token. Upstream's documented fix after an IP change
(`docker compose restart cert-generator`, then restart k8s-worker and pod-monitor), with the
checks its exit code cannot give (it is only its second script's). Used by k3s_rebuild and by
the stack role's refresh timer (``refresh_main``, the program integr8scode-kubeconfig-refresh);
the kubeconfig judgement and token proof are the ones the stack role makes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.compose.probe import (
    ComposeProbe,
    EventWaker,
    failure_details,
    log_tail,
    with_log_tail,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    containers_of,
    docker_client,
    load_definition,
    started_epoch,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write
from ansible_collections.integr8scode.provision.plugins.module_utils.host import LocalRunner
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import recorded_node_ip
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (
    PROBE_PATH,
    judge,
    prove_token,
    secure,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import poll

# A worker that restarts more often than this while waiting is crash-looping.
RESTART_THRESHOLD = 3
UNHEALTHY_GRACE = 30.0
# Upstream's workers have no healthcheck: ready is running without a restart for this long (probe.py).
STABLE_SECONDS = 5.0
LOG_LINES = 30


class AppError(Exception):
    """A failed reconnect step; ``details`` (services, logs) belong in the module result."""

    def __init__(self, message, **details):
        super(AppError, self).__init__(message)
        self.details = details


def service_ids(client, definition, service):
    found = containers_of(client, definition.name, service)
    if not found:
        raise AppError(
            "the compose project %s has no container for %s (deploy the stack first)" % (definition.name, service)
        )
    return found


def wait_services(client, definition, services, oneshots, *, timeout, what):
    """Per-service report once every one of ``services`` is ready; AppError with the logs if not."""
    probe = ComposeProbe(
        client,
        definition,
        services,
        oneshots,
        restart_threshold=RESTART_THRESHOLD,
        unhealthy_grace=UNHEALTHY_GRACE,
        stable_seconds=STABLE_SECONDS,
    )
    waker = EventWaker(client, definition.name)
    try:
        outcome = poll(probe, timeout, sleep=waker.sleep)
    finally:
        waker.close()
    seen = outcome.observation.get("services", {})
    if not outcome.ready:
        bad = sorted((outcome.observation.get("failed") or outcome.observation.get("waiting") or {}).keys())
        health_logs, logs = failure_details(client, probe, bad, LOG_LINES)
        raise AppError(
            with_log_tail("%s did not become ready: %s" % (what, outcome.message), logs),
            services=seen,
            healthcheck_logs=health_logs,
            logs=logs,
        )
    return seen


def explain_consumers(client, definition, generator, kubeconfig, log_lines=LOG_LINES):
    """Why kubeconfig consumers may be failing: (sentence, generator's log lines). Upstream's
    cert-generator does the Kubernetes part in its first script and exits with the second's code
    (cert-generator/Dockerfile), so its exit code hides a failed Kueue step; its log tail holds
    the real error, and a kubeconfig older than its latest run says it never got that far."""
    ids = containers_of(client, definition.name, generator)
    if not ids:
        return "%s has no container" % generator, []
    state = client.api.inspect_container(ids[0]).get("State") or {}
    lines = log_tail(client, ids[0], log_lines)
    if state.get("Status") == "running":
        return "%s is still running" % generator, lines
    exit_code = state.get("ExitCode")
    sentence = "%s exited %s" % (generator, exit_code)
    if kubeconfig:
        _config, facts = judge(kubeconfig, written_after=started_epoch(state.get("StartedAt")))
        if facts["problems"]:
            if exit_code == 0:
                sentence = "%s exited 0 without writing a fresh kubeconfig (%s: %s)" % (
                    generator,
                    kubeconfig,
                    "; ".join(facts["problems"]),
                )
            else:
                sentence += "; %s: %s" % (kubeconfig, "; ".join(facts["problems"]))
    return sentence, lines


def stale_workers(services, written_at):
    """Workers (of a wait_services report) whose container last started before the kubeconfig was
    written, with their start time; upstream's workers read it only at start-up. ``written_at`` is
    the file's mtime in whole seconds, hence the comparison on whole seconds."""
    return {
        name: entry["started_at"]
        for name, entry in services.items()
        if written_at is not None and entry.get("started_at") is not None and int(entry["started_at"]) < written_at
    }


def reconnect_app(
    client,
    definition,
    *,
    kubeconfig,
    generator,
    workers,
    node_ip,
    api_port=6443,
    mode=0o600,
    probe_path=PROBE_PATH,
    timeout=300.0,
    before_workers=None,
    on_phase=None,
):
    """Re-run ``generator``, require the kubeconfig it wrote to be usable for ``node_ip``, set its
    mode, start ``workers`` (after ``before_workers()``, e.g. waiting for their stop), wait until
    they are ready and prove the token. Returns the report; raises AppError."""
    unknown = [s for s in [generator] + list(workers) if s not in definition.services]
    if unknown:
        raise AppError("the compose project %s defines no %s" % (definition.name, ", ".join(unknown)))
    report = dict(reconnected=False)
    # What `docker compose restart` / `start` do to existing containers, through the API the
    # probes already hold: no CLI start-up on the path to healthy workers.
    for cid in service_ids(client, definition, generator):
        client.api.restart(cid, timeout=10)
    report["cert_generator"] = wait_services(
        client, definition, [generator], {generator}, timeout=timeout, what=generator
    )
    config, facts = judge(kubeconfig, node_ip, api_port, report["cert_generator"][generator]["started_at"])
    if facts["problems"]:
        raise AppError("%s exited 0 but %s is not usable: %s" % (generator, kubeconfig, "; ".join(facts["problems"])))
    # As the stack role leaves it, so its next run changes nothing.
    secure(kubeconfig, mode)
    if on_phase:
        on_phase("cert_generator")
    if before_workers:
        before_workers()
    # Restart, not start: a worker that crash-looped on the old address (upstream's workers exit
    # when the API is gone) can be back in Docker's restart loop although `docker compose stop`
    # returned; `start` on it is a no-op and it keeps the old kubeconfig (seen with a 20 s
    # debounce and a 30 s k3s start). A restart is a fresh start from the new file, also of a
    # stopped container.
    for worker in workers:
        for cid in service_ids(client, definition, worker):
            client.api.restart(cid, timeout=10)
    report["workers"] = wait_services(
        client, definition, list(workers), definition.oneshots, timeout=timeout, what=", ".join(workers)
    )
    report["workers_ready_at"] = time.time()
    stale = stale_workers(report["workers"], facts["mtime"])
    if stale:
        raise AppError(
            "%s started before %s was written (%s): they hold the old kubeconfig, read only at start-up"
            % (", ".join(sorted(stale)), kubeconfig, "; ".join("%s at %s" % i for i in sorted(stale.items()))),
            services=report["workers"],
        )
    if on_phase:
        on_phase("workers")
    # The workers have no healthcheck (upstream): that their token works is proven here.
    accepted, status, error = prove_token(config, probe_path)
    if not accepted:
        raise AppError(
            "the API refused the app's kubeconfig (%s, GET %s): status %s %s" % (kubeconfig, probe_path, status, error)
        )
    report.update(kubeconfig_server=facts["server"], probe_status=status, reconnected=True)
    return report


# The refresh timer's last outcome (written by the refresh program, read by its --status and by
# the status playbook): a failed refresh otherwise shows only as a failed unit in the journal,
# and the workers stop working when the old token runs out (24 h, upstream never refreshes it).
REFRESH_STATE = "/var/lib/integr8scode/kubeconfig-refresh.json"


def record_refresh(ok, message, path=REFRESH_STATE, now=None):
    """Keep the outcome of a refresh run; a failure keeps the time of the last success."""
    now = time.time() if now is None else now
    previous = read_refresh(path) or {}
    state = dict(at=int(now), ok=bool(ok), message=message)
    state["last_success"] = int(now) if ok else previous.get("last_success")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    atomic_write(path, json.dumps(state, sort_keys=True) + "\n", 0o644)
    return state


def read_refresh(path=REFRESH_STATE):
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def refresh_status_line(state, now=None):
    """One line for `--status` and the status table: 'ok at ...', 'FAILED at ...: why', 'never ran'."""
    now = time.time() if now is None else now
    if not state:
        return "never ran"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.get("at") or 0))
    if state.get("ok"):
        return "ok at %s (%d min ago)" % (when, (now - (state.get("at") or 0)) // 60)
    success = state.get("last_success")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(success)) if success else "never"
    return "FAILED at %s (last success: %s): %s" % (when, since, state.get("message") or "")


def refresh_main(argv, settings, state=REFRESH_STATE, runner=LocalRunner, client_factory=docker_client):
    """integr8scode-kubeconfig-refresh [--status] (the launcher's entry point
    ``compose.app:refresh_main``; ``settings``: the stack role's settings file). Re-runs
    cert-generator (upstream's documented fix: `docker compose restart cert-generator`), requires
    the kubeconfig it writes to be fresh and to point at the node address (its exit code alone
    proves nothing: it is only its second script's), sets its mode, restarts the workers that read
    it once at start-up and proves its token against the API: the recovery's reconnect_app, so a
    refresh and a recovery judge the kubeconfig alike. Each run's outcome is kept for ``--status``
    (0 ok, 1 failed, 3 never ran) and the status playbook: a failed refresh is otherwise only a
    failed unit, and the workers stop working when the old token runs out. Error lines start with
    <3> (syslog err), so `journalctl -p err` lists them."""
    if argv == ["--status"]:
        last = read_refresh(state)
        sys.stdout.write("kubeconfig refresh: %s\n" % refresh_status_line(last))
        return 0 if last and last.get("ok") else (3 if not last else 1)
    workers = list(settings["workers"])
    # `docker compose config` expands ~ and $HOME as the deploy user's shell would.
    os.environ["HOME"] = settings["home"]
    try:
        client = client_factory()
        definition = load_definition(
            runner, client, settings["stack_dir"], settings["project_name"] or None, settings["compose_files"]
        )

        def stop_workers():
            for worker in workers:
                for cid in containers_of(client, definition.name, worker):
                    client.api.stop(cid, timeout=10)

        report = reconnect_app(
            client,
            definition,
            kubeconfig=settings["kubeconfig"],
            generator=settings["generator"],
            workers=workers,
            node_ip=recorded_node_ip(settings["k3s_config"]),
            api_port=int(settings["api_port"]),
            mode=int(str(settings["kubeconfig_mode"]), 8),
            timeout=int(settings["timeout"]),
            before_workers=stop_workers,
        )
    except AppError as exc:
        record_refresh(False, str(exc), state)
        sys.stdout.write("<3>kubeconfig refresh failed: %s\n" % exc)
        for service, lines in sorted((exc.details.get("logs") or {}).items()):
            for line in lines:
                sys.stdout.write("<3>%s: %s\n" % (service, line))
        return 1
    except Exception as exc:  # Docker down, a broken checkout: still a failed refresh to report
        record_refresh(False, "%s: %s" % (type(exc).__name__, exc), state)
        raise
    message = "kubeconfig refreshed; restarted %s; the API accepted the new token (%s)" % (
        ", ".join(workers),
        report["probe_status"],
    )
    record_refresh(True, message, state)
    sys.stdout.write(message + "\n")
    return 0

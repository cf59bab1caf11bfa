# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The poll probe that judges a Compose project's services (one-shots by exit code, the rest by
health where they have a healthcheck, else by running without a restart for a stable window,
crash loops by restart count), the Docker event stream that wakes the poll,
and the failure details (healthcheck output and logs, environment values masked). Every setting
is an explicit argument; compose_wait passes its options, k3s_rebuild its own values.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.compose import project
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    LABEL_PROJECT,
    LABEL_SERVICE,
    MIN_MASKED_LENGTH,
    list_containers,
    mask,
    oneshot_succeeded,
    started_epoch,
    uptime_seconds,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import ProbeResult

HEALTH_LOG_ENTRIES = 5
# Log lines of each failing service quoted in a failure message (all of them are in ``logs``).
MESSAGE_LOG_LINES = 3


class EventWaker:
    """Wakes the poll loop as soon as Docker reports a state change of one of the project's containers."""

    def __init__(self, client, project):
        self._event = threading.Event()
        self._stream = None
        try:
            self._stream = client.api.events(
                decode=True, filters={"type": "container", "label": "%s=%s" % (LABEL_PROJECT, project)}
            )
        except Exception:
            return  # plain polling still works
        thread = threading.Thread(target=self._run, name="compose-events")
        thread.daemon = True
        thread.start()

    def _run(self):
        try:
            for _event in self._stream:
                self._event.set()
        except Exception:
            pass  # the stream is closed at the end of the wait

    def sleep(self, seconds):
        self._event.wait(seconds)
        self._event.clear()

    def close(self):
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:
                pass


ORDER = {"failed": 0, "waiting": 1, "ready": 2}


class ComposeProbe:
    def __init__(
        self,
        client,
        definition,
        targets,
        oneshots,
        *,
        restart_threshold=3,
        unhealthy_grace=30.0,
        stable_seconds=5.0,
        clock=time.monotonic,
    ):
        self.p = dict(
            restart_threshold=restart_threshold,
            unhealthy_grace=unhealthy_grace,
            stable_seconds=stable_seconds,
        )
        self.client = client
        self.definition = definition
        self.targets = targets
        self.oneshots = oneshots
        self.clock = clock
        self.start = clock()
        self.first_restart_count = {}
        self.unhealthy_since = {}
        self.ready_at = {}
        self.inspected = {}

    def judge(self, name, info):
        """(verdict, reason) of one container: verdict is ready, waiting or failed."""
        p = self.p
        state = info["State"]
        status = state.get("Status")
        health = (state.get("Health") or {}).get("Status")
        exit_code = state.get("ExitCode")
        restarts = info.get("RestartCount") or 0
        policy = ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        cid = info["Id"]
        baseline = self.first_restart_count.setdefault(cid, restarts)
        oneshot = name in self.oneshots
        will_restart = policy in ("always", "unless-stopped") or (policy == "on-failure" and exit_code != 0)

        if oneshot:
            if oneshot_succeeded(status, exit_code):
                return "ready", ""
        elif status == "running" and health == "healthy":
            self.unhealthy_since.pop(cid, None)
            return "ready", ""
        elif status == "running" and health is None and not state.get("Restarting"):
            # Upstream's workers have no healthcheck ("started" = running), and a worker with a bad
            # kubeconfig runs for a moment before it exits (fixture.py's worker, after upstream's):
            # running counts only once it has lasted stable_seconds, so a crash loop caught
            # between two restarts is never ready. Any restart resets StartedAt, so this is also
            # "restart count unchanged across the window".
            uptime = uptime_seconds(state.get("StartedAt"))
            if uptime is not None and uptime >= p["stable_seconds"]:
                return "ready", ""

        stopped = status in ("exited", "dead", "restarting")
        if restarts - baseline > p["restart_threshold"] or (stopped and restarts > p["restart_threshold"]):
            return "failed", "restarted %d times (restart_threshold %d): crash loop, now %s, last exit code %s" % (
                restarts,
                p["restart_threshold"],
                status,
                exit_code,
            )
        if status in ("exited", "dead") and not will_restart:
            if oneshot:
                return "failed", "one-shot exited with code %s" % exit_code
            hint = " (if it is a one-shot, list it in oneshot)" if exit_code == 0 else ""
            return "failed", "long-running service has %s with code %s%s" % (status, exit_code, hint)
        if status == "running" and health == "unhealthy" and not oneshot:
            since = self.unhealthy_since.setdefault(cid, self.clock())
            if self.clock() - since > p["unhealthy_grace"]:
                return "failed", "unhealthy for more than %ss (unhealthy_grace)" % p["unhealthy_grace"]
            return "waiting", "unhealthy (failing its healthcheck)"
        if oneshot and status == "running":
            return "waiting", "one-shot still running"
        if status == "running" and health is None:
            uptime = uptime_seconds(state.get("StartedAt"))
            return "waiting", "running for %s of the %ss without a restart that make it ready (stable_seconds)%s" % (
                "?" if uptime is None else "%.1fs" % max(0.0, uptime),
                p["stable_seconds"],
                ", restarted %d times (last exit code %s)" % (restarts, exit_code) if restarts else "",
            )
        if status == "running":
            self.unhealthy_since.pop(cid, None)
            return "waiting", "health is %s" % health
        if status in ("exited", "dead"):
            return "waiting", "%s with code %s, restart policy %s will restart it" % (status, exit_code, policy)
        if restarts:
            return "waiting", "container is %s, restarted %d times, last exit code %s" % (status, restarts, exit_code)
        return "waiting", "container is %s" % status

    def __call__(self):
        containers = list_containers(self.client, self.definition.name)
        by_service = {}
        for c in containers:
            by_service.setdefault((c.get("Labels") or {}).get(LABEL_SERVICE), []).append(c["Id"])
        services, failed, waiting = {}, {}, {}
        self.inspected = {}
        for name in self.targets:
            ids = by_service.get(name) or []
            entry = dict(
                state="missing",
                health=None,
                exit_code=None,
                restart_count=0,
                oneshot=name in self.oneshots,
                ready=False,
                containers=len(ids),
                seconds_to_ready=None,
                started_at=None,
            )
            worst = None
            for cid in ids:
                try:
                    info = self.client.api.inspect_container(cid)
                except project.NotFound:
                    continue  # removed between list and inspect (compose recreating it)
                verdict, reason = self.judge(name, info)
                self.inspected.setdefault(name, []).append(info)
                if worst is None or ORDER[verdict] < ORDER[worst[0]]:
                    worst = (verdict, reason, info)
            if worst is None:
                waiting[name] = "no container yet"
            else:
                verdict, reason, info = worst
                state = info["State"]
                entry.update(
                    state=state.get("Status"),
                    health=(state.get("Health") or {}).get("Status"),
                    exit_code=state.get("ExitCode"),
                    restart_count=info.get("RestartCount") or 0,
                    started_at=started_epoch(state.get("StartedAt")),
                )
                if verdict == "ready":
                    entry["ready"] = True
                    if name not in self.ready_at:
                        self.ready_at[name] = round(self.clock() - self.start, 3)
                elif verdict == "failed":
                    failed[name] = reason
                else:
                    waiting[name] = reason
            if entry["ready"]:
                entry["seconds_to_ready"] = self.ready_at.get(name)
            services[name] = entry
        observation = dict(services=services, failed=failed, waiting=waiting)
        if failed:
            msg = "; ".join("%s: %s" % (k, v) for k, v in sorted(failed.items()))
            return ProbeResult(False, True, observation, msg)
        if waiting:
            msg = "; ".join("%s: %s" % (k, v) for k, v in sorted(waiting.items()))
            return ProbeResult(False, False, observation, msg)
        return ProbeResult(True, False, observation, "")

    def env_values(self):
        values = set()
        for infos in self.inspected.values():
            for info in infos:
                for item in (info.get("Config") or {}).get("Env") or []:
                    value = item.split("=", 1)[1] if "=" in item else ""
                    if len(value) >= MIN_MASKED_LENGTH:
                        values.add(value)
        return values


def log_tail(client, container, lines):
    """The last ``lines`` lines of a container's log (stdout and stderr), unmasked; a log that
    cannot be read is one line saying why, never an error that hides the failure it explains."""
    try:
        raw = client.api.logs(container, stdout=True, stderr=True, tail=lines)
    except Exception as exc:
        raw = ("(logs unavailable: %s)" % exc).encode()
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.splitlines()[-lines:]


def failure_details(client, probe, names, log_lines):
    secrets = probe.env_values()
    health_logs, logs = {}, {}
    for name in names:
        for info in probe.inspected.get(name, []):
            entries = ((info["State"].get("Health") or {}).get("Log") or [])[-HEALTH_LOG_ENTRIES:]
            if entries:
                health_logs[name] = [
                    dict(exit_code=e.get("ExitCode"), output=mask((e.get("Output") or "").strip(), secrets))
                    for e in entries
                ]
            logs[name] = [mask(line, secrets) for line in log_tail(client, info["Id"], log_lines)]
            break  # the first container of the service is enough
    return health_logs, logs


def with_log_tail(message, logs, lines=MESSAGE_LOG_LINES):
    """``message`` followed by the last ``lines`` log lines of each failing service (already
    masked by failure_details), so the message alone says why a worker is not running."""
    tails = ["%s: %s" % (name, " | ".join(text[-lines:])) for name, text in sorted(logs.items()) if text[-lines:]]
    return message if not tails else "%s. Last log lines: %s" % (message, "; ".join(tails))

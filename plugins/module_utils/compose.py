# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Docker Compose project state for the wait modules: the definition (services, one-shots), the
containers by label, and a poll probe that judges each service (one-shots by exit code, the rest
by running/health), shared by compose_wait and k3s_rebuild.

Functions that need Ansible's run_command and params take the module (or an object offering
``params``, ``run_command``, ``get_bin_path`` and ``warn``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import threading
import time
import traceback

from ansible_collections.integr8scode.provision.plugins.module_utils.poll import ProbeResult

try:
    import docker
    from docker.errors import DockerException, NotFound

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):  # noqa: N818 - the SDK's name, so callers can catch it either way
        """Stands in for the SDK's base exception when the SDK is missing (modules fail before use)."""

    class NotFound(DockerException):  # noqa: N818
        """Stands in for docker.errors.NotFound."""


LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_DEPENDS_ON = "com.docker.compose.depends_on"
LABEL_CONFIG_FILES = "com.docker.compose.project.config_files"
LABEL_WORKING_DIR = "com.docker.compose.project.working_dir"
COMPLETED = "service_completed_successfully"
HEALTH_LOG_ENTRIES = 5
# Shorter environment values are too common ("true", "info") to mask without mangling logs.
MIN_MASKED_LENGTH = 6


class ComposeError(Exception):
    pass


class Definition:
    """What the waiting needs from a project's definition: names, one-shots, restart policies."""

    def __init__(self, name, services, oneshots, source):
        self.name = name
        self.services = list(services)
        self.oneshots = set(oneshots)
        self.source = source


def oneshots_from_config(services):
    found = set()
    for spec in services.values():
        depends = (spec or {}).get("depends_on") or {}
        if isinstance(depends, dict):
            for dep, cond in depends.items():
                if isinstance(cond, dict) and cond.get("condition") == COMPLETED:
                    found.add(dep)
    return found


def oneshots_from_labels(labels_list):
    # Compose v2 records depends_on as "svc:condition:restart,..." on each container.
    found = set()
    for labels in labels_list:
        for item in (labels.get(LABEL_DEPENDS_ON) or "").split(","):
            parts = item.split(":")
            if len(parts) >= 2 and parts[1] == COMPLETED:
                found.add(parts[0])
    return found


def compose_config(module, cwd, project_name=None, files=None):
    docker_bin = module.get_bin_path("docker")
    if not docker_bin:
        raise ComposeError("the docker CLI is not on PATH; it is needed to read the Compose definition")
    cmd = [docker_bin, "compose"]
    if project_name:
        cmd += ["-p", project_name]
    for f in files or []:
        cmd += ["-f", f]
    cmd += ["config", "--format", "json"]
    rc, out, err = module.run_command(cmd, cwd=cwd)
    if rc != 0:
        raise ComposeError("docker compose config failed in %s (rc=%d): %s" % (cwd, rc, (err or out).strip()[-2000:]))
    try:
        return json.loads(out)
    except ValueError as exc:
        raise ComposeError("docker compose config in %s did not print JSON: %s" % (cwd, exc)) from exc


def load_definition(module, client):
    p = module.params
    if p["project_src"]:
        config = compose_config(module, p["project_src"], p["project_name"])
        services = config.get("services") or {}
        return Definition(
            p["project_name"] or config.get("name"),
            sorted(services),
            oneshots_from_config(services),
            "docker compose config in %s" % p["project_src"],
        )
    name = p["project_name"]
    containers = list_containers(client, name)
    if not containers:
        raise ComposeError(
            "unknown project %r: no container carries the label %s=%s (is it started? "
            "set project_src to wait for a project whose containers are still being created)"
            % (name, LABEL_PROJECT, name)
        )
    labels = [c["Labels"] or {} for c in containers]
    files = [f for f in (labels[0].get(LABEL_CONFIG_FILES) or "").split(",") if f]
    workdir = labels[0].get(LABEL_WORKING_DIR)
    if files and workdir and os.path.isdir(workdir) and all(os.access(f, os.R_OK) for f in files):
        try:
            config = compose_config(module, workdir, name, files)
            services = config.get("services") or {}
            return Definition(name, sorted(services), oneshots_from_config(services), "config files " + ",".join(files))
        except ComposeError as exc:
            module.warn("falling back to container labels: %s" % exc)
    services = sorted(set(lab.get(LABEL_SERVICE) for lab in labels if lab.get(LABEL_SERVICE)))
    return Definition(name, services, oneshots_from_labels(labels), "container labels")


def docker_client(docker_host=None):
    """A Docker SDK client for ``docker_host`` (default: DOCKER_HOST, else the local socket), pinged."""
    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    client.api.ping()
    return client


def list_containers(client, project):
    containers = client.api.containers(all=True, filters={"label": "%s=%s" % (LABEL_PROJECT, project)})
    return [c for c in containers if (c.get("Labels") or {}).get(LABEL_ONEOFF, "False") != "True"]


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


def started_epoch(started_at):
    """Docker's State.StartedAt (RFC 3339 with nanoseconds) as epoch seconds, or None."""
    if not started_at or started_at.startswith("0001-"):
        return None
    try:
        stamp = started_at.rstrip("Z")
        if "." in stamp:
            head, frac = stamp.split(".", 1)
            stamp = "%s.%s" % (head, frac[:6])
        else:
            stamp += ".0"
        started = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return (started - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()


def uptime_seconds(started_at):
    """Seconds since Docker's State.StartedAt, or None when unparsable."""
    started = started_epoch(started_at)
    return None if started is None else time.time() - started


class ComposeProbe:
    def __init__(self, module, client, definition, targets, oneshots, *, clock=time.monotonic):
        self.module = module
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
        p = self.module.params
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
            if status in ("exited", "dead") and exit_code == 0:
                return "ready", ""
        elif status == "running" and health == "healthy":
            self.unhealthy_since.pop(cid, None)
            return "ready", ""
        elif status == "running" and health is None:
            uptime = uptime_seconds(state.get("StartedAt"))
            if restarts == 0 or uptime is None or uptime >= p["stable_after_restart"]:
                return "ready", ""

        stopped = status in ("exited", "dead", "restarting")
        if restarts - baseline > p["restart_threshold"] or (stopped and restarts > p["restart_threshold"]):
            return "failed", "restarted %d times (restart_threshold %d): crash loop, last exit code %s" % (
                restarts,
                p["restart_threshold"],
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
            return "waiting", "restarted %d times, up for less than stable_after_restart (%ss)" % (
                restarts,
                p["stable_after_restart"],
            )
        if status == "running":
            self.unhealthy_since.pop(cid, None)
            return "waiting", "health is %s" % health
        if status in ("exited", "dead"):
            return "waiting", "%s with code %s, restart policy %s will restart it" % (status, exit_code, policy)
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
                except NotFound:
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


def mask(text, secrets):
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "********")
    return text


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
            try:
                raw = client.api.logs(info["Id"], stdout=True, stderr=True, tail=log_lines)
            except Exception as exc:
                raw = ("(logs unavailable: %s)" % exc).encode()
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            logs[name] = [mask(line, secrets) for line in text.splitlines()[-log_lines:]]
            break  # the first container of the service is enough
    return health_logs, logs

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: compose_wait
short_description: Wait until a Docker Compose project is up, judging one-shots by exit code
version_added: "0.1.0"
description:
  - Waits for the containers of a Compose project (found by the C(com.docker.compose.project) and
    C(com.docker.compose.service) labels) until every long-running service is running and, where
    it has a healthcheck, healthy, and every one-shot service has exited 0.
  - One-shots are recognised from the project's own definition, the services others depend on with
    a C(service_completed_successfully) condition (Integr8sCode's C(base), C(shared-ca),
    C(cert-generator), C(user-seed)); O(oneshot) adds more. C(docker compose up --wait) has a
    history of hanging or failing on such one-shot containers, which is why this module exists.
  - Fails at once, not at the timeout, when a one-shot exits non-zero, a container restarts more
    than O(restart_threshold) times, or a long-running service has exited and will not be
    restarted; a service unhealthy for longer than O(unhealthy_grace) fails with its healthcheck
    log. The failure carries the last healthcheck outputs and the last O(log_lines) log lines of
    the failing containers.
  - Container environment values are never returned, and are masked where they appear in logs
    or healthcheck outputs.
options:
  project_src:
    description:
      - Directory holding the Compose file. The definition is read with
        C(docker compose config --format json) there, which needs the C(docker) CLI with the
        Compose v2 plugin. Variables the file interpolates (C(COMPOSE_PROFILES), secrets) come
        from the module's environment and a C(.env) file beside it.
      - One of O(project_src) and O(project_name) is required.
    type: path
  project_name:
    description:
      - Compose project name. With O(project_src) it overrides the name from the file. Alone, the
        definition is read from the config files recorded in the containers' labels when they are
        readable, else from the labels (C(com.docker.compose.depends_on)).
    type: str
  services:
    description: Wait only for these services (default all services of the project).
    type: list
    elements: str
  oneshot:
    description:
      - Further services to judge as one-shots (must exit 0), beyond those recognised from
        C(service_completed_successfully) conditions.
    type: list
    elements: str
    default: []
  restart_threshold:
    description:
      - A container that is not ready and has restarted more than this many times (during the wait,
        or in total while it is restarting or stopped) is in a crash loop; the module fails at once.
    type: int
    default: 3
  unhealthy_grace:
    description: Seconds a service may stay C(unhealthy) before the module fails with its healthcheck log.
    type: float
    default: 30
  stable_after_restart:
    description:
      - A container without a healthcheck that has restarted counts as ready only once it has stayed
        up this many seconds, so a crash loop is not mistaken for readiness between two restarts.
        Containers that never restarted count as ready as soon as they run.
    type: float
    default: 2
  log_lines:
    description: Log lines returned per failing container.
    type: int
    default: 30
  docker_host:
    description: Docker daemon address. Defaults to C(DOCKER_HOST), else the local socket.
    type: str
  timeout:
    description: Total seconds to wait, measured on a monotonic clock. C(0) probes exactly once.
    type: float
    default: 300
extends_documentation_fragment:
  - integr8scode.provision.poll
requirements:
  - docker (Python SDK, Debian C(python3-docker) 5.0.3 or later)
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Besides polling, the module listens to Docker events of the project and probes again as soon
    as a container changes state, so readiness is noticed within milliseconds.
  - This module does not start anything; run C(docker compose up -d) (or
    C(community.docker.docker_compose_v2) with C(wait=false)) first.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The wait is skipped in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Start the stack without compose's own wait
  community.docker.docker_compose_v2:
    project_src: /opt/Integr8sCode
    wait: false

- name: Wait for it (one-shots judged by exit code, the rest by health)
  integr8scode.provision.compose_wait:
    project_src: /opt/Integr8sCode
    timeout: 300
  register: stack_wait

- name: Wait for a subset of an already running project, by name
  integr8scode.provision.compose_wait:
    project_name: integr8scode
    services: [mongo, redis, kafka]
    oneshot: [user-seed]
"""

RETURN = r"""
project:
  description: The Compose project name.
  returned: always
  type: str
ready:
  description: Whether every service became ready (null in check mode).
  returned: always
  type: bool
services:
  description:
    - Per service, C(state) (C(running), C(exited), C(restarting), C(created), or C(missing) when no
      container exists), C(health) (C(healthy), C(unhealthy), C(starting), or null without a
      healthcheck), C(exit_code), C(restart_count), C(oneshot), C(ready), C(containers) (count), and
      C(seconds_to_ready) (seconds from the start of the wait until it was first seen ready, null
      when never). With several replicas the least ready container is reported.
  returned: always
  type: dict
  sample:
    cert-generator: {state: exited, health: null, exit_code: 0, restart_count: 0, oneshot: true,
                     ready: true, containers: 1, seconds_to_ready: 4.2}
    backend: {state: running, health: healthy, exit_code: 0, restart_count: 0, oneshot: false,
              ready: true, containers: 1, seconds_to_ready: 31.7}
elapsed:
  description: Seconds waited.
  returned: always
  type: float
attempts:
  description: Probes made.
  returned: always
  type: int
failed_services:
  description: Services that made the wait fail (or were not ready at the timeout), with the reason.
  returned: failure
  type: dict
  sample: {init: one-shot exited with code 3}
healthcheck_logs:
  description: Per failing service, the last healthcheck results (C(exit_code), C(output)).
  returned: failure
  type: dict
logs:
  description: Per failing service, the last O(log_lines) lines of its container's log.
  returned: failure
  type: dict
"""

import datetime
import json
import os
import threading
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    ProbeResult,
    check_mode_result,
    poll,
    poll_argument_spec,
    validate_poll_params,
)

try:
    import docker
    from docker.errors import DockerException, NotFound

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

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


def uptime_seconds(started_at):
    """Seconds since Docker's State.StartedAt (RFC 3339 with nanoseconds), or None when unparsable."""
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
    return (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()


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


def main():
    argument_spec = dict(
        project_src=dict(type="path"),
        project_name=dict(type="str"),
        services=dict(type="list", elements="str"),
        oneshot=dict(type="list", elements="str", default=[]),
        restart_threshold=dict(type="int", default=3),
        unhealthy_grace=dict(type="float", default=30.0),
        stable_after_restart=dict(type="float", default=2.0),
        log_lines=dict(type="int", default=30),
        docker_host=dict(type="str"),
    )
    argument_spec.update(poll_argument_spec(timeout=300.0))
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[("project_src", "project_name")],
        supports_check_mode=True,
    )
    p = module.params
    errors = validate_poll_params(p)
    if p["restart_threshold"] < 0:
        errors.append("restart_threshold must be zero or positive, got %d" % p["restart_threshold"])
    if p["stable_after_restart"] < 0:
        errors.append(
            "stable_after_restart must be zero or a positive number of seconds, got %r" % p["stable_after_restart"]
        )
    if p["unhealthy_grace"] < 0:
        errors.append("unhealthy_grace must be zero or a positive number of seconds, got %r" % p["unhealthy_grace"])
    if p["log_lines"] < 0:
        errors.append("log_lines must be zero or positive, got %d" % p["log_lines"])
    if p["project_name"] is not None and not p["project_name"].strip():
        errors.append("project_name must not be empty")
    if errors:
        module.fail_json(msg="; ".join(errors))
    # Check mode returns before anything the host may still lack (the SDK, the project directory):
    # on a bare host the roles install them in the same run.
    if module.check_mode:
        module.exit_json(**check_mode_result(project=p["project_name"], services={}))
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (python3-docker)"), exception=DOCKER_IMPORT_ERROR)
    if p["project_src"] and not os.path.isdir(p["project_src"]):
        module.fail_json(msg="project_src %s is not a directory" % p["project_src"])

    try:
        client = docker.DockerClient(base_url=p["docker_host"]) if p["docker_host"] else docker.from_env()
        client.api.ping()
    except Exception as exc:
        module.fail_json(msg="cannot reach the Docker daemon: %s" % exc)
    try:
        definition = load_definition(module, client)
    except (ComposeError, DockerException) as exc:
        module.fail_json(msg=str(exc), project=p["project_name"])

    known = set(definition.services)
    unknown = [s for s in (p["services"] or []) + p["oneshot"] if s not in known]
    if unknown:
        module.fail_json(
            msg="services/oneshot name services the project %s does not define (read from %s): %s; it defines: %s"
            % (definition.name, definition.source, ", ".join(unknown), ", ".join(sorted(known)) or "nothing"),
            project=definition.name,
        )
    targets = list(p["services"] or definition.services)
    oneshots = definition.oneshots | set(p["oneshot"])

    probe = ComposeProbe(module, client, definition, targets, oneshots)
    waker = EventWaker(client, definition.name)
    try:
        outcome = poll(probe, p["timeout"], p["interval"], p["backoff"], p["max_interval"], sleep=waker.sleep)
    except DockerException as exc:
        module.fail_json(msg="Docker API error while waiting for %s: %s" % (definition.name, exc))
    finally:
        waker.close()

    obs = outcome.observation
    result = dict(
        changed=False,
        ready=outcome.ready,
        project=definition.name,
        services=obs.get("services", {}),
        elapsed=round(outcome.elapsed, 3),
        attempts=outcome.attempts,
    )
    if outcome.ready:
        module.exit_json(**result)
    bad = dict(obs.get("failed") or {}) if outcome.hopeless else dict(obs.get("waiting") or {})
    health_logs, logs = failure_details(client, probe, sorted(bad), p["log_lines"])
    result.update(failed_services=bad, healthcheck_logs=health_logs, logs=logs)
    if outcome.hopeless:
        msg = "compose project %s cannot become ready: %s" % (definition.name, outcome.message)
    else:
        msg = "compose project %s not ready after %ss: %s" % (definition.name, p["timeout"], outcome.message)
    module.fail_json(msg=msg, **result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""A Docker Compose project as the modules see it: its definition (services, one-shots found
from `service_completed_successfully`), its containers by label, their start times, and the
masking of environment values in what is shown. Shared by compose_wait, k3s_rebuild and the
filter plugins.

``runner`` is the AnsibleModule (``run_command``, ``get_bin_path``, ``warn``); every other input
is an explicit argument.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import time

# DockerException and NotFound are re-exported: callers catch them as project.NotFound etc.
from ansible_collections.integr8scode.provision.plugins.module_utils.docker_engine import (  # noqa: F401  # pylint: disable=unused-import
    DockerClient,
    DockerException,
    NotFound,
)

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_DEPENDS_ON = "com.docker.compose.depends_on"
LABEL_CONFIG_FILES = "com.docker.compose.project.config_files"
LABEL_WORKING_DIR = "com.docker.compose.project.working_dir"
LABEL_CONFIG_HASH = "com.docker.compose.config-hash"
COMPLETED = "service_completed_successfully"
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


def compose_argv(docker_bin, project_name=None, files=None):
    """`docker compose` with the project's name and files, as the stack role runs it."""
    argv = [docker_bin, "compose"]
    if project_name:
        argv += ["-p", project_name]
    for f in files or []:
        argv += ["-f", f]
    return argv


def compose_config(runner, cwd, project_name=None, files=None):
    docker_bin = runner.get_bin_path("docker")
    if not docker_bin:
        raise ComposeError("the docker CLI is not on PATH; it is needed to read the Compose definition")
    cmd = compose_argv(docker_bin, project_name, files) + ["config", "--format", "json"]
    rc, out, err = runner.run_command(cmd, cwd=cwd)
    if rc != 0:
        raise ComposeError("docker compose config failed in %s (rc=%d): %s" % (cwd, rc, (err or out).strip()[-2000:]))
    try:
        return json.loads(out)
    except ValueError as exc:
        raise ComposeError("docker compose config in %s did not print JSON: %s" % (cwd, exc)) from exc


def load_definition(runner, client, project_src=None, project_name=None, files=None):
    """The definition from `docker compose config` in ``project_src`` (with ``files``), else from
    the config files the containers of ``project_name`` name, else from their labels."""
    if project_src:
        config = compose_config(runner, project_src, project_name, files)
        services = config.get("services") or {}
        return Definition(
            project_name or config.get("name"),
            sorted(services),
            oneshots_from_config(services),
            "docker compose config in %s" % project_src,
        )
    name = project_name
    containers = list_containers(client, name)
    if not containers:
        raise ComposeError(
            "unknown project %r: no container carries the label %s=%s (is it started? "
            "set project_src to wait for a project whose containers are still being created)"
            % (name, LABEL_PROJECT, name)
        )
    labels = [c["Labels"] or {} for c in containers]
    used = [f for f in (labels[0].get(LABEL_CONFIG_FILES) or "").split(",") if f]
    workdir = labels[0].get(LABEL_WORKING_DIR)
    if used and workdir and os.path.isdir(workdir) and all(os.access(f, os.R_OK) for f in used):
        try:
            config = compose_config(runner, workdir, name, used)
            services = config.get("services") or {}
            return Definition(name, sorted(services), oneshots_from_config(services), "config files " + ",".join(used))
        except ComposeError as exc:
            runner.warn("falling back to container labels: %s" % exc)
    services = sorted(set(lab.get(LABEL_SERVICE) for lab in labels if lab.get(LABEL_SERVICE)))
    return Definition(name, services, oneshots_from_labels(labels), "container labels")


def _config_hash(labels):
    # `docker compose ps --format json` prints Labels as one "key=value,key=value" string.
    if isinstance(labels, dict):
        value = labels.get(LABEL_CONFIG_HASH)
        return None if value is None else str(value)
    for item in (labels if isinstance(labels, str) else "").split(","):
        key, _sep, value = item.partition("=")
        if key == LABEL_CONFIG_HASH:
            return value
    return None


def _exit_code(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # unknown is not success


def oneshot_succeeded(status, exit_code):
    """Whether a one-shot's container (cert-generator, user-seed) is done: exited with code 0, as
    compose's service_completed_successfully judges it (a dead container is not). The one rule for
    compose_plan's drift and compose_wait's readiness."""
    return status == "exited" and _exit_code(exit_code) == 0


def drift(containers, hashes, oneshots, pulled=False):
    """Why `docker compose up` has work to do, one '<service>: <problem>' per difference; empty when
    the project is converged. ``containers``: dicts with Service, State, ExitCode and Labels (as
    `docker compose ps --all --orphans --format json` prints them, or container_states builds
    them); ``hashes``: service -> `docker compose config --hash` value. `up` starts exited
    one-shots again (cert-generator, user-seed), so it must run only when this is not empty."""
    oneshots = set(oneshots)
    problems = []
    for service, config_hash in hashes.items():
        found = [c for c in containers if c.get("Service") == service]
        if not found:
            problems.append("%s: no container" % service)
        for container in found:
            state = container.get("State", "")
            exit_code = container.get("ExitCode", "")
            if _config_hash(container.get("Labels")) != str(config_hash):
                problems.append("%s: configuration changed" % service)
            elif service in oneshots:
                # A one-shot may still be running (up is then already under way) or must have exited 0.
                if not (state == "running" or oneshot_succeeded(state, exit_code)):
                    problems.append("%s: one-shot %s (exit %s)" % (service, state, exit_code))
            elif state not in ("running", "restarting"):
                problems.append("%s: %s" % (service, state))
    for container in containers:
        if container.get("Service") not in hashes:
            problems.append("%s: orphan" % container.get("Service"))
    if pulled:
        problems.append("images pulled")
    return problems


def container_states(client, containers):
    """``containers`` (the Engine API's list of a project's, see of_project) as drift() reads them:
    an exited container's exit code comes from its inspection."""
    found = []
    for container in containers:
        labels = container.get("Labels") or {}
        state = container.get("State") or ""
        exit_code = 0
        if state in ("exited", "dead"):
            exit_code = (client.api.inspect_container(container["Id"]).get("State") or {}).get("ExitCode")
        found.append(dict(Service=labels.get(LABEL_SERVICE), State=state, ExitCode=exit_code, Labels=labels))
    return found


def config_hashes(runner, cwd, project_name=None, files=None):
    """service -> `docker compose config --hash '*'` (the value compose labels containers with)."""
    docker_bin = runner.get_bin_path("docker")
    if not docker_bin:
        raise ComposeError("the docker CLI is not on PATH; it is needed to read the Compose definition")
    rc, out, err = runner.run_command(
        compose_argv(docker_bin, project_name, files) + ["config", "--hash", "*"], cwd=cwd
    )
    if rc != 0:
        raise ComposeError(
            "docker compose config --hash failed in %s (rc=%d): %s" % (cwd, rc, (err or out).strip()[-2000:])
        )
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line.strip())


def docker_client(docker_host=None):
    """A client of the Docker Engine at ``docker_host`` (default: DOCKER_HOST, else the local
    socket), pinged."""
    client = DockerClient(docker_host)
    client.api.ping()
    return client


def of_project(containers, project):
    """The containers of ``project`` among ``containers`` (Engine API list), one-offs
    (`docker compose run`) left out."""
    return [
        c
        for c in containers
        if (c.get("Labels") or {}).get(LABEL_PROJECT) == project
        and (c.get("Labels") or {}).get(LABEL_ONEOFF, "False") != "True"
    ]


def list_containers(client, project):
    return of_project(client.api.containers(all=True, filters={"label": "%s=%s" % (LABEL_PROJECT, project)}), project)


def containers_of(client, project, service):
    """Ids of the project's containers of one service (by the labels compose sets)."""
    return [c["Id"] for c in list_containers(client, project) if (c.get("Labels") or {}).get(LABEL_SERVICE) == service]


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


MASK = "********"


def mask(text, secrets):
    """``text`` with every non-empty value of ``secrets`` replaced by ********, longest first (a
    secret that contains another is masked whole). The one masking of compose_wait's logs and the
    stack role's failure output (filter mask_secrets)."""
    values = set(str(v) for v in secrets if v is not None and str(v) != "")
    for value in sorted(values, key=lambda v: (-len(v), v)):
        text = text.replace(value, MASK)
    return text

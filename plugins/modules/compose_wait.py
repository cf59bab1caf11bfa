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
    C(com.docker.compose.service) labels) until every long-running service is ready and every
    one-shot service has exited 0.
  - A long-running service with a healthcheck is ready when it is running and C(healthy). One
    without a healthcheck (upstream Integr8sCode's workers C(k8s-worker), C(pod-monitor),
    C(result-processor) and the others have none, so for Compose "started" means running) is
    ready when its container is running, not restarting, and has stayed up for O(stable_seconds)
    since its last start, so its restart count did not climb during that window. A worker with a
    bad kubeconfig runs for a moment and exits; such a crash loop is never ready and fails once
    it passes O(restart_threshold).
  - Running says nothing about whether a worker can use the k3s API; prove that separately with
    the app kubeconfig's token (M(integr8scode.provision.app_kubeconfig), as the stack role and
    the recovery do).
  - One-shots are recognised from the project's own definition, the services others depend on with
    a C(service_completed_successfully) condition (Integr8sCode's C(base), C(shared-ca),
    C(cert-generator), C(user-seed)); O(oneshot) adds more. C(docker compose up --wait) has a
    history of hanging or failing on such one-shot containers, which is why this module exists.
  - Fails at once, not at the timeout, when a one-shot exits non-zero, a container restarts more
    than O(restart_threshold) times, or a long-running service has exited and will not be
    restarted; a service unhealthy for longer than O(unhealthy_grace) fails with its healthcheck
    log. The failure carries the last healthcheck outputs and the last O(log_lines) log lines of
    the failing containers. The message names each failing service with its state, restart
    count and exit code, and ends with its last log lines.
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
  files:
    description:
      - Compose files, relative to O(project_src) (C(docker compose -f)); default the file
        C(docker compose) finds there. Only with O(project_src).
    type: list
    elements: str
    default: []
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
  stable_seconds:
    description:
      - A container without a healthcheck counts as ready only once it has been running this many
        seconds since its last start (Docker's C(State.StartedAt)), so a crash loop caught between
        two restarts, or a worker that exits a moment after starting, is not mistaken for
        readiness. It applies whether or not the container has restarted before.
    type: float
    default: 5
    aliases: [stable_after_restart]
  log_lines:
    description: Log lines returned per failing container.
    type: int
    default: 30
  kubeconfig_consumers:
    description:
      - Services that read the app kubeconfig once at start (upstream's C(k8s-worker), C(pod-monitor)).
        When one of them fails, the failure adds the state and last log lines of O(generator), whose
        Kubernetes step is where the real error is (its exit code is only its second script's), and
        says when it exited 0 without writing a fresh O(kubeconfig).
    type: list
    elements: str
    default: []
  generator:
    description: The one-shot that writes the app kubeconfig.
    type: str
    default: cert-generator
  kubeconfig:
    description:
      - The app kubeconfig on the host, to tell whether O(generator)'s latest run wrote it (its
        modification time against the container's start).
    type: path
  docker_host:
    description: Docker daemon address. Defaults to C(DOCKER_HOST), else the local socket.
    type: str
  timeout:
    description: Total seconds to wait, measured on a monotonic clock. C(0) probes exactly once.
    type: float
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - integr8scode.provision.poll
requirements:
  - The Docker Engine API on the host (the standard library talks to it; no Docker SDK for Python).
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Besides polling, the module listens to Docker events of the project and probes again as soon
    as a container changes state, so readiness is noticed within milliseconds.
  - This module does not start anything; run C(docker compose up -d) (or
    C(community.docker.docker_compose_v2) with C(wait=false)) first.
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: The wait is skipped in check mode.
  diff_mode:
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

- name: Wait, and explain a failing worker by cert-generator's log and the kubeconfig's age
  integr8scode.provision.compose_wait:
    project_src: /opt/Integr8sCode
    kubeconfig_consumers: [k8s-worker, pod-monitor]
    kubeconfig: /opt/Integr8sCode/backend/kubeconfig.yaml

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
      healthcheck), C(exit_code), C(restart_count), C(oneshot), C(ready), C(containers) (count),
      C(seconds_to_ready) (seconds from the start of the wait until it was first seen ready, null
      when never) and C(started_at) (the container's last start, epoch seconds). With several
      replicas the least ready container is reported.
    - C(ready) of a service without a healthcheck (C(health) null) means running, not restarting,
      and up for at least O(stable_seconds) since its last start; it does not prove the service's
      credentials work (see the description).
  returned: always
  type: dict
  sample:
    cert-generator: {state: exited, health: null, exit_code: 0, restart_count: 0, oneshot: true,
                     ready: true, containers: 1, seconds_to_ready: 4.2}
    backend: {state: running, health: healthy, exit_code: 0, restart_count: 0, oneshot: false,
              ready: true, containers: 1, seconds_to_ready: 31.7}
    k8s-worker: {state: running, health: null, exit_code: 0, restart_count: 0, oneshot: false,
                 ready: true, containers: 1, seconds_to_ready: 6.1}
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
  description:
    - Per failing service, the last O(log_lines) lines of its container's log; with a failing
      O(kubeconfig_consumers) service also O(generator)'s.
  returned: failure
  type: dict
generator:
  description:
    - When a O(kubeconfig_consumers) service failed, O(generator)'s verdict, e.g.
      V(cert-generator exited 0 without writing a fresh kubeconfig (...)).
  returned: failure of a kubeconfig consumer
  type: dict
  sample: {service: cert-generator, verdict: "cert-generator exited 0 without writing a fresh kubeconfig (...)"}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.app import explain_consumers
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.probe import (
    ComposeProbe,
    EventWaker,
    failure_details,
    with_log_tail,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    ComposeError,
    DockerException,
    docker_client,
    load_definition,
    mask,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    check_mode_result,
    poll,
    poll_argument_spec,
    validate_poll_params,
)


def main():
    argument_spec = dict(
        project_src=dict(type="path"),
        project_name=dict(type="str"),
        files=dict(type="list", elements="str", default=[]),
        services=dict(type="list", elements="str"),
        oneshot=dict(type="list", elements="str", default=[]),
        restart_threshold=dict(type="int", default=3),
        unhealthy_grace=dict(type="float", default=30.0),
        stable_seconds=dict(type="float", default=5.0, aliases=["stable_after_restart"]),
        log_lines=dict(type="int", default=30),
        kubeconfig_consumers=dict(type="list", elements="str", default=[]),
        generator=dict(type="str", default="cert-generator"),
        kubeconfig=dict(type="path"),
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
    if p["stable_seconds"] < 0:
        errors.append("stable_seconds must be zero or a positive number of seconds, got %r" % p["stable_seconds"])
    if p["unhealthy_grace"] < 0:
        errors.append("unhealthy_grace must be zero or a positive number of seconds, got %r" % p["unhealthy_grace"])
    if p["log_lines"] < 0:
        errors.append("log_lines must be zero or positive, got %d" % p["log_lines"])
    if p["project_name"] is not None and not p["project_name"].strip():
        errors.append("project_name must not be empty")
    if errors:
        module.fail_json(msg="; ".join(errors))
    # Check mode returns before anything the host may still lack (Docker, the project directory):
    # on a bare host the roles install them in the same run.
    if module.check_mode:
        module.exit_json(**check_mode_result(project=p["project_name"], services={}))
    if p["project_src"] and not os.path.isdir(p["project_src"]):
        module.fail_json(msg="project_src %s is not a directory" % p["project_src"])

    try:
        client = docker_client(p["docker_host"])
    except Exception as exc:
        module.fail_json(msg="cannot reach the Docker daemon: %s" % exc)
    try:
        definition = load_definition(module, client, p["project_src"], p["project_name"], p["files"])
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

    probe = ComposeProbe(
        client,
        definition,
        targets,
        oneshots,
        restart_threshold=p["restart_threshold"],
        unhealthy_grace=p["unhealthy_grace"],
        stable_seconds=p["stable_seconds"],
    )
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
    consumers = sorted(set(bad) & set(p["kubeconfig_consumers"]))
    if consumers and p["generator"] in known:
        sentence, generator_logs = explain_consumers(
            client, definition, p["generator"], p["kubeconfig"], p["log_lines"]
        )
        secrets = probe.env_values()
        logs.setdefault(p["generator"], [mask(line, secrets) for line in generator_logs])
        result.update(generator=dict(service=p["generator"], verdict=sentence))
        msg = "%s. %s %s the app kubeconfig: %s" % (
            msg,
            ", ".join(consumers),
            "reads" if len(consumers) == 1 else "read",
            sentence,
        )
    msg = with_log_tail(msg, logs)
    module.fail_json(msg=msg, **result)


if __name__ == "__main__":
    main()

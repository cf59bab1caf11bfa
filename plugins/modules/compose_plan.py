#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: compose_plan
short_description: What C(docker compose up) must change, the stack role's override file settled, the host checked
version_added: "0.2.0"
description:
  - The one decision whether the stack role runs C(docker compose up), and why. C(up) starts
    exited one-shots again (re-running cert-generator, resetting the seeded passwords), so it
    must run only when the project is not converged. RV(drift) lists, one line each, a service
    without a container, a container whose C(com.docker.compose.config-hash) differs from
    C(docker compose config --hash), a long-running service that neither runs nor restarts, a
    one-shot that did not exit 0, an orphan container, and V(images pulled) with O(pulled).
  - Reads the project's definition (C(docker compose config --format json) with O(files) and the
    C(COMPOSE_PROFILES) of the environment) and writes the role's override compose file
    O(override_file), which makes the O(kubeconfig_consumers) wait for O(generator)'s successful
    completion. Upstream's workers depend only on kafka and mongo, so on a first deploy they load
    the still-empty kubeconfig, crash and restart until cert-generator has written it.
  - With O(app_settings), writes O(settings_file) (upstream's flat C(backend/config.toml) from
    O(settings_base) with those keys replaced or added) and mounts it at C(/app/config.toml) of
    every service that mounts a file there, through the override file. Without, the settings file
    is removed.
  - Fails, naming what holds each, when a fixed C(container_name) of the definition belongs to a
    container of another compose project (or of none), or when a listener (C(ss -Hltnp)) already
    holds a published TCP port that none of the project's running containers publishes.
  - Sums the services' C(mem_limit)s and compares them with the host's memory, warning or, with
    O(memory_check=strict), failing.
  - Makes each of O(bind_files) a file before any container could start - an empty one (mode
    O(bind_file_mode), owner and group of the file arguments) where there is none, in place of the
    empty directory Docker creates for a missing bind-mount source; an existing file is left to its
    writer (cert-generator for the app kubeconfig).
options:
  bind_files:
    description: Files the project bind-mounts that a service writes later, relative to O(project_src).
    type: list
    elements: str
    default: []
  bind_file_mode:
    description: Mode of a file O(bind_files) creates.
    type: str
    default: "0600"
  project_src:
    description: The compose project directory (the checkout).
    type: path
    required: true
  files:
    description: The project's own compose files, relative to O(project_src) (without the override).
    type: list
    elements: str
    default: []
  project_name:
    description: Compose project name (default the directory's or the file's C(name:)).
    type: str
  override_file:
    description: The override compose file the module writes, relative to O(project_src).
    type: str
    required: true
  generator:
    description: The one-shot that writes the app kubeconfig (upstream's C(cert-generator)).
    type: str
    default: cert-generator
  kubeconfig_consumers:
    description: Services that read the app kubeconfig once at start.
    type: list
    elements: str
    default: [k8s-worker, pod-monitor]
  app_settings:
    description: Flat C(config.toml) keys to replace or add (strings, numbers, booleans, lists).
    type: dict
    default: {}
  settings_base:
    description: Upstream's settings file, relative to O(project_src).
    type: str
    default: backend/config.toml
  settings_file:
    description:
      - The settings file the module writes from O(settings_base) and O(app_settings), relative to
        O(project_src).
    type: str
    default: backend/config.integr8scode-provision.toml
  check_clashes:
    description: Fail on container name and published port clashes.
    type: bool
    default: true
  memory_check:
    description: What a sum of mem_limits beyond the host's memory does.
    type: str
    choices: ["off", warn, strict]
    default: warn
  pulled:
    description: Newer images were pulled, so C(up) must recreate containers.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
requirements:
  - The C(docker) CLI with the Compose v2 plugin and C(ss) (iproute2) on the host.
author:
  - integr8scode.provision maintainers (@integr8scode)
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: >-
      Reports the files it would write without writing them (the drift is computed with them);
      the checks run as usual.
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Settle the override file, check the host and decide whether `up` must run
  integr8scode.provision.compose_plan:
    project_src: /opt/Integr8sCode
    files: [docker-compose.yaml]
    override_file: compose.integr8scode-provision.yaml
    app_settings:
      LOG_LEVEL: INFO
      APP_URL: https://code.example.org
    owner: integr8scode
    mode: "0644"
  environment:
    COMPOSE_PROFILES: ""
  register: plan

- name: Bring the project up only when it is not converged
  when: plan.drift | length > 0
  community.docker.docker_compose_v2:
    project_src: /opt/Integr8sCode
    files: [docker-compose.yaml, compose.integr8scode-provision.yaml]
"""

RETURN = r"""
bind_files:
  description: Per path of O(bind_files) that needed it, V(created) or V(replaced a directory).
  returned: always
  type: dict
  sample: {backend/kubeconfig.yaml: created}
drift:
  description: What C(docker compose up) must change, one line each; empty when converged.
  returned: always
  type: list
  elements: str
  sample: ["backend: no container", "k8s-worker: configuration changed", "cert-generator: one-shot exited (exit 1)"]
override:
  description: The override file, whether it changed, and the services it touches.
  returned: always
  type: dict
  sample: {path: /opt/Integr8sCode/compose.integr8scode-provision.yaml, changed: false,
           services: [backend, k8s-worker, pod-monitor]}
settings:
  description: The settings file, whether it changed, and the keys set (values not shown).
  returned: always
  type: dict
  sample: {path: /opt/Integr8sCode/backend/config.integr8scode-provision.toml, changed: false, keys: [LOG_LEVEL]}
clashes:
  description: Container names and published ports held by something else (empty lists when none).
  returned: always
  type: dict
  sample: {names: [], ports: ["port 0.0.0.0:443 (service backend): held by nginx (pid 812) on 0.0.0.0:443"]}
memory:
  description: The services' mem_limits in bytes, their sum, the host's MemTotal and the problem if any.
  returned: always
  type: dict
  sample: {limits: {mongo: 1073741824}, total: 1073741824, host: 8223141888, problem: null}
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.compose import preflight
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    ComposeError,
    compose_config,
    config_hashes,
    container_states,
    docker_client,
    drift,
    of_project,
    oneshots_from_config,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.docker_engine import DockerException
from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write, file_differs


def settle_file(module, path, content, diffs):
    """Write ``content`` to ``path`` when it differs (atomically; check mode only reports)."""
    # Owner, group and mode are the file arguments' (user names), set below.
    changed, old = file_differs(path, content)
    if changed:
        diffs.append(dict(before=old or "", after=content or "", before_header=path, after_header=path))
        if not module.check_mode:
            atomic_write(path, content.encode(), 0o644)
    if os.path.exists(path) and not module.check_mode:
        file_args = module.load_file_common_arguments(module.params, path=path)
        changed = module.set_fs_attributes_if_different(file_args, changed)
    return changed


def prepare_bind_file(module, path, mode):
    """What ``path``, a file the compose project bind-mounts, needed: '' (a file already: left as it
    is, its writer owns it), 'created' (an empty file), or 'replaced a directory' (an empty one,
    which Docker makes when a container starts before the file exists: the writer could then never
    create the file; upstream's deploy notes). A non-empty directory fails."""
    if os.path.isfile(path):
        return ""
    action = "created"
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path):
            raise preflight.PreflightError(
                "%s is a non-empty directory where the stack bind-mounts a file; move it away" % path
            )
        action = "replaced a directory"
    if module.check_mode:
        return action
    if action != "created":
        os.rmdir(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
        module.set_fs_attributes_if_different(module.load_file_common_arguments(module.params, path=directory), False)
    atomic_write(path, b"", int(mode, 8))
    file_args = module.load_file_common_arguments(module.params, path=path)
    file_args["mode"] = mode
    module.set_fs_attributes_if_different(file_args, True)
    return action


def remove_file(module, path, diffs):
    if not os.path.exists(path):
        return False
    diffs.append(dict(before_header=path, after_header="(absent)"))
    if not module.check_mode:
        os.unlink(path)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_src=dict(type="path", required=True),
            files=dict(type="list", elements="str", default=[]),
            project_name=dict(type="str"),
            override_file=dict(type="str", required=True),
            generator=dict(type="str", default="cert-generator"),
            kubeconfig_consumers=dict(type="list", elements="str", default=["k8s-worker", "pod-monitor"]),
            app_settings=dict(type="dict", default={}),
            settings_base=dict(type="str", default="backend/config.toml"),
            settings_file=dict(type="str", default="backend/config.integr8scode-provision.toml"),
            check_clashes=dict(type="bool", default=True),
            memory_check=dict(type="str", choices=["off", "warn", "strict"], default="warn"),
            pulled=dict(type="bool", default=False),
            bind_files=dict(type="list", elements="str", default=[]),
            bind_file_mode=dict(type="str", default="0600"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    src = p["project_src"]
    if not os.path.isdir(src):
        module.fail_json(msg="project_src %s is not a directory" % src)
    override_path = os.path.join(src, p["override_file"])
    settings_path = os.path.join(src, p["settings_file"])
    result = dict(
        changed=False,
        drift=[],
        override=dict(path=override_path, changed=False, services=[]),
        settings=dict(path=settings_path, changed=False, keys=sorted(p["app_settings"])),
        clashes=dict(names=[], ports=[]),
        memory=dict(limits={}, total=0, host=None, problem=None),
        bind_files={},
    )
    diffs = []
    try:
        config = compose_config(module, src, p["project_name"], p["files"])
        services = config.get("services") or {}
        project = p["project_name"] or config.get("name")

        settings_source = None
        if p["app_settings"]:
            base_path = os.path.join(src, p["settings_base"])
            if not os.path.isfile(base_path):
                module.fail_json(
                    msg="stack_app_settings: %s not found in the checkout (upstream's settings file)" % base_path,
                    **result,
                )
            with open(base_path) as handle:
                merged = preflight.merge_settings(handle.read(), p["app_settings"])
            result["settings"]["changed"] = settle_file(module, settings_path, merged, diffs)
            settings_source = "./" + p["settings_file"]
        else:
            result["settings"]["changed"] = remove_file(module, settings_path, diffs)

        doc = preflight.override_document(services, p["generator"], p["kubeconfig_consumers"], settings_source)
        result["override"]["services"] = sorted(doc["services"])
        result["override"]["changed"] = settle_file(module, override_path, preflight.render_override(doc), diffs)
        for rel in p["bind_files"]:
            action = prepare_bind_file(module, os.path.join(src, rel), p["bind_file_mode"])
            if action:
                result["bind_files"][rel] = action
    except preflight.PreflightError as exc:
        module.fail_json(msg=str(exc), **result)
    except ComposeError as exc:
        module.fail_json(msg=str(exc), **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write %s: %s" % (getattr(exc, "filename", None) or override_path, exc), **result)
    result["changed"] = result["override"]["changed"] or result["settings"]["changed"] or bool(result["bind_files"])

    if p["memory_check"] != "off":
        try:
            limits = preflight.memory_limits(services)
        except preflight.PreflightError as exc:
            module.fail_json(msg=str(exc), **result)
        with open("/proc/meminfo") as handle:
            host = preflight.host_memory(handle.read())
        problem = preflight.memory_problem(limits, host)
        result["memory"] = dict(limits=limits, total=sum(limits.values()), host=host, problem=problem)
        if problem and p["memory_check"] == "strict":
            module.fail_json(msg="%s (stack_min_memory_check: strict)" % problem, **result)
        if problem:
            module.warn("%s: the kernel will kill containers under load (stack_min_memory_check)" % problem)

    try:
        client = docker_client()
        containers = client.api.containers(all=True)
    except DockerException as exc:
        module.fail_json(msg="cannot reach the Docker daemon: %s" % exc, **result)

    if p["check_clashes"]:
        ss = module.get_bin_path("ss", required=True)
        rc, out, err = module.run_command([ss, "-Hltnp"])
        if rc != 0:
            module.fail_json(msg="ss -Hltnp failed (rc=%d): %s" % (rc, err.strip()), **result)
        result["clashes"] = dict(
            names=preflight.name_clashes(services, containers, project),
            ports=preflight.port_clashes(
                services, preflight.parse_listeners(out), preflight.own_published(containers, project)
            ),
        )
        problems = result["clashes"]["names"] + result["clashes"]["ports"]
        if problems:
            module.fail_json(
                msg="before docker compose up in %s: %s. Remove or rename what holds them, or move a published"
                " port with a compose override file (README: Moving a published port)" % (src, "; ".join(problems)),
                **result,
            )

    # The hashes compose labels containers with, from every file `up` uses: in check mode a changed
    # override exists only as a scratch copy beside it (its relative paths resolve against the
    # project directory either way).
    scratch = None
    override_for_hash = p["override_file"]
    try:
        if module.check_mode and result["override"]["changed"]:
            fd, scratch = tempfile.mkstemp(dir=src, prefix=".compose-plan.", suffix=".yaml")
            with os.fdopen(fd, "w") as handle:
                handle.write(preflight.render_override(doc))
            override_for_hash = os.path.basename(scratch)
        hashes = config_hashes(module, src, p["project_name"], p["files"] + [override_for_hash])
        oneshots = oneshots_from_config(services) | (set([p["generator"]]) if p["kubeconfig_consumers"] else set())
        result["drift"] = drift(
            container_states(client, of_project(containers, project)), hashes, oneshots, p["pulled"]
        )
    except ComposeError as exc:
        module.fail_json(msg=str(exc), **result)
    except DockerException as exc:
        module.fail_json(msg="Docker API error while reading %s: %s" % (project, exc), **result)
    finally:
        if scratch:
            os.unlink(scratch)

    if diffs and module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()

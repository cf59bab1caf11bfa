#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_status
short_description: One look at an Integr8sCode host, as a table (read-only)
version_added: "0.3.0"
description:
  - Reads, without changing anything, every part M(integr8scode.provision.site) and
    M(integr8scode.provision.recover) set up and judges each with the collection's own function for
    that fact, so the table never disagrees with what the roles and the recovery decide.
  - C(node_address) - the address the node-address policy chooses and why, and the drift findings
    C(recover.yml) would act on (the drift check of M(integr8scode.provision.k3s_drift)).
  - C(k3s) - the k3s unit's state and restarts, and the Ready nodes (one probe of
    M(integr8scode.provision.k3s_ready) with the admin kubeconfig).
  - C(compose) - each service of the compose project in O(stack_dir) (its definition's and any
    other container carrying the project's label), its state, health and restarts, judged by the
    probe of M(integr8scode.provision.compose_wait). A long-running service that is not running
    now counts as down, whatever its restart policy.
  - C(app_token) - the app kubeconfig judged as M(integr8scode.provision.app_kubeconfig) judges it,
    its token's expiry and whether the k3s API accepts it. The token never appears in the result.
  - C(watcher) - the installed watcher's mode (from the program C(recover.yml) installed), whether
    its address follower runs, and its last check and recovery.
  - C(backup) - the newest backup under O(backup_root) that verifies now against its manifest, and
    its age.
  - C(vpn) - the NordVPN client's connection, LAN discovery and allowlist.
  - Each part that is not there (no k3s, no stack, no watcher, no backups, no NordVPN) or cannot
    be read says so in its row; the module itself fails only on bad options.
options:
  config_file:
    description: The k3s configuration file (drop-ins in C(<config_file>.d/) are read too).
    type: path
    default: /etc/rancher/k3s/config.yaml
  data_dir:
    description: The k3s data directory; default C(data-dir) from the configuration, else C(/var/lib/rancher/k3s).
    type: path
  service:
    description: The k3s systemd unit.
    type: str
    default: k3s
  node_name:
    description:
      - Node name whose datastore record the drift check reads (default C(node-name) from the
        configuration, else the host name).
    type: str
  node_ip:
    description: The pinned node address (C(k3s_node_ip)), as the drift check takes it.
    type: str
  node_interface:
    description: The pinned node interface (C(k3s_node_interface)).
    type: str
  flannel_iface:
    description: The pinned C(flannel-iface) (C(k3s_flannel_iface)).
    type: str
  admin_kubeconfig:
    description: The admin kubeconfig k3s writes; the nodes are read with it.
    type: path
    default: /etc/rancher/k3s/k3s.yaml
  kubeconfigs:
    description:
      - Further kubeconfigs the drift check compares with the node address (for example the
        user's C(~/.kube/config)).
    type: list
    elements: path
    default: []
  stack_dir:
    description: The Integr8sCode checkout (the compose project directory); unset or missing means no stack.
    type: path
  project_name:
    description: The compose project name; empty takes the one C(docker compose config) names.
    type: str
  compose_files:
    description: The compose files, relative to O(stack_dir).
    type: list
    elements: str
    default: [docker-compose.yaml]
  app_kubeconfig:
    description: The kubeconfig cert-generator writes for the workers.
    type: path
  app_probe_path:
    description: The API path requested with the app token (200 or 403 accept it).
    type: str
    default: /api/v1/namespaces
  api_port:
    description: The k3s API port in the app kubeconfig's server URL.
    type: int
    default: 6443
  backup_root:
    description: Where the recovery and the scheduled backups put their backups.
    type: path
    default: /var/backups/integr8scode-k3s
  watcher_program:
    description: The watcher program C(recover.yml) installs; its settings hold the mode.
    type: path
    default: /usr/local/sbin/integr8scode-k3s-drift-check
  docker_host:
    description: The Docker Engine endpoint (default C(DOCKER_HOST), else the local socket).
    type: str
  request_timeout:
    description: Seconds one request to the k3s API may take.
    type: float
    default: 5
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Needs root for the k3s data directory, the backups and the watcher's state; the Docker Engine
    socket and C(docker compose) for the stack; the Python C(kubernetes) client for the nodes.
  - M(integr8scode.provision.k3s_drift), M(integr8scode.provision.compose_wait) and
    M(integr8scode.provision.app_kubeconfig) are the modules that own these checks.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Look at the host
  integr8scode.provision.host_status:
    stack_dir: /opt/Integr8sCode
    app_kubeconfig: /opt/Integr8sCode/backend/kubeconfig.yaml
  register: status

- name: Print the table
  ansible.builtin.debug:
    msg: "{{ status.table }}"

- name: Stop when a compose service is down
  ansible.builtin.assert:
    that: status.status.compose.state != 'FAIL'
    fail_msg: "{{ status.problems }}"
"""

RETURN = r"""
table:
  description:
    - The table, one line each - a title line, a header, one line per part (C(PART STATE WHAT WAS
      SEEN)) with its rows indented below it, and a last line counting the problems.
    - C(STATE) is C(ok), C(WARN), C(FAIL), or C(-) for a part that is not there.
  returned: always
  type: list
  elements: str
status:
  description:
    - Per part (C(node_address), C(k3s), C(compose), C(app_token), C(watcher), C(backup), C(vpn))
      what was seen - C(state), C(summary), C(rows) (each C(name), C(state), C(text)) and the
      part's facts.
    - C(node_address) - C(address), C(interface), C(source), C(reason), C(configured), C(drift),
      C(findings). C(k3s) - C(installed), C(active_state), C(sub_state), C(n_restarts),
      C(crash_looping), C(nodes), C(nodes_ready), C(api_error). C(compose) - C(stack_dir),
      C(project), C(services) (per service C(state), C(health), C(exit_code), C(restart_count),
      C(oneshot), C(ready)). C(app_token) - C(path), C(server), C(mode), C(expires) (epoch),
      C(expires_at), C(expires_in) (seconds), C(accepted), C(probe_status), C(problems).
      C(watcher) - C(mode), C(follower), C(last_check), C(last_recovery), C(failed_recovery),
      C(held), C(status_line). C(backup) - C(root), C(count), C(newest) (C(name), C(kind),
      C(created), C(age), C(files), C(path)), C(unverified). C(vpn) - C(installed), C(status),
      C(connected), C(server), C(technology), C(lan_discovery), C(allowlisted_subnets).
  returned: always
  type: dict
problems:
  description: One line per part or row that is C(WARN) or C(FAIL), worst first.
  returned: always
  type: list
  elements: str
"""

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.host_status import look
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import ARGUMENT_SPEC as DRIFT_SPEC
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.watch import PROGRAM


def main():
    # The drift check's own options (the same node-address pins), without its hung-start setting;
    # the admin kubeconfig is asked apart, so the extra kubeconfigs default to none.
    spec = dict((key, dict(value)) for key, value in DRIFT_SPEC.items() if key != "hung_start_after")
    spec["kubeconfigs"]["default"] = []
    module = AnsibleModule(
        argument_spec=dict(
            spec,
            admin_kubeconfig=dict(type="path", default="/etc/rancher/k3s/k3s.yaml"),
            stack_dir=dict(type="path"),
            project_name=dict(type="str"),
            compose_files=dict(type="list", elements="str", default=["docker-compose.yaml"]),
            app_kubeconfig=dict(type="path"),
            app_probe_path=dict(type="str", default="/api/v1/namespaces"),
            api_port=dict(type="int", default=6443),
            backup_root=dict(type="path", default="/var/backups/integr8scode-k3s"),
            watcher_program=dict(type="path", default=PROGRAM),
            docker_host=dict(type="str"),
            request_timeout=dict(type="float", default=5.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["request_timeout"] <= 0:
        module.fail_json(msg="request_timeout must be a positive number of seconds, got %r" % p["request_timeout"])
    # Empty strings from the roles' variables mean "not pinned" / "not set", as for k3s_drift.
    for key in ("data_dir", "node_name", "node_ip", "node_interface", "flannel_iface", "project_name", "docker_host"):
        p[key] = p[key] or None
    sections, table, problems, warnings = look(module, p, socket.gethostname())
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, status=sections, table=table, problems=problems)


if __name__ == "__main__":
    main()

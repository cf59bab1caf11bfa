#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_config
short_description: Choose k3s's node address and write /etc/rancher/k3s/config.yaml
version_added: "0.3.0"
description:
  - Chooses the node address with the collection's one node-address policy and renders
    C(config.yaml) with the one renderer the recovery (M(integr8scode.provision.k3s_rebuild)) uses
    as well, so a rerun after a recovery writes the same bytes.
  - "Node-address policy, in order: O(node_ip); the first IPv4 address of O(node_interface); the
    C(node-ip) k3s already uses while it is still assigned to a LAN interface (a healthy node is
    not moved because a route moved, k3s issue 5880); else the IPv4 address of the LAN interface that
    carries the main routing table's default route, else the first LAN interface. Tunnels and
    virtual devices (nordlynx, nordtun, qtun, tun*, tap*, wg*, tailscale*, zt*, docker0, br-*,
    veth*, cni0, flannel*, kube-*, virbr*) and 100.64.0.0/10 addresses never qualify: NordVPN puts
    its default route in policy table 205, so C(ip route get) and Ansible's default-route fact
    name the tunnel while it is connected."
  - C(flannel-iface) is O(flannel_iface) or the interface that carries the node address (flannel
    otherwise follows the default route, k3s issue 12459). C(node-ip) stays a top-level scalar because
    upstream Integr8sCode's cert-generator reads it with a line grep.
  - The file is written atomically with mode 0600 (it may hold a token through O(extra)).
  - "The values of k3s's secret flags (C(token), C(agent-token), C(etcd-s3-access-key),
    C(etcd-s3-secret-key), C(etcd-s3-session-token), C(vpn-auth) and their aliases, the password in
    C(datastore-endpoint) or C(etcd-s3-proxy)) never leave the host through the module: the diff
    shows them as C(<redacted>) (also those in the file found on the host), the result and a
    failure mask them as no_log does, and O(extra) is not written to the host's log."
  - In the same run, the node-address pins as given (O(node_ip), O(node_interface),
    O(flannel_iface); empty = not pinned) go into C(integr8scode-node.json) beside O(path), with
    O(path) and O(data_dir) (JSON, mode 0644, no secrets). The recovery
    (M(integr8scode.provision.k3s_rebuild)) writes the same file, and the drift watcher of role
    C(k3s_recover) reads it at every check, so a pin changed with site.yml is not taken for drift
    of the old one.
  - Before writing, the module takes the run lock the recovery and the watcher hold while they
    rebuild (O(lock_path)), waiting up to O(lock_wait) seconds for it, and compares again under
    it, so a run that waited for a recovery sees the recovered config.yaml (its C(node-ip) is the
    recorded address the policy keeps) and changes nothing. When the wait runs out, the module
    fails naming the lock's holder and changes nothing. Nothing to change means no lock; check
    mode never waits for or takes it.
options:
  path:
    description: The configuration file.
    type: path
    default: /etc/rancher/k3s/config.yaml
  node_ip:
    description:
      - Explicit node address (the role's C(k3s_node_ip)); must be assigned on the host.
      - Recorded as the C(node_ip) pin.
    type: str
    default: ""
  node_interface:
    description:
      - Interface whose first IPv4 address is the node address (the role's C(k3s_node_interface)).
      - Recorded as the C(node_interface) pin.
    type: str
    default: ""
  flannel_iface:
    description:
      - C(flannel-iface) when it must differ from the node address's interface (C(k3s_flannel_iface)).
      - Recorded as the C(flannel_iface) pin.
    type: str
    default: ""
  bind_address:
    description: C(bind-address).
    type: str
    default: 0.0.0.0
  tls_san:
    description: Extra C(tls-san) entries; C(host.docker.internal) and the node address are always added.
    type: list
    elements: str
    default: []
  disable:
    description: C(disable) (packaged components k3s must not deploy).
    type: list
    elements: str
    default: []
  write_kubeconfig_mode:
    description: C(write-kubeconfig-mode), octal.
    type: str
    default: "0600"
  cluster_init:
    description: C(cluster-init) (embedded etcd).
    type: bool
    default: false
  data_dir:
    description: C(data-dir); written only when not the default.
    type: path
    default: /var/lib/rancher/k3s
  extra:
    description:
      - Any other keys (k3s flag names without dashes); keys listed above are refused.
      - Values of k3s's secret flags are hidden from the result and the diff; the file gets them as given.
    type: dict
    default: {}
  lock_ttl:
    description:
      - Seconds the lock kept by O(lock_hold) holds after this module returns, unless the restart
        takes it over first. A play that stops before its restart handler blocks the recovery
        and the watcher this long at most. Without O(lock_hold) the lock is held only while the
        module runs.
    type: int
    default: 300
  lock_hold:
    description:
      - When config.yaml changed, keep the lock after the write (O(lock_ttl) seconds at most), so no
        recovery starts before k3s was restarted onto the new file (k3s keeps running on the old
        one until then, which the watcher would judge as drift). The restart,
        M(integr8scode.provision.k3s_restart) with RV(lock.run_id), releases it.
    type: bool
    default: false
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Reads the host's addresses with C(ip -j) (iproute2).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - integr8scode.provision.run_lock
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Compares without the lock and changes nothing.
  diff_mode:
    support: full
    details:
      - One diff for config.yaml, one for the pins file, each when it differs.
      - config.yaml's with the values of k3s's secret flags as C(<redacted>) (a C(datastore-endpoint)
        keeps its scheme, user and host); when only those differ, a line saying so instead.
"""

EXAMPLES = r"""
- name: Choose the node address (read-only) and say why
  integr8scode.provision.k3s_config:
    node_interface: "{{ k3s_node_interface }}"
  check_mode: true
  register: plan

- name: Write config.yaml and the pins under the run lock, keeping it for the restart
  integr8scode.provision.k3s_config:
    node_interface: "{{ k3s_node_interface }}"
    disable: [traefik]
    lock_wait: 900
    lock_hold: true
  register: written

- name: Restart k3s onto it and release the lock
  when: written.config_differs
  integr8scode.provision.k3s_restart:
    run_id: "{{ written.lock.run_id }}"
"""

RETURN = r"""
node_ip:
  description: The chosen node address.
  returned: success
  type: str
  sample: 192.168.1.20
node_interface:
  description: The interface that carries it.
  returned: success
  type: str
  sample: eth0
flannel_iface:
  description: The C(flannel-iface) written.
  returned: success
  type: str
source:
  description:
    - Which rule chose the address (C(node_ip), C(node_interface), C(recorded), C(default_route),
      C(interface)).
  returned: success
  type: str
reason:
  description: Why this address, in words.
  returned: success
  type: str
  sample: k3s already uses 192.168.1.20 and it is still assigned to eth0
candidates:
  description: Every IPv4 address the policy could have chosen.
  returned: success
  type: list
  elements: str
seen:
  description:
    - Every global IPv4 address on the host with C(interface), C(prefix) and why it was
      C(excluded) (null if usable).
  returned: success
  type: list
  elements: dict
recorded:
  description: The C(node-ip) the file (and its drop-ins) held before.
  returned: success
  type: str
differs:
  description: Whether config.yaml or the pins file differs from the rendered content (also in check mode).
  returned: success
  type: bool
config_differs:
  description: Whether config.yaml differs (also in check mode); when not in check mode, it was written.
  returned: success
  type: bool
pins_differs:
  description: Whether the pins file differs (also in check mode); when not in check mode, it was written.
  returned: success
  type: bool
pins_file:
  description: The pins file.
  returned: success
  type: str
  sample: /etc/rancher/k3s/integr8scode-node.json
pins:
  description: The pins recorded in it (C(node_ip), C(node_interface), C(flannel_iface); empty = not pinned).
  returned: success
  type: dict
lock:
  description: The run lock, when something differed and not in check mode, or when the wait for it ran out.
  returned: when something differed
  type: dict
  contains:
    path:
      description: The lock directory.
      type: str
    run_id:
      description: This run, as recorded in the lock; the restart that takes over a kept lock passes it.
      type: str
      returned: when the lock was taken
    waited:
      description: Seconds waited for the lock.
      type: float
      returned: when the lock was taken
    held:
      description: Whether the lock is still held (O(lock_hold) and config.yaml changed).
      type: bool
      returned: when the lock was taken
    holder:
      description:
        - The owner record of the lock (C(by), C(run_id), C(started), and C(pid) of a running holder or
          C(expires) of a kept lock) when the wait ran out.
      type: dict
      returned: failure waiting for the lock
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import LOCK_PATH, BackupError, LockHeld
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import ConfigError, config_secrets
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config_write import (
    ARGUMENT_SPEC,
    diffs,
    locked_write,
    plan,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import NodeAddressError

# extra may hold k3s's join token or a datastore password: no_log keeps it out of the log of
# the invocation Ansible writes on the host (AnsibleModule._log_invocation, the journal).
MODULE_SPEC = dict(ARGUMENT_SPEC, extra=dict(ARGUMENT_SPEC["extra"], no_log=True))


def no_log_strings(value):
    """The strings Ansible's no_log takes from a parameter's value (module_utils/common/
    parameters.py _return_datastructure_name): non-empty strings and numbers, nested ones too."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        return [text for item in value.values() for text in no_log_strings(item)]
    if isinstance(value, (list, tuple, set)):
        return [text for item in value for text in no_log_strings(item)]
    if value is None or isinstance(value, bool):
        return []
    return [str(value)]


def hide_only_secrets(module):
    """Ansible masks every value of a no_log parameter wherever it occurs in the result, a
    cluster-cidr or an etcd-snapshot-retention of 5 inside the diff alike; of extra only the
    values of k3s's secret flags stay masked (config.py config_secrets), the rest shows."""
    extra = module.params["extra"] or {}
    module.no_log_values.difference_update(no_log_strings(extra))
    module.no_log_values.update(config_secrets(extra))


def main():
    module = AnsibleModule(argument_spec=MODULE_SPEC, supports_check_mode=True)
    hide_only_secrets(module)
    p = module.params
    lock = None
    try:
        planned = plan(p, module.run_command)
        if planned["differs"] and not module.check_mode:
            planned, lock = locked_write(p, module.run_command)
    except (ConfigError, NodeAddressError) as exc:
        module.fail_json(msg=str(exc))
    except LockHeld as exc:
        module.fail_json(
            msg="Not written: %s. Nothing was changed (%s and %s were neither compared again nor written); run "
            "again when that run is done, or raise lock_wait (k3s_lock_wait)." % (exc, p["path"], planned["pins_file"]),
            lock=dict(path=p["lock_path"] or LOCK_PATH, holder=exc.owner),
        )
    except BackupError as exc:
        module.fail_json(msg="Not written: cannot take the run lock %s: %s." % (p["lock_path"] or LOCK_PATH, exc))
    except OSError as exc:
        module.fail_json(msg="k3s_config could not take the run lock or write: %s" % exc)
    result = dict(
        changed=planned["differs"],
        differs=planned["differs"],
        config_differs=planned["config_differs"],
        pins_differs=planned["pins_differs"],
        node_ip=planned["choice"]["address"],
        node_interface=planned["choice"]["interface"],
        flannel_iface=planned["flannel_iface"],
        source=planned["choice"]["source"],
        reason=planned["choice"]["reason"],
        candidates=planned["choice"]["candidates"],
        seen=planned["choice"]["seen"],
        recorded=planned["recorded"],
        pins_file=planned["pins_file"],
        pins=planned["pins"],
    )
    if lock:
        result["lock"] = lock
    if module._diff and planned["differs"]:
        result["diff"] = diffs(p, planned)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

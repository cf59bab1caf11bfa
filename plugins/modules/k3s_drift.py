#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_drift
short_description: Detect that k3s's recorded node IP has drifted from the host (read-only)
version_added: "0.1.0"
description:
  - Compares, without changing anything, where k3s thinks it lives with where the host is now.
  - Reads C(node-ip) and C(flannel-iface) from the k3s configuration file and its drop-ins, the
    host's addresses and the interface that holds the default route (for example a VPN tunnel),
    the node IP k3s recorded in its serving certificates under C(server/tls), the node record in
    the SQLite datastore or the member URLs of embedded etcd, the server address of each given
    kubeconfig, and the state of the k3s systemd unit.
  - After a VPN switch or IP change k3s keeps the old address in its datastore and certificates
    and crash-loops (upstream Integr8sCode troubleshooting; k3s
    L(#5880,https://github.com/k3s-io/k3s/issues/5880)). This module is the detection half of the
    M(integr8scode.provision.k3s_recover) role and of its watcher.
  - A host without k3s (no configuration file and no data directory) reports C(installed=false)
    and C(drift=false).
options:
  config_file:
    description: The k3s configuration file. Drop-ins in C(<config_file>.d/*.yaml) are read too.
    type: path
    default: /etc/rancher/k3s/config.yaml
  data_dir:
    description:
      - The k3s data directory. Defaults to C(data-dir) from the configuration, else
        C(/var/lib/rancher/k3s).
    type: path
  service:
    description: The k3s systemd unit, for the crash-loop report.
    type: str
    default: k3s
  node_name:
    description:
      - Node name whose datastore record is read. Defaults to C(node-name) from the
        configuration, else the host name.
    type: str
  node_ip:
    description:
      - The node IP the host should use now (the k3s role's C(k3s_node_ip)). Without it the
        collection's node-address policy recommends one (see M(integr8scode.provision.k3s_config)),
        in order O(node_interface)'s address, else the address k3s records while a LAN interface still
        holds it, else the LAN interface of the main table's default route; never a tunnel or
        virtual device.
    type: str
  node_interface:
    description: Interface whose first IPv4 address is the node IP (C(k3s_node_interface)).
    type: str
  flannel_iface:
    description: C(flannel-iface) to recommend when it must differ from the node IP's interface (C(k3s_flannel_iface)).
    type: str
  kubeconfigs:
    description:
      - Kubeconfig files whose server address (and CA) are compared with the node IP, for
        example the admin C(k3s.yaml), the user's C(~/.kube/config) and the app's
        C(backend/kubeconfig.yaml). Missing files are reported, not errors.
    type: list
    elements: path
    default: [/etc/rancher/k3s/k3s.yaml]
  hung_start_after:
    description:
      - Seconds a start may stay C(activating) before a warning says it hangs. The installer's
        unit has C(TimeoutStartSec=0), so a k3s that never reports ready waits forever without
        a restart. Embedded etcd's C(not a member of the etcd cluster) loop (k3s 7558, 2732) is
        drift at once, read from the journal of the unit's current process.
    type: float
    default: 300
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Read-only; supports check mode. Needs C(ip) (iproute2) with JSON output and, for the unit
    state, C(systemctl). Certificates are parsed with the Python C(cryptography) library when it
    is present, else with the C(openssl) command; without either the certificate check is
    reported as unreadable.
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
- name: Look for drift between k3s and the host
  integr8scode.provision.k3s_drift:
    kubeconfigs:
      - /etc/rancher/k3s/k3s.yaml
      - /root/.kube/config
      - /opt/Integr8sCode/backend/kubeconfig.yaml
  register: drift

- name: Say what drifted
  ansible.builtin.debug:
    msg: "{{ drift.findings | map(attribute='message') | list }}"
  when: drift.drift
"""

RETURN = r"""
installed:
  description: Whether k3s is present (configuration file or data directory exists).
  returned: always
  type: bool
drift:
  description: Whether any finding of severity C(drift) was made.
  returned: always
  type: bool
findings:
  description:
    - Every check that failed. C(severity) is C(drift) (recovery needed) or C(warning)
      (worth knowing, no recovery needed, e.g. the default route is on a tunnel).
  returned: always
  type: list
  elements: dict
  sample:
    - check: config_node_ip_on_host
      severity: drift
      expected: 10.77.0.5
      actual: 172.17.0.3
      message: node-ip 172.17.0.3 in /etc/rancher/k3s/config.yaml is not assigned to any interface
datastore:
  description: C(etcd) (embedded etcd, C(server/db/etcd) or C(cluster-init)), C(sqlite), or null.
  returned: always
  type: str
crash_looping:
  description: Whether the unit is failing to start (auto-restart, failed, or restarting).
  returned: always
  type: bool
service:
  description:
    - The unit's C(active_state), C(sub_state), C(result), C(n_restarts), C(load_state),
      C(main_pid) and C(started_monotonic).
  returned: always
  type: dict
starting_for:
  description: Seconds the unit has been C(activating) in its current start, or null.
  returned: always
  type: float
refused:
  description:
    - What the recovery cannot rebuild on this host, one message each (empty when it can),
      C(node-ip) or C(flannel-iface) set in a drop-in, an IPv6 or dual-stack C(node-ip), an
      external datastore, a server joining another, other etcd members or other nodes, a
      C(data-dir) the recovery is not set to. C(recover.yml) and the watcher both refuse on it.
  returned: always
  type: list
  elements: str
interrupted:
  description:
    - The journal of a recovery that was killed before it finished (C(run_id), C(stage),
      C(backup_dir), C(node_ip), C(steps)), or null. It is also a finding of severity drift
      (C(interrupted_recovery)), so the next recovery finishes it, or undoes its stops when it
      deleted nothing.
  returned: always
  type: dict
node_ip:
  description:
    - C(config) (node-ip from the configuration, or null), C(config_file) (the file that sets
      it), C(recorded_tls) (IPs k3s put in its serving certificates), C(recorded_datastore)
      (InternalIP of the node record or etcd member URLs), C(expected) (what k3s should use
      now) and C(recommended) (what to write into the configuration; null when no address fits).
  returned: always
  type: dict
recommended_node_ip:
  description: Shortcut for C(node_ip.recommended).
  returned: always
  type: str
recommended_flannel_iface:
  description: The interface that holds the recommended node IP (or O(flannel_iface)).
  returned: always
  type: str
node_address:
  description: The node-address policy's C(source) and C(reason), or its C(error) when no address qualifies.
  returned: always
  type: dict
flannel_iface:
  description: C(flannel-iface) from the configuration, or null.
  returned: always
  type: str
host:
  description:
    - C(addresses) (list of C(interface), C(address), C(prefix), C(family), C(tunnel)),
      C(default_route) (C(interface), C(gateway), C(tunnel)).
  returned: always
  type: dict
kubeconfigs:
  description:
    - Per file C(path), C(exists), C(server), C(server_host), C(ca_matches) (null when unknown) and C(sha256)
      of the file (to notice that a kubeconfig was rewritten).
  returned: always
  type: list
  elements: dict
data_dir:
  description: The data directory that was read.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import (
    ARGUMENT_SPEC,
    DriftError,
    detect,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result, warnings = detect(module, module.params)
    except DriftError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

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
options:
  path:
    description: The configuration file.
    type: path
    default: /etc/rancher/k3s/config.yaml
  node_ip:
    description: Explicit node address (the role's C(k3s_node_ip)); must be assigned on the host.
    type: str
    default: ""
  node_interface:
    description: Interface whose first IPv4 address is the node address (the role's C(k3s_node_interface)).
    type: str
    default: ""
  flannel_iface:
    description: C(flannel-iface) when it must differ from the node address's interface (C(k3s_flannel_iface)).
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
    description: Any other keys (k3s flag names without dashes); keys listed above are refused.
    type: dict
    default: {}
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Reads the host's addresses with C(ip -j) (iproute2).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Choose the node address (read-only) and say why
  integr8scode.provision.k3s_config:
    node_interface: "{{ k3s_node_interface }}"
  check_mode: true
  register: plan

- name: Write config.yaml on the chosen address
  integr8scode.provision.k3s_config:
    node_ip: "{{ plan.node_ip }}"
    disable: [traefik]
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
  description: Whether the file differs from the rendered content (also in check mode).
  returned: success
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.files import write_if_changed
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    ConfigError,
    recorded_node_ip,
    render_config,
    role_settings,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
    flannel_iface_for,
    read_network,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/rancher/k3s/config.yaml"),
            node_ip=dict(type="str", default=""),
            node_interface=dict(type="str", default=""),
            flannel_iface=dict(type="str", default=""),
            bind_address=dict(type="str", default="0.0.0.0"),
            tls_san=dict(type="list", elements="str", default=[]),
            disable=dict(type="list", elements="str", default=[]),
            write_kubeconfig_mode=dict(type="str", default="0600"),
            cluster_init=dict(type="bool", default=False),
            data_dir=dict(type="path", default="/var/lib/rancher/k3s"),
            extra=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    recorded = recorded_node_ip(p["path"])
    try:
        links, routes = read_network(module.run_command)
        choice = choose_node_address(links, routes, p["node_ip"], p["node_interface"], [recorded] if recorded else [])
    except NodeAddressError as exc:
        module.fail_json(msg=str(exc))
    names = [link.get("ifname") for link in links]
    if p["flannel_iface"] and p["flannel_iface"] not in names:
        module.fail_json(
            msg="k3s_flannel_iface %s is not an interface of this host (%s)." % (p["flannel_iface"], ", ".join(names))
        )
    flannel_iface = flannel_iface_for(choice, p["flannel_iface"])
    try:
        content = render_config(
            role_settings(
                choice["address"],
                flannel_iface,
                bind_address=p["bind_address"],
                tls_san=p["tls_san"],
                disable=p["disable"],
                write_kubeconfig_mode=p["write_kubeconfig_mode"],
                cluster_init=p["cluster_init"],
                data_dir=p["data_dir"],
                extra=p["extra"],
            )
        )
    except (ConfigError, ValueError) as exc:
        module.fail_json(msg=str(exc))

    before = None
    if os.path.isfile(p["path"]):
        with open(p["path"]) as handle:
            before = handle.read()
        stat = os.stat(p["path"])
        differs = before != content or stat.st_mode & 0o7777 != 0o600 or stat.st_uid != 0
    else:
        differs = True
    changed = differs
    if differs and not module.check_mode:
        directory = os.path.dirname(p["path"])
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        changed, before = write_if_changed(p["path"], content, 0o600, 0, 0)
    result = dict(
        changed=changed,
        differs=differs,
        node_ip=choice["address"],
        node_interface=choice["interface"],
        flannel_iface=flannel_iface,
        source=choice["source"],
        reason=choice["reason"],
        candidates=choice["candidates"],
        seen=choice["seen"],
        recorded=recorded,
    )
    if module._diff and differs:
        result["diff"] = dict(before=before or "", after=content, before_header=p["path"], after_header=p["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()

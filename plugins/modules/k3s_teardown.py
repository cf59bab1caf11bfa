#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_teardown
short_description: What k3s-killall.sh and k3s-uninstall.sh do, never deleting below a live mount
version_added: "0.2.0"
description:
  - O(state=killed) does what k3s's C(k3s-killall.sh) does. C(systemctl stop k3s) leaves the pods
    running (C(KillMode=process), L(k3s#2624,https://github.com/k3s-io/k3s/issues/2624)); this
    stops the k3s units, kills the containerd-shim process trees of O(data_dir), unmounts and
    removes the mounts under C(/run/k3s), C(/var/lib/kubelet/pods|plugins) and C(/run/netns/cni-*),
    deletes the CNI network namespaces, C(cni0) and its veths, C(flannel.1) (and the other
    flannel/IPVS links), C(/var/lib/cni), and strips C(KUBE-), C(CNI-) and flannel lines from
    iptables and ip6tables.
  - O(state=uninstalled) does that, then what C(k3s-uninstall.sh) does. It disables and removes
    the unit and its environment file, the C(kubectl)/C(crictl)/C(ctr) links to k3s, the k3s
    binaries and O(programs), C(/run/k3s) and C(/run/flannel). With O(remove_data) it also
    removes O(config_dir), O(data_dir) and C(/var/lib/kubelet).
  - Nothing at or below a mount point that is still mounted is deleted. Upstream's clean-up
    descends into mounted directories and has destroyed volume data
    (L(k3s#3264,https://github.com/k3s-io/k3s/issues/3264)). Such paths are returned in RV(refused).
options:
  state:
    description: C(killed) (k3s-killall.sh) or C(uninstalled) (k3s-uninstall.sh).
    type: str
    choices: [killed, uninstalled]
    default: killed
  data_dir:
    description: k3s's data directory; its C(data/*/bin/containerd-shim*) processes are the pods.
    type: path
    default: /var/lib/rancher/k3s
  remove_data:
    description: With O(state=uninstalled), also remove O(config_dir), O(data_dir) and C(/var/lib/kubelet).
    type: bool
    default: false
  unit_file:
    description: The k3s unit file.
    type: path
    default: /etc/systemd/system/k3s.service
  env_file:
    description: The unit's environment file.
    type: path
    default: /etc/systemd/system/k3s.service.env
  bin_dir:
    description: Where the k3s binaries and the kubectl/crictl/ctr links are.
    type: path
    default: /usr/local/bin
  link:
    description: The C(k3s) symlink (or binary); its target is removed too.
    type: path
    default: /usr/local/bin/k3s
  config_dir:
    description: k3s's configuration directory.
    type: path
    default: /etc/rancher/k3s
  programs:
    description:
      - Further files removed with O(state=uninstalled), for example the killall and uninstall programs;
        each with its settings file, C(/etc/integr8scode-provision/<name>.json), when there is one.
    type: list
    elements: path
    default: []
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Needs root, C(ip) (iproute2) and C(umount); iptables rules are stripped where
    C(iptables-save)/C(iptables-restore) exist.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Reports in RV(actions) what would be done and changes nothing.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Stop k3s and everything its pods left behind
  integr8scode.provision.k3s_teardown:
    state: killed

- name: Uninstall k3s, keeping its data
  integr8scode.provision.k3s_teardown:
    state: uninstalled
    remove_data: false
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), one line each.
  returned: always
  type: list
  elements: str
  sample: ["stop k3s.service", "umount /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/0f1e/rootfs"]
refused:
  description: Mount points still mounted after the unmounts; nothing at or below them was deleted.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.teardown import ARGUMENT_SPEC, run, settings


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        # The same settings function as the installed k3s-killall.sh / k3s-uninstall.sh.
        result = run(settings(module.params), module, check=module.check_mode)
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg="k3s teardown failed: %s" % exc)
    if result["refused"]:
        module.warn(
            "Left in place because still mounted (nothing below them was deleted, k3s#3264): %s"
            % ", ".join(result["refused"])
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()

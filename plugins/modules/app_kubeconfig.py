#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_kubeconfig
short_description: Check the Integr8sCode app kubeconfig is fresh, points at the node and its token works
version_added: "0.3.0"
description:
  - Upstream's cert-generator exits with its second script's code only, so a failed Kubernetes
    setup still exits 0 and leaves a stale or empty C(backend/kubeconfig.yaml). This module judges
    the file itself, with the functions the recovery (M(integr8scode.provision.k3s_rebuild)) uses
    too - written by the latest cert-generator run (mtime not older than O(written_after)),
    parseable, with a token and CA data, C(server) at C(https://<node-ip>:<api_port>) - and proves
    the token with one request made as the workers make it (the file's own CA and token);
    200 or 403 (authenticated, refused by RBAC for that path) accept it.
  - Fails with every problem found; the token never appears in the result.
  - Changes only the file's mode (O(mode)); in check mode it makes no API request.
options:
  path:
    description: The app kubeconfig.
    type: path
    required: true
  node_ip:
    description: The node address the server must name. Default the C(node-ip) of O(k3s_config).
    type: str
  k3s_config:
    description: k3s's configuration file (and drop-ins), read for the node address.
    type: path
    default: /etc/rancher/k3s/config.yaml
  api_port:
    description: The API port in the server URL.
    type: int
    default: 6443
  written_after:
    description: Epoch seconds of the cert-generator run that must have written the file.
    type: float
  probe_path:
    description: API path requested with the token.
    type: str
    default: /api/v1/namespaces
  mode:
    description:
      - The file's mode; it holds a ServiceAccount token and upstream's cert-generator writes it
        0644. Set (C(changed)) when the file is otherwise usable.
    type: str
    default: "0600"
author:
  - integr8scode.provision maintainers (@integr8scode)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Judges the file but makes no API request in check mode.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Check the app kubeconfig cert-generator wrote
  integr8scode.provision.app_kubeconfig:
    path: /opt/Integr8sCode/backend/kubeconfig.yaml
    written_after: "{{ stack_wait.services['cert-generator'].started_at }}"
"""

RETURN = r"""
server:
  description: The server URL the file names.
  returned: always
  type: str
  sample: https://192.168.1.20:6443
expected_server:
  description: The server URL it must name (null without a node address).
  returned: always
  type: str
mode:
  description: The file's mode (four octal digits) as found, null when missing.
  returned: always
  type: str
problems:
  description: What is wrong with the file (empty when usable).
  returned: always
  type: list
  elements: str
probe_status:
  description: HTTP status of the token request (null in check mode or when not made).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import recorded_node_ip
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (
    judge,
    prove_token,
    secure,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            node_ip=dict(type="str"),
            k3s_config=dict(type="path", default="/etc/rancher/k3s/config.yaml"),
            api_port=dict(type="int", default=6443),
            written_after=dict(type="float"),
            probe_path=dict(type="str", default="/api/v1/namespaces"),
            mode=dict(type="str", default="0600"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        mode = int(p["mode"], 8)
    except ValueError:
        module.fail_json(msg="mode: %r is not an octal file mode" % p["mode"])
    node_ip = p["node_ip"] or recorded_node_ip(p["k3s_config"])
    config, facts = judge(p["path"], node_ip, p["api_port"], p["written_after"])
    result = dict(changed=False, probe_status=None, **{k: facts[k] for k in ("server", "expected_server", "mode")})
    problems = list(facts["problems"])
    if not node_ip:
        problems.append("no node-ip in %s to compare the server with" % p["k3s_config"])
    if config is not None and not problems and not module.check_mode:
        accepted, status, error = prove_token(config, p["probe_path"])
        result["probe_status"] = status
        if not accepted:
            problems.append("the k3s API at %s answered %s to its token %s" % (facts["server"], status, error))
    result["problems"] = problems
    if not problems:
        result["changed"] = secure(p["path"], mode, module.check_mode)
    if problems:
        module.fail_json(
            msg="%s is not what cert-generator should have written: %s" % (p["path"], "; ".join(problems)), **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()

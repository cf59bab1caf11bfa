#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_ready
short_description: Wait until the k3s API server is ready, its nodes Ready and named deployments available
version_added: "0.1.0"
description:
  - Using a kubeconfig, waits until the API server's C(/readyz) answers C(ok), the node(s) are
    C(Ready) and, optionally, a node has an expected InternalIP and named deployments (for example
    C(kube-system/coredns)) are available.
  - Says precisely what is wrong when it cannot succeed. A missing kubeconfig is waited for (k3s
    writes it at start-up) and reported at the timeout; an unreadable one fails at once. Connection
    refused is retried (k3s starting, or crash-looping after an IP change). A server certificate
    that does not cover the address fails at once and says the host IP has probably changed and to
    run C(playbooks/recover.yml) (k3s keeps its old IP in certificates and datastore,
    L(k3s#5880,https://github.com/k3s-io/k3s/issues/5880)). C(401) fails at once (token expired,
    or issued by an older CA after a k3s TLS reset); so do C(403) and an unknown server CA.
options:
  kubeconfig:
    description: Kubeconfig file to use (its current context).
    type: path
    default: /etc/rancher/k3s/k3s.yaml
  context:
    description: Kubeconfig context to use instead of the current one.
    type: str
  node_name:
    description: Wait for this node only (default every node, and at least one must exist).
    type: str
  node_ip:
    description:
      - Expected InternalIP of O(node_name) (or of any node when O(node_name) is not set). Waited
        for, since the kubelet refreshes the node's addresses periodically.
    type: str
  deployments:
    description: Deployments, as C(namespace/name), that must be available.
    type: list
    elements: str
    default: []
  request_timeout:
    description: Seconds one API request may take; capped by what is left of O(timeout).
    type: float
    default: 5
  timeout:
    description: Total seconds to wait, measured on a monotonic clock. C(0) probes exactly once.
    type: float
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - integr8scode.provision.poll
requirements:
  - kubernetes (Python client, Debian C(python3-kubernetes) 22.6 or later)
  - PyYAML
author:
  - integr8scode.provision maintainers (@integr8scode)
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: The wait is skipped in check mode (the kubeconfig is not even read).
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Wait for k3s, its node at the configured IP, and CoreDNS
  integr8scode.provision.k3s_ready:
    node_ip: "{{ k3s_node_ip }}"
    deployments:
      - kube-system/coredns
    timeout: 300

- name: Check the app's kubeconfig still works (fails fast when stale)
  integr8scode.provision.k3s_ready:
    kubeconfig: /opt/Integr8sCode/backend/kubeconfig.yaml
    timeout: 30
"""

RETURN = r"""
server:
  description: The API server URL from the kubeconfig.
  returned: when the kubeconfig could be read
  type: str
  sample: https://127.0.0.1:6443
ready:
  description: Whether everything waited for became ready (null in check mode).
  returned: always
  type: bool
readyz:
  description: The last C(/readyz) answer (C(ok) when ready), or the error.
  returned: always
  type: str
nodes:
  description: The nodes seen last, each with C(name), C(ready) and C(internal_ip) (a list on dual-stack).
  returned: always
  type: list
  elements: dict
  sample: [{name: host1, ready: true, internal_ip: [10.77.0.5]}]
deployments:
  description: Per C(namespace/name), C(available), C(replicas), C(available_replicas), or C(found=false).
  returned: always
  type: dict
error_kind:
  description:
    - On failure, what went wrong, one of C(kubeconfig_missing), C(kubeconfig_unreadable),
      C(kubeconfig_invalid), C(connection_refused), C(tls_name_mismatch), C(tls_unknown_ca),
      C(tls_error), C(timeout), C(unreachable), C(unauthorized), C(forbidden), C(not_ready), C(other).
  returned: failure
  type: str
elapsed:
  description: Seconds waited.
  returned: always
  type: float
attempts:
  description: Probes made.
  returned: always
  type: int
"""

import ipaddress
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.api import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    K3sProbe,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.kubeconfig import (
    KubeconfigError,
    read_kubeconfig,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    Deadline,
    check_mode_result,
    poll,
    poll_argument_spec,
    validate_poll_params,
)


def main():
    argument_spec = dict(
        kubeconfig=dict(type="path", default="/etc/rancher/k3s/k3s.yaml"),
        context=dict(type="str"),
        node_name=dict(type="str"),
        node_ip=dict(type="str"),
        deployments=dict(type="list", elements="str", default=[]),
        request_timeout=dict(type="float", default=5.0),
    )
    argument_spec.update(poll_argument_spec(timeout=300.0))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    errors = validate_poll_params(p)
    if p["request_timeout"] <= 0:
        errors.append("request_timeout must be a positive number of seconds, got %r" % (p["request_timeout"],))
    for ref in p["deployments"]:
        parts = ref.split("/")
        if len(parts) != 2 or not all(parts):
            errors.append("deployments entries must be namespace/name, got %r" % (ref,))
    if p["node_ip"]:
        try:
            p["node_ip"] = str(ipaddress.ip_address(p["node_ip"].strip()))
        except ValueError:
            errors.append("node_ip must be an IP address, got %r" % (p["node_ip"],))
    if errors:
        module.fail_json(msg="; ".join(errors))
    if module.check_mode:
        module.exit_json(**check_mode_result(readyz=None, nodes=[], deployments={}))
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes (python3-kubernetes)"), exception=KUBERNETES_IMPORT_ERROR)
    # Fail at once on a kubeconfig that exists but cannot be read; a missing one is waited for.
    if os.path.exists(p["kubeconfig"]):
        try:
            read_kubeconfig(p["kubeconfig"])
        except KubeconfigError as exc:
            module.fail_json(msg=str(exc), error_kind="kubeconfig_" + exc.kind, ready=False)

    deadline = Deadline(p["timeout"])
    probe = K3sProbe(
        deadline,
        **{k: p[k] for k in ("kubeconfig", "context", "node_name", "node_ip", "deployments", "request_timeout")},
    )
    outcome = poll(probe, p["timeout"], p["interval"], p["backoff"], p["max_interval"])
    obs = outcome.observation
    result = dict(
        changed=False,
        ready=outcome.ready,
        server=obs.get("server"),
        readyz=obs.get("readyz"),
        nodes=obs.get("nodes", []),
        deployments=obs.get("deployments", {}),
        elapsed=round(outcome.elapsed, 3),
        attempts=outcome.attempts,
    )
    if outcome.ready:
        module.exit_json(**result)
    result["error_kind"] = obs.get("error_kind") or "other"
    if outcome.hopeless:
        msg = outcome.message
    else:
        msg = "k3s not ready after %ss (%d attempts): %s" % (p["timeout"], outcome.attempts, outcome.message)
    module.fail_json(msg=msg, **result)


if __name__ == "__main__":
    main()

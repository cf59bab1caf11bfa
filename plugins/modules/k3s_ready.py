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
  - integr8scode.provision.poll
requirements:
  - kubernetes (Python client, Debian C(python3-kubernetes) 22.6 or later)
  - PyYAML
author:
  - integr8scode.provision maintainers (@integr8scode)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The wait is skipped in check mode (the kubeconfig is not even read).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
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
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.integr8scode.provision.plugins.module_utils.kubeconfig import (
    FORBIDDEN,
    RECOVER_HINT,
    TLS_CA,
    TLS_NAME,
    UNAUTHORIZED,
    KubeconfigError,
    classify_error,
    current_server,
    read_kubeconfig,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    Deadline,
    ProbeResult,
    check_mode_result,
    poll,
    poll_argument_spec,
    validate_poll_params,
)

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()


class StatusError(Exception):
    """An HTTP error status from a raw request, shaped like the client's ApiException for classify_error."""

    def __init__(self, status, body):
        super(StatusError, self).__init__("HTTP %s" % status)
        self.status = status
        self.body = body


# Errors that waiting cannot fix: the kubeconfig or the server's identity is wrong.
HOPELESS_KINDS = (TLS_NAME, TLS_CA, UNAUTHORIZED, FORBIDDEN)


class K3sProbe:
    def __init__(self, module, deadline):
        self.module = module
        self.p = module.params
        self.deadline = deadline
        self.api = None
        self.server = None

    def timeout(self):
        return min(self.p["request_timeout"], max(self.deadline.remaining(), 0.5))

    def connect(self):
        config = read_kubeconfig(self.p["kubeconfig"])
        self.server = current_server(config, self.p["context"])
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(
            config_file=self.p["kubeconfig"],
            context=self.p["context"],
            client_configuration=configuration,
            persist_config=False,
        )
        # One attempt per request: the poll engine does the retrying, with its own deadline.
        configuration.retries = False
        self.api = k8s_client.ApiClient(configuration)

    def __call__(self):
        obs = dict(server=self.server, readyz=None, nodes=[], deployments={}, error_kind=None)
        if self.api is None:
            try:
                self.connect()
            except KubeconfigError as exc:
                obs["error_kind"] = "kubeconfig_" + exc.kind
                # k3s writes k3s.yaml when it starts, so a missing file may still appear.
                return ProbeResult(False, exc.kind != "missing", obs, str(exc))
            except Exception as exc:
                obs["error_kind"] = "kubeconfig_invalid"
                return ProbeResult(False, True, obs, "kubeconfig %s cannot be used: %s" % (self.p["kubeconfig"], exc))
            obs["server"] = self.server
        try:
            return self.check(obs)
        except Exception as exc:
            kind, message = classify_error(exc, self.server)
            obs["error_kind"] = kind
            if obs["readyz"] is None:
                obs["readyz"] = message
            return ProbeResult(False, kind in HOPELESS_KINDS, obs, message)

    def readyz(self):
        """GET /readyz: (status, body). The generated client has no call for it, and its call_api
        signature differs between python3-kubernetes 22 (Debian 12) and current releases, so this
        goes through the client's own urllib3 pool (same TLS and client certificate) with the
        configuration's auth headers."""
        configuration = self.api.configuration
        headers = {"Accept": "text/plain"}
        for setting in (configuration.auth_settings() or {}).values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        response = self.api.rest_client.pool_manager.request(
            "GET",
            configuration.host.rstrip("/") + "/readyz",
            headers=headers,
            timeout=self.timeout(),
            retries=False,
            redirect=False,
        )
        body = response.data.decode("utf-8", "replace") if isinstance(response.data, bytes) else str(response.data)
        return response.status, body

    def check(self, obs):
        status, text = self.readyz()
        if status in (401, 403):
            raise StatusError(status, text)
        if status != 200 or text.strip() != "ok":
            obs["readyz"] = text.strip() or "HTTP %s" % status
            failing = [line.strip() for line in text.splitlines() if line.startswith("[-]")]
            obs["error_kind"] = "not_ready"
            return ProbeResult(
                False,
                False,
                obs,
                "/readyz on %s answers %s%s" % (self.server, status, (": " + ", ".join(failing)) if failing else ""),
            )
        obs["readyz"] = "ok"

        core = k8s_client.CoreV1Api(self.api)
        if self.p["node_name"]:
            try:
                items = [core.read_node(self.p["node_name"], _request_timeout=self.timeout())]
            except ApiException as exc:
                if exc.status != 404:
                    raise
                items = []
        else:
            items = core.list_node(_request_timeout=self.timeout()).items
        nodes = []
        for node in items:
            conditions = (node.status and node.status.conditions) or []
            ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
            addresses = (node.status and node.status.addresses) or []
            internal = [a.address for a in addresses if a.type == "InternalIP"]
            nodes.append(dict(name=node.metadata.name, ready=ready, internal_ip=internal))
        obs["nodes"] = nodes
        problems = []
        if not nodes:
            problems.append(
                "node %s is not registered yet" % self.p["node_name"]
                if self.p["node_name"]
                else "no node registered yet"
            )
        not_ready = [n["name"] for n in nodes if not n["ready"]]
        if not_ready:
            problems.append("node(s) not Ready: %s" % ", ".join(not_ready))
        if self.p["node_ip"] and nodes and not any(self.p["node_ip"] in n["internal_ip"] for n in nodes):
            seen = ", ".join("%s=%s" % (n["name"], "/".join(n["internal_ip"]) or "none") for n in nodes)
            problems.append(
                "no node has InternalIP %s (seen %s): k3s still uses another address; if the host's address "
                "changed, the %s" % (self.p["node_ip"], seen, RECOVER_HINT)
            )

        apps = k8s_client.AppsV1Api(self.api)
        for ref in self.p["deployments"]:
            namespace, name = ref.split("/", 1)
            try:
                dep = apps.read_namespaced_deployment(name, namespace, _request_timeout=self.timeout())
            except ApiException as exc:
                if exc.status != 404:
                    raise
                obs["deployments"][ref] = dict(found=False, available=False, replicas=None, available_replicas=0)
                problems.append("deployment %s not found (yet)" % ref)
                continue
            wanted = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
            have = (dep.status and dep.status.available_replicas) or 0
            conditions = (dep.status and dep.status.conditions) or []
            available = have >= wanted and any(c.type == "Available" and c.status == "True" for c in conditions)
            obs["deployments"][ref] = dict(found=True, available=available, replicas=wanted, available_replicas=have)
            if not available:
                problems.append("deployment %s has %d of %d replicas available" % (ref, have, wanted))
        if problems:
            obs["error_kind"] = "not_ready"
            return ProbeResult(False, False, obs, "; ".join(problems))
        return ProbeResult(True, False, obs, "")


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
    probe = K3sProbe(module, deadline)
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

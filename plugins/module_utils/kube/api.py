# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The k3s API readiness probe shared by k3s_ready and k3s_rebuild: /readyz, the node's Ready
condition and InternalIP, optional deployments, each failure classified (waiting can or cannot fix
it). The probe takes its settings as arguments (kubeconfig, context, node_name, node_ip,
deployments, request_timeout).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.integr8scode.provision.plugins.module_utils.kube.kubeconfig import (
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
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import ProbeResult

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
    def __init__(
        self,
        deadline,
        *,
        kubeconfig,
        context=None,
        node_name=None,
        node_ip=None,
        deployments=(),
        request_timeout=5.0,
        require_ready=True,
    ):
        """``require_ready=False``: ready once /readyz answers ok and the node is registered at
        ``node_ip``, Ready or not (what a client of the API needs; the kubelet and CNI follow)."""
        self.p = dict(
            kubeconfig=kubeconfig,
            context=context,
            node_name=node_name,
            node_ip=node_ip,
            deployments=list(deployments or ()),
            request_timeout=request_timeout,
            require_ready=require_ready,
        )
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
        if not_ready and self.p["require_ready"]:
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

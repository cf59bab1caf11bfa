"""k3s stand-in: cluster (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid

from k3s_standin.common import info, now_rfc3339
from k3s_standin.pki import _load_key, _write, sign_jwt, verify_jwt
from k3s_standin.store import Store

# ------------------------------------------------------------------ resources
# (group, version, plural): (kind, namespaced, singular, shortNames)
RESOURCES: dict[tuple[str, str, str], tuple[str, bool, str, list[str]]] = {
    ("", "v1", "nodes"): ("Node", False, "node", ["no"]),
    ("", "v1", "namespaces"): ("Namespace", False, "namespace", ["ns"]),
    ("", "v1", "serviceaccounts"): ("ServiceAccount", True, "serviceaccount", ["sa"]),
    ("", "v1", "secrets"): ("Secret", True, "secret", []),
    ("", "v1", "configmaps"): ("ConfigMap", True, "configmap", ["cm"]),
    ("", "v1", "pods"): ("Pod", True, "pod", ["po"]),
    ("", "v1", "services"): ("Service", True, "service", ["svc"]),
    ("apps", "v1", "deployments"): ("Deployment", True, "deployment", ["deploy"]),
    ("rbac.authorization.k8s.io", "v1", "roles"): ("Role", True, "role", []),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"): ("RoleBinding", True, "rolebinding", []),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"): ("ClusterRole", False, "clusterrole", []),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"): (
        "ClusterRoleBinding",
        False,
        "clusterrolebinding",
        [],
    ),
    ("networking.k8s.io", "v1", "networkpolicies"): ("NetworkPolicy", True, "networkpolicy", ["netpol"]),
}
VERBS = ["create", "delete", "get", "list", "patch", "update"]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PACKAGED = {  # deployment name -> the --disable value that removes it
    "coredns": "coredns",
    "local-path-provisioner": "local-storage",
    "metrics-server": "metrics-server",
}


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def key_for(plural: str, namespace: str | None, name: str = "") -> str:
    plural = "minions" if plural == "nodes" else plural  # the apiserver's historical key for nodes
    return f"/registry/{plural}/{namespace}/{name}" if namespace is not None else f"/registry/{plural}/{name}"


def new_meta(meta: dict | None, namespace: str | None) -> dict:
    meta = dict(meta or {})
    meta.setdefault("uid", str(uuid.uuid4()))
    meta["creationTimestamp"] = meta.get("creationTimestamp") or now_rfc3339()
    if namespace is not None:
        meta["namespace"] = namespace
    meta.pop("resourceVersion", None)
    return meta


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return patch
    target = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict:
        out = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(404, "NotFound", f'{res} "{name}" not found', {"name": name, "group": group, "kind": plural})


class Cluster:
    """The API objects and the rules the stand-in applies to them."""

    def __init__(self, store: Store, data_dir: str, opts: dict, *, node_name: str, node_ip: str, version: str):
        self.store, self.data_dir, self.opts = store, data_dir, opts
        self.node_name, self.node_ip, self.version = node_name, node_ip, version
        self.tls = os.path.join(data_dir, "server", "tls")
        self.service_key = _load_key(os.path.join(self.tls, "service.key"))
        with open(os.path.join(self.tls, "server-ca.crt"), encoding="ascii") as handle:
            self.ca_pem = handle.read()

    # ---- defaults
    def ensure_defaults(self, etcd: bool) -> None:
        for ns in DEFAULT_NAMESPACES:
            if not self.store.get(key_for("namespaces", None, ns)):
                self.create(("", "v1", "namespaces"), None, {"metadata": {"name": ns}})
            self.ensure_default_sa(ns)
        disabled = set(self.opts.get("disable") or [])
        for name, component in PACKAGED.items():
            key = key_for("deployments", "kube-system", name)
            if component in disabled:
                self.store.delete(key)
            elif not self.store.get(key):
                self.create(("apps", "v1", "deployments"), "kube-system", self.packaged_deployment(name))
        manifests = os.path.join(self.data_dir, "server", "manifests")
        os.makedirs(manifests, exist_ok=True)
        for name, component in PACKAGED.items():
            path = os.path.join(manifests, f"{component}.yaml")
            if component in disabled:
                if os.path.exists(path):
                    os.unlink(path)
                continue
            _write(path, json.dumps(self.packaged_deployment(name), indent=2).encode() + b"\n", 0o600)
        del etcd

    def ensure_default_sa(self, ns: str) -> None:
        if not self.store.get(key_for("serviceaccounts", ns, "default")):
            self.create(("", "v1", "serviceaccounts"), ns, {"metadata": {"name": "default"}})

    def packaged_deployment(self, name: str) -> dict:
        labels = {"k8s-app": "kube-dns"} if name == "coredns" else {"app": name}
        stamp = now_rfc3339()
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "kube-system", "labels": dict(labels)},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": name, "image": f"rancher/mirrored-{name}:standin"}]},
                },
            },
            "status": {
                "observedGeneration": 1,
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": stamp,
                        "lastTransitionTime": stamp,
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable",
                        "message": f'ReplicaSet "{name}-standin" has successfully progressed.',
                        "lastUpdateTime": stamp,
                        "lastTransitionTime": stamp,
                    },
                ],
            },
        }

    def recorded_node_ip(self) -> str | None:
        node = self.store.get(key_for("nodes", None, self.node_name))
        for addr in (node or {}).get("status", {}).get("addresses", []):
            if addr.get("type") == "InternalIP":
                return addr.get("address")
        return None

    def node_ready(self) -> bool:
        node = self.store.get(key_for("nodes", None, self.node_name)) or {}
        return any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
        )

    def mark_node_ready(self) -> None:
        key = key_for("nodes", None, self.node_name)
        node = self.store.get(key)
        if not node:
            return
        stamp = now_rfc3339()
        node["metadata"].pop("resourceVersion", None)
        node["status"]["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
        ]
        self.store.put(key, node)

    def register_node(self, etcd: bool, stale_internal_ip: bool = False) -> str | None:
        """The Node object at start; returns its InternalIP.

        A new node is registered with node-ip. On an existing one the agent patches the
        k3s.io/internal-ip annotation to node-ip at every start (pkg/agent/run.go configureNode,
        updateAddressAnnotations) and the k3s cloud provider builds the InternalIP from that
        annotation (pkg/cloudprovider instances.go). stale_internal_ip models k3s #12844, fixed in
        the Sept 2025 releases: the annotation is patched, the InternalIP is left as it was.
        """
        key = key_for("nodes", None, self.node_name)
        node = self.store.get(key)
        if node:
            node["metadata"].pop("resourceVersion", None)
            annotations = node["metadata"].setdefault("annotations", {})
            annotations["k3s.io/internal-ip"] = self.node_ip
            annotations["k3s.io/hostname"] = self.node_name
            # flannel's kube subnet manager records its public address at every start too.
            annotations["flannel.alpha.coreos.com/public-ip"] = self.node_ip
            if not stale_internal_ip:
                addresses = [a for a in node["status"].get("addresses", []) if a.get("type") != "InternalIP"]
                node["status"]["addresses"] = [{"type": "InternalIP", "address": self.node_ip}] + addresses
            self.store.put(key, node)
            info(f"Annotations and labels have been set successfully on node: {self.node_name}")
            return self.recorded_node_ip()
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/control-plane": "true",
            "node-role.kubernetes.io/master": "true",
            "node.kubernetes.io/instance-type": "k3s",
        }
        if etcd:
            labels["node-role.kubernetes.io/etcd"] = "true"
        stamp = now_rfc3339()
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": labels,
                "annotations": {
                    "k3s.io/internal-ip": self.node_ip,
                    "flannel.alpha.coreos.com/public-ip": self.node_ip,
                    "k3s.io/hostname": self.node_name,
                },
            },
            "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": f"k3s://{self.node_name}"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": self.node_ip},
                    {"type": "Hostname", "address": self.node_name},
                ],
                # NotReady until the kubelet and CNI are up (server.ready_delay, k3s #4340).
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "KubeletNotReady",
                        "message": "container runtime network not ready: NetworkReady=false "
                        "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
                        "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp,
                    }
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": str(uuid.uuid4()),
                    "containerRuntimeVersion": "containerd://2.1.5-k3s1",
                    "kernelVersion": os.uname().release,
                    "kubeProxyVersion": self.version,
                    "kubeletVersion": self.version,
                    "machineID": hashlib.md5(self.node_name.encode()).hexdigest(),  # noqa: S324 - an ID, not security
                    "operatingSystem": "linux",
                    "osImage": "k3s stand-in",
                    "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.node_name)),
                },
            },
        }
        self.create(("", "v1", "nodes"), None, node)
        return self.node_ip

    # ---- generic CRUD
    def _check_ns(self, namespace: str | None) -> None:
        if namespace is not None and not self.store.get(key_for("namespaces", None, namespace)):
            raise not_found("namespaces", namespace)

    def create(self, res: tuple[str, str, str], namespace: str | None, body: dict) -> dict:
        group, version, plural = res
        kind = RESOURCES[res][0]
        self._check_ns(namespace)
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + secrets.token_hex(3)[:5]
        if not name:
            raise ApiError(
                422, "Invalid", f'{kind} "" is invalid: metadata.name: Required value: name or generateName is required'
            )
        key = key_for(plural, namespace, name)
        if self.store.get(key):
            raise ApiError(
                409,
                "AlreadyExists",
                f'{plural}{"." + group if group else ""} "{name}" already exists',
                {"name": name, "group": group, "kind": plural},
            )
        obj = dict(body)
        obj["apiVersion"], obj["kind"] = api_version(group, version), kind
        obj["metadata"] = new_meta(dict(meta, name=name), namespace)
        obj = self._normalise(plural, namespace, obj)
        rv = self.store.put(key, obj)
        obj["metadata"]["resourceVersion"] = rv
        if plural == "namespaces":
            self.ensure_default_sa(name)
        return obj

    def _normalise(self, plural: str, namespace: str | None, obj: dict) -> dict:
        if plural == "secrets":
            obj.setdefault("type", "Opaque")
            data = dict(obj.get("data") or {})
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            annotations = obj["metadata"].get("annotations") or {}
            sa_name = annotations.get("kubernetes.io/service-account.name")
            if obj["type"] == "kubernetes.io/service-account-token" and sa_name and "token" not in data:
                sa = self.store.get(key_for("serviceaccounts", namespace, sa_name))
                if sa:
                    # Legacy long-lived token, populated like the token controller does.
                    token = sign_jwt(
                        self.service_key,
                        {
                            "iss": "kubernetes/serviceaccount",
                            "sub": f"system:serviceaccount:{namespace}:{sa_name}",
                            "kubernetes.io/serviceaccount/namespace": namespace,
                            "kubernetes.io/serviceaccount/service-account.name": sa_name,
                            "kubernetes.io/serviceaccount/service-account.uid": sa["metadata"]["uid"],
                            "kubernetes.io/serviceaccount/secret.name": obj["metadata"]["name"],
                        },
                    )
                    data["token"] = base64.b64encode(token.encode()).decode()
                    data["ca.crt"] = base64.b64encode(self.ca_pem.encode()).decode()
                    data["namespace"] = base64.b64encode(namespace.encode()).decode()
            obj["data"] = data
        elif plural == "namespaces":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif plural == "pods":
            obj.setdefault("status", {"phase": "Pending"})
        return obj

    def get(self, res, namespace, name) -> dict:
        self._check_ns(namespace)
        obj = self.store.get(key_for(res[2], namespace, name))
        if obj is None:
            raise not_found(res[2], name, res[0])
        return obj

    def list(self, res, namespace, label_selector: str = "", field_selector: str = "") -> list[dict]:
        group, version, plural = res
        prefix = key_for(plural, namespace) if RESOURCES[res][1] and namespace is not None else key_for(plural, None)
        items = self.store.list(prefix)
        if label_selector:
            wanted = dict(part.split("=", 1) for part in label_selector.replace("==", "=").split(",") if "=" in part)
            items = [
                i for i in items if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
            ]
        if field_selector.startswith("metadata.name="):
            items = [i for i in items if i["metadata"]["name"] == field_selector.split("=", 1)[1]]
        return items

    def replace(self, res, namespace, name, body: dict) -> dict:
        current = self.get(res, namespace, name)
        obj = dict(body)
        obj["apiVersion"], obj["kind"] = api_version(res[0], res[1]), RESOURCES[res][0]
        meta = dict(body.get("metadata") or {})
        meta.update(
            {k: current["metadata"][k] for k in ("uid", "creationTimestamp") if k in current["metadata"]}, name=name
        )
        if namespace is not None:
            meta["namespace"] = namespace
        meta.pop("resourceVersion", None)
        obj["metadata"] = meta
        obj = self._normalise(res[2], namespace, obj)
        obj["metadata"]["resourceVersion"] = self.store.put(key_for(res[2], namespace, name), obj)
        return obj

    def patch(self, res, namespace, name, patch: dict) -> dict:
        current = self.get(res, namespace, name)
        current["metadata"].pop("resourceVersion", None)
        return self.replace(res, namespace, name, merge_patch(current, patch))

    def delete(self, res, namespace, name) -> dict:
        obj = self.get(res, namespace, name)
        self.store.delete(key_for(res[2], namespace, name))
        if res[2] == "namespaces":
            for (_g, _v, plural), (_k, namespaced, _s, _sn) in RESOURCES.items():
                if namespaced:
                    for item in self.store.list(key_for(plural, name)):
                        self.store.delete(key_for(plural, name, item["metadata"]["name"]))
        return obj

    def token_request(self, namespace: str, sa_name: str, body: dict) -> dict:
        sa = self.get(("", "v1", "serviceaccounts"), namespace, sa_name)
        spec = dict(body.get("spec") or {})
        seconds = int(spec.get("expirationSeconds") or 3600)
        if seconds < 600:
            raise ApiError(
                422,
                "Invalid",
                f'TokenRequest.authentication.k8s.io "{sa_name}" is invalid: spec.expirationSeconds: Invalid value: '
                f"{seconds}: may not specify a duration less than 10 minutes",
            )
        audiences = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local", "k3s"]
        iat = int(time.time())
        claims = {
            "aud": audiences,
            "exp": iat + seconds,
            "iat": iat,
            "nbf": iat,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{sa_name}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": sa_name, "uid": sa["metadata"]["uid"]},
            },
        }
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa_name, "namespace": namespace, "creationTimestamp": None},
            "spec": {
                "audiences": audiences,
                "expirationSeconds": seconds,
                "boundObjectRef": spec.get("boundObjectRef"),
            },
            "status": {"token": sign_jwt(self.service_key, claims), "expirationTimestamp": now_rfc3339(claims["exp"])},
        }

    def token_user(self, token: str) -> str | None:
        claims = verify_jwt(self.service_key, token)
        if not claims:
            return None
        if "kubernetes.io" in claims:
            ns = claims["kubernetes.io"]["namespace"]
            sa_name, uid = (
                claims["kubernetes.io"]["serviceaccount"]["name"],
                claims["kubernetes.io"]["serviceaccount"]["uid"],
            )
        else:
            ns = claims.get("kubernetes.io/serviceaccount/namespace")
            sa_name = claims.get("kubernetes.io/serviceaccount/service-account.name")
            uid = claims.get("kubernetes.io/serviceaccount/service-account.uid")
            secret = self.store.get(key_for("secrets", ns, claims.get("kubernetes.io/serviceaccount/secret.name", "")))
            if not secret:
                return None
        sa = self.store.get(key_for("serviceaccounts", ns, sa_name)) if ns and sa_name else None
        if not sa or sa["metadata"]["uid"] != uid:
            return None
        return claims["sub"] if "sub" in claims else f"system:serviceaccount:{ns}:{sa_name}"

"""A Kubernetes API fixture over real TLS: /readyz, nodes and apps/v1 deployments, steered by the test.

Only what k3s_ready reads is served, with the shapes the API server uses (NodeList, Node,
Deployment, Status). Authentication is a bearer token or a client certificate signed by the CA,
as in k3s's admin kubeconfig; anything else gets the API server's 401 Status.
"""

import base64
import re
import ssl
import threading

import yaml
from waitlib_servers import ServerThread, tls_context

TOKEN = "utwait-token-0123456789"


def _status(code, reason, message):
    return (
        code,
        {"Content-Type": "application/json"},
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
    )


class KubeAPI:
    def __init__(self, pki, cert="server_cert", key="server_key"):
        self.lock = threading.Lock()
        self.readyz = (200, "ok")
        self.nodes = {}
        self.deployments = {}
        self.force_status = None
        self.seen_paths = []
        # Called with each authenticated request's path, under the lock, before it is answered: lets a
        # test advance the cluster's state by requests seen rather than by wall-clock time.
        self.hook = None
        ctx = tls_context(pki[cert], pki[key])
        ctx.load_verify_locations(pki["ca"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.server = ServerThread(self.handle, ctx)

    def set_node(self, name, ready=True, ip="127.0.0.1"):
        with self.lock:
            self.nodes[name] = (ready, ip)

    def set_deployment(self, ref, replicas=1, available=1):
        with self.lock:
            self.deployments[ref] = (replicas, available)

    def node(self, name):
        ready, ip = self.nodes[name]
        return {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": "true"}},
            "spec": {"podCIDR": "10.42.0.0/24"},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"},
                ],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            },
        }

    def handle(self, req):
        path = req.path.split("?", 1)[0]
        with self.lock:
            self.seen_paths.append(path)
            authed = req.headers.get("Authorization") == "Bearer " + TOKEN or bool(req.connection.getpeercert())
            if self.force_status:
                return _status(self.force_status, "Forced", "forced by the test")
            if not authed:
                return _status(401, "Unauthorized", "Unauthorized")
            if self.hook:
                self.hook(path)
            if path == "/readyz":
                code, body = self.readyz
                return code, {"Content-Type": "text/plain"}, body
            if path == "/api/v1/nodes":
                items = [self.node(n) for n in sorted(self.nodes)]
                return (
                    200,
                    {"Content-Type": "application/json"},
                    {
                        "kind": "NodeList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "1"},
                        "items": items,
                    },
                )
            match = re.match(r"^/api/v1/nodes/([^/]+)$", path)
            if match:
                if match.group(1) not in self.nodes:
                    return _status(404, "NotFound", f'nodes "{match.group(1)}" not found')
                return 200, {"Content-Type": "application/json"}, self.node(match.group(1))
            match = re.match(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)$", path)
            if match:
                ref = "{}/{}".format(*match.groups())
                if ref not in self.deployments:
                    return _status(404, "NotFound", f'deployments.apps "{match.group(2)}" not found')
                replicas, available = self.deployments[ref]
                return (
                    200,
                    {"Content-Type": "application/json"},
                    {
                        "kind": "Deployment",
                        "apiVersion": "apps/v1",
                        "metadata": {"name": match.group(2), "namespace": match.group(1), "generation": 1},
                        "spec": {
                            "replicas": replicas,
                            "selector": {"matchLabels": {"k8s-app": match.group(2)}},
                            "template": {"metadata": {}, "spec": {"containers": []}},
                        },
                        "status": {
                            "observedGeneration": 1,
                            "replicas": replicas,
                            "availableReplicas": available,
                            "conditions": [
                                {"type": "Available", "status": "True" if available >= replicas else "False"}
                            ],
                        },
                    },
                )
            return _status(404, "NotFound", "the server could not find the requested resource")

    def url(self):
        return self.server.url("")

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)


def write_kubeconfig(path, server, pki, *, ca="ca", auth="token", token=TOKEN):
    with open(pki[ca], "rb") as handle:
        ca_data = base64.b64encode(handle.read()).decode()
    if auth == "token":
        user = {"token": token}
    else:
        with open(pki["client_cert"], "rb") as c, open(pki["client_key"], "rb") as k:
            user = {
                "client-certificate-data": base64.b64encode(c.read()).decode(),
                "client-key-data": base64.b64encode(k.read()).decode(),
            }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": user}],
    }
    with open(str(path), "w") as handle:
        yaml.safe_dump(config, handle)
    return str(path)

"""k3s stand-in: api (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import glob
import http.server
import json
import os
import re
import socketserver
import ssl
import time
import urllib.request

from k3s_standin.cluster import RESOURCES, VERBS, ApiError, Cluster, api_version
from k3s_standin.common import GO_VERSION, git_commit, info, now_rfc3339


# --------------------------------------------------------------------- server
def discovery_resources(group: str, version: str) -> dict:
    resources = []
    for (g, v, plural), (kind, namespaced, singular, short) in RESOURCES.items():
        if (g, v) != (group, version):
            continue
        entry = {"name": plural, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": VERBS}
        if short:
            entry["shortNames"] = short
        resources.append(entry)
        if plural == "serviceaccounts":
            resources.append(
                {
                    "name": "serviceaccounts/token",
                    "singularName": "",
                    "namespaced": True,
                    "group": "authentication.k8s.io",
                    "version": "v1",
                    "kind": "TokenRequest",
                    "verbs": ["create"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": resources,
    }


def api_groups() -> dict:
    groups = sorted({g for (g, _v, _p) in RESOURCES if g})
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": g,
                "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
            }
            for g in groups
        ],
    }


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k3s-standin"
    cluster: Cluster
    datastore: str
    token: str
    snapshot_dir_default: str

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        return

    # ---- helpers
    def _send(self, code: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: ApiError) -> None:
        self._send(err.code, err.body())

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {exc}") from exc

    def _user(self) -> str | None:
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        if cert:
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return value
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self.cluster.token_user(auth[7:].strip())
        return None

    def _supervisor_ok(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _sep, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == "server" and self.token.endswith("::server:" + password)

    # ---- dispatch
    def do_GET(self):  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self):  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            if path in ("/readyz", "/livez", "/healthz") and method == "GET":
                return self._send(200, b"ok", "text/plain; charset=utf-8")
            if path == "/version" and method == "GET":
                ver = self.cluster.version
                major_minor = re.match(r"v(\d+)\.(\d+)", ver)
                return self._send(
                    200,
                    {
                        "major": major_minor.group(1) if major_minor else "1",
                        "minor": major_minor.group(2) if major_minor else "32",
                        "gitVersion": ver,
                        "gitCommit": git_commit(ver),
                        "gitTreeState": "clean",
                        "buildDate": "2025-01-01T00:00:00Z",
                        "goVersion": GO_VERSION,
                        "compiler": "gc",
                        "platform": "linux/amd64",
                    },
                )
            if path == "/db/snapshot":
                return self._snapshot(method, query)
            user = self._user()
            if not user:
                return self._send(
                    401,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": "Unauthorized",
                        "reason": "Unauthorized",
                        "code": 401,
                    },
                )
            return self._api(method, path, query)
        except ApiError as err:
            return self._error(err)

    def _snapshot(self, method: str, query: dict) -> None:
        if not self._supervisor_ok():
            return self._send(401, b"Unauthorized\n", "text/plain")
        if self.datastore != "etcd":
            return self._send(500, b"etcd datastore disabled\n", "text/plain")
        if method == "GET":
            folder = query.get("dir") or self.snapshot_dir_default
            out = []
            for path in sorted(glob.glob(os.path.join(folder, "*"))):
                st = os.stat(path)
                out.append(
                    {
                        "name": os.path.basename(path),
                        "location": "file://" + path,
                        "size": st.st_size,
                        "created": now_rfc3339(st.st_mtime),
                    }
                )
            return self._send(200, out)
        if method == "POST":
            folder = query.get("dir") or self.snapshot_dir_default
            name = f"{query.get('name') or 'on-demand'}-{self.cluster.node_name}-{int(time.time())}"
            os.makedirs(folder, mode=0o700, exist_ok=True)
            path = os.path.join(folder, name)
            info(f"Saving etcd snapshot to {path}")
            self.cluster.store.backup(path)
            os.chmod(path, 0o600)
            info(f"Snapshot {name} saved.")
            return self._send(200, {"name": name, "location": "file://" + path, "size": os.path.getsize(path)})
        raise ApiError(405, "MethodNotAllowed", "method not allowed")

    def _api(self, method: str, path: str, query: dict) -> None:
        parts = path.strip("/").split("/")
        if parts == ["api"]:
            return self._send(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.cluster.node_ip}:6443"}
                    ],
                },
            )
        if parts == ["apis"]:
            return self._send(200, api_groups())
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "apis" and len(parts) == 2:
            groups = [g for g in api_groups()["groups"] if g["name"] == parts[1]]
            if not groups:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._send(200, dict(groups[0], kind="APIGroup", apiVersion="v1"))
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if not any((g, v) == (group, version) for (g, v, _p) in RESOURCES):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._send(200, discovery_resources(group, version))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
        res = (group, version, plural)
        if res not in RESOURCES or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespaced = RESOURCES[res][1]
        if namespaced and namespace is None and (name or method != "GET"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not namespaced and namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        cl = self.cluster
        if sub:
            if plural == "serviceaccounts" and sub == "token" and method == "POST":
                return self._send(201, cl.token_request(namespace, name, self._body()))
            if sub == "status" and method == "GET":
                return self._send(200, cl.get(res, namespace, name))
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            if method == "GET":
                items = cl.list(res, namespace, query.get("labelSelector", ""), query.get("fieldSelector", ""))
                rv = max((int(i["metadata"]["resourceVersion"]) for i in items), default=1)
                return self._send(
                    200,
                    {
                        "kind": RESOURCES[res][0] + "List",
                        "apiVersion": api_version(group, version),
                        "metadata": {"resourceVersion": str(rv)},
                        "items": items,
                    },
                )
            if method == "POST":
                body = self._body()
                if query.get("dryRun"):
                    return self._send(201, body)
                return self._send(201, cl.create(res, namespace, body))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if method == "GET":
            return self._send(200, cl.get(res, namespace, name))
        if method == "PUT":
            return self._send(200, cl.replace(res, namespace, name, self._body()))
        if method == "PATCH":
            ctype = self.headers.get("Content-Type", "")
            if "json-patch" in ctype or "apply-patch" in ctype:
                raise ApiError(415, "UnsupportedMediaType", f"the stand-in does not support {ctype} patches")
            return self._send(200, cl.patch(res, namespace, name, self._body()))
        if method == "DELETE":
            obj = cl.delete(res, namespace, name)
            if plural in ("namespaces",):
                obj.setdefault("status", {})["phase"] = "Terminating"
                return self._send(200, obj)
            return self._send(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "group": group, "kind": plural, "uid": obj["metadata"].get("uid")},
                },
            )
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


class TLSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    context: ssl.SSLContext

    def finish_request(self, request, client_address):
        # Handshake in the worker thread, so one slow client cannot block accept().
        try:
            request.settimeout(30)
            tls_sock = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls_sock, client_address, self)
        finally:
            try:
                tls_sock.close()
            except OSError:
                pass

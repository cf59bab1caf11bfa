"""k3s stand-in: kubectl (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import ssl
import sys
import tempfile
import time
import urllib.request

from k3s_standin.cluster import RESOURCES
from k3s_standin.config import etc_dir
from k3s_standin.pki import _write


# -------------------------------------------------------------------- kubectl
def load_kubeconfig(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise KubectlError(f"error: stat {path}: no such file or directory") from exc
    found = {}
    for key in ("server", "certificate-authority-data", "client-certificate-data", "client-key-data", "token"):
        match = re.search(rf"^\s*{key}:\s*(\S+)\s*$", text, re.M)
        if match:
            found[key] = match.group(1).strip("\"'")
    return found


class KubectlError(Exception):
    pass


def kube_request(cfg: dict, method: str, path: str) -> tuple[int, dict]:
    server = cfg.get("server", "http://localhost:8080")
    context = ssl.create_default_context()
    tmp = tempfile.mkdtemp(prefix="k3s-kubectl-")
    try:
        if "certificate-authority-data" in cfg:
            context = ssl.create_default_context(cadata=base64.b64decode(cfg["certificate-authority-data"]).decode())
        if "client-certificate-data" in cfg:
            cert, key = os.path.join(tmp, "c.crt"), os.path.join(tmp, "c.key")
            _write(cert, base64.b64decode(cfg["client-certificate-data"]), 0o600)
            _write(key, base64.b64decode(cfg["client-key-data"]), 0o600)
            context.load_cert_chain(cert, key)
        request = urllib.request.Request(server + path, method=method)
        request.add_header("Accept", "application/json")
        if "token" in cfg:
            request.add_header("Authorization", f"Bearer {cfg['token']}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {}
        except (urllib.error.URLError, OSError) as exc:
            host = urllib.parse.urlsplit(server).netloc
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ConnectionRefusedError):
                raise KubectlError(
                    f"The connection to the server {host} was refused - did you specify the right host or port?"
                ) from exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise KubectlError(
                    f"Unable to connect to the server: tls: failed to verify certificate: {reason.verify_message}"
                ) from exc
            raise KubectlError(f"Unable to connect to the server: {reason}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def age(stamp: str) -> str:
    try:
        seconds = int(
            time.time() - dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
        )
    except (TypeError, ValueError):
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def resolve_resource(word: str) -> tuple[tuple[str, str, str], tuple]:
    word = word.lower().split(".")[0]
    for res, meta in RESOURCES.items():
        if word in (res[2], meta[2], *meta[3]):
            return res, meta
    raise KubectlError(f'error: the server doesn\'t have a resource type "{word}"')


def resource_path(res, namespace: str | None, name: str = "") -> str:
    base = f"/api/{res[1]}" if not res[0] else f"/apis/{res[0]}/{res[1]}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    return f"{base}/{res[2]}" + (f"/{name}" if name else "")


def api_failure(code: int, body: dict) -> KubectlError:
    if code == 401:
        return KubectlError("error: You must be logged in to the server (Unauthorized)")
    return KubectlError(f"Error from server ({body.get('reason', 'InternalError')}): {body.get('message', code)}")


def cmd_kubectl(argv: list[str]) -> int:
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.join(etc_dir(), "k3s.yaml")
    output, namespace, all_ns, words = "", None, False, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-o", "--output", "-n", "--namespace", "--kubeconfig") and i + 1 < len(argv):
            value = argv[i + 1]
            i += 1
        elif "=" in arg and arg.split("=", 1)[0] in ("-o", "--output", "-n", "--namespace", "--kubeconfig"):
            arg, value = arg.split("=", 1)
        elif arg in ("-A", "--all-namespaces"):
            all_ns = True
            i += 1
            continue
        elif arg.startswith("-o") and len(arg) > 2:
            arg, value = "-o", arg[2:]
        else:
            words.append(arg)
            i += 1
            continue
        if arg in ("-o", "--output"):
            output = value
        elif arg in ("-n", "--namespace"):
            namespace = value
        else:
            kubeconfig = value
        i += 1
    if not words or words[0] not in ("get", "delete"):
        raise KubectlError("error: the k3s stand-in's kubectl models only `get` and `delete`")
    verb, args = words[0], words[1:]
    if not args:
        raise KubectlError("error: You must specify the type of resource to get.")
    if "/" in args[0]:
        kind_word, _sep, name = args[0].partition("/")
        args = [kind_word, name] + args[1:]
    res, meta = resolve_resource(args[0])
    names = args[1:]
    cfg = load_kubeconfig(kubeconfig)
    ns = (None if all_ns else (namespace or "default")) if meta[1] else None
    if verb == "delete":
        if not names:
            raise KubectlError("error: resource(s) were provided, but no name was specified")
        for name in names:
            code, body = kube_request(cfg, "DELETE", resource_path(res, ns, name))
            if code >= 400:
                raise api_failure(code, body)
            print(f'{meta[2]} "{name}" deleted' + (f" from {ns} namespace" if ns else ""))
        return 0
    if names:
        items = []
        for name in names:
            code, body = kube_request(cfg, "GET", resource_path(res, ns, name))
            if code >= 400:
                raise api_failure(code, body)
            items.append(body)
        single = items[0] if len(items) == 1 else None
    else:
        code, body = kube_request(cfg, "GET", resource_path(res, ns))
        if code >= 400:
            raise api_failure(code, body)
        items, single = body["items"], None
    if output == "json":
        print(
            json.dumps(
                single
                if single is not None
                else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}},
                indent=4,
            )
        )
        return 0
    if output == "name":
        for item in items:
            print(f"{meta[2]}/{item['metadata']['name']}")
        return 0
    if not items:
        where = f" in {ns} namespace" if ns else ""
        sys.stderr.write(f"No resources found{where}.\n")
        return 0
    rows = []
    if res[2] == "nodes":
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        if output == "wide":
            header += ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
        for item in items:
            labels = item["metadata"].get("labels") or {}
            roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")))
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"].get("conditions", []))
            row = [
                item["metadata"]["name"],
                "Ready" if ready else "NotReady",
                roles or "<none>",
                age(item["metadata"].get("creationTimestamp")),
                item["status"]["nodeInfo"]["kubeletVersion"],
            ]
            if output == "wide":
                addrs = {a["type"]: a["address"] for a in item["status"].get("addresses", [])}
                info_ = item["status"]["nodeInfo"]
                row += [
                    addrs.get("InternalIP", "<none>"),
                    addrs.get("ExternalIP", "<none>"),
                    info_["osImage"],
                    info_["kernelVersion"],
                    info_["containerRuntimeVersion"],
                ]
            rows.append(row)
    elif res[2] == "namespaces":
        header = ["NAME", "STATUS", "AGE"]
        rows = [
            [
                i["metadata"]["name"],
                i.get("status", {}).get("phase", "Active"),
                age(i["metadata"].get("creationTimestamp")),
            ]
            for i in items
        ]
    else:
        header = (["NAMESPACE"] if all_ns and meta[1] else []) + ["NAME", "AGE"]
        rows = [
            ([i["metadata"].get("namespace", "")] if all_ns and meta[1] else [])
            + [i["metadata"]["name"], age(i["metadata"].get("creationTimestamp"))]
            for i in items
        ]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    for row in [header, *rows]:
        print("   ".join(str(cell).ljust(widths[c]) for c, cell in enumerate(row)).rstrip())
    return 0

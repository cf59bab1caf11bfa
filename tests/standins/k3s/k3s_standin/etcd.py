"""k3s stand-in: etcd (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.request

from k3s_standin.common import DEFAULT_DATA_DIR, Fatal, info
from k3s_standin.config import SNAPSHOT_FLAGS_BOOL, SNAPSHOT_FLAGS_SCALAR, load_options


# -------------------------------------------------------------- etcd-snapshot
def supervisor_request(data_dir: str, method: str, query: dict, server: str) -> tuple[int, bytes]:
    token_path = os.path.join(data_dir, "server", "token")
    try:
        with open(token_path, encoding="ascii") as handle:
            password = handle.read().strip().rpartition("::server:")[2]
    except FileNotFoundError as exc:
        raise Fatal(f"open {token_path}: no such file or directory") from exc
    url = f"{server.rstrip('/')}/db/snapshot?" + urllib.parse.urlencode(query)
    context = ssl.create_default_context(cafile=os.path.join(data_dir, "server", "tls", "server-ca.crt"))
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"server:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as resp:  # noqa: S310 - https only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        verb = "Post" if method == "POST" else "Get"
        if isinstance(reason, ConnectionRefusedError):
            host = urllib.parse.urlsplit(server).netloc
            raise Fatal(f'{verb} "{url}": dial tcp {host}: connect: connection refused') from exc
        raise Fatal(f'{verb} "{url}": {reason}') from exc


def cmd_etcd_snapshot(argv: list[str]) -> int:
    opts, rest = load_options(argv, SNAPSHOT_FLAGS_SCALAR, set(), SNAPSHOT_FLAGS_BOOL)
    sub = rest[0] if rest else "save"
    data_dir = os.path.abspath(opts.get("data-dir") or DEFAULT_DATA_DIR)
    # k3s >= 1.29 asks the running server (--etcd-server) to take the snapshot.
    server = opts.get("etcd-server") or "https://127.0.0.1:6443"
    query = {}
    folder = opts.get("dir") or opts.get("etcd-snapshot-dir")
    if folder:
        query["dir"] = os.path.abspath(folder)
    if sub == "save":
        name = opts.get("name") or opts.get("etcd-snapshot-name")
        if name:
            query["name"] = name
        status, body = supervisor_request(data_dir, "POST", query, server)
        if status != 200:
            raise Fatal(f"see server log for details: {body.decode().strip()}")
        result = json.loads(body)
        info(f"Snapshot {result['name']} saved.")
        print(result["location"][len("file://") :])
        return 0
    if sub in ("ls", "list", "l"):
        status, body = supervisor_request(data_dir, "GET", query, server)
        if status != 200:
            raise Fatal(f"see server log for details: {body.decode().strip()}")
        rows = [("Name", "Location", "Size", "Created")] + [
            (s["name"], s["location"], str(s["size"]), s["created"]) for s in json.loads(body)
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print(" ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        return 0
    raise Fatal(f"unsupported etcd-snapshot subcommand {sub!r} in the k3s stand-in")

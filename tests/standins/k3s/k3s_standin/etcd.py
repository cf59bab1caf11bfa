"""k3s stand-in: embedded etcd and etcd-snapshot (see the package docstring for what is modelled and why).

The server side follows k3s's order (pkg/daemons/control: deps.GenServerDeps, then cluster.Start):
the certificates are re-issued first (server.py), then every start writes server/db/etcd/config
from the current node-ip (executor.ETCDConfig.ToConfigFile) before etcd starts; only the member
record in the datastore (/k3s-standin/etcd/member, standing for etcd's member bucket) keeps the
peer URL it was given, and `--cluster-reset` is what changes it (pkg/etcd/etcd.go, ETCD.Reset)."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import sys
import threading
import urllib.parse
import urllib.request
import uuid

from k3s_standin.common import DEFAULT_DATA_DIR, PEER_PORT, Fatal, git_commit, info, now_rfc3339
from k3s_standin.config import SNAPSHOT_FLAGS_BOOL, SNAPSHOT_FLAGS_SCALAR, address_is_local, load_options
from k3s_standin.pki import _write
from k3s_standin.store import Store

MEMBER_KEY = "/k3s-standin/etcd/member"
CLIENT_PORT = 2379
LOOPBACK = "127.0.0.1"  # config.Control.Loopback(true) on an IPv4 node (IPv6 is not modelled)
# The wrappers k3s puts around an error from the managed datastore's start (pkg/server StartServer,
# pkg/daemons/control Server, pkg/cluster Cluster.Start).
START_PREFIX = "starting kubernetes: preparing server: start managed database: "


def db_dir(data_dir: str) -> str:
    """server/db/etcd (pkg/etcd/etcd.go dbDir)."""
    return os.path.join(data_dir, "server", "db", "etcd")


def reset_flag_path(data_dir: str) -> str:
    """server/db/reset-flag (pkg/etcd/etcd.go ETCD.ResetFile)."""
    return os.path.join(data_dir, "server", "db", "reset-flag")


def url(ip: str, port: int, scheme: str = "https") -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"{scheme}://{host}:{port}"


def member_name(data_dir: str, node_name: str, force: bool = False) -> str:
    """pkg/etcd/etcd.go ETCD.setName: `<node-name>-<8 hex of a uuid>`, kept in server/db/etcd/name
    (no newline); a new one when forced (cluster-reset)."""
    path = os.path.join(db_dir(data_dir), "name")
    if not force:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except FileNotFoundError:
            pass
    name = f"{node_name}-{uuid.uuid4().hex[:8]}"
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _write(path, name.encode(), 0o600)
    return name


def hook_member_name(data_dir: str, node_name: str) -> str:
    """The member name the K3S_STANDIN_NEVER_READY hook reports: the name file's, else a fixed one
    (a SQLite server has no member name)."""
    path = os.path.join(db_dir(data_dir), "name")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return f"{node_name}-{git_commit(node_name)}"


def _yaml(value, indent: int = 0) -> list[str]:
    """The small YAML subset sigs.k8s.io/yaml produces for ETCDConfig (keys sorted)."""
    pad = " " * indent
    lines = []
    for key in sorted(value):
        item = value[key]
        if isinstance(item, dict):
            lines += [f"{pad}{key}:"] + _yaml(item, indent + 2) if item else [f"{pad}{key}: {{}}"]
        elif isinstance(item, list):
            lines += [f"{pad}{key}:"] + [f"{pad}- {entry}" for entry in item]
        elif isinstance(item, bool):
            lines.append(f"{pad}{key}: {'true' if item else 'false'}")
        else:
            lines.append(f"{pad}{key}: {item}")
    return lines


def write_config(data_dir: str, name: str, node_ip: str, *, new_cluster: bool, reset: bool) -> None:
    """executor.ETCDConfig.ToConfigFile (pkg/daemons/executor/executor.go), called from
    pkg/etcd/etcd.go ETCD.cluster at every start: server/db/etcd/config with the *current* node-ip.
    Peer and client listeners are loopback plus node-ip, or loopback only during a reset
    (listenPeerURLs, listenClientURLs, advertiseClientURLs); the initial-cluster options only for a
    new cluster or a reset (newCluster); force-new-cluster only for a reset."""
    etcd_dir = db_dir(data_dir)
    tls = os.path.join(data_dir, "server", "tls", "etcd")
    peer, client = url(node_ip, PEER_PORT), url(node_ip, CLIENT_PORT)
    loop_peer, loop_client = url(LOOPBACK, PEER_PORT), url(LOOPBACK, CLIENT_PORT)
    values = {
        "advertise-client-urls": loop_client if reset else client,
        "client-transport-security": {
            "cert-file": os.path.join(tls, "server-client.crt"),
            "client-cert-auth": True,
            "key-file": os.path.join(tls, "server-client.key"),
            "trusted-ca-file": os.path.join(tls, "server-ca.crt"),
        },
        "data-dir": etcd_dir,
        "election-timeout": 5000,
        "experimental-initial-corrupt-check": True,
        "experimental-watch-progress-notify-interval": 5000000000,
        "heartbeat-interval": 500,
        "listen-client-http-urls": url(LOOPBACK, 2382),
        "listen-client-urls": loop_client if reset else f"{loop_client},{client}",
        "listen-metrics-urls": url(LOOPBACK, 2381, "http"),
        "listen-peer-urls": loop_peer if reset else f"{loop_peer},{peer}",
        "log-outputs": ["stderr"],
        "logger": "zap",
        "name": name,
        "peer-transport-security": {
            "cert-file": os.path.join(tls, "peer-server-client.crt"),
            "client-cert-auth": True,
            "key-file": os.path.join(tls, "peer-server-client.key"),
            "trusted-ca-file": os.path.join(tls, "peer-ca.crt"),
        },
        "snapshot-count": 10000,
        "socket-options": {},
    }
    if new_cluster or reset:
        values.update(
            {"initial-advertise-peer-urls": peer, "initial-cluster": f"{name}={peer}", "initial-cluster-state": "new"}
        )
    if reset:
        values["force-new-cluster"] = True
    os.makedirs(etcd_dir, mode=0o700, exist_ok=True)
    _write(os.path.join(etcd_dir, "config"), ("\n".join(_yaml(values)) + "\n").encode(), 0o600)


def not_member_line(found: list[str], expect: str) -> str:
    """pkg/executor/embed/embed.go Embedded.ETCD logs a failed readiness test as "Failed to test etcd
    connection: %v"; the error is pkg/etcd/etcd.go's membershipError (ETCD.Test): the member list
    (name=first peer URL, Go's %v of a []string) and this server's name=peerURL."""
    return (
        "Failed to test etcd connection: this server is a not a member of the etcd cluster. "
        f"Found [{' '.join(found)}], expect: {expect}"
    )


def never_ready(found: list[str], expect: str) -> int:
    """Embedded etcd after an address change: the member list still holds the old peer URL, so the
    readiness test fails every 5 s (K3S_STANDIN_NEVER_READY_INTERVAL) and k3s stays `activating`
    without exiting or notifying readiness (k3s #7558, #2732; ../shared/facts/k3s-and-vpn.md), until
    `--cluster-reset` rewrites the member (k3s #4296). The unit's TimeoutStartSec=0 then keeps
    `systemctl start` waiting forever. Exit 0 on SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        info(not_member_line(found, expect))
        stop.wait(float(os.environ.get("K3S_STANDIN_NEVER_READY_INTERVAL", "5")))
    return 0


def _peer_host(member: dict) -> str:
    return urllib.parse.urlsplit(member.get("peerURL") or "").hostname or ""


def cluster_reset(store: Store, data_dir: str, node_name: str, node_ip: str) -> int:
    """`k3s server --cluster-reset` (pkg/cluster/managed.go Cluster.start, pkg/etcd/etcd.go
    ETCD.Reset): refused once server/db/reset-flag exists; otherwise a new member name, the
    reset-flag, etcd/config for a forced new cluster on loopback, etcd started (it publishes the new
    name), then on the 5-s ticker the member's peer URL is updated to node-ip (MemberUpdate), the
    next tick finds the member, etcd is stopped, 5 s later k3s logs its message and exits 0. Killed
    before the update, the flag stays and the member keeps the old peer URL. Node objects are never
    touched. K3S_STANDIN_RESET_INTERVAL (default 5) is each of those three waits."""
    flag = reset_flag_path(data_dir)
    if os.path.exists(flag):
        raise Fatal(
            START_PREFIX + "Managed etcd cluster membership was previously reset, please remove the "
            "cluster-reset flag and start k3s normally. If you need to perform another cluster reset, you must "
            f"first manually delete the file at {flag}"
        )
    name = member_name(data_dir, node_name, force=True)
    _write(flag, b"", 0o600)  # "touch a file to avoid multiple resets"
    info("Starting etcd for new cluster, cluster-reset=true")
    write_config(data_dir, name, node_ip, new_cluster=True, reset=True)
    peer = url(node_ip, PEER_PORT)
    member = store.get(MEMBER_KEY) or {}
    old_peer = member.get("peerURL") or peer
    store.put(MEMBER_KEY, {"metadata": {"name": name}, "peerURL": old_peer})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    interval = float(os.environ.get("K3S_STANDIN_RESET_INTERVAL", "5"))
    if old_peer != peer:
        info(not_member_line([f"{name}={old_peer}"], f"{name}={peer}"))
    if stop.wait(interval):
        return 0
    store.put(MEMBER_KEY, {"metadata": {"name": name}, "peerURL": peer})
    for _tick in range(2):  # the tick that finds the member, then the 5-s wait for etcd to stop
        if stop.wait(interval):
            return 0
    info(
        "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
        "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"
    )
    return 0


def start_etcd(store: Store, data_dir: str, node_name: str, node_ip: str, reset: bool) -> int | None:
    """The managed datastore's start (pkg/cluster/managed.go Cluster.start, pkg/etcd/etcd.go
    ETCD.Start): an exit status when k3s does not go on to serve (reset done, or the "not a member"
    loop), None when etcd is up and this server is its member; Fatal for a refused reset or a peer
    listener that cannot bind."""
    if reset:
        return cluster_reset(store, data_dir, node_name, node_ip)
    flag = reset_flag_path(data_dir)
    if os.path.exists(flag):
        os.unlink(flag)  # a normal start clears the reset-flag
    name = member_name(data_dir, node_name)
    member = store.get(MEMBER_KEY)
    if member:
        info("Starting etcd for existing cluster member")
    else:
        info("Starting etcd for new cluster, cluster-reset=false")
    write_config(data_dir, name, node_ip, new_cluster=member is None, reset=False)
    peer = url(node_ip, PEER_PORT)
    if os.environ.get("K3S_STANDIN_NEVER_READY"):
        # Test hook: the loop whatever the addresses (the recovery's hang tests).
        old = os.environ.get("K3S_STANDIN_NEVER_READY_PEER", "10.0.0.1")
        return never_ready([f"{name}={url(old, PEER_PORT)}"], f"{name}={peer}")
    # etcd binds the listeners etcd/config names: an address no interface holds fails (rke2 #5651).
    if not address_is_local(node_ip):
        sys.stderr.write(
            json.dumps(
                {
                    "level": "error",
                    "ts": now_rfc3339(),
                    "caller": "embed/etcd.go:539",
                    "msg": "creating peer listener failed",
                    "error": f"listen tcp {node_ip}:{PEER_PORT}: bind: cannot assign requested address",
                }
            )
            + "\n"
        )
        raise Fatal(START_PREFIX + f"listen tcp {node_ip}:{PEER_PORT}: bind: cannot assign requested address")
    # etcd publishes its name at start; the peer URL stays what the member list holds.
    recorded = (member or {}).get("peerURL") or peer
    published = {"metadata": {"name": name}, "peerURL": recorded}
    if member is None or member.get("metadata", {}).get("name") != name:
        store.put(MEMBER_KEY, published)
    if _peer_host({"peerURL": recorded}) != node_ip:
        return never_ready([f"{name}={recorded}"], f"{name}={peer}")
    return None


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

"""k3s stand-in: server (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import glob
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import threading
import urllib.request

from k3s_standin.api import ApiHandler, TLSServer
from k3s_standin.cluster import PACKAGED, Cluster, key_for
from k3s_standin.common import DEFAULT_DATA_DIR, PEER_PORT, Fatal, git_commit, info, now_rfc3339, warn
from k3s_standin.config import (
    SERVER_FLAGS_BOOL,
    SERVER_FLAGS_LIST,
    SERVER_FLAGS_SCALAR,
    address_is_local,
    default_route_ipv4,
    etc_dir,
    load_options,
)
from k3s_standin.pki import _write, ensure_tls, ensure_token
from k3s_standin.pods import start_network, start_pods
from k3s_standin.store import Store, datastore_kind, db_paths


def sd_notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def kubeconfig_text(server_url: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> str:
    def enc(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return (
        "apiVersion: v1\nclusters:\n- cluster:\n"
        f"    certificate-authority-data: {enc(ca_pem)}\n    server: {server_url}\n  name: default\n"
        "contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\n"
        "current-context: default\nkind: Config\npreferences: {}\nusers:\n- name: default\n  user:\n"
        f"    client-certificate-data: {enc(cert_pem)}\n    client-key-data: {enc(key_pem)}\n"
    )


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def etcd_member_key() -> str:
    return "/k3s-standin/etcd/member"


def never_ready(node_name: str, node_ip: str, found_peer: str) -> int:
    """Embedded etcd after an address change: the member list still holds the old peer URL, so
    k3s logs "not a member of the etcd cluster" over and over and stays `activating` without
    exiting or notifying readiness (k3s #7558, #2732; ../shared/facts/k3s-and-vpn.md), until
    `--cluster-reset` rewrites the member (k3s #4296). The unit's TimeoutStartSec=0 then keeps
    `systemctl start` waiting forever. Exit 0 on SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    member = f"{node_name}-{git_commit(node_name)}"
    while not stop.is_set():
        info(
            "Failed to test data store connection: this server is a not a member of the etcd cluster. "
            f"Found [{member}=https://{found_peer}:{PEER_PORT}], expect: {member}=https://{node_ip}:{PEER_PORT}"
        )
        stop.wait(float(os.environ.get("K3S_STANDIN_NEVER_READY_INTERVAL", "5")))
    return 0


def ready_delay() -> float:
    """Start to node Ready: roughly 30-60 s for a single server with its default pods (k3s #4340,
    #4360). K3S_STANDIN_READY_DELAY shortens it where a test does not measure it."""
    return float(os.environ.get("K3S_STANDIN_READY_DELAY", "30"))


def cmd_server(argv: list[str], version: str) -> int:
    opts, rest = load_options(argv, SERVER_FLAGS_SCALAR, SERVER_FLAGS_LIST, SERVER_FLAGS_BOOL)
    if rest:
        raise Fatal(f"unexpected arguments: {' '.join(rest)}")
    data_dir = os.path.abspath(opts.get("data-dir") or DEFAULT_DATA_DIR)
    node_name = (opts.get("node-name") or socket.gethostname()).lower()
    port = int(opts.get("https-listen-port") or 6443)
    bind = opts.get("bind-address") or "0.0.0.0"
    mode_text = str(opts.get("write-kubeconfig-mode") or "0600")
    try:
        kube_mode = int(mode_text, 8)
    except ValueError as exc:
        raise Fatal(f'invalid write-kubeconfig-mode "{mode_text}": {exc}') from exc
    node_ip = opts.get("node-ip")
    if node_ip:
        node_ip = str(node_ip).split(",", maxsplit=1)[0]
        try:
            ipaddress.ip_address(node_ip)
        except ValueError as exc:
            raise Fatal(f"invalid node-ip {node_ip}: {exc}") from exc
    else:
        node_ip = default_route_ipv4()
    info(f"Starting k3s {version} ({git_commit(version)})")
    if os.environ.get("K3S_STANDIN_NEVER_READY"):
        # Test hook: the same loop on any datastore (the recovery's hang tests run on SQLite).
        return never_ready(node_name, node_ip, os.environ.get("K3S_STANDIN_NEVER_READY_PEER", "10.0.0.1"))

    images = os.path.join(data_dir, "agent", "images")
    for image in sorted(glob.glob(os.path.join(images, "*"))):
        info(f"Imported images from {image} in 0s")

    kind = datastore_kind(data_dir, bool(opts.get("cluster-init")))
    sqlite_path, etcd_path = db_paths(data_dir)
    os.makedirs(os.path.join(data_dir, "server"), mode=0o700, exist_ok=True)
    sans = [
        "127.0.0.1",
        "::1",
        node_ip,
        "10.43.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        node_name,
    ]
    for extra in list(opts.get("tls-san") or []) + [opts.get("advertise-address") or ""]:
        if extra and extra not in sans:
            sans.append(extra)
    if bind not in ("0.0.0.0", "::", "127.0.0.1") and bind not in sans:
        sans.append(bind)

    if kind == "etcd":
        store = Store(etcd_path)
        member = store.get(etcd_member_key())
        if opts.get("cluster-reset"):
            store.put(etcd_member_key(), {"metadata": {"name": node_name}, "peerURL": f"https://{node_ip}:{PEER_PORT}"})
            node = store.get(key_for("nodes", None, node_name))
            if node:
                node["metadata"].pop("resourceVersion", None)
                for addr in node["status"]["addresses"]:
                    if addr["type"] == "InternalIP":
                        addr["address"] = node_ip
                node["metadata"]["annotations"]["k3s.io/internal-ip"] = node_ip
                store.put(key_for("nodes", None, node_name), node)
            store.close()
            info(
                "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
                "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"
            )
            return 0
        # k3s renders etcd's listen-peer-urls from the configured node-ip at every start: an
        # address no interface holds fails the bind (rke2 #5651); one that is held but differs
        # from the member list's peer URL is the "not a member" loop (k3s #7558, #2732).
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
            raise Fatal(
                "starting kubernetes: preparing server: start managed database: "
                f"listen tcp {node_ip}:{PEER_PORT}: bind: cannot assign requested address"
            )
        peer = (urllib.parse.urlsplit(member["peerURL"]).hostname or "") if member else node_ip
        if peer != node_ip:
            store.close()
            return never_ready(node_name, node_ip, peer)
        if not member:
            store.put(etcd_member_key(), {"metadata": {"name": node_name}, "peerURL": f"https://{node_ip}:{PEER_PORT}"})
        etcd_dir = os.path.dirname(os.path.dirname(os.path.dirname(etcd_path)))
        _write(os.path.join(etcd_dir, "name"), f"{node_name}-{git_commit(node_name)}\n".encode(), 0o600)
        _write(
            os.path.join(etcd_dir, "config"),
            f"data-dir: {etcd_dir}\nlisten-peer-urls: https://{node_ip}:{PEER_PORT}\n"
            f"listen-client-urls: https://127.0.0.1:2379,https://{node_ip}:2379\nname: {node_name}\n".encode(),
            0o600,
        )
    else:
        if opts.get("cluster-reset"):
            warn("Cluster reset is only supported with embedded etcd (cluster-init); ignoring --cluster-reset")
        store = Store(sqlite_path)
        os.chmod(sqlite_path, 0o600)

    ensure_tls(data_dir, sans)
    token = ensure_token(data_dir)
    cluster = Cluster(store, data_dir, opts, node_name=node_name, node_ip=node_ip, version=version)
    cluster.ensure_defaults(kind == "etcd")
    # A node already registered keeps its recorded addresses even when node-ip changed: k3s runs
    # on with the stale InternalIP until the node object is deleted (k3s #5880, #1977, #2827).
    cluster.register_node(kind == "etcd")
    ip_broken = not address_is_local(node_ip)

    tls = os.path.join(data_dir, "server", "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        os.path.join(tls, "serving-kube-apiserver.crt"), os.path.join(tls, "serving-kube-apiserver.key")
    )
    context.load_verify_locations(os.path.join(tls, "client-ca.crt"))
    context.verify_mode = ssl.CERT_OPTIONAL

    handler = type(
        "Handler",
        (ApiHandler,),
        {
            "cluster": cluster,
            "datastore": kind,
            "token": token,
            "snapshot_dir_default": os.path.join(data_dir, "server", "db", "snapshots"),
        },
    )
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server_cls = type("Server", (TLSServer,), {"address_family": family, "context": context})
    try:
        httpd = server_cls((bind, port), handler)
    except OSError as exc:
        reason = "address already in use" if exc.errno == 98 else "cannot assign requested address"
        raise Fatal(f"starting kubernetes: preparing server: listen tcp {bind}:{port}: bind: {reason}") from exc

    kubeconfig_path = (
        opts.get("write-kubeconfig") or os.environ.get("K3S_KUBECONFIG_OUTPUT") or os.path.join(etc_dir(), "k3s.yaml")
    )
    host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    os.makedirs(os.path.dirname(kubeconfig_path), exist_ok=True)
    _write(
        kubeconfig_path,
        kubeconfig_text(
            f"https://{host}:{port}",
            read_bytes(os.path.join(tls, "server-ca.crt")),
            read_bytes(os.path.join(tls, "client-admin.crt")),
            read_bytes(os.path.join(tls, "client-admin.key")),
        ).encode(),
        kube_mode,
    )
    info(f"Wrote kubeconfig {kubeconfig_path}")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    info("Kube API server is now running")
    if kind == "etcd":
        info("ETCD server is now running")
    if not ip_broken and ready_delay() <= 0 and not cluster.node_ready():
        cluster.mark_node_ready()
    info("k3s is up and running")
    sd_notify("READY=1\n")
    if not ip_broken:
        start_network()
        disabled = set(opts.get("disable") or [])
        pods = [name for name, component in PACKAGED.items() if component not in disabled]

        def kubelet_ready():
            # The node turns Ready once the kubelet and CNI are up; then the pods start.
            if not cluster.node_ready():
                stop.wait(ready_delay())
                if stop.is_set():
                    return
                cluster.mark_node_ready()
                info(f'Node "{node_name}" is Ready')
            start_pods(data_dir, version, pods)

        threading.Thread(target=kubelet_ready, name="kubelet", daemon=True).start()

    if ip_broken:
        # The apiserver is up; the agent's network policy controller then looks
        # the node's InternalIP up on the local interfaces and dies (k3s #12639).
        delay = float(os.environ.get("K3S_STANDIN_CRASH_DELAY", "3"))
        stop.wait(delay)
        if not stop.is_set():
            httpd.shutdown()
            store.close()
            raise Fatal(
                "Failed to start networking: unable to initialize network policy controller: error getting node "
                "subnet: failed to find interface with specified node ip"
            )
    stop.wait()
    httpd.shutdown()
    store.close()
    return 0

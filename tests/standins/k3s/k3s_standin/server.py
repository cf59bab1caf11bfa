"""k3s stand-in: server (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import base64
import ipaddress
import os
import signal
import socket
import ssl
import threading

from k3s_standin.api import ApiHandler, TLSServer
from k3s_standin.cluster import PACKAGED, Cluster
from k3s_standin.common import DEFAULT_DATA_DIR, PEER_PORT, Fatal, git_commit, info, warn
from k3s_standin.config import (
    SERVER_FLAGS_BOOL,
    SERVER_FLAGS_LIST,
    SERVER_FLAGS_SCALAR,
    address_is_local,
    default_route_ipv4,
    etc_dir,
    load_options,
)
from k3s_standin.etcd import hook_member_name, never_ready, start_etcd, url
from k3s_standin.images import import_images, publish
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

    # The agent's containerd imports <data-dir>/agent/images at every start and finishes before
    # the kubelet starts, i.e. before the node can turn Ready (images.py, pkg/agent/containerd
    # PreloadImages); the stand-in does it before READY=1, earlier still.
    import_images(data_dir)
    publish(data_dir)

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

    # k3s re-issues its certificates for the current SANs (pkg/daemons/control/deps GenServerDeps,
    # createClientCertKey/fieldsChanged) before it starts the datastore (cluster.Start): whatever
    # the datastore then does, the serving certificate already names the current node-ip.
    ensure_tls(data_dir, sans)
    token = ensure_token(data_dir)
    if kind == "etcd":
        store = Store(etcd_path)
        try:
            status = start_etcd(store, data_dir, node_name, node_ip, bool(opts.get("cluster-reset")))
        except BaseException:
            store.close()
            raise
        if status is not None:
            store.close()
            return status
    else:
        if opts.get("cluster-reset"):
            warn("Cluster reset is only supported with embedded etcd (cluster-init); ignoring --cluster-reset")
        if os.environ.get("K3S_STANDIN_NEVER_READY"):
            # Test hook: the etcd loop on SQLite too (the recovery's hang tests run on SQLite).
            old = os.environ.get("K3S_STANDIN_NEVER_READY_PEER", "10.0.0.1")
            name = hook_member_name(data_dir, node_name)
            return never_ready([f"{name}={url(old, PEER_PORT)}"], f"{name}={url(node_ip, PEER_PORT)}")
        store = Store(sqlite_path)
        os.chmod(sqlite_path, 0o600)

    cluster = Cluster(store, data_dir, opts, node_name=node_name, node_ip=node_ip, version=version)
    cluster.ensure_defaults(kind == "etcd")
    # The kubelet registers a new node; on an existing one the agent patches k3s.io/internal-ip to
    # node-ip at every start and the k3s cloud provider builds InternalIP from it (k3s #12844 was
    # the regression that left it stale; K3S_STANDIN_STALE_INTERNAL_IP=1 models that).
    internal_ip = cluster.register_node(
        kind == "etcd", stale_internal_ip=os.environ.get("K3S_STANDIN_STALE_INTERNAL_IP") == "1"
    )
    # kube-router's network policy controller looks the Node object's InternalIP up among the local
    # interfaces and dies when no interface holds it; disable-network-policy skips it.
    ip_broken = not opts.get("disable-network-policy") and not address_is_local(internal_ip or node_ip)

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

#!/usr/bin/env python
"""TEST STAND-IN for the k3s binary. Never install this for users.

Real k3s cannot be downloaded on our machines (no GitHub), so tests install this
program where the k3s role would put the real binary. It is worth exactly as much
as its fidelity: at every point our roles and the recovery playbook touch, it
behaves like k3s v1.32 (paths, flags, files written, exit codes, messages,
systemd readiness). Built into a release-like directory by build-release.sh,
which bakes the version in (K3S_STANDIN_VERSION below).

Modelled behaviours and the k3s issues behind them:
- `k3s --version` / `-v` prints k3s's two-line format; argv[0] dispatch
  (`kubectl` symlink acts as `k3s kubectl`), as the install script's symlinks do.
- `k3s server`: config from /etc/rancher/k3s/config.yaml plus config.yaml.d/*.yaml
  (later files override, `key+:` appends), then CLI flags; unknown keys are
  warned about and skipped ("Unknown flag --x found in config.yaml, skipping",
  k3s #11388 shows the message). First start writes server/tls (CAs, serving
  cert with node-ip, tls-san, 127.0.0.1, localhost, kubernetes... SANs; the
  serving cert is re-issued when the SAN set changes, like dynamiclistener),
  server/token (K10<ca-hash>::server:<secret>), the datastore (kine-like SQLite
  table in server/db/state.db, or with cluster-init a store under
  server/db/etcd/ with a member record holding the peer URL), server/manifests/,
  and /etc/rancher/k3s/k3s.yaml (server https://127.0.0.1:6443, admin client
  certificate, mode from write-kubeconfig-mode, default 0600).
- HTTPS on bind-address:6443 (https-listen-port): /readyz /livez /healthz
  /version anonymous; a small Kubernetes API (discovery, nodes, namespaces,
  serviceaccounts + TokenRequest, secrets, configmaps, pods, services,
  deployments, RBAC kinds stored not enforced, networkpolicies) authenticated by
  client certificates of the client CA or by bearer tokens signed with
  server/tls/service.key. Wiping server/tls means a new CA and key: old
  kubeconfigs fail TLS verification, old tokens get 401.
- sd_notify READY=1 on $NOTIFY_SOCKET once the API serves (unit Type=notify).
- IP change (k3s #9879, #6969, #5880): the node object keeps the old
  InternalIP. When the node IP (configured or auto-detected from the
  default-route interface) differs from it, or node-ip is on no interface, the
  server comes up, reports READY, then dies a few seconds later the way
  k3s #12639 shows ("Failed to start networking: unable to initialize network
  policy controller: error getting node subnet: failed to find interface with
  specified node ip"), exit 1: with Restart=always that is the crash loop
  (`activating (auto-restart)`). In that window `kubectl delete node` works,
  after which a restart registers the node with the new IP (k3s #5880). With
  embedded etcd, a recorded peer address that can no longer be bound fails
  start-up at once with etcd's "listen tcp IP:2380: bind: cannot assign
  requested address"; `--cluster-reset` rewrites the member peer address and
  exits 0 with k3s's "Managed etcd cluster membership has been reset, restart
  without --cluster-reset flag now..." (k3s #4296, #7148, rke2 #5651).
- `k3s etcd-snapshot save [--name N] [--dir D]` / `ls` ask the running server,
  as k3s >= 1.29 does: with etcd it writes <name>-<node>-<unix-seconds>
  (default name on-demand, dir server/db/snapshots); with SQLite it fails with
  "see server log for details: etcd datastore disabled", exit 1 (k3s #11388;
  kine never snapshots, kine #88).
- `k3s kubectl get nodes|namespaces|... [-o json|wide|name]`,
  `k3s kubectl delete node NAME` (k3s #5880).
- `k3s certificate rotate` (k3s stopped): backs server/tls up to
  server/tls-<unix-seconds>, re-issues leaf certificates (CAs and service.key
  kept, as in k3s); the next start writes a new k3s.yaml.
- Airgap images in agent/images/ are "imported" (logged, nothing runs).

Not modelled: containers and pods (nothing runs; pod lists are empty), watches,
RBAC enforcement, admission, server-side apply, JSON patch, applying
server/manifests/*.yaml, agents/joining, flannel, traefik, crictl/ctr,
`k3s check-config`, IPv6 node addresses, etcd snapshots to S3, snapshot restore.

Test hooks (defaults identical to real k3s): K3S_STANDIN_ETC_DIR replaces
/etc/rancher/k3s; K3S_STANDIN_CRASH_DELAY (seconds, default 3) is how long the
server lives before the IP-change fatal error.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import glob
import hashlib
import http.server
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import socketserver
import sqlite3
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

K3S_STANDIN_VERSION = "v1.32.11+k3s1"  # replaced by build-release.sh
GO_VERSION = "go1.24.11"
START = time.time()
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
PEER_PORT = 2380

# Flags `k3s server` knows (config keys are the same names). Only some change
# what the stand-in does; the rest are accepted so real configs do not warn.
SERVER_FLAGS_SCALAR = {
    "config",
    "node-ip",
    "node-external-ip",
    "node-name",
    "bind-address",
    "advertise-address",
    "advertise-port",
    "write-kubeconfig-mode",
    "write-kubeconfig",
    "data-dir",
    "https-listen-port",
    "flannel-iface",
    "flannel-backend",
    "token",
    "token-file",
    "agent-token",
    "cluster-cidr",
    "service-cidr",
    "cluster-dns",
    "cluster-domain",
    "datastore-endpoint",
    "default-local-storage-path",
    "system-default-registry",
    "snapshotter",
    "container-runtime-endpoint",
    "resolv-conf",
    "etcd-snapshot-dir",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
    "etcd-snapshot-name",
    "cluster-reset-restore-path",
    "server",
    "log",
    "v",
    "private-registry",
    "pause-image",
    "kubelet-arg",
    "kube-apiserver-arg",
    "kube-controller-manager-arg",
    "kube-scheduler-arg",
    "kube-proxy-arg",
    "etcd-arg",
    "node-label",
    "node-taint",
    "secrets-encryption",
}
SERVER_FLAGS_LIST = {
    "tls-san",
    "disable",
    "node-label",
    "node-taint",
    "kubelet-arg",
    "kube-apiserver-arg",
    "kube-controller-manager-arg",
    "kube-scheduler-arg",
    "kube-proxy-arg",
    "etcd-arg",
}
SERVER_FLAGS_BOOL = {
    "cluster-init",
    "cluster-reset",
    "disable-network-policy",
    "disable-cloud-controller",
    "disable-kube-proxy",
    "disable-helm-controller",
    "disable-scheduler",
    "disable-apiserver",
    "disable-etcd",
    "etcd-disable-snapshots",
    "protect-kernel-defaults",
    "selinux",
    "debug",
    "secrets-encryption",
    "prefer-bundled-bin",
    "embedded-registry",
    "docker",
    "rootless",
}
SNAPSHOT_FLAGS_SCALAR = {
    "config",
    "data-dir",
    "name",
    "etcd-snapshot-name",
    "dir",
    "etcd-snapshot-dir",
    "node-name",
    "etcd-server",
    "etcd-token",
}
SNAPSHOT_FLAGS_BOOL = {"debug", "etcd-snapshot-compress", "compress"}
SHORT_ALIASES = {"c": "config", "d": "data-dir", "i": "node-ip", "t": "token"}


# --------------------------------------------------------------------- logging
class Fatal(Exception):
    """A k3s-style fatal error: logged at level fatal, exit 1."""


def _log(level: str, msg: str) -> None:
    # logrus' TextFormatter: the short coloured form on a terminal, logfmt
    # otherwise (what journald shows for k3s.service).
    if sys.stderr.isatty():
        sys.stderr.write(f"{level.upper()[:4]}[{int(time.time() - START):04d}] {msg}\n")
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        sys.stderr.write(f'time="{stamp}" level={level} msg={json.dumps(msg)}\n')
    sys.stderr.flush()


def info(msg: str) -> None:
    _log("info", msg)


def warn(msg: str) -> None:
    _log("warning", msg)


def now_rfc3339(ts: float | None = None) -> str:
    return dt.datetime.fromtimestamp(ts if ts is not None else time.time(), dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def git_commit(version: str) -> str:
    return hashlib.sha256(version.encode()).hexdigest()[:8]


# --------------------------------------------------------------- config/flags
def parse_scalar(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [parse_scalar(p) for p in inner.split(",")] if inner else []
    return text


def strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if ch in "\"'" and quote is None:
            quote = ch
        elif ch == quote:
            quote = None
        elif ch == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def parse_config_yaml(path: str) -> list[tuple[str, object, bool]]:
    """Parse k3s's flat config YAML: `key: scalar`, `key: [a, b]`, `key:` + `- item` lines.

    Returns (key, value, append) in file order; `key+:` appends (k3s drop-ins).
    """
    entries: list[tuple[str, object, bool]] = []
    current: tuple[str, list, bool] | None = None
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, 1):
            line = strip_comment(raw.rstrip("\n")).rstrip()
            if not line.strip() or line.strip() == "---":
                continue
            stripped = line.strip()
            if stripped.startswith("- ") or stripped == "-":
                if current is None:
                    raise Fatal(f"failed to parse {path}: line {lineno}: list item without a key")
                current[1].append(parse_scalar(stripped[1:]))
                continue
            match = re.match(r"^([A-Za-z0-9_.-]+)(\+?)\s*:\s*(.*)$", stripped)
            if not match or line[0].isspace():
                raise Fatal(f"failed to parse {path}: line {lineno}: not a flat 'key: value' entry")
            key, plus, value = match.group(1), match.group(2) == "+", match.group(3)
            if value == "":
                current = (key, [], plus)
                entries.append(current)  # type: ignore[arg-type]
            else:
                current = None
                entries.append((key, parse_scalar(value), plus))
    return entries


def config_to_args(path: str, scalar: set, lists: set, bools: set) -> list[str]:
    args: list[str] = []
    for key, value, _append in parse_config_yaml(path):
        if key not in scalar | lists | bools:
            warn(f"Unknown flag --{key} found in config.yaml, skipping")
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            if key in bools and not isinstance(value, list):
                args.append(f"--{key}={'true' if item is True or str(item).lower() == 'true' else 'false'}")
            else:
                text = ("true" if item else "false") if isinstance(item, bool) else item
                args.append(f"--{key}={text}")
    return args


def parse_flags(argv: list[str], scalar: set, lists: set, bools: set) -> tuple[dict, list[str]]:
    opts: dict = {k: [] for k in lists}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i + 1 :])
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            i += 1
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        name = SHORT_ALIASES.get(name, name)
        if name in bools:
            opts[name] = (value.lower() in ("true", "1", "yes", "on")) if eq else True
        elif name in scalar or name in lists:
            if not eq:
                if i + 1 >= len(argv):
                    raise Fatal(f"flag needs an argument: -{name}")
                i += 1
                value = argv[i]
            if name in lists:
                # k3s splits comma lists for --disable and --tls-san.
                opts[name].extend(v for v in value.split(",") if v) if name in ("disable", "tls-san") else opts[
                    name
                ].append(value)
            else:
                opts[name] = value
        else:
            raise Fatal(f"flag provided but not defined: -{name}")
        i += 1
    return opts, rest


def etc_dir() -> str:
    return os.environ.get("K3S_STANDIN_ETC_DIR", "/etc/rancher/k3s")


def load_options(argv: list[str], scalar: set, lists: set, bools: set) -> tuple[dict, list[str]]:
    """Config files first, CLI flags after (so flags win), as k3s does."""
    cli_config = None
    for idx, arg in enumerate(argv):
        if arg in ("--config", "-c") and idx + 1 < len(argv):
            cli_config = argv[idx + 1]
        elif arg.startswith("--config="):
            cli_config = arg.split("=", 1)[1]
    config = cli_config or os.environ.get("K3S_CONFIG_FILE") or os.path.join(etc_dir(), "config.yaml")
    args: list[str] = []
    if os.path.isfile(config):
        args.extend(config_to_args(config, scalar, lists, bools))
    elif cli_config:
        raise Fatal(f"open {config}: no such file or directory")
    for dropin in sorted(glob.glob(config + ".d/*.yaml")):
        args.extend(config_to_args(dropin, scalar, lists, bools))
    return parse_flags(args + argv, scalar, lists, bools)


# -------------------------------------------------------------------- network
def address_is_local(ip: str) -> bool:
    """True when ip is assigned to an interface: binding to it succeeds (no packet leaves)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, 0))
        except OSError:
            return False
    return True


def default_route_ipv4() -> str:
    """The IPv4 of the default-route interface, as k3s picks the node IP."""
    iface = None
    try:
        with open("/proc/net/route", encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    iface = fields[0]
                    break
    except OSError:
        pass
    if not iface:
        raise Fatal("Failed to get node IP: no default routes found in /proc/net/route or /proc/net/ipv6_route")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))  # SIOCGIFADDR
        except OSError as exc:
            raise Fatal(f"Failed to get node IP: unable to find interface {iface}: {exc}") from exc
    return socket.inet_ntoa(packed[20:24])


# ------------------------------------------------------------------------ TLS
def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: str):
    with open(path, "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), None)


def _load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def make_ca(tls: str, prefix: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"k3s-{prefix}-ca@{int(time.time())}")
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(os.path.join(tls, f"{prefix}-ca.key"), _key_pem(key), 0o600)
    _write(os.path.join(tls, f"{prefix}-ca.crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def issue_cert(tls: str, ca_prefix: str, out: str, *, cn: str, org: str | None, server: bool, sans=()) -> None:
    ca_key = _load_key(os.path.join(tls, f"{ca_prefix}-ca.key"))
    ca_cert = _load_cert(os.path.join(tls, f"{ca_prefix}-ca.crt"))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        entries = []
        for san in sans:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                entries.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(os.path.join(tls, f"{out}.key"), _key_pem(key), 0o600)
    _write(os.path.join(tls, f"{out}.crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def cert_sans(path: str) -> set[str]:
    try:
        ext = _load_cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, x509.ExtensionNotFound):
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def ensure_tls(data_dir: str, sans: list[str]) -> None:
    tls = os.path.join(data_dir, "server", "tls")
    os.makedirs(tls, mode=0o700, exist_ok=True)
    for prefix in ("server", "client"):
        if not os.path.exists(os.path.join(tls, f"{prefix}-ca.crt")):
            make_ca(tls, prefix)
    if not os.path.exists(os.path.join(tls, "service.key")):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(os.path.join(tls, "service.key"), _key_pem(key), 0o600)
    if not os.path.exists(os.path.join(tls, "client-admin.crt")):
        issue_cert(tls, "client", "client-admin", cn="system:admin", org="system:masters", server=False)
    serving = os.path.join(tls, "serving-kube-apiserver.crt")
    if not set(sans) <= cert_sans(serving):
        if os.path.exists(serving):
            info(f"Updating TLS secret for kube-system/k3s-serving (count {len(sans)}): {sorted(sans)}")
        issue_cert(tls, "server", "serving-kube-apiserver", cn="k3s", org="k3s", server=True, sans=sans)


def ensure_token(data_dir: str) -> str:
    path = os.path.join(data_dir, "server", "token")
    if not os.path.exists(path):
        with open(os.path.join(data_dir, "server", "tls", "server-ca.crt"), "rb") as handle:
            ca_hash = hashlib.sha256(handle.read()).hexdigest()
        _write(path, f"K10{ca_hash}::server:{secrets.token_hex(16)}\n".encode(), 0o600)
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()


# ---------------------------------------------------------------------- JWTs
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(key, claims: dict) -> str:
    kid = _b64(
        hashlib.sha256(
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).digest()
    )
    header = _b64(json.dumps({"alg": "RS256", "kid": kid}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{body}.{_b64(sig)}"


def verify_jwt(key, token: str) -> dict | None:
    try:
        header, body, sig = token.split(".")
        key.public_key().verify(_unb64(sig), f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        claims = json.loads(_unb64(body))
    except Exception:  # noqa: BLE001 - any malformed or forged token is simply invalid
        return None
    if "exp" in claims and claims["exp"] < time.time():
        return None
    return claims


# ------------------------------------------------------------------ datastore
class Store:
    """kine-like append-only table; the latest undeleted row of a name is the object."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER,"
            " deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB,"
            " old_value BLOB)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)")

    def _latest(self, name: str):
        return self.db.execute(
            "SELECT id, deleted, create_revision, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
        ).fetchone()

    def get(self, name: str) -> dict | None:
        with self.lock:
            row = self._latest(name)
        if not row or row[1]:
            return None
        obj = json.loads(row[3])
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            obj["metadata"]["resourceVersion"] = str(row[0])
        return obj

    def list(self, prefix: str) -> list[dict]:
        with self.lock:
            rows = self.db.execute(
                "SELECT k.id, k.value FROM kine k JOIN (SELECT MAX(id) AS mid FROM kine WHERE name LIKE ? GROUP BY"
                " name) m ON k.id = m.mid WHERE k.deleted = 0 ORDER BY k.name",
                (prefix.replace("%", r"\%") + "%",),
            ).fetchall()
        out = []
        for rid, value in rows:
            obj = json.loads(value)
            obj["metadata"]["resourceVersion"] = str(rid)
            out.append(obj)
        return out

    def put(self, name: str, obj) -> str:
        with self.lock:
            prev = self._latest(name)
            created = 0 if prev and not prev[1] else 1
            create_rev = prev[2] if prev and not prev[1] else 0
            value = json.dumps(obj, sort_keys=True).encode()
            cur = self.db.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
                " VALUES (?, ?, 0, ?, ?, 0, ?, ?)",
                (name, created, create_rev, prev[0] if prev else 0, value, prev[3] if prev else None),
            )
            rid = cur.lastrowid
            if created:
                self.db.execute("UPDATE kine SET create_revision = ? WHERE id = ?", (rid, rid))
            return str(rid)

    def delete(self, name: str) -> bool:
        with self.lock:
            prev = self._latest(name)
            if not prev or prev[1]:
                return False
            self.db.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)"
                " VALUES (?, 0, 1, ?, ?, 0, ?, ?)",
                (name, prev[2], prev[0], prev[3], prev[3]),
            )
            return True

    def backup(self, dest: str) -> None:
        with self.lock:
            target = sqlite3.connect(dest)
            with target:
                self.db.backup(target)
            target.close()

    def close(self) -> None:
        with self.lock:
            self.db.close()


def db_paths(data_dir: str) -> tuple[str, str]:
    db = os.path.join(data_dir, "server", "db")
    return os.path.join(db, "state.db"), os.path.join(db, "etcd", "member", "snap", "db")


def datastore_kind(data_dir: str, cluster_init: bool) -> str:
    """k3s keeps using etcd once server/db/etcd exists, even without cluster-init."""
    etcd_db = db_paths(data_dir)[1]
    if cluster_init or os.path.exists(etcd_db):
        return "etcd"
    return "sqlite"


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

    def register_node(self, etcd: bool) -> None:
        if self.store.get(key_for("nodes", None, self.node_name)):
            return
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
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
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
        prefix = key_for(plural, namespace) if RESOURCES[res][1] and namespace is not None else f"/registry/{plural}/"
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
        # etcd listens for peers on the recorded member address (node-ip on a
        # first start); an address no interface holds any more fails the bind.
        peer = (urllib.parse.urlsplit(member["peerURL"]).hostname or "") if member else node_ip
        if not address_is_local(peer):
            sys.stderr.write(
                json.dumps(
                    {
                        "level": "error",
                        "ts": now_rfc3339(),
                        "caller": "embed/etcd.go:539",
                        "msg": "creating peer listener failed",
                        "error": f"listen tcp {peer}:{PEER_PORT}: bind: cannot assign requested address",
                    }
                )
                + "\n"
            )
            raise Fatal(
                "starting kubernetes: preparing server: start managed database: "
                f"listen tcp {peer}:{PEER_PORT}: bind: cannot assign requested address"
            )
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
    recorded = cluster.recorded_node_ip()
    cluster.register_node(kind == "etcd")
    ip_broken = not address_is_local(node_ip) or (recorded is not None and recorded != node_ip)

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
    info("k3s is up and running")
    sd_notify("READY=1\n")

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


# ---------------------------------------------------------------- certificate
def cmd_certificate(argv: list[str]) -> int:
    if not argv or argv[0] != "rotate":
        raise Fatal("the k3s stand-in models only `k3s certificate rotate`")
    opts = parse_flags(argv[1:], {"data-dir", "config", "service"}, set(), {"debug"})[0]
    data_dir = os.path.abspath(opts.get("data-dir") or DEFAULT_DATA_DIR)
    tls = os.path.join(data_dir, "server", "tls")
    if not os.path.isdir(tls):
        raise Fatal(f"stat {tls}: no such file or directory")
    info("Server detected, rotating server certificates")
    backup = f"{tls}-{int(time.time())}"
    shutil.copytree(tls, backup)
    for leaf in ("client-admin", "serving-kube-apiserver"):
        info(f"Rotating certificates for {leaf} service")
        for ext in ("crt", "key"):
            try:
                os.unlink(os.path.join(tls, f"{leaf}.{ext}"))
            except FileNotFoundError:
                pass
    issue_cert(tls, "client", "client-admin", cn="system:admin", org="system:masters", server=False)
    info(
        f"Successfully backed up certificates for all services to path {backup}, "
        "please restart k3s server or agent to rotate certificates"
    )
    return 0


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


# ----------------------------------------------------------------------- main
def print_version(version: str) -> int:
    print(f"k3s version {version} ({git_commit(version)})")
    print(f"go version {GO_VERSION}")
    return 0


def main(argv: list[str]) -> int:
    version = K3S_STANDIN_VERSION
    prog = os.path.basename(argv[0])
    args = argv[1:]
    try:
        if prog == "kubectl":
            return cmd_kubectl(args)
        if prog in ("crictl", "ctr"):
            sys.stderr.write(f"{prog}: not modelled by the k3s test stand-in (no container runtime runs)\n")
            return 1
        if not args or args[0] in ("-h", "--help", "help"):
            print(f"k3s {version} test stand-in: server, kubectl, etcd-snapshot, certificate rotate, --version")
            return 0
        if args[0] in ("--version", "-v", "version"):
            return print_version(version)
        cmd, rest = args[0], args[1:]
        if cmd == "server":
            return cmd_server(rest, version)
        if cmd == "kubectl":
            return cmd_kubectl(rest)
        if cmd == "etcd-snapshot":
            return cmd_etcd_snapshot(rest)
        if cmd == "certificate":
            return cmd_certificate(rest)
        if cmd in ("crictl", "ctr", "agent", "check-config", "token", "secrets-encrypt", "completion"):
            sys.stderr.write(f"k3s {cmd}: not modelled by the k3s test stand-in\n")
            return 1
        _log("fatal", f"No help topic for '{cmd}'")
        return 1
    except Fatal as exc:
        _log("fatal", str(exc))
        return 1
    except KubectlError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

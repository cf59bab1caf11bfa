"""k3s stand-in: config (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import fcntl
import glob
import ipaddress
import os
import re
import socket
import struct

from k3s_standin.common import Fatal, warn

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

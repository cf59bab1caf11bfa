"""Fixtures that run the k3s stand-in as a subprocess on loopback with temp paths.

Every server started here gets its own data dir, config dir (K3S_STANDIN_ETC_DIR),
loopback port and NOTIFY_SOCKET; readiness is the stand-in's own sd_notify
READY=1, exactly what systemd waits for with Type=notify.

The NordVPN stand-in fixtures (end of file) run its daemon either plainly (settings
only) or inside a network namespace of its own (connect, routing, firewall).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STANDIN = Path(__file__).resolve().parents[2] / "standins" / "k3s" / "k3s_standin"
sys.path.insert(0, str(STANDIN.parent))
from k3s_standin.protobuf import decode_node  # noqa: E402

BUILD_RELEASE = STANDIN.parent / "build-release.sh"
# Generous bound for a start-up on a loaded 2-core machine; not a timing assertion.
READY_WAIT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Started:
    """Outcome of one `k3s server` start."""

    ready: bool
    proc: subprocess.Popen
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@dataclass
class K3s:
    """One stand-in 'host': paths, config and the helpers to drive it."""

    root: Path
    port: int
    env: dict = field(default_factory=dict)
    procs: list = field(default_factory=list)
    starts: int = 0

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def kubeconfig(self) -> Path:
        return self.etc / "k3s.yaml"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def write_config(self, text: str, name: str = "config.yaml") -> None:
        path = self.etc / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def base_config(self, node_ip: str = "127.0.0.2", extra: str = "") -> None:
        self.write_config(
            f"node-ip: {node_ip}\nbind-address: 127.0.0.1\nhttps-listen-port: {self.port}\n"
            f"node-name: standin-node\n{extra}"
        )

    def cmd_env(self, **extra: str) -> dict:
        # No pods, CNI links or iptables chains on the shared machine (K3S_STANDIN_PODS=0; the
        # k3s-standin scenario has them on a test host), and no start-to-Ready delay where a test
        # does not measure it.
        env = dict(
            os.environ,
            K3S_STANDIN_ETC_DIR=str(self.etc),
            KUBECONFIG=str(self.kubeconfig),
            K3S_STANDIN_PODS="0",
            K3S_STANDIN_READY_DELAY="0",
            # The containerd address ctr dials (/run/k3s/containerd/containerd.sock on a host).
            K3S_STANDIN_CONTAINERD_ADDRESS=str(self.root / "containerd.sock"),
            CONTAINERD_ADDRESS=str(self.root / "containerd.sock"),
        )
        env.update(self.env)
        env.update(extra)
        return env

    def run(self, *args: str, argv0: str | None = None, **env: str) -> subprocess.CompletedProcess:
        """Run a short stand-in command (not the server) and return its result."""
        program = argv0 or str(STANDIN)
        return subprocess.run(
            [sys.executable, program, *args],
            capture_output=True,
            text=True,
            env=self.cmd_env(**env),
            timeout=120,
            check=False,
        )

    def start(self, *args: str, **env: str) -> Started:
        """Start `k3s server`; return once it sent READY=1 or exited, whichever came first."""
        self.starts += 1
        sock_path = self.root / f"notify-{self.starts}.sock"
        log_path = self.root / f"server-{self.starts}.log"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(sock_path))
        notify.settimeout(0.5)
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, str(STANDIN), "server", "--data-dir", str(self.data), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.cmd_env(NOTIFY_SOCKET=str(sock_path), **env),
            )
        self.procs.append(proc)
        deadline = time.monotonic() + READY_WAIT
        ready = False
        try:
            while time.monotonic() < deadline:
                try:
                    if notify.recv(256) == b"READY=1\n":
                        ready = True
                        break
                except TimeoutError:
                    if proc.poll() is not None:
                        break
            else:
                pytest.fail(f"k3s stand-in neither became ready nor exited:\n{log_path.read_text()}")
        finally:
            notify.close()
            sock_path.unlink(missing_ok=True)
        return Started(ready, proc, log_path)

    def stop(self, started: Started) -> int:
        if started.proc.poll() is None:
            started.proc.send_signal(signal.SIGTERM)
        return started.proc.wait(timeout=60)

    def up(self, *args: str, **env: str) -> Started:
        started = self.start(*args, **env)
        assert started.ready, f"server did not become ready:\n{started.log}"
        return started

    def db(self) -> sqlite3.Connection:
        etcd = self.data / "server/db/etcd/member/snap/db"
        path = etcd if etcd.exists() else self.data / "server/db/state.db"
        return sqlite3.connect(path)

    def latest(self, name: str) -> dict | None:
        with self.db() as conn:
            row = conn.execute(
                "SELECT deleted, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
            ).fetchone()
        if not row or row[0]:
            return None
        # Nodes are Kubernetes protobuf in kine (kine #36), the rest JSON.
        return decode_node(row[1]) if name.startswith("/registry/minions/") else json.loads(row[1])

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def k3s(tmp_path):
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    short = Path(os.environ.get("TMPDIR", "/tmp")) / f"k3sb-{os.getpid()}-{tmp_path.name[-20:]}"
    short.mkdir(parents=True, exist_ok=True)
    host = K3s(root=short, port=free_port())
    host.etc.mkdir()
    try:
        yield host
    finally:
        host.cleanup()
        subprocess.run(["rm", "-rf", str(short)], check=False)


@pytest.fixture
def k3s_running(k3s):
    """A ready SQLite-backed server with node-ip 127.0.0.2."""
    k3s.base_config(extra="disable:\n  - traefik\n  - metrics-server\n")
    started = k3s.up()
    yield k3s
    k3s.stop(started)


# ----------------------------------------------------------------- NordVPN client stand-in

NORDVPN_DIR = Path(__file__).resolve().parents[2] / "standins" / "nordvpn"
# Commands that change the network: only ever inside a test network namespace.
NORDVPN_NETWORK_COMMANDS = ("connect", "c")


class NordVPN:
    """The NordVPN stand-in: its daemon (optionally inside a network namespace) and its CLI.

    The CLI runs in the test's own namespace: it only talks to the daemon's
    unix socket, a file path, which crosses network namespaces.
    """

    def __init__(self, tmp: Path, netns: str | None = None):
        self.dir = tmp
        self.netns = netns
        self.sock = tmp / "run" / "nordvpnd.sock"
        self.state = tmp / "lib" / "standin-settings.json"
        self.env = dict(
            os.environ,
            NORDVPN_STANDIN=str(NORDVPN_DIR / "nordvpn_standin.py"),
            NORDVPND_SOCKET=str(self.sock),
            NORDVPND_STATE=str(self.state),
        )
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "nordvpnd.log"
        self.lan: str | None = None  # the LAN namespace of nordvpn_host

    def start(self, **env: str) -> None:
        argv = [str(NORDVPN_DIR / "nordvpnd")]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(argv, env={**self.env, **env}, stdout=subprocess.PIPE, stderr=log, text=True)
        # The daemon prints one line once it listens (after any auto-connect).
        line = self.proc.stdout.readline()
        assert "listening on" in line, f"{line!r}\n{self.log.read_text()}"
        assert self.sock.is_socket()

    def stop(self) -> int | None:
        """Stop the daemon like systemd does (SIGTERM) and return its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        status = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.proc = None
        return status

    def run(self, *args: str) -> subprocess.CompletedProcess:
        if args and args[0] in NORDVPN_NETWORK_COMMANDS and not self.netns:
            pytest.fail("`nordvpn connect` changes routing and firewall: use the nordvpn_host fixture")
        if args[:2] == ("set", "killswitch") and not self.netns:
            pytest.fail("`nordvpn set killswitch` builds a default-deny firewall: use the nordvpn_host fixture")
        return subprocess.run(
            [str(NORDVPN_DIR / "nordvpn"), *args], env=self.env, capture_output=True, text=True, check=False, timeout=60
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"nordvpn {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def sh(self, *argv: str, netns: str | None = None, check: bool = True) -> str:
        """Run a command inside the host namespace (or `netns`)."""
        result = subprocess.run(
            ["ip", "netns", "exec", netns or self.netns, *argv], capture_output=True, text=True, check=False, timeout=60
        )
        if check:
            assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"
        return result.stdout


@pytest.fixture
def nordvpn_client(tmp_path):
    """A NordVPN stand-in client whose daemon is not started (tests start it)."""
    client = NordVPN(tmp_path)
    yield client
    client.stop()


@pytest.fixture
def nordvpn(nordvpn_client):
    """A running NordVPN stand-in daemon in the test's namespace: settings only, never `connect`."""
    nordvpn_client.start()
    return nordvpn_client


_netns_count = 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture
def nordvpn_host(tmp_path):
    """A NordVPN stand-in daemon inside its own network namespace, a stand-in test host.

    The host namespace has `eth0` 192.168.77.2/24 with the default route via
    192.168.77.1, which is `lan0` in a second namespace (the "LAN"). Both
    namespaces, and with them everything the stand-in builds, go away at the end.
    """
    global _netns_count  # noqa: PLW0603 - unique names within this pytest process
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the NordVPN stand-in tests need {missing} (Debian packages iproute2, nftables)")
    _netns_count += 1
    host, lan = f"nvpn{os.getpid()}-{_netns_count}h", f"nvpn{os.getpid()}-{_netns_count}l"
    client = NordVPN(tmp_path, netns=host)
    client.lan = lan
    _ip("netns", "add", host)
    try:
        _ip("netns", "add", lan)
        _ip("-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", "lan0", "netns", lan)
        _ip("-n", host, "addr", "add", "192.168.77.2/24", "dev", "eth0")
        _ip("-n", lan, "addr", "add", "192.168.77.1/24", "dev", "lan0")
        for ns, dev in ((host, "eth0"), (host, "lo"), (lan, "lan0"), (lan, "lo")):
            _ip("-n", ns, "link", "set", "dev", dev, "up")
        _ip("-n", host, "route", "add", "default", "via", "192.168.77.1", "dev", "eth0")
        client.start()
        yield client
    finally:
        client.stop()
        subprocess.run(["ip", "netns", "del", host], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", lan], check=False, capture_output=True)

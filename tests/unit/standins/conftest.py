"""Fixtures that run the k3s stand-in as a subprocess on loopback with temp paths.

Every server started here gets its own data dir, config dir (K3S_STANDIN_ETC_DIR),
loopback port and NOTIFY_SOCKET; readiness is the stand-in's own sd_notify
READY=1, exactly what systemd waits for with Type=notify.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STANDIN = Path(__file__).resolve().parents[2] / "standins" / "k3s" / "k3s_standin.py"
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
        env = dict(os.environ, K3S_STANDIN_ETC_DIR=str(self.etc), KUBECONFIG=str(self.kubeconfig))
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
        return None if not row or row[0] else json.loads(row[1])

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

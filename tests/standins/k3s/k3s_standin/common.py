"""k3s stand-in: common (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import time

K3S_STANDIN_VERSION = "v1.32.11+k3s1"  # replaced by build-release.sh
GO_VERSION = "go1.24.11"
START = time.time()
DEFAULT_DATA_DIR = "/var/lib/rancher/k3s"
PEER_PORT = 2380


# Flags `k3s server` knows (config keys are the same names). Only some change
# what the stand-in does; the rest are accepted so real configs do not warn.
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
        sys.stderr.write(f'time="{stamp}" level={level} msg={json.dumps(msg, ensure_ascii=False)}\n')
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

"""Every k3s stand-in a unit test starts (tests/unit/standins, tests/unit/plugins) runs on the
shared development machine: no pods, CNI links or iptables chains (K3S_STANDIN_PODS=0; the
k3s-standin scenario has them on a test host) and no start-to-Ready delay, which no unit test
measures.

With I8C_SKIP_LIST set (the Makefile), every skip must be on that list (tests/ci/skiplist.py)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ["K3S_STANDIN_PODS"] = "0"
os.environ["K3S_STANDIN_READY_DELAY"] = "0"

_spec = importlib.util.spec_from_file_location("skiplist", Path(__file__).resolve().parents[1] / "ci" / "skiplist.py")
skiplist = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(skiplist)


def pytest_configure(config):
    skiplist.install(config)

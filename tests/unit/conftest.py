"""Every k3s stand-in a unit test starts (tests/unit/standins, tests/unit/plugins) runs on the
shared development machine: no pods, CNI links or iptables chains (K3S_STANDIN_PODS=0; the
k3s-standin scenario has them on a test host) and no start-to-Ready delay, which no unit test
measures."""

from __future__ import annotations

import os

os.environ["K3S_STANDIN_PODS"] = "0"
os.environ["K3S_STANDIN_READY_DELAY"] = "0"

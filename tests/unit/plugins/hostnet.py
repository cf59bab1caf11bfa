"""Host network layouts as `ip -d -j addr show` and `ip -j -4 route show table main` print them.

The shapes follow iproute2 6.1's JSON (Debian 12): a NIC has no ``linkinfo`` but names its bus
(``parentbus``/``parentdev``, kernel >= 5.14); every virtual device has ``linkinfo.info_kind``;
a bridge port carries ``master``; a veth whose other end lives in another network namespace
carries ``link_netnsid`` (a container's eth0, and the host side of every container veth, which
is also a bridge port). A layer-3 tunnel (WireGuard, tun) has ``link_type`` ``none`` and
POINTOPOINT. A multipath route has ``nexthops`` and no ``dev``; a route on a link without
carrier is flagged ``linkdown``. Read off real hosts: `ip -d -j addr show` on this machine and
in a test host (eth0 a veth with link_netnsid 0), shared/facts/k3s-and-vpn.md ("Host network
events").
"""

from __future__ import annotations

import json

UP_FLAGS = ("BROADCAST", "MULTICAST", "UP", "LOWER_UP")
DOWN_FLAGS = ("NO-CARRIER", "BROADCAST", "MULTICAST", "UP")


def addrs(*cidrs):
    return [
        {"family": "inet", "local": c.split("/")[0], "prefixlen": int(c.split("/")[1]), "scope": "global"}
        for c in cidrs
    ]


def nic(name, *cidrs, carrier=True, bus="pci", master=None):
    """A physical NIC (Ethernet or Wi-Fi). Without carrier it keeps its addresses (ifupdown)."""
    link = {
        "ifname": name,
        "flags": list(UP_FLAGS if carrier else DOWN_FLAGS),
        "operstate": "UP" if carrier else "DOWN",
        "link_type": "ether",
        "parentbus": bus,
        "parentdev": "0000:00:1f.6",
        "addr_info": addrs(*cidrs),
    }
    if master:
        link["master"] = master
        link["linkinfo"] = {"info_slave_kind": "bridge"}
    return link


def uplink(name, *cidrs):
    """A container's eth0: a veth whose peer is in the host's namespace (our test hosts, LXD)."""
    return {
        "ifname": name,
        "flags": list(UP_FLAGS),
        "operstate": "UP",
        "link_type": "ether",
        "link_netnsid": 0,
        "linkinfo": {"info_kind": "veth"},
        "addr_info": addrs(*cidrs),
    }


def device(name, kind, *cidrs, master=None, netnsid=None, operstate="UNKNOWN"):
    """A virtual device of ``kind`` (bridge, veth, dummy, vxlan, ...)."""
    link = {
        "ifname": name,
        "flags": list(UP_FLAGS),
        "operstate": operstate,
        "link_type": "ether",
        "linkinfo": {"info_kind": kind},
        "addr_info": addrs(*cidrs),
    }
    if master:
        link["master"] = master
        link["linkinfo"]["info_slave_kind"] = "bridge"
    if netnsid is not None:
        link["link_netnsid"] = netnsid
    return link


def tunnel(name, *cidrs, kind="wireguard"):
    """A layer-3 tunnel: NordLynx and WireGuard (wireguard), OpenVPN/NordVPN OpenVPN/Tailscale (tun)."""
    return {
        "ifname": name,
        "flags": ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"],
        "operstate": "UNKNOWN",
        "link_type": "none",
        "linkinfo": {"info_kind": kind},
        "addr_info": addrs(*cidrs),
    }


def host_only_adapter(name, *cidrs):
    """VMware vmnet*, VirtualBox vboxnet*: a driver's device, no kind, no bus."""
    return {
        "ifname": name,
        "flags": list(UP_FLAGS),
        "operstate": "UNKNOWN",
        "link_type": "ether",
        "addr_info": addrs(*cidrs),
    }


LO = {
    "ifname": "lo",
    "flags": ["LOOPBACK", "UP", "LOWER_UP"],
    "operstate": "UNKNOWN",
    "link_type": "loopback",
    "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}],
}


def docker0(cidr="172.17.0.1/16", containers=1):
    """Docker's bridge with one host-side veth per container (peer in the container's netns)."""
    ports = [device(f"veth{i:04x}", "veth", master="docker0", netnsid=i + 1) for i in range(containers)]
    return [device("docker0", "bridge", cidr, operstate="UP" if containers else "DOWN"), *ports]


def default(dev, gateway="192.168.1.1", metric=100, linkdown=False):
    return {
        "dst": "default",
        "gateway": gateway,
        "dev": dev,
        "metric": metric,
        "flags": ["linkdown"] if linkdown else [],
    }


def multipath(*devs, metric=100):
    return {
        "dst": "default",
        "metric": metric,
        "flags": [],
        "nexthops": [{"gateway": f"10.0.{i}.1", "dev": d, "weight": 1, "flags": []} for i, d in enumerate(devs)],
    }


def prefix(cidr, dev):
    return {"dst": cidr, "dev": dev, "protocol": "kernel", "scope": "link", "flags": []}


ACTIVE = {"ActiveState": "active", "SubState": "running", "NRestarts": "0", "MainPID": "4242"}


class HostRunner:
    """A runner (run_command, get_bin_path) over one layout that answers `ip -d -j addr show`,
    `ip -j -4 route show table main`, `systemctl show` (``unit``: its properties) and `journalctl`
    (``journal``: the current process's lines) as the real programs print them."""

    def __init__(self, links, routes, unit=None, journal=""):
        self.links, self.routes, self.unit, self.journal = [LO, *links], routes, dict(unit or ACTIVE), journal

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name if name in ("ip", "systemctl", "journalctl") else None

    def run_command(self, argv, cwd=None):
        name = argv[0].rsplit("/", 1)[-1]
        if name == "ip" and "addr" in argv:
            return 0, json.dumps(self.links), ""
        if name == "ip":
            return 0, json.dumps(self.routes), ""
        if name == "systemctl":
            return 0, "\n".join(f"{key}={value}" for key, value in self.unit.items()), ""
        if name == "journalctl":
            return 0, self.journal, ""
        return 1, "", f"unexpected command {argv}"


class Clock:
    """A clock the watcher reads and sleeps on; sleeping only moves it on."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

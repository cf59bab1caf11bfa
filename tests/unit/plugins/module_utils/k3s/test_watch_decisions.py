"""The watcher's decision over the host events a laptop or server meets, row by row.

Each row is one event as the host shows it afterwards: what `ip -d -j addr show` and the main
table print (tests/unit/plugins/hostnet.py), config.yaml (and drop-ins), the node row in the
SQLite datastore, the unit's `systemctl show` and the journal of its current process. The real
drift check (drift.detect) reads them through a fake runner, and the real decision
(watch.decide) says what the watcher does: none, warn, wait or recover onto an address.
Deleting server/db is the last resort: every row that is not a real move of the LAN address
must end in none, warn or wait (shared/facts/k3s-and-vpn.md, "Host network events").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hostnet import LO, HostRunner, default, device, docker0, host_only_adapter, multipath, nic, prefix, tunnel
from k3s_files import kine_db, node_json

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import detect  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.journal import Journal  # noqa: E402
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (  # noqa: E402
    ModuleFailure,
    Rebuild,
    StepError,
    with_defaults,
)

OLD = "192.168.1.20"
NOT_A_MEMBER = (
    'time="2026-12-07T10:00:05Z" level=info msg="Failed to test etcd connection: this server is a not a member of '
    'the etcd cluster. Found [node1-3a2b=https://192.168.1.20:2380], expect: node1-3a2b=https://10.20.30.40:2380"'
)


Host = HostRunner


def layout(tmp_path, *, node_ip=OLD, dropin_ip=None, datastore_ip=None, etcd=False):
    etc = tmp_path / "etc"
    (etc / "config.yaml.d").mkdir(parents=True, exist_ok=True)
    (etc / "config.yaml").write_text(
        "node-ip: {}\nflannel-iface: eth0\n{}".format(node_ip, "cluster-init: true\n" if etcd else "")
    )
    if dropin_ip:
        (etc / "config.yaml.d" / "50-user.yaml").write_text(f"node-ip: {dropin_ip}\n")
    db = tmp_path / "data" / "server" / "db"
    db.mkdir(parents=True, exist_ok=True)
    if etcd:
        (db / "etcd").mkdir(exist_ok=True)
        (db / "etcd" / "config").write_text(
            "listen-peer-urls: https://%s:2380\nname: node1\n" % (datastore_ip or node_ip)
        )
    else:
        kine_db(str(db / "state.db"), [("/registry/minions/node1", node_json(datastore_ip or node_ip), 0)])
    return str(etc / "config.yaml"), str(tmp_path / "data")


def settings(tmp_path, config_file, data_dir, **extra):
    base = dict(
        mode="recover", debounce=10, max_recoveries=2, config_file=config_file, data_dir=data_dir, service="k3s",
        backup_root=str(tmp_path / "backups"), node_ip="", node_interface="", flannel_iface="",
    )  # fmt: skip
    base.update(extra)
    return base


def decide(tmp_path, host, files, *, state=None, wait=0.0, pins=None, **extra):
    config_file, data_dir = files
    params = dict(
        config_file=config_file, data_dir=data_dir, service="k3s", node_name="node1", node_ip=None,
        node_interface=None, flannel_iface=None, kubeconfigs=[], hung_start_after=300.0,
    )  # fmt: skip
    params.update(pins or {})
    result = detect(host, params)[0]
    return watch.decide(result, state or {}, settings(tmp_path, config_file, data_dir, **extra), 1000.0, wait)


ETH0 = nic("eth0", "192.168.1.20/24")
WLAN = nic("wlan0", "10.20.30.40/24")
LAN_ROUTES = [default("eth0"), prefix("192.168.1.0/24", "eth0")]
NORDLYNX = tunnel("nordlynx", "10.5.0.2/16")


def killed(journal, stage):
    """``journal`` at ``stage`` as a run left it that was killed there: its process is gone."""
    journal.entry["pid"] = 2**22 + 1  # beyond Linux's largest pid_max: no process has it
    journal.note(stage)


def row(event, links, routes, expected, target=None, **kwargs):
    return pytest.param(dict(links=links, routes=routes, expected=expected, target=target, kwargs=kwargs), id=event)


ROWS = [
    row("steady state: k3s on the LAN address", [ETH0], LAN_ROUTES, "none"),
    row(
        "cable pulled, ifupdown keeps the address, Wi-Fi holds a default route",
        [nic("eth0", "192.168.1.20/24", carrier=False), WLAN],
        [default("eth0", linkdown=True), default("wlan0", "10.20.30.1", 600)],
        "warn",
    ),
    row(
        "cable pulled and the address removed, Wi-Fi up with a default route",
        [nic("eth0", carrier=False), WLAN],
        [default("wlan0", "10.20.30.1", 600)],
        "recover",
        "10.20.30.40",
    ),
    row(
        "Wi-Fi late at resume, a host-only bridge (lxdbr0) up, no default route",
        [
            nic("wlan0"),
            device("lxdbr0", "bridge", "10.151.0.1/24"),
            device("veth1", "veth", master="lxdbr0", netnsid=1),
        ],
        [prefix("10.151.0.0/24", "lxdbr0")],
        "wait",
    ),
    row(
        "Wi-Fi late at resume, VMware vmnet8 and VirtualBox vboxnet0 up",
        [nic("wlan0"), host_only_adapter("vmnet8", "172.16.5.1/24"), host_only_adapter("vboxnet0", "192.168.56.1/24")],
        [],
        "wait",
    ),
    row(
        "Wi-Fi late at resume, a second NIC up without a gateway",
        [nic("wlan0"), nic("eth1", "10.99.0.5/24")],
        [prefix("10.99.0.0/24", "eth1")],
        "wait",
    ),
    row("DHCP renewal gives the same address", [ETH0], LAN_ROUTES, "none"),
    row(
        "a new DHCP address on the same LAN",
        [nic("eth0", "192.168.1.77/24")],
        [default("eth0"), prefix("192.168.1.0/24", "eth0")],
        "recover",
        "192.168.1.77",
    ),
    row("NordVPN NordLynx connects (default route in table 205, main untouched)", [ETH0, NORDLYNX], LAN_ROUTES, "none"),
    row(
        "OpenVPN connects with def1 routes in the main table",
        [ETH0, tunnel("tun0", "10.8.0.6/24", kind="tun")],
        [*LAN_ROUTES, {"dst": "0.0.0.0/1", "dev": "tun0"}, {"dst": "128.0.0.0/1", "dev": "tun0"}],
        "none",
    ),
    row(
        "WireGuard wg0 takes the default route in the main table",
        [ETH0, tunnel("wg0", "10.66.0.2/24")],
        [{"dst": "default", "dev": "wg0", "metric": 0}, default("eth0")],
        "warn",
    ),
    row(
        "VPN reconnect within the debounce (tunnel address changing)",
        [ETH0, tunnel("nordlynx", "10.5.0.3/16")],
        LAN_ROUTES,
        "wait",
        wait=4.0,
    ),
    row("VPN disconnect: the tunnel is gone", [ETH0], LAN_ROUTES, "none"),
    row(
        "VPN connected while the LAN address is gone: only the tunnel is left",
        [nic("eth0", carrier=False), NORDLYNX],
        [],
        "wait",
    ),
    row(
        "a second NIC added with its own default route",
        [ETH0, nic("eth1", "10.99.0.5/24")],
        [default("eth1", "10.99.0.1", 50), *LAN_ROUTES],
        "none",
    ),
    row(
        "Docker and k3s devices beside the LAN",
        [ETH0, *docker0(), device("cni0", "bridge", "10.42.0.1/24"), device("flannel.1", "vxlan", "10.42.0.0/32")],
        LAN_ROUTES,
        "none",
    ),
    row(
        "the address moved, a multipath default route over eth1 and wlan0",
        [nic("eth1", "10.0.0.9/24"), nic("wlan0", "10.0.1.9/24")],
        [multipath("eth1", "wlan0")],
        "recover",
        "10.0.0.9",
    ),
    row(
        "the address moved onto a LAN bridge br0 over eth0",
        [nic("eth0", master="br0"), device("br0", "bridge", "192.168.2.30/24")],
        [default("br0", "192.168.2.1")],
        "recover",
        "192.168.2.30",
    ),
    row(
        "k3s on a LAN bridge br-lan: kept",
        [nic("eth0", master="br-lan"), device("br-lan", "bridge", "192.168.1.20/24")],
        [default("br-lan")],
        "none",
    ),
    row(
        "node-ip set in a config.yaml.d drop-in and the address moved",
        [nic("eth0", "192.168.1.77/24")],
        [default("eth0")],
        "warn",
        dropin_ip=OLD,
    ),
    row(
        "k3s_node_ip re-pinned to a second address and site.yml wrote it",
        [nic("eth0", "192.168.1.20/24", "192.168.1.21/24")],
        LAN_ROUTES,
        "none",
        node_ip="192.168.1.21",
        pins={"node_ip": "192.168.1.21"},
    ),
    row(
        "etcd hangs on `not a member` after site.yml wrote the new address",
        [WLAN],
        [default("wlan0", "10.20.30.1")],
        "recover",
        "10.20.30.40",
        node_ip="10.20.30.40",
        etcd=True,
        unit={
            "ActiveState": "activating",
            "SubState": "start",
            "NRestarts": "0",
            "MainPID": "77",
            "InactiveExitTimestampMonotonic": "1",
        },  # fmt: skip
        journal=NOT_A_MEMBER,
    ),
    row(
        "k3s stopped after a failed automatic recovery",
        [WLAN],
        [default("wlan0", "10.20.30.1")],
        "warn",
        node_ip="10.20.30.40",
        unit={"ActiveState": "inactive", "SubState": "dead", "NRestarts": "0", "MainPID": "0"},
        state={"failed_recovery": {"at": 900.0, "stage": "k3s_ready", "backup": "/var/backups/x"}},
    ),
    row(
        "the backup failed on a full disk after a move to Wi-Fi; k3s crash-loops on the old address",
        [nic("eth0", carrier=False), WLAN],
        [default("wlan0", "10.20.30.1", 600)],
        "warn",
        unit={"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "9", "MainPID": "0"},
        state={"failed_recovery": {"at": 900.0, "stage": "backup", "backup": None}},
    ),
    row(
        "a recovery killed after its wipe (SIGKILL, power cut): its journal is left",
        [ETH0],
        LAN_ROUTES,
        "recover",
        "192.168.1.20",
        recovery_journal="wiped",
    ),
    row(
        "k3s stopped by a person (no recovery involved)",
        [ETH0],
        LAN_ROUTES,
        "warn",
        unit={"ActiveState": "inactive", "SubState": "dead", "NRestarts": "0", "MainPID": "0"},
    ),
    row(
        "the address moved twice already this hour (flap limit)",
        [nic("eth0", "192.168.1.77/24")],
        [default("eth0")],
        "warn",
        state={"recoveries": [100.0, 500.0]},
    ),
    row(
        "the address moved while a rollback holds the watcher",
        [nic("eth0", "192.168.1.77/24")],
        [default("eth0")],
        "warn",
        state={"held": {"at": 900.0, "by": "rollback.yml"}},
    ),
    row(
        "the address moved in warn mode",
        [nic("eth0", "192.168.1.77/24")],
        [default("eth0")],
        "warn",
        mode="warn",
    ),
]


@pytest.mark.parametrize("case", ROWS)
def test_the_watcher_decides_each_host_event(tmp_path, case):
    kwargs, expected, target = dict(case["kwargs"]), case["expected"], case["target"]
    files = layout(
        tmp_path,
        node_ip=kwargs.pop("node_ip", OLD),
        dropin_ip=kwargs.pop("dropin_ip", None),
        etcd=kwargs.pop("etcd", False),
    )
    host = Host(case["links"], case["routes"], kwargs.pop("unit", None), kwargs.pop("journal", ""))
    if "recovery_journal" in kwargs:
        killed(Journal(files[1], "watch-1", node_ip=OLD, backup_dir="/b/1"), kwargs.pop("recovery_journal"))
    decision = decide(tmp_path, host, files, **kwargs)
    assert (decision["action"], decision["target"] if expected == "recover" else None) == (expected, target), decision
    if expected != "recover":
        # Every no-rebuild row says why in the journal.
        assert decision["reason"]


def test_the_table_covers_at_least_twenty_events():
    assert len(ROWS) >= 20


def test_the_drop_in_refusal_names_the_file(tmp_path):
    files = layout(tmp_path, dropin_ip=OLD)
    decision = decide(tmp_path, Host([nic("eth0", "192.168.1.77/24")], [default("eth0")]), files)
    assert (
        "node-ip is set in {}".format(os.path.join(os.path.dirname(files[0]), "config.yaml.d", "50-user.yaml"))
        in (decision["reason"])
    )


def test_carrier_loss_warns_with_the_link_and_keeps_the_address(tmp_path):
    host = Host(
        [nic("eth0", "192.168.1.20/24", carrier=False), WLAN],
        [default("eth0", linkdown=True), default("wlan0", "10.20.30.1", 600)],
    )
    decision = decide(tmp_path, host, layout(tmp_path))
    assert "eth0 holds k3s's address 192.168.1.20 but has no carrier now" in decision["reason"]


def test_the_hang_names_both_addresses(tmp_path):
    host = Host(
        [WLAN],
        [default("wlan0", "10.20.30.1")],
        {
            "ActiveState": "activating",
            "SubState": "start",
            "NRestarts": "0",
            "MainPID": "77",
            "InactiveExitTimestampMonotonic": "1",
        },  # fmt: skip
        NOT_A_MEMBER,
    )
    decision = decide(tmp_path, host, layout(tmp_path, node_ip="10.20.30.40", etcd=True))
    assert "holds 192.168.1.20 while k3s starts on 10.20.30.40" in decision["reason"]


def test_a_failed_recovery_clears_only_once_k3s_is_healthy_again(tmp_path):
    state = {"failed_recovery": {"at": 900.0, "stage": "k3s_ready", "backup": "/b"}}
    decision = decide(tmp_path, Host([ETH0], LAN_ROUTES), layout(tmp_path), state=state)
    assert decision["action"] == "none" and "cleared" in decision["reason"]


# --------------------------------------------------------------------------- under the lock


def rebuild_job(tmp_path, host, files, target, **extra):
    config_file, data_dir = files
    recheck = dict(config_file=config_file, data_dir=data_dir, service="k3s", node_name="node1", kubeconfigs=[])
    params = with_defaults(
        state="rebuilt", run_id="t", node_ip=target, backup_dir=str(tmp_path / "b"), recheck=recheck, **extra
    )
    return Rebuild(params, host)


def test_the_recheck_under_the_lock_stops_when_another_run_already_recovered(tmp_path):
    # The plan saw 192.168.1.20 gone; by the time it holds the lock, config.yaml says .77.
    files = layout(tmp_path, node_ip="192.168.1.77", datastore_ip="192.168.1.77")
    job = rebuild_job(tmp_path, Host([nic("eth0", "192.168.1.77/24")], [default("eth0")]), files, "192.168.1.77")
    with pytest.raises(ModuleFailure, match="k3s no longer drifted when the recovery got the lock"):
        job.recheck_drift()
    assert job.result["stage"] == "recheck"
    forced = rebuild_job(
        tmp_path, Host([nic("eth0", "192.168.1.77/24")], [default("eth0")]), files, "192.168.1.77", force=True
    )
    forced.recheck_drift()


def test_the_recheck_under_the_lock_stops_when_the_address_moved_again(tmp_path):
    host = Host([nic("eth0", "192.168.1.88/24")], [default("eth0")])
    job = rebuild_job(tmp_path, host, layout(tmp_path), "192.168.1.77")
    with pytest.raises(ModuleFailure, match=r"the node address is now 192\.168\.1\.88 .*, not 192\.168\.1\.77"):
        job.recheck_drift()


def test_the_recheck_passes_a_drift_onto_the_same_address(tmp_path):
    host = Host([nic("eth0", "192.168.1.77/24")], [default("eth0")])
    job = rebuild_job(tmp_path, host, layout(tmp_path), "192.168.1.77")
    job.recheck_drift()
    assert job.result["recheck"] == {"drift": True, "recommended_node_ip": "192.168.1.77"}


def test_the_recheck_refuses_a_drop_in_node_ip(tmp_path):
    host = Host([nic("eth0", "192.168.1.77/24")], [default("eth0")])
    job = rebuild_job(tmp_path, host, layout(tmp_path, dropin_ip=OLD), "192.168.1.77")
    with pytest.raises(ModuleFailure, match="node-ip is set in .*50-user.yaml"):
        job.recheck_drift()


def test_right_before_deleting_the_target_must_still_be_assigned(tmp_path):
    host = Host([nic("eth0", "192.168.1.77/24")], [default("eth0")])
    job = rebuild_job(tmp_path, host, layout(tmp_path), "192.168.1.77")
    job.target_still_assigned()
    host.links = [LO, nic("eth0", carrier=False)]
    with pytest.raises(StepError, match=r"192\.168\.1\.77 is no longer assigned to this host; nothing was deleted"):
        job.target_still_assigned()


# --------------------------------------------------------------------------- hold


def test_a_rollback_hold_shows_in_the_status_and_ends_with_release(tmp_path, capsys):
    state_dir = str(tmp_path / "state")
    watch.hold(state_dir, "rollback.yml from /b/x", clock=lambda: 0.0)
    assert oct(os.stat(os.path.join(state_dir, "hold.json")).st_mode & 0o777) == "0o600"
    watch.status({"state_dir": state_dir})
    assert "HELD since 1970-01-01T00:00:00Z by rollback.yml from /b/x" in capsys.readouterr().out
    assert watch.release(state_dir) is True and watch.release(state_dir) is False
    watch.status({"state_dir": state_dir})
    assert "HELD" not in capsys.readouterr().out

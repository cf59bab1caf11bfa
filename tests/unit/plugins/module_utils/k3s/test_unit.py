"""The k3s unit's state and the crash-loop verdict (drift detection, recovery, watcher)."""

from __future__ import annotations

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    describe,
    is_crash_looping,
    parse_unit_show,
    unit_state,
    unit_states,
)


@pytest.mark.parametrize(
    ("show", "crash"),
    [
        ("ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=7\nLoadState=loaded\n", True),
        ("ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=3\nLoadState=loaded\n", True),
        ("ActiveState=active\nSubState=running\nResult=success\nNRestarts=12\nLoadState=loaded\n", False),
        ("ActiveState=activating\nSubState=start\nResult=success\nNRestarts=0\nLoadState=loaded\n", False),
        ("ActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=0\nLoadState=not-found\n", False),
    ],
)
def test_crash_loop_from_systemctl_show(show, crash):
    assert is_crash_looping(parse_unit_show(show)) is crash


def test_unit_state_asks_systemctl_for_the_properties_and_reports_its_error():
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "ActiveState=activating\nSubState=auto-restart\nNRestarts=7\n", ""

    state = unit_state(run, "k3s")
    assert calls == [
        [
            "systemctl",
            "show",
            "k3s",
            "--property=ActiveState,SubState,Result,NRestarts,LoadState,MainPID,InactiveExitTimestampMonotonic,"
            "UnitFileState",
        ]
    ]
    assert is_crash_looping(state)
    assert describe("k3s", state) == "k3s is crash-looping (ActiveState=activating SubState=auto-restart NRestarts=7)"
    failed = unit_state(lambda argv: (1, "", "Failed to connect to bus"), "k3s")
    assert failed["error"] == "Failed to connect to bus" and not is_crash_looping(failed)


SHOWN = {
    "k3s": "ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=7\nLoadState=loaded\n"
    "MainPID=0\nInactiveExitTimestampMonotonic=0\nUnitFileState=enabled\n",
    "docker.service": "ActiveState=active\nSubState=running\nResult=success\nNRestarts=0\nLoadState=loaded\n"
    "MainPID=812\nInactiveExitTimestampMonotonic=5000000\nUnitFileState=enabled\n",
    "gone.timer": "ActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=0\nLoadState=not-found\n"
    "MainPID=0\nInactiveExitTimestampMonotonic=0\nUnitFileState=\n",
}


def fake_systemctl(calls, refuse=()):
    """`systemctl show UNIT... --property=...` as systemd answers it: one block per unit in the
    order asked, an empty line between blocks; a name it refuses fails the whole call."""

    def run(argv):
        calls.append(argv)
        assert argv[:2] == ["systemctl", "show"] and argv[-1].startswith("--property=")
        names = argv[2:-1]
        bad = [name for name in names if name in refuse]
        if bad:
            return 1, "", f'Failed to get properties: Unit name "{bad[0]}" is not valid.\n'
        return 0, "\n".join(SHOWN[name] for name in names), ""

    return run


def test_unit_states_reads_every_unit_in_one_call():
    calls = []
    states = unit_states(fake_systemctl(calls), ["k3s", "docker.service", "gone.timer", "k3s"])
    assert len(calls) == 1 and calls[0][2:-1] == ["k3s", "docker.service", "gone.timer"]
    assert list(states) == ["k3s", "docker.service", "gone.timer"]
    assert states["k3s"] == unit_state(fake_systemctl([]), "k3s")
    assert is_crash_looping(states["k3s"]) and states["k3s"]["unit_file_state"] == "enabled"
    assert states["docker.service"]["active_state"] == "active" and states["docker.service"]["main_pid"] == 812
    assert states["gone.timer"]["load_state"] == "not-found" and states["gone.timer"]["unit_file_state"] == ""
    assert unit_states(fake_systemctl(calls), []) == {} and len(calls) == 1


def test_a_refused_name_does_not_hide_the_other_units():
    calls = []
    states = unit_states(fake_systemctl(calls, refuse=("bad name",)), ["docker.service", "bad name"])
    assert len(calls) == 3
    assert states["docker.service"]["active_state"] == "active"
    assert "is not valid" in states["bad name"]["error"] and states["bad name"]["active_state"] is None


def test_output_that_does_not_split_into_one_block_per_unit_is_asked_again_unit_by_unit():
    calls = []
    merged = SHOWN["k3s"] + SHOWN["docker.service"]

    def run(argv):
        calls.append(argv)
        return 0, (merged if len(argv) > 4 else SHOWN[argv[2]]), ""

    states = unit_states(run, ["k3s", "docker.service"])
    assert len(calls) == 3
    assert states["k3s"]["active_state"] == "activating" and states["docker.service"]["active_state"] == "active"

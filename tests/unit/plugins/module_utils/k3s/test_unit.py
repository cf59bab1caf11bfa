"""The k3s unit's state and the crash-loop verdict (drift detection, recovery, watcher)."""

from __future__ import annotations

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    describe,
    is_crash_looping,
    parse_unit_show,
    unit_state,
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

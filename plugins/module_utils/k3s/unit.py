# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The k3s unit's state and the crash-loop verdict, for drift detection, the recovery and the
watcher. The installer's unit has Restart=always, which turns a failing start into
`activating (auto-restart)` with a growing NRestarts: upstream's "crash loop" symptom.

Standard library only: the watcher on the host imports this file as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PROPERTIES = ("ActiveState", "SubState", "Result", "NRestarts", "LoadState")


def parse_unit_show(text):
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    restarts = props.get("NRestarts")
    return {
        "active_state": props.get("ActiveState"),
        "sub_state": props.get("SubState"),
        "result": props.get("Result"),
        "n_restarts": int(restarts) if restarts and restarts.isdigit() else None,
        "load_state": props.get("LoadState"),
    }


def unit_state(run_command, service, systemctl="systemctl"):
    """``run_command(argv)`` returns (rc, stdout, stderr)."""
    rc, out, err = run_command([systemctl, "show", service, "--property=" + ",".join(PROPERTIES)])
    if rc != 0:
        state = parse_unit_show("")
        state["error"] = (err or out).strip()
        return state
    return parse_unit_show(out)


def is_crash_looping(state):
    """Failed, waiting to restart, or (re)starting after at least one restart."""
    active, sub = state.get("active_state"), state.get("sub_state")
    if active == "failed" or sub == "auto-restart":
        return True
    return active in ("activating", "deactivating") and (state.get("n_restarts") or 0) > 0


def describe(service, state):
    return "%s is crash-looping (ActiveState=%s SubState=%s NRestarts=%s)" % (
        service,
        state.get("active_state"),
        state.get("sub_state"),
        state.get("n_restarts"),
    )

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

import math
import re
import time

PROPERTIES = (
    "ActiveState", "SubState", "Result", "NRestarts", "LoadState", "MainPID", "InactiveExitTimestampMonotonic",
    "UnitFileState",
)  # fmt: skip
# Embedded etcd on a changed address (pkg/etcd/etcd.go): k3s logs this every ~5 s, stays
# `activating` and never exits, so NRestarts stays 0 (k3s #7558, #2732).
NOT_A_MEMBER = re.compile(r"not a member of the etcd cluster\. Found \[([^\]]*)\], expect: (\S+)")
IPV4_URL = re.compile(r"https?://(\d{1,3}(?:\.\d{1,3}){3}):")


class UnitError(Exception):
    """A systemctl call that failed or did not finish in time; ``journal_tail`` holds the unit's
    last journal lines."""

    def __init__(self, message, journal_tail=None):
        super(UnitError, self).__init__(message)
        self.journal_tail = journal_tail


def bounded_argv(get_bin_path, seconds, *argv):
    """argv under coreutils' timeout: k3s commands that may hang on a server that does not answer."""
    return [get_bin_path("timeout", required=True), str(max(1, int(math.ceil(seconds))))] + list(argv)


def journal_tail(runner, service, lines=25):
    """The unit's last journal lines (bounded), or why there are none. ``runner``: run_command,
    get_bin_path (an AnsibleModule, host.LocalRunner)."""
    journalctl = runner.get_bin_path("journalctl")
    if not journalctl:
        return "(journalctl not found)"
    argv = [journalctl, "-u", service, "-n", str(lines), "--no-pager", "-o", "short-iso"]
    _rc, out, err = runner.run_command(bounded_argv(runner.get_bin_path, 15, *argv))
    return (out or err).strip()[-4000:] or "(no journal lines)"


def run_systemctl(runner, verb, service, timeout):
    """``systemctl verb [service]`` under a time limit: the k3s unit has TimeoutStartSec=0, so a
    k3s that never notifies readiness (embedded etcd's "not a member of the etcd cluster" loop after
    an address change, k3s 7558, 2732; ../shared/facts/k3s-and-vpn.md) would keep ``systemctl
    start`` waiting forever. Raises UnitError carrying the unit's journal tail."""
    systemctl = runner.get_bin_path("systemctl", required=True)
    argv = [systemctl, verb] + ([service] if service else [])
    rc, out, err = runner.run_command(bounded_argv(runner.get_bin_path, timeout, *argv))
    if rc == 0:
        return
    what = " ".join(["systemctl"] + argv[1:])
    if rc == 124:
        message = "%s did not finish within %ss" % (what, max(1, int(math.ceil(timeout))))
    else:
        message = "%s failed (rc=%d): %s" % (what, rc, (err or out).strip()[-1500:])
    if not service:
        raise UnitError(message)
    tail = journal_tail(runner, service)
    raise UnitError("%s. Last lines of its journal:\n%s" % (message, tail), journal_tail=tail)


def parse_unit_show(text):
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    restarts = props.get("NRestarts")
    pid = props.get("MainPID")
    since = props.get("InactiveExitTimestampMonotonic")
    return {
        "active_state": props.get("ActiveState"),
        "sub_state": props.get("SubState"),
        "result": props.get("Result"),
        "n_restarts": int(restarts) if restarts and restarts.isdigit() else None,
        "load_state": props.get("LoadState"),
        "unit_file_state": props.get("UnitFileState"),
        "main_pid": int(pid) if pid and pid.isdigit() and int(pid) > 0 else None,
        # CLOCK_MONOTONIC seconds at which the current start began.
        "started_monotonic": int(since) / 1e6 if since and since.isdigit() and int(since) > 0 else None,
    }


def unit_states(run_command, units, systemctl="systemctl"):
    """{unit: state} (``parse_unit_show``) of each of ``units``, in one ``systemctl show`` for all:
    the one reading of a unit's state, for the k3s checks and for host_facts (module_utils/host.py).
    ``run_command(argv)`` returns (rc, stdout, stderr). A unit systemd does not know reads as
    LoadState not-found, ActiveState inactive; a state that could not be read carries ``error``."""
    names = list(dict.fromkeys(units))
    if not names:
        return {}
    rc, out, err = run_command([systemctl, "show"] + names + ["--property=" + ",".join(PROPERTIES)])
    if rc != 0:
        if len(names) > 1:
            # One unit name systemctl refuses fails the whole call: ask for each alone.
            return dict((name, unit_state(run_command, name, systemctl)) for name in names)
        state = parse_unit_show("")
        state["error"] = (err or out).strip()
        return {names[0]: state}
    if len(names) == 1:
        return {names[0]: parse_unit_show(out)}
    # One block per unit, in the order asked, separated by an empty line (each block lists every
    # property asked for by name, empty ones too, so no block is empty).
    blocks = out.strip("\n").split("\n\n")
    if len(blocks) != len(names):
        return dict((name, unit_state(run_command, name, systemctl)) for name in names)
    return dict((name, parse_unit_show(block)) for name, block in zip(names, blocks, strict=True))


def unit_state(run_command, service, systemctl="systemctl"):
    """``unit_states`` of one unit."""
    return unit_states(run_command, [service], systemctl)[service]


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


def starting_for(state, now=None):
    """Seconds the unit has been `activating` in its current start, or None when it is not
    starting. The installer's unit has TimeoutStartSec=0: a k3s that never reports ready (the
    etcd "not a member" loop) stays here forever without a restart."""
    if state.get("active_state") != "activating" or state.get("sub_state") == "auto-restart":
        return None
    if state.get("started_monotonic") is None:
        return None
    return max(0.0, (time.monotonic() if now is None else now) - state["started_monotonic"])


def main_process_log(run_command, state, lines=60, journalctl="journalctl"):
    """The journal lines of the unit's current main process (its PID), so a line an earlier
    start logged is never read as today's."""
    if not state.get("main_pid"):
        return ""
    argv = [journalctl, "_PID=%d" % state["main_pid"], "-n", str(lines), "--no-pager", "-o", "cat"]
    rc, out, _err = run_command(argv)
    return out if rc == 0 else ""


def etcd_member_mismatch(log_text):
    """(recorded peer addresses, expected peer address) from the newest `not a member of the
    etcd cluster` line, or None."""
    matches = list(NOT_A_MEMBER.finditer(log_text or ""))
    if not matches:
        return None
    found, expect = matches[-1].groups()
    return IPV4_URL.findall(found), (IPV4_URL.findall(expect) or [None])[0]

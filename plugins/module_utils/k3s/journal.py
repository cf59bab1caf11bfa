# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The recovery's journal of steps and its signal guard.

A recovery writes where it is (``stage``) to ``<data dir>/integr8scode-recovery.json`` before each
step that changes the host, so a run that was killed (SIGKILL, a power cut, a reboot in the middle)
is known to the next one: the drift check reports it (k3s_drift's ``interrupted``), and the next
recovery (recover.yml or the watcher) undoes the stops of a run that deleted nothing, or finishes
one that did, from the verified backup the interrupted run took. The file lives in the data dir,
outside ``server/`` (which the wipe deletes) and on disk (``/run`` does not survive the reboot).

SIGTERM, SIGINT and SIGHUP (systemd stopping the watcher, a restart of the address follower, ^C on
the controller) are turned into ``Interrupted`` while stopping is safe (nothing deleted yet: the
recovery starts k3s and the workers again and releases its lock). Once the wipe began, the signal
is recorded and the recovery runs to its end (or rolls back): a half-done wipe is the one state
that must not be left behind. The units' TimeoutStopSec covers those remaining phases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import process_identity

JOURNAL_NAME = "integr8scode-recovery.json"
# Stages before anything is deleted: undoing them means starting what was stopped.
BEFORE_WIPE = ("stopping", "backed_up")
# From here on server/db and server/tls may be gone: only finishing or rolling back is safe.
AFTER_WIPE = ("wiping", "wiped", "k3s_started", "app")
GUARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


class Interrupted(Exception):
    """A signal arrived while stopping was safe."""

    def __init__(self, signum):
        super(Interrupted, self).__init__("interrupted by signal %d (%s)" % (signum, signal_name(signum)))
        self.signum = signum


def signal_name(signum):
    try:
        return signal.Signals(signum).name
    except (ValueError, AttributeError):
        return str(signum)


def journal_path(data_dir):
    return os.path.join(data_dir, JOURNAL_NAME)


def read_journal(data_dir):
    """The journal of an unfinished recovery, or None."""
    try:
        with open(journal_path(data_dir)) as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("stage") else None


def writer_alive(entry):
    """Whether the run that wrote ``entry`` still runs (the run lock's liveness test): a journal of
    a live run is a recovery in progress, not an interrupted one."""
    return bool(entry.get("pid")) and process_identity(entry["pid"]) == entry.get("process")


def describe(entry, where="stopped at"):
    """One line for logs and drift findings; ``where``: how the run stands at its stage."""
    return "recovery %s onto %s %s stage %s (%s), backup %s" % (
        entry.get("run_id"),
        entry.get("node_ip"),
        where,
        entry.get("stage"),
        "nothing deleted yet" if entry.get("stage") in BEFORE_WIPE else "after the wipe began",
        entry.get("backup_dir"),
    )


class Journal:
    """The journal of one run: ``note(stage)`` before each step, ``clear()`` when the host is
    consistent again (recovered or rolled back)."""

    def __init__(self, data_dir, run_id, **facts):
        self.path = journal_path(data_dir)
        self.entry = dict(facts, run_id=run_id, steps=[], pid=os.getpid(), process=process_identity(os.getpid()))

    def note(self, stage, **extra):
        self.entry.update(extra)
        self.entry["stage"] = stage
        self.entry["steps"].append([stage, round(time.time(), 3)])
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        atomic_write(self.path, json.dumps(self.entry, indent=1, sort_keys=True), 0o600)

    def clear(self):
        try:
            os.remove(self.path)
        except OSError:
            pass


class SignalGuard:
    """Within ``with``: a guarded signal raises Interrupted unless ``critical`` is set, in which
    case it is recorded in ``received`` and the run goes on. Outside the main thread (signal
    handlers cannot be installed there) it guards nothing."""

    def __init__(self):
        self.critical = False
        self.received = []
        self.previous = {}

    def _handler(self, signum, _frame):
        self.received.append(signum)
        if not self.critical:
            raise Interrupted(signum)

    def __enter__(self):
        for signum in GUARDED_SIGNALS:
            try:
                self.previous[signum] = signal.signal(signum, self._handler)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *_exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}
        return False

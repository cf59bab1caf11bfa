# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The recovery of a k3s server whose node address changed, in one process on the host (the
k3s_rebuild module's logic; its argument spec lives here beside the code that reads it, as
community.docker's compose_v2 does): run lock, etcd snapshot or cold copy with a verified
manifest, wipe or reset, config.yaml rendered on the new address by the k3s role's renderer, k3s
Ready at the new address, the user's kubeconfig refreshed, and the app reconnected
(module_utils/compose/app.py). Nothing is deleted before the backup verified.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import sqlite3
import threading
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.compose.app import AppError, reconnect_app
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.project import (
    ComposeError,
    DockerException,
    compose_argv,
    docker_client,
    load_definition,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write, write_if_changed
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (
    LOCK_PATH,
    MANIFEST,
    BackupError,
    LockHeld,
    RunLock,
    check_free_space,
    claim_backup_dir,
    create_backup,
    prepare_backup_dir,
    read_json,
    remove_path,
    restore,
    sqlite_online_copy,
    verify,
    wait_for_lock,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    PINNED,
    effective_data_dir,
    readdress,
    render_config,
    settings_from_text,
    write_pins,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import ARGUMENT_SPEC as DRIFT_SPEC
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import DriftError, detect
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.journal import (
    BEFORE_WIPE,
    Interrupted,
    Journal,
    SignalGuard,
    describe,
    read_journal,
    signal_name,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    observe,
    read_network,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.teardown import Teardown
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    UnitError,
    bounded_argv,
    journal_tail,
    run_systemctl,
    unit_state,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.api import K3sProbe
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.kubeconfig import (
    LOOPBACK_HOSTS,
    KubeconfigError,
    current_server,
    point_kubeconfig_at,
    read_kubeconfig,
    server_host,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    Deadline,
    ProbeResult,
    poll,
)

# Run ids of the scheduled backups (watch.py ``backup``), and how long a scheduled backup and a
# recovery wait for each other's run lock: a scheduled backup takes seconds to minutes (pv_paths).
SCHEDULED_RUN_ID = "scheduled-"
SCHEDULED_LOCK_WAIT = 300.0

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["rebuilt", "restored", "verified"], default="rebuilt"),
    node_ip=dict(type="str"),
    flannel_iface=dict(type="str"),
    strategy=dict(type="str", choices=["wipe", "reset"], default="wipe"),
    datastore=dict(type="str", choices=["sqlite", "etcd"], default="sqlite"),
    node_name=dict(type="str"),
    backup_dir=dict(type="path"),
    backup_paths=dict(type="list", elements="path", default=[]),
    keep_backups=dict(type="int", default=5),
    keep_days=dict(type="int", default=7),
    backup_meta=dict(type="dict", default={}),
    service=dict(type="str", default="k3s"),
    binary=dict(type="path", default="/usr/local/bin/k3s"),
    config_file=dict(type="path", default="/etc/rancher/k3s/config.yaml"),
    # Empty: config.yaml's data-dir, else k3s's default (config.py effective_data_dir).
    data_dir=dict(type="path"),
    admin_kubeconfig=dict(type="path", default="/etc/rancher/k3s/k3s.yaml"),
    user_kubeconfig=dict(type="path"),
    ready_timeout=dict(type="float", default=300.0),
    stop_timeout=dict(type="float", default=120.0),
    snapshot_timeout=dict(type="float", default=60.0),
    stack_dir=dict(type="path"),
    project_name=dict(type="str"),
    compose_files=dict(type="list", elements="str", default=[]),
    app_kubeconfig=dict(type="path"),
    cert_generator_service=dict(type="str", default="cert-generator"),
    worker_services=dict(type="list", elements="str", default=["k8s-worker", "pod-monitor"]),
    app_probe_path=dict(type="str", default="/api/v1/namespaces"),
    app_api_port=dict(type="int", default=6443),
    app_kubeconfig_mode=dict(type="str", default="0600"),
    app_timeout=dict(type="float", default=300.0),
    lock_path=dict(type="path", default=LOCK_PATH),
    run_id=dict(type="str", required=True),
    lock_owner=dict(type="str", default=""),
    recheck=dict(type="dict"),
    force=dict(type="bool", default=False),
    pins=dict(type="dict"),
    # recover.yml's last word on a recovery that succeeded (the watcher judges at its next check).
    final_check=dict(type="bool", default=False),
    # The watcher's state directory: a hold a rollback set there ends once the recovery succeeded.
    release_hold=dict(type="path"),
)


class StepError(Exception):
    """A failed step; ``details`` are merged into the module result."""

    def __init__(self, message, **details):
        super(StepError, self).__init__(message)
        self.details = details


class Background:
    """A command run through the runner on a thread, so the workers' stop timeout passes while the
    backup and the rebuild run."""

    def __init__(self, runner, argv, cwd):
        self.outcome = (None, "")
        self.thread = threading.Thread(target=self._run, args=(runner, argv, cwd), name="background-command")
        self.thread.daemon = True
        self.thread.start()

    def _run(self, runner, argv, cwd):
        rc, out, err = runner.run_command(argv, cwd=cwd)
        self.outcome = (rc, err or out)

    def wait(self, timeout):
        """(rc, output); rc is None when it did not finish within ``timeout`` seconds."""
        self.thread.join(timeout)
        return self.outcome


class Rebuild:
    """The recovery over explicit ``params`` (ARGUMENT_SPEC's names, see ``with_defaults``) and a
    ``runner`` (run_command, get_bin_path, warn): the k3s_rebuild module passes its AnsibleModule,
    the watcher on the host ``host.LocalRunner``."""

    def __init__(self, params, runner):
        self.runner = runner
        self.p = params
        self.started_at = time.time()
        self.timings = {}
        self.result = dict(changed=False, started_at=self.started_at, timings=self.timings)
        self.p["data_dir"] = effective_data_dir(self.p["config_file"], self.p["data_dir"])
        self.server_dir = os.path.join(self.p["data_dir"], "server")
        self.db_dir = os.path.join(self.server_dir, "db")
        self.tls_dir = os.path.join(self.server_dir, "tls")
        self.ready_deadline = Deadline(params["ready_timeout"])
        # execute() installs the real one; a Rebuild used without it is never interrupted.
        self.guard = SignalGuard()
        self.journal = None

    # ------------------------------------------------------------------ small tools

    def run(self, argv, what, cwd=None, ok=(0,)):
        rc, out, err = self.runner.run_command(argv, cwd=cwd)
        if rc == 124 and os.path.basename(argv[0]) == "timeout":
            raise StepError("%s did not finish within %ss" % (what, argv[1]))
        if rc not in ok:
            raise StepError("%s failed (rc=%d): %s" % (what, rc, (err or out).strip()[-1500:]))
        return rc, out, err

    def bounded(self, seconds, *argv):
        """argv under coreutils' timeout (unit.py bounded_argv)."""
        return bounded_argv(self.runner.get_bin_path, seconds, *argv)

    def systemctl(self, verb, timeout=None):
        """``systemctl verb service`` under a time limit (unit.py run_systemctl; default
        ``stop_timeout``). A failure carries the unit's journal tail."""
        limit = timeout if timeout is not None else self.p["stop_timeout"]
        try:
            run_systemctl(self.runner, verb, self.p["service"], limit)
        except UnitError as exc:
            raise StepError(str(exc), journal_tail=exc.journal_tail) from exc

    def journal_tail(self, lines=25):
        return journal_tail(self.runner, self.p["service"], lines)

    def active_state(self):
        systemctl = self.runner.get_bin_path("systemctl", required=True)
        return unit_state(self.runner.run_command, self.p["service"], systemctl)["active_state"]

    def compose(self, *args):
        docker = self.runner.get_bin_path("docker", required=True)
        return compose_argv(docker, self.p["project_name"], self.p["compose_files"]) + list(args)

    def phase(self, name, since):
        self.timings[name] = round(time.monotonic() - since, 3)
        return time.monotonic()

    # ------------------------------------------------------------------ rebuilt

    def app_present(self):
        p = self.p
        return bool(p["stack_dir"] and p["app_kubeconfig"] and os.path.isfile(p["app_kubeconfig"]))

    def kubeconfig_server_host(self, path):
        try:
            return server_host(current_server(read_kubeconfig(path)))[0]
        except KubeconfigError:
            return None

    def rebuilt(self):
        p = self.p
        app = self.app_present()
        user = p["user_kubeconfig"] if p["user_kubeconfig"] and p["user_kubeconfig"] != p["admin_kubeconfig"] else None
        user_host = self.kubeconfig_server_host(user) if user and os.path.isfile(user) else None
        was_active = self.active_state() in ("active", "activating", "reloading")
        resume = self.take_over_interrupted(app)
        self.recheck_drift()
        if resume:
            # The interrupted run's backup holds the user's cluster; what is in server/db now is the
            # half-built new one, which this run deletes again.
            p["backup_dir"] = resume["backup_dir"]
        else:
            self.check_backup_space()
            # This run's own directory from here on (a run of the same second gets <stamp>-2).
            p["backup_dir"] = claim_backup_dir(p["backup_dir"])
        self.journal = Journal(p["data_dir"], p["run_id"], node_ip=p["node_ip"], backup_dir=p["backup_dir"],
                               was_active=was_active, app=app, resumed=(resume or {}).get("run_id"))  # fmt: skip

        # The workers cannot reach k3s until the end anyway; stopping them now lets their stop
        # timeout run alongside the backup and the rebuild instead of after them.
        stopper, client, definition = None, None, None
        self.journal.note("stopping")
        try:
            if app:
                stopper = Background(self.runner, self.compose("stop", *p["worker_services"]), p["stack_dir"])
            self.timings["prepare"] = round(time.time() - self.started_at, 3)
            mark = time.monotonic()
            if app:
                client = docker_client()
                definition = load_definition(self.runner, client, p["stack_dir"], p["project_name"], p["compose_files"])
            if resume:
                self.systemctl("stop")
                self.verified()
            else:
                self.backup()
            self.journal.note("backed_up")
        except (StepError, BackupError, ComposeError, DockerException, OSError, Interrupted, ModuleFailure) as exc:
            self.guard.critical = True
            self.undo_stops(stopper, was_active)
            self.journal.clear()
            if not resume:
                self.discard_partial_backup()
            if isinstance(exc, Interrupted):
                self.fail(
                    "interrupted",
                    "Interrupted by %s during the backup: %s. Nothing was deleted; %s and the "
                    "workers were started again as they were." % (signal_name(exc.signum), exc, p["service"]),
                )
            if isinstance(exc, ModuleFailure):
                raise
            self.fail(
                "backup",
                "The backup failed or did not verify: %s. Nothing was deleted; %s and %s are untouched, %s was "
                "started again as it was and the partial backup was removed. Free space or fix the source under %s "
                "and re-run."
                % (exc, self.db_dir, self.tls_dir, p["service"], os.path.dirname(p["backup_dir"].rstrip("/"))),
            )  # fmt: skip
        mark = self.phase("backup", mark)

        try:
            self.rebuild_k3s()
            mark = self.phase("rebuild", mark)
            # cert-generator and the workers need the API, not a Ready node: upstream's
            # cert-generator waits for Kueue itself (which needs the node Ready), so starting it
            # once the API serves overlaps its work with the 30-60 s until the node is Ready
            # (k3s #4340) instead of adding to them.
            self.wait_ready(require_ready=False)
            mark = self.phase("k3s_serving", mark)
            self.journal.note("k3s_started")
            self.refresh_user_kubeconfig(user, user_host)
            if app:
                self.journal.note("app")
                mark = self.reconnect(client, definition, stopper, mark)
            else:
                self.result["app"] = dict(reconnected=False, reason="no app kubeconfig at %s" % p["app_kubeconfig"])
                self.result["workers_ready_at"] = None
            self.wait_ready()
            self.phase("k3s_ready", mark)
        except (StepError, AppError, BackupError, ComposeError, DockerException, KubeconfigError, OSError,
                Interrupted) as exc:  # fmt: skip
            if not self.guard.critical:
                # Nothing was deleted (the re-check before the wipe, or a signal before it): the host
                # runs on as it did.
                self.guard.critical = True
                self.undo_stops(stopper, was_active)
                self.journal.clear()
                why = ("interrupted by %s" % signal_name(exc.signum)) if isinstance(exc, Interrupted) else str(exc)
                self.fail(
                    "interrupted" if isinstance(exc, Interrupted) else "recheck",
                    "Not rebuilt: %s. %s and the workers were started again as they were; the verified backup is "
                    "kept at %s." % (why, p["service"], p["backup_dir"]),
                )
            self.roll_back_after_failure(exc, stopper, app)
        self.journal.clear()
        if self.guard.received:
            self.result["signals_deferred"] = [signal_name(s) for s in self.guard.received]
        self.result["changed"] = True
        self.result["elapsed"] = round(time.time() - self.started_at, 3)
        self.check_after()
        self.release_hold()

    def check_after(self):
        """With ``final_check``: the drift check once more, on what this run rebuilt, in this
        process (recover.yml's last word; a module run of its own cost seconds after the workers
        were healthy). It checks the address the run rebuilt onto (pinned), config.yaml, the
        certificates, the datastore and the kubeconfigs the run rewrote (the app's once it was
        reconnected), and takes the nodes the run saw Ready instead of listing them again. Drift
        it still finds fails the run; the recovery stands and its verified backup is kept."""
        p = self.p
        if not p["final_check"]:
            return
        mark = time.monotonic()
        params = dict((name, spec.get("default")) for name, spec in DRIFT_SPEC.items())
        reconnected = (self.result.get("app") or {}).get("reconnected")
        params.update(
            config_file=p["config_file"], data_dir=p["data_dir"], service=p["service"], node_name=p["node_name"],
            node_ip=p["node_ip"],
            kubeconfigs=[path for path in (p["admin_kubeconfig"], p["user_kubeconfig"],
                                           p["app_kubeconfig"] if reconnected else None) if path],
        )  # fmt: skip
        seen = [node.get("name") for node in self.result.get("nodes") or () if node.get("name")]
        try:
            after, warnings = detect(self.runner, params, known_nodes=seen or None)
        except DriftError as exc:
            self.fail(
                "final_check",
                "k3s was rebuilt on %s (backup kept at %s), but the drift check after the recovery could not read "
                "the host: %s" % (p["node_ip"], p["backup_dir"], exc),
            )
        for warning in warnings:
            self.runner.warn(warning)
        drifted = [f for f in after["findings"] if f["severity"] == "drift"]
        self.result["after"] = dict(drift=after["drift"], findings=after["findings"], node_ip=after["node_ip"])
        self.phase("final_check", mark)
        if after["drift"]:
            self.fail(
                "final_check",
                "k3s was rebuilt on %s (backup kept at %s), but the drift check after the recovery still finds: %s"
                % (p["node_ip"], p["backup_dir"], "; ".join(f["message"] for f in drifted)),
            )

    def release_hold(self):
        """With ``release_hold`` (the watcher's state directory): end the hold a rollback set there
        (watch.py ``release``), since this run rebuilt k3s on the current address."""
        if not self.p["release_hold"]:
            return
        # Imported here: the watcher's module imports this one.
        from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.watch import release  # noqa: PLC0415

        self.result["hold_released"] = release(self.p["release_hold"])
        if self.result["hold_released"]:
            self.result["changed"] = True

    def check_backup_space(self):
        """Before the workers or k3s are stopped: the backup fits (backup.check_free_space)."""
        p = self.p
        paths = self.backup_sources()[0]
        # The etcd snapshot beside the cold copy is about the size of server/db again.
        extra = [self.db_dir] if p["datastore"] == "etcd" else []
        try:
            self.result["free_space"] = check_free_space(os.path.dirname(p["backup_dir"].rstrip("/")), paths + extra)
        except (BackupError, OSError) as exc:
            self.fail("backup", "Not rebuilt: %s." % exc)

    def discard_partial_backup(self):
        """A backup that failed or did not verify is removed with what it wrote (a partial copy has
        no manifest, so pruning would never see it, and the next try would need the room)."""
        path = self.p["backup_dir"]
        run_id = (read_json(os.path.join(path, MANIFEST)).get("meta") or {}).get("run_id") if path else None
        # Never another run's finished backup (a name of the same second).
        if path and os.path.isdir(path) and run_id in (None, self.p["run_id"]):
            remove_path(path)
            self.result["discarded_backup"] = path

    def take_over_interrupted(self, app):
        """A journal left by a run that was killed (this run holds the lock, so it is dead). Before
        its wipe: start what it stopped and go on as a new run. After: return it; this run
        finishes that recovery from its verified backup."""
        entry = read_journal(self.p["data_dir"])
        if not entry:
            return None
        self.result["interrupted_run"] = entry
        if entry.get("stage") not in BEFORE_WIPE:
            self.runner.warn("finishing an interrupted %s" % describe(entry))
            return entry
        self.runner.warn("undoing the stops of an interrupted %s" % describe(entry))
        self.guard.critical = True
        try:
            self.undo_stops(None, entry.get("was_active", True), app and entry.get("app", True))
        finally:
            self.guard.critical = False
        Journal(self.p["data_dir"], entry.get("run_id")).clear()
        return None

    def roll_back_after_failure(self, exc, stopper, app):
        """After the wipe began, a failure must not leave k3s and the workers stopped on an empty
        datastore: put back what the verified backup holds and start both again on it."""
        p = self.p
        stage = getattr(exc, "details", {}).get("stage", "rebuild")
        details = dict((k, v) for k, v in getattr(exc, "details", {}).items() if k != "stage")
        self.guard.critical = True
        if stopper is not None:
            stopper.wait(p["app_timeout"])
        try:
            self.roll_back(app, wait=False)
        except (StepError, BackupError, ComposeError, DockerException, OSError) as rollback_exc:
            # The journal stays: the next run (recover.yml or the watcher) finishes or rolls back.
            self.fail(
                stage,
                "Recovery failed after the wipe began: %s. The automatic rollback failed too: %s. k3s and the workers "
                "may be stopped; the verified backup is kept at %s. Fix the cause and re-run recover.yml (it finishes "
                "this recovery), or restore the previous state: %s (by hand: %s/RESTORE.txt)."
                % (exc, rollback_exc, p["backup_dir"], self.restore_command(), p["backup_dir"]),
                restore_command=self.restore_command(), rolled_back=False, **details
            )  # fmt: skip
        self.journal.clear()
        self.fail(
            stage,
            "Recovery failed after the backup: %s. ROLLED BACK: %s restored from the verified backup %s, and %s%s "
            "started again on the previous state (it crash-loops again while this host's address is not the "
            "backup's). Fix the cause and re-run recover.yml."
            % (exc, ", ".join(self.result.get("restored", [])), p["backup_dir"], p["service"],
               " and the workers" if app else ""),
            restore_command=self.restore_command(), rolled_back=True, **details
        )  # fmt: skip

    def rollback_targets(self):
        """Everything a backup can hold that a recovery rewrites: config.yaml, server/db,
        server/tls, the admin kubeconfig and the user's and the app's copies."""
        p = self.p
        return [p["config_file"], self.db_dir, self.tls_dir, p["admin_kubeconfig"]] + [
            x for x in (p["user_kubeconfig"], p["app_kubeconfig"]) if x and x != p["admin_kubeconfig"]
        ]

    def roll_back(self, app, wait):
        """killall (k3s and its pods), restore every target the backup holds, start k3s (``wait``:
        for its readiness, reported, not failed), then start the workers on the restored app
        kubeconfig. Raises StepError/BackupError/OSError."""
        p = self.p
        self.killall()
        self.result["restored"] = restore(p["backup_dir"], self.rollback_targets())
        self.result["changed"] = True
        if wait:
            try:
                self.systemctl("start", p["ready_timeout"])
                self.result["started"] = True
            except StepError as exc:
                self.result.update(started=False, start_error=str(exc))
        else:
            # The previous state may crash-loop on a changed address: started, not waited for.
            systemctl = self.runner.get_bin_path("systemctl", required=True)
            self.run([systemctl, "start", "--no-block", p["service"]], "systemctl start --no-block %s" % p["service"])
            self.result["started"] = True
        if app:
            # restart also starts stopped containers; the workers read the kubeconfig only at start.
            argv = self.bounded(p["app_timeout"], *self.compose("restart", *p["worker_services"]))
            self.run(argv, "docker compose restart of the workers", cwd=p["stack_dir"])
            self.result["workers_started"] = list(p["worker_services"])

    def restore_command(self):
        return (
            "ansible-playbook playbooks/recover.yml -e k3s_recover_rollback=true -e k3s_recover_rollback_from=%s "
            "-e k3s_recover_confirm=true" % self.p["backup_dir"]
        )

    def undo_stops(self, stopper, was_active, start_workers=False):
        """Nothing was deleted (a failed backup, a re-check, a signal, or such a run interrupted
        before): the workers and k3s run again as they did before."""
        if stopper is not None:
            stopper.wait(self.p["app_timeout"])
        if stopper is not None or (start_workers and self.p["stack_dir"]):
            # restart, not start: a stop signal also reaches the `docker compose stop` of the
            # workers, whose stop the daemon finishes after a `start` would have returned.
            argv = self.bounded(self.p["app_timeout"], *self.compose("restart", *self.p["worker_services"]))
            self.runner.run_command(argv, cwd=self.p["stack_dir"])
        if was_active:
            try:
                self.systemctl("start", self.p["ready_timeout"])
            except StepError as exc:
                self.result["restart_error"] = str(exc)

    def etcd_snapshot(self, name):
        """``k3s etcd-snapshot save --dir <this backup>``: upstream's manual fix runs it without
        --dir, which writes into server/db/snapshots, the directory it deletes next."""
        snapshot = dict(saved=False, dir=os.path.join(self.p["backup_dir"], "etcd-snapshot"))
        rc, out, err = self.runner.run_command(
            self.bounded(self.p["snapshot_timeout"], self.p["binary"], "etcd-snapshot", "save", "--dir",
                         snapshot["dir"], "--name", name)
        )  # fmt: skip
        snapshot["saved"] = rc == 0
        if rc != 0:
            lines = (err or out).strip().splitlines()
            snapshot["reason"] = lines[-1] if lines else "rc=%d" % rc
        self.result["snapshot"] = snapshot
        return snapshot

    def backup_sources(self):
        """(paths, required): what a backup holds, a recovery's and a scheduled one alike."""
        p = self.p
        paths = [
            p["config_file"],
            p["config_file"] + ".d",
            os.path.join(self.server_dir, "token"),
            os.path.join(self.server_dir, "manifests"),
            self.tls_dir,
            self.db_dir,
            p["admin_kubeconfig"],
        ]
        paths += [x for x in (p["user_kubeconfig"], p["app_kubeconfig"]) if x] + p["backup_paths"]
        required = [p["config_file"], os.path.join(self.server_dir, "token")]
        if p["datastore"] == "sqlite":
            required.append(os.path.join(self.db_dir, "state.db"))
        return paths, required

    def backup(self):
        p = self.p
        paths, required = self.backup_sources()
        # A crash-looping server may not answer the snapshot request: the cold copy of
        # server/db/etcd is then the backup.
        if p["datastore"] == "etcd":
            # create_backup prepares the directory too; the snapshot has to land in it first.
            prepare_backup_dir(p["backup_dir"])
            self.etcd_snapshot("recover")
        # SQLite cannot be snapshotted at all (k3s 11388, kine 88); the maintainers' advice is to
        # stop k3s and copy server/db (k3s 1318), which also gives etcd a consistent cold copy.
        self.systemctl("stop")
        # etcd's data file; an empty one means a cold copy of nothing.
        nonempty = ["/server/db/etcd/member/snap/db$"] if p["datastore"] == "etcd" else []
        self.store_backup(paths, required, nonempty, strategy=p["strategy"], new_node_ip=p["node_ip"])

    def store_backup(self, paths, required, nonempty, **meta):
        """create_backup with this run's settings: copy, manifest, verify, then prune."""
        p = self.p
        self.result["backup"] = create_backup(
            p["backup_dir"],
            paths,
            datastore=p["datastore"],
            db_dir=self.db_dir,
            required=required,
            required_nonempty=nonempty,
            meta=dict(p["backup_meta"], run_id=p["run_id"], **meta),
            keep=p["keep_backups"],
            keep_days=p["keep_days"],
        )
        p["backup_dir"] = self.result["backup"]["backup_dir"]

    def scheduled(self, lock_wait=SCHEDULED_LOCK_WAIT):
        """A backup of the running datastore without stopping k3s: SQLite through the online
        backup API (consistent with WAL), etcd through ``k3s etcd-snapshot save`` into the backup
        (outside server/db). Verified with the same manifest; the rollback restores it.

        Under the run lock recoveries take, so it never copies a datastore a recovery is wiping
        and a recovery never starts while it copies. It waits up to ``lock_wait`` seconds for the
        holder (a recovery, site.yml's config.yaml write and restart), then fails at stage
        ``lock`` naming it, before anything is written."""
        p = self.p
        lock = RunLock(p["lock_path"], p["run_id"], p["lock_owner"])
        try:
            owner, waited = wait_for_lock(lock, lock_wait)
        except (BackupError, OSError) as exc:
            self.fail("lock", "Scheduled backup not taken, nothing was written: %s" % exc)
        self.result["lock"] = dict(path=lock.path, owner=owner, waited=waited, stale_lock_taken_over=lock.taken_over)
        try:
            p["backup_dir"] = claim_backup_dir(p["backup_dir"])
            paths, required = self.backup_sources()
            paths.remove(self.db_dir)
            nonempty = []
            try:
                if p["datastore"] == "sqlite":
                    sqlite_online_copy(os.path.join(self.db_dir, "state.db"), p["backup_dir"])
                elif not self.etcd_snapshot("scheduled")["saved"]:
                    raise BackupError("k3s etcd-snapshot save failed: %s" % self.result["snapshot"].get("reason"))
                else:
                    nonempty = ["^etcd-snapshot/scheduled"]
                self.store_backup(paths, required, nonempty, kind="scheduled")
            except (BackupError, OSError, sqlite3.Error) as exc:
                self.fail("backup", "Scheduled backup into %s failed: %s" % (p["backup_dir"], exc))
        finally:
            lock.release()
        return self.result

    def write_config(self):
        """config.yaml on the new address through the k3s role's renderer, so the next site.yml
        renders the same bytes (it once line-edited a copy and a rerun undid the recovery); with
        ``pins``, the pins file beside it through the k3s role's writer (config.py write_pins), so
        the watcher reads the pins this recovery was made with."""
        p = self.p
        with open(p["config_file"]) as handle:
            settings = settings_from_text(handle.read())
        settings = readdress(settings, p["node_ip"], p["flannel_iface"] or settings.get("flannel-iface"))
        changed, _before = write_if_changed(p["config_file"], render_config(settings), 0o600, 0, 0)
        keys = ("node-ip", "flannel-iface", "tls-san")
        report = dict(file=p["config_file"], set=dict((k, settings[k]) for k in keys), changed=changed)
        if p["pins"] is not None:
            pins_changed, _before, _after = write_pins(p["pins"], p["config_file"], p["data_dir"])
            report["pins"] = dict((k, p["pins"].get(k) or "") for k in PINNED)
            report["pins_changed"] = pins_changed
        return report

    def killall(self):
        """k3s-killall.sh's step (k3s/teardown.py): k3s is stopped, but its pods are not
        (KillMode=process, k3s 2624) and hold mounts under /run/k3s and /var/lib/kubelet and the
        old address's network; they come back with k3s. A mount that stays fails the recovery
        before anything is deleted (k3s 3264)."""
        service = self.p["service"]
        report = Teardown(self.runner, self.p["data_dir"]).killall(
            units=(service if service.endswith(".service") else service + ".service",)
        )
        self.result["killall"] = report
        if report["refused"]:
            raise StepError("still mounted after k3s-killall's unmounts: %s" % ", ".join(report["refused"]))

    def recheck_drift(self):
        """The plan (and an interactive prompt) came before the lock; a watcher recovery or a
        site.yml may have run since. Under the lock, before anything stops: the same drift check
        again (``recheck``: its parameters), still drifted unless forced, onto the same address."""
        p = self.p
        if not p["recheck"]:
            return
        params = dict((name, spec.get("default")) for name, spec in DRIFT_SPEC.items())
        params.update(p["recheck"])
        params["kubeconfigs"] = [os.path.expanduser(path) for path in params["kubeconfigs"] or []]
        try:
            result = detect(self.runner, params)[0]
        except DriftError as exc:
            self.fail(
                "recheck", "The drift check under the lock could not read the host: %s. Nothing was changed." % exc
            )
        self.result["recheck"] = dict(drift=result["drift"], recommended_node_ip=result["recommended_node_ip"])
        if result["refused"]:
            self.fail(
                "recheck",
                "The recovery cannot rebuild this host: %s. Nothing was changed." % "; ".join(result["refused"]),
            )
        if not result["drift"] and not p["force"]:
            self.fail(
                "recheck",
                "k3s no longer drifted when the recovery got the lock (another recovery or site.yml ran first; node IP "
                "%s). Nothing was changed." % result["node_ip"]["config"],
            )
        if result["recommended_node_ip"] != p["node_ip"]:
            self.fail(
                "recheck",
                "The host changed while the recovery waited: the node address is now %s (%s), not %s. Nothing was "
                "changed; re-run to recover onto the current address."
                % (result["recommended_node_ip"], result["node_address"]["reason"] or result["node_address"]["error"],
                   p["node_ip"]),
            )  # fmt: skip

    def target_still_assigned(self):
        """Right before deleting: the address k3s is rebuilt onto is still on a LAN link (an address
        that left during the backup would make the new server crash-loop at once)."""
        try:
            links, _routes = read_network(self.runner.run_command)
        except NodeAddressError as exc:
            raise StepError("could not read the host's addresses before deleting: %s" % exc, stage="recheck") from exc
        held = [s for s in observe(links) if s["address"] == self.p["node_ip"]]
        if not held:
            raise StepError(
                "%s is no longer assigned to this host; nothing was deleted" % self.p["node_ip"], stage="recheck"
            )

    def rebuild_k3s(self):
        p = self.p
        self.killall()
        if p["strategy"] == "wipe":
            self.target_still_assigned()
        # From here a signal no longer stops the run: it finishes or rolls back (journal.py).
        self.guard.critical = True
        self.journal.note("wiping")
        if p["strategy"] == "wipe":
            # k3s.yaml goes too (it is in the backup): k3s writes a new one for the new CA on
            # start, and nothing may read the stale one in between.
            self.result["removed"] = [x for x in (self.db_dir, self.tls_dir, p["admin_kubeconfig"]) if remove_path(x)]
        self.result["config"] = self.write_config()
        if p["strategy"] == "reset" and p["datastore"] == "etcd":
            # A reset interrupted (or failed) after writing server/db/reset-flag refuses the next
            # one until the flag is gone (pkg/cluster/managed.go); its server/db is in the
            # verified backup, and this run resets again on purpose.
            self.result["removed"] = [x for x in (os.path.join(self.db_dir, "reset-flag"),) if remove_path(x)]
            # Rewrites the member's peer address and makes it a single-member cluster (k3s 4296).
            self.run(
                self.bounded(p["ready_timeout"], p["binary"], "server", "--cluster-reset"), "k3s server --cluster-reset"
            )
        elif p["strategy"] == "reset":
            self.run(
                self.bounded(p["snapshot_timeout"], p["binary"], "certificate", "rotate"), "k3s certificate rotate"
            )
        self.journal.note("wiped")
        # One deadline for start, restart and readiness: the whole wait is ready_timeout.
        self.ready_deadline = Deadline(p["ready_timeout"])
        self.start_k3s("start")
        # --cluster-reset never touches Node objects (pkg/etcd/etcd.go Reset); the agent patches the
        # k3s.io/internal-ip annotation at start and the cloud provider moves InternalIP, except on
        # releases with k3s #12844, where the stale InternalIP makes kube-router fail. SQLite has no
        # reset at all: its node keeps the old InternalIP until deleted (k3s #5880).
        if p["strategy"] == "reset" and (p["datastore"] == "sqlite" or self.stale_internal_ip()):
            self.delete_stale_node()
            self.start_k3s("restart")

    def start_k3s(self, verb):
        """A k3s that does not report ready within the deadline fails the recovery; it is stopped
        (bounded) so it does not loop on, and the backup stays for the rollback."""
        try:
            self.systemctl(verb, max(1.0, self.ready_deadline.remaining()))
        except StepError as exc:
            try:
                self.systemctl("stop")
                stopped = "%s was stopped" % self.p["service"]
            except StepError as stop_exc:
                reason = str(stop_exc).split(". Last lines", maxsplit=1)[0]
                stopped = "stopping %s failed too: %s" % (self.p["service"], reason)
            raise StepError(
                "k3s did not report ready within k3s_recover_ready_timeout (%ss): %s. %s"
                % (int(self.p["ready_timeout"]), exc, stopped),
                stage="k3s_ready",
                journal_tail=exc.details.get("journal_tail"),
            ) from exc

    def node_name(self):
        # k3s registers the host name in lower case (pkg/agent/config).
        return (self.p["node_name"] or os.uname()[1]).lower()

    def stale_internal_ip(self):
        """Whether the API shows this node with an InternalIP other than node_ip, polled until it
        answers (a k3s whose InternalIP is not local answers only for a few seconds before
        kube-router stops it). A node not registered is not stale."""
        argv = self.bounded(10, self.p["binary"], "kubectl", "get", "node", self.node_name(), "-o", "json")

        def probe():
            rc, out, err = self.runner.run_command(argv)
            if "NotFound" in err:
                return ProbeResult(True, False, {"ips": None}, "")
            if rc != 0:
                return ProbeResult(False, False, {}, (err or out).strip())
            addresses = json.loads(out).get("status", {}).get("addresses", [])
            return ProbeResult(True, False, {"ips": [a["address"] for a in addresses if a["type"] == "InternalIP"]}, "")

        outcome = poll(probe, max(1.0, self.ready_deadline.remaining()), interval=0.5, max_interval=1.0)
        ips = outcome.observation.get("ips")
        return outcome.ready and ips is not None and self.p["node_ip"] not in ips

    def delete_stale_node(self):
        """k3s serves the API for a few seconds before the node-IP check stops it; the delete is
        retried until it lands in such a window (k3s 5880). Already gone counts as done."""
        name = self.node_name()
        argv = self.bounded(10, self.p["binary"], "kubectl", "delete", "node", name)

        def probe():
            rc, out, err = self.runner.run_command(argv)
            return ProbeResult(rc == 0 or "NotFound" in err, False, dict(stdout=out, stderr=err), err.strip())

        outcome = poll(probe, max(1.0, self.ready_deadline.remaining()), interval=0.5, max_interval=1.0)
        if not outcome.ready:
            raise StepError("could not delete the stale node object %s: %s" % (name, outcome.message))

    def wait_ready(self, require_ready=True):
        """The API serves with the node registered at node_ip, and with ``require_ready`` the
        node is Ready; both within ready_timeout of the start."""
        p = self.p
        deadline = self.ready_deadline
        probe = K3sProbe(deadline, kubeconfig=p["admin_kubeconfig"], node_ip=p["node_ip"], request_timeout=5.0,
                         require_ready=require_ready)  # fmt: skip
        outcome = poll(probe, max(1.0, deadline.remaining()))
        self.result["nodes"] = outcome.observation.get("nodes", [])
        if not outcome.ready:
            raise StepError(
                "k3s not %s at %s after %ss: %s"
                % ("Ready" if require_ready else "serving", p["node_ip"], p["ready_timeout"], outcome.message),
                stage="k3s_ready",
                readyz=outcome.observation.get("readyz"),
                journal_tail=self.journal_tail(),
            )

    def refresh_user_kubeconfig(self, user, user_host):
        """A new CA makes every copy of k3s.yaml stale. Only a copy that exists is refreshed
        (creating one is the k3s role's job); it keeps its owner and pointing at the node address
        if it did so before."""
        info = dict(path=user, refreshed=False)
        self.result["user_kubeconfig"] = info
        if not user or not os.path.isfile(user):
            return
        with open(self.p["admin_kubeconfig"]) as handle:
            text = handle.read()
        if user_host and user_host not in LOOPBACK_HOSTS:
            text = point_kubeconfig_at(text, self.p["node_ip"])
        atomic_write(user, text, 0o600)
        info.update(refreshed=True, server=self.kubeconfig_server_host(user))

    def reconnect(self, client, definition, stopper, mark):
        """cert-generator writes a new kubeconfig (new address, token of a new ServiceAccount); the
        workers read it only at start-up, so they start after it (module_utils/compose/app.py)."""
        p = self.p
        self.result["app"] = dict(reconnected=False)
        marks = [mark]

        def workers_stopped():
            rc, err = stopper.wait(p["app_timeout"])
            if rc is None:
                raise AppError("docker compose stop of the workers did not finish in %ss" % p["app_timeout"])
            if rc != 0:
                raise AppError("docker compose stop of the workers failed: %s" % err.strip()[-1500:])

        def phase(name):
            marks.append(self.phase(name, marks[-1]))

        try:
            report = reconnect_app(
                client,
                definition,
                kubeconfig=p["app_kubeconfig"],
                generator=p["cert_generator_service"],
                workers=p["worker_services"],
                node_ip=p["node_ip"],
                api_port=p["app_api_port"],
                mode=int(p["app_kubeconfig_mode"], 8),
                probe_path=p["app_probe_path"],
                timeout=p["app_timeout"],
                before_workers=workers_stopped,
                on_phase=phase,
            )
        except AppError as exc:
            exc.details["stage"] = "app"
            raise
        self.result["workers_ready_at"] = report.pop("workers_ready_at")
        self.result["app"] = report
        return marks[-1]

    # ------------------------------------------------------------------ restored, verified

    def verified(self):
        checked = verify(self.p["backup_dir"])
        self.result["backup"] = dict(checked, backup_dir=self.p["backup_dir"])
        if not checked["ok"]:
            self.fail("verify", "backup %s did not verify: %s" % (self.p["backup_dir"], "; ".join(checked["errors"])))

    def restored(self):
        p = self.p
        self.verified()
        if self.result["backup"].get("datastore") == "etcd" and not os.path.isdir(
            os.path.join(p["backup_dir"], "files", self.db_dir.lstrip("/"))
        ):
            # A scheduled etcd backup is a snapshot, not a copy of server/db: putting back only
            # config.yaml and server/tls would restore nothing of the cluster.
            self.fail(
                "restore",
                "backup %s holds an etcd snapshot, not a copy of %s; nothing was changed. Restore it as %s/RESTORE.txt "
                "says (k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>)"
                % (p["backup_dir"], self.db_dir, p["backup_dir"]),
            )
        try:
            self.roll_back(self.rollback_app_present(), wait=True)
        except (StepError, BackupError, ComposeError, DockerException, OSError) as exc:
            self.fail("restore", "Rollback from %s failed: %s" % (p["backup_dir"], exc))

    def rollback_app_present(self):
        """The rollback restarts the workers when the stack is there (its app kubeconfig is one of
        the restored files)."""
        p = self.p
        return bool(p["stack_dir"] and os.path.isdir(p["stack_dir"]))

    def fail(self, stage, msg, **extra):
        self.result.update(extra)
        self.result["stage"] = stage
        raise ModuleFailure(msg)


class ModuleFailure(Exception):
    pass


def with_defaults(**params):
    """ARGUMENT_SPEC's defaults overlaid with ``params``: the parameters a program on the host
    passes to ``Rebuild`` (the module gets the same from AnsibleModule)."""
    merged = dict((name, spec.get("default")) for name, spec in ARGUMENT_SPEC.items())
    merged.update(params)
    return merged


def execute(job, on_locked=None, scheduled_wait=SCHEDULED_LOCK_WAIT):
    """Run ``job`` (state rebuilt or restored) under the run lock that recover.yml and the watcher
    share; ``on_locked()`` is called once the lock is held. A lock held by another run fails the
    job at once (stage ``lock``), except one held by a scheduled backup: that is waited for, up to
    ``scheduled_wait`` seconds. Returns the result; raises ModuleFailure (the result is
    ``job.result``)."""
    p = job.p
    lock = RunLock(p["lock_path"], p["run_id"], p["lock_owner"])
    # SIGTERM/SIGINT/SIGHUP raise Interrupted until the wipe begins, so the finally below runs
    # (Python's default SIGTERM ends the process without it: lock held, k3s stopped).
    with SignalGuard() as job.guard:
        try:
            waited = 0
            try:
                try:
                    owner = lock.acquire()
                except LockHeld as exc:
                    if not str(exc.owner.get("run_id") or "").startswith(SCHEDULED_RUN_ID):
                        raise
                    # A scheduled backup copies while k3s runs and ends by itself: waited for
                    # (bounded), where another recovery or site.yml fails this run at once.
                    owner, waited = wait_for_lock(lock, scheduled_wait)
            except (BackupError, OSError) as exc:
                job.fail("lock", str(exc))
            job.result["lock"] = dict(path=lock.path, owner=owner, stale_lock_taken_over=lock.taken_over,
                                      waited=waited)  # fmt: skip
            if on_locked is not None:
                on_locked()
            if p["state"] == "rebuilt":
                job.rebuilt()
            else:
                job.guard.critical = True
                job.restored()
        except Interrupted as exc:
            job.fail("interrupted", "Interrupted by %s before anything was changed." % signal_name(exc.signum))
        finally:
            lock.release()
    return job.result


def nested_backup_paths(root, paths):
    """A path to back up that holds the backup root would copy every earlier backup into each new
    one (the disk fills), and one inside it is pruned with the backups."""
    problems = []
    for given in paths:
        path = os.path.abspath(given).rstrip("/") or "/"
        if root == path or root.startswith(path.rstrip("/") + os.sep):
            problems.append(
                "backup_paths (k3s_recover_pv_paths): %s contains the backup root %s (k3s_recover_backup_root): every "
                "backup would copy the earlier ones" % (path, root)
            )
        elif path.startswith(root + os.sep):
            problems.append(
                "backup_paths (k3s_recover_pv_paths): %s is inside the backup root %s (k3s_recover_backup_root): "
                "pruning would delete it" % (path, root)
            )
    return problems


def validate(p):
    """Problems with the parameters (one message each); normalises node_ip."""
    errors = []
    if p["state"] == "rebuilt":
        for name in ("node_ip", "backup_dir"):
            if not p[name]:
                errors.append("%s is required with state=rebuilt" % name)
        if p["node_ip"]:
            try:
                p["node_ip"] = str(ipaddress.ip_address(p["node_ip"].strip()))
            except ValueError:
                errors.append("node_ip must be an IP address, got %r" % (p["node_ip"],))
        if p["backup_dir"]:
            backup = os.path.abspath(p["backup_dir"])
            server = os.path.abspath(os.path.join(effective_data_dir(p["config_file"], p["data_dir"]), "server"))
            if backup == server or backup.startswith(server + os.sep):
                errors.append("backup_dir %s must be outside %s, which a wipe deletes" % (backup, server))
        if p["stack_dir"] and not p["app_kubeconfig"]:
            errors.append("app_kubeconfig is required with stack_dir")
        if not p["worker_services"]:
            errors.append("worker_services must name at least one service")
    elif not p["backup_dir"]:
        errors.append("backup_dir is required with state=%s" % p["state"])
    if p.get("backup_dir") and p.get("backup_paths"):
        root = os.path.dirname(os.path.abspath(p["backup_dir"]).rstrip("/"))
        errors.extend(nested_backup_paths(root, p["backup_paths"]))
    if p.get("pins") is not None:
        unknown = sorted(set(p["pins"]) - set(PINNED))
        if unknown:
            errors.append("pins: unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(PINNED)))
    for name in ("ready_timeout", "app_timeout", "snapshot_timeout"):
        if p[name] <= 0:
            errors.append("%s must be a positive number of seconds, got %r" % (name, p[name]))
    if p.get("keep_days") is not None and p["keep_days"] < 0:
        errors.append("keep_days must be zero or positive, got %r" % p["keep_days"])
    if p["keep_backups"] < 0:
        errors.append("keep_backups must be zero (keep all) or positive, got %d" % p["keep_backups"])
    if not p["app_probe_path"].startswith("/"):
        errors.append("app_probe_path must start with /, got %r" % p["app_probe_path"])
    return errors

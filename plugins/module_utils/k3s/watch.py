# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The self-healing watcher on the host (role k3s_recover, ``k3s_recover_watch_mode``): one drift
check (drift.py's ``detect``, the same as recover.yml's), a debounce until the host's addresses
have been stable, a flap guard, a status file, and in mode ``recover`` the recovery recover.yml
runs (rebuild.py's ``Rebuild`` under the shared run lock). Standard library only; the program
``integr8scode-k3s-drift-check`` installed by the role is ``main`` (the host library's launcher,
programs.py, with the role's settings file): ``check``, ``follow``, ``status``, ``backup``.

Journal lines start with a syslog priority (``<4>`` warning) so ``journalctl -p warning`` finds
the ones that need a person.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import select
import socket
import subprocess
import sys
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write
from ansible_collections.integr8scode.provision.plugins.module_utils.host import LocalRunner
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (
    iso,
    read_json,
    tree_size,
    utc_stamp,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    PINNED,
    PINS_KEYS,
    ConfigError,
    effective_data_dir,
    read_config,
    read_pins,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import datastore_kind
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import DriftError, detect
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    read_network,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import ARGUMENT_SPEC as REBUILD_SPEC
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (
    SCHEDULED_LOCK_WAIT,
    SCHEDULED_RUN_ID,
    ModuleFailure,
    Rebuild,
    execute,
    validate,
    with_defaults,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.programs import read_program

HOUR = 3600
RECOVER_HINT = "ansible-playbook playbooks/recover.yml -e k3s_recover_confirm=true"
HOLD_RELEASE_HINT = "integr8scode-k3s-drift-check --release, or recover.yml"
# Settings rendered by a role older than the installed library have no keep_days: the module's.
KEEP_DAYS_DEFAULT = REBUILD_SPEC["keep_days"]["default"]


# The slowest copy rate the backup budget assumes (bytes/s): a laptop disk under load, read and
# written once by the copy and read again by the verification.
BACKUP_FLOOR_RATE = 10 * 2**20


def backup_budget(paths):
    """Seconds the copy and the verification of ``paths`` may take at BACKUP_FLOOR_RATE."""
    return 2 * sum(tree_size(p) for p in paths) / float(BACKUP_FLOOR_RATE)


def extend_unit_timeout(seconds):
    """Ask systemd for ``seconds`` more from now (sd_notify EXTEND_TIMEOUT_USEC; the units have
    NotifyAccess=main): the units' TimeoutStartSec holds the recovery's bounded waits, and the
    backup's share depends on the size of k3s_recover_pv_paths, known only now. Outside systemd
    (no NOTIFY_SOCKET) nothing is sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(address)
        sock.sendall(("EXTEND_TIMEOUT_USEC=%d" % int(seconds * 1e6)).encode())
    except OSError:
        return False
    finally:
        sock.close()
    return True


def log(priority, message):
    """One journal record per line, each with the syslog priority (journald reads the <N> prefix
    per line: the journal tail inside an error would otherwise drop to info, out of -p err)."""
    sys.stdout.write("".join("<%d>%s\n" % (priority, line) for line in str(message).splitlines() or [""]))
    sys.stdout.flush()


def address_snapshot(links):
    """The host's addresses as one comparable list: an address change is any difference."""
    found = []
    for link in links:
        for info in link.get("addr_info") or []:
            # Link-local addresses come and go with every container's veth; they never carry k3s.
            if info.get("scope") in ("host", "link"):
                continue
            found.append("%s %s/%s" % (link.get("ifname"), info.get("local"), info.get("prefixlen")))
    return sorted(found)


def unstable_for(state, snapshot, now, debounce):
    """Seconds still to wait until the addresses have been stable for ``debounce``; updates
    ``state`` when they changed since the last look."""
    if state.get("addresses") != snapshot:
        state["addresses"] = snapshot
        state["addresses_since"] = now
    return max(0.0, float(debounce) - (now - float(state.get("addresses_since") or 0)))


def status_line(state):
    check = state.get("last_check") or {}
    rec = state.get("last_recovery")
    line = "last check %s: %s" % (iso(check.get("at")), check.get("outcome", "never"))
    if rec:
        line += "; last recovery %s: %s, onto %s, backup %s" % (
            iso(rec.get("at")), rec.get("outcome"), rec.get("node_ip"), rec.get("backup") or "none",
        )  # fmt: skip
    else:
        line += "; no automatic recovery yet"
    failed = state.get("failed_recovery")
    if failed:
        line += "; NEEDS A PERSON: the automatic recovery of %s failed at %s, not retried (backup %s)" % (
            iso(failed.get("at")), failed.get("stage"), failed.get("backup") or "none",
        )  # fmt: skip
    hold = state.get("held")
    if hold:
        line += "; HELD since %s by %s: no automatic recovery until %s" % (
            iso(hold.get("at")), hold.get("by"), HOLD_RELEASE_HINT,
        )  # fmt: skip
    return line


def with_pins(settings):
    """``settings`` with the pins file's values (config.py ``read_pins``) in place of the rendered
    ones: site.yml writes that file with config.yaml, so a pin changed since recover.yml rendered
    the program is the one judged (the rendered pin would be drift and be "recovered" back). An
    empty pin in the file means not pinned; without the file, the rendered settings hold.
    Raises ConfigError when the file exists but cannot be read."""
    merged = dict(settings)
    pins = read_pins(settings["config_file"])
    for key in PINS_KEYS:
        if pins and key in pins and (pins[key] or key in PINNED):
            merged[key] = pins[key]
    return merged


def action(kind, reason, outcome, target=None, priority=None):
    """One decision of the watcher: ``none``, ``warn``, ``wait`` or ``recover`` (onto ``target``);
    ``reason`` goes to the journal, ``outcome`` (short) to the status line."""
    default = {"none": 6, "wait": 5, "warn": 4, "recover": 4}[kind]
    return dict(action=kind, reason=reason, outcome=outcome, target=target, priority=priority or default)


def running(service):
    return service.get("active_state") in ("active", "activating", "reloading")


def decide(result, state, settings, now, wait=0.0):
    """What the watcher does about one drift check (drift.py's ``detect`` result), given its
    state (recoveries, a failed recovery, a hold) and settings (mode, max_recoveries), after the
    debounce left ``wait`` seconds. Pure: the table of host events in the tests drives it.

    Deleting server/db is the last resort, so everything that is not a drift onto a LAN address
    chosen through the main table's default route is ``none``, ``warn`` or ``wait``."""
    if wait > 0:
        return action(
            "wait",
            "the host's addresses changed %ss ago; waiting until they are stable for %ss before judging k3s "
            "(k3s_recover_watch_debounce)" % (int(float(settings["debounce"]) - wait), settings["debounce"]),
            "waiting for stable addresses",
        )
    if not result["installed"]:
        return action(
            "none", "k3s is not installed here (%s); nothing to check" % settings["config_file"], "k3s not installed"
        )
    failed = state.get("failed_recovery")
    service = result["service"]
    drifted = [f["message"] for f in result["findings"] if f["severity"] == "drift"]
    warned = [f["message"] for f in result["findings"] if f["severity"] == "warning"]
    if failed:
        if not drifted and service.get("active_state") == "active":
            return action(
                "none",
                "k3s is healthy again after the automatic recovery that failed at %s (stage %s); cleared"
                % (iso(failed.get("at")), failed.get("stage")),
                "healthy again after a failed recovery",
            )
        # A stopped k3s after a failed recovery is not a crash loop and not drift: without this it
        # read as "healthy" and nobody heard of it again.
        return action(
            "warn",
            "the automatic recovery of %s failed (stage %s) and needs a person; %s is %s%s. Not retrying; the "
            "backup %s is kept. Recover by hand (%s) or roll back (%s/RESTORE.txt)"
            % (
                iso(failed.get("at")),
                failed.get("stage"),
                settings["service"],
                service.get("active_state"),
                (": " + "; ".join(drifted)) if drifted else "",
                failed.get("backup") or "(none)",
                RECOVER_HINT,
                failed.get("backup") or settings["backup_root"],
            ),
            "recovery failed at %s, needs a person" % failed.get("stage"),
            priority=3,
        )
    if state.get("held"):
        hold = state["held"]
        return action(
            "warn" if drifted else "none",
            "held since %s by %s: no automatic recovery until re-enabled (%s)%s"
            % (
                iso(hold.get("at")),
                hold.get("by"),
                HOLD_RELEASE_HINT,
                ("; drift: " + "; ".join(drifted)) if drifted else "",
            ),
            "held" + (", drifted" if drifted else ""),
        )
    if not drifted:
        node = result["node_ip"]["config"]
        if not running(service):
            return action(
                "warn",
                "%s is %s (not running) with node IP %s; the watcher does not start it"
                % (settings["service"], service.get("active_state"), node),
                "%s %s, not running" % (settings["service"], service.get("active_state")),
            )
        if warned:
            return action(
                "warn",
                "k3s node IP %s holds; %s" % (node, "; ".join(warned)),
                "healthy, node IP %s, with warnings" % node,
            )
        return action(
            "none",
            "k3s node IP %s is the node address (%s); %s is %s"
            % (node, result["node_address"]["reason"], settings["service"], service.get("active_state")),
            "healthy, node IP %s" % node,
        )
    problems = "; ".join(drifted)
    if result.get("refused"):
        return action(
            "warn",
            "k3s drifted (%s) but the recovery cannot rebuild this host: %s" % (problems, "; ".join(result["refused"])),
            "drifted, recovery refused",
            priority=3,
        )
    target = result["recommended_node_ip"]
    if not target:
        # Only a tunnel (or nothing) is up: nothing to recover onto yet.
        return action(
            "wait",
            "k3s drifted (%s) but there is no usable node address, waiting: %s"
            % (problems, result["node_address"]["error"]),
            "drifted, no usable node address",
            priority=4,
        )
    if result["node_address"]["source"] == "interface":
        # Wi-Fi that joins only after login, at boot or resume: another interface (a host-only
        # bridge the kernel cannot tell from the LAN, a second NIC without a gateway) is a guess,
        # and the recorded-address rule would keep k3s there once the LAN is back.
        return action(
            "wait",
            "k3s drifted (%s) and no LAN interface holds the main table's default route; waiting for the LAN "
            "(%s) instead of moving k3s onto %s" % (problems, result["node_address"]["reason"], target),
            "drifted, waiting for the LAN's default route",
            priority=4,
        )
    if settings["mode"] != "recover":
        return action(
            "warn",
            "k3s drifted after a VPN or IP change: %s. Run: ansible-playbook playbooks/recover.yml "
            "(integr8scode.provision.recover)" % problems,
            "drifted (mode %s: warned only)" % settings["mode"],
            target=target,
        )
    recent = [t for t in state.get("recoveries", []) if now - t < HOUR]
    if len(recent) >= int(settings["max_recoveries"]):
        return action(
            "warn",
            "k3s drifted after a VPN or IP change: %s. not recovering automatically: %d automatic recoveries in the "
            "last hour reached the limit k3s_recover_watch_max_recoveries=%d (the network is flapping); warning only "
            "until %s. Recover by hand: %s"
            % (problems, len(recent), int(settings["max_recoveries"]), iso(min(recent) + HOUR), RECOVER_HINT),
            "drifted, flap limit reached: warned only",
            target=target,
        )
    return action(
        "recover",
        "k3s drifted after a VPN or IP change: %s. Run: ansible-playbook playbooks/recover.yml "
        "(integr8scode.provision.recover)" % problems,
        "drifted, recovering onto %s" % target,
        target=target,
    )


class Watcher:
    """``settings``: the role's variables as its settings file holds them (k3s_recover__watch_settings)."""

    def __init__(self, settings, runner, clock=time.time, sleep=time.sleep):
        self.s = dict(settings)
        for name in ("debounce", "debounce_rounds", "max_recoveries"):
            self.s[name] = int(self.s[name])
        self.runner = runner
        self.clock = clock
        self.sleep = sleep
        self.state_file = os.path.join(settings["state_dir"], "state.json")
        self.hold_file = os.path.join(settings["state_dir"], "hold.json")
        self.status_file = os.path.join(settings["state_dir"], "status")
        self.state = read_json(self.state_file)

    def merge_recoveries(self):
        """Adds the recoveries another watcher process recorded on disk; returns the disk state."""
        disk = read_json(self.state_file)
        self.state["recoveries"] = sorted(set(disk.get("recoveries", [])) | set(self.state.get("recoveries", [])))
        failed = disk.get("failed_recovery")
        if failed and not self.state.get("failed_recovery") and failed["at"] > self.state.get("failed_cleared_at", 0):
            self.state["failed_recovery"] = failed
        return disk

    def save(self, outcome):
        # The timer's check and the address follower may both write: recoveries are merged so the
        # flap guard never forgets one.
        disk = self.merge_recoveries()
        newest = max(
            (disk.get("last_recovery") or {}, self.state.get("last_recovery") or {}), key=lambda r: r.get("at", 0)
        )
        if newest:
            self.state["last_recovery"] = newest
        self.state["last_check"] = dict(at=self.clock(), outcome=outcome)
        if not os.path.isdir(self.s["state_dir"]):
            os.makedirs(self.s["state_dir"], 0o755)
        # state.json keeps a failed recovery's whole message (the k3s unit's journal tail, which the
        # journal itself shows only to root and adm): root alone reads it. The status line, for
        # everyone, carries outcomes, addresses and paths only.
        atomic_write(self.state_file, json.dumps(self.state, indent=1, sort_keys=True), 0o600)
        atomic_write(self.status_file, status_line(self.state) + "\n", 0o644)

    def drift_params(self):
        """The drift check's parameters: the same for the look and for the re-check under the lock.
        The pins are read again at every check (``with_pins``)."""
        s = with_pins(self.s)
        kubeconfigs = [s["admin_kubeconfig"]] + ([s["app_kubeconfig"]] if s["stack_dir"] else [])
        return dict(
            config_file=s["config_file"], data_dir=s["data_dir"], service=s["service"],
            node_name=s["node_name"] or None, node_ip=s["node_ip"] or None,
            node_interface=s["node_interface"] or None, flannel_iface=s["flannel_iface"] or None,
            kubeconfigs=kubeconfigs, hung_start_after=float(s.get("hung_start_after", 300)),
        )  # fmt: skip

    def detect(self):
        return detect(self.runner, self.drift_params())[0]

    def check(self):
        """One look; waits out the debounce (bounded) before acting. Returns an exit code."""
        for _attempt in range(int(self.s["debounce_rounds"])):
            try:
                links, _routes = read_network(self.runner.run_command)
                wait = unstable_for(self.state, address_snapshot(links), self.clock(), self.s["debounce"])
                if wait > 0:
                    log(5, decide({}, self.state, self.s, self.clock(), wait)["reason"])
                    self.save("waiting for stable addresses")
                    self.sleep(wait)
                    continue
                return self.judge()
            except (NodeAddressError, DriftError, ConfigError, OSError, ValueError) as exc:
                log(4, "WARNING: the drift check could not read the host: %s" % exc)
                self.save("error: %s" % exc)
                return 1
        log(4, "WARNING: the host's addresses kept changing for %d debounce periods; not acting now, the next "
            "check or address event tries again" % self.s["debounce_rounds"])  # fmt: skip
        self.save("addresses not stable")
        return 0

    def judge(self):
        result = self.detect()
        # The timer's check and the follower share the count and the failure.
        self.merge_recoveries()
        self.state["recoveries"] = [t for t in self.state["recoveries"] if self.clock() - t < HOUR]
        self.state["held"] = read_json(self.hold_file) or None
        decision = decide(result, self.state, self.s, self.clock())
        prefix = {3: "ERROR: ", 4: "WARNING: "}.get(decision["priority"], "")
        log(decision["priority"], prefix + decision["reason"])
        if self.state.get("failed_recovery") and decision["action"] == "none":
            self.state.update(failed_recovery=None, failed_cleared_at=self.clock())
        if decision["action"] == "recover":
            return self.recover(result, decision["target"])
        self.save(decision["outcome"])
        if decision["action"] == "warn" and decision["target"] and self.s["mode"] != "recover":
            return self.run_command_hook()
        return 0

    def run_command_hook(self):
        command = self.s.get("command")
        if not command:
            return 0
        log(5, "running the recovery: %s" % command)
        return subprocess.call(command, shell=True)

    def rebuild_params(self, result, target):
        s = with_pins(self.s)
        stamp = utc_stamp(self.clock())
        user = os.path.expanduser("~%s/.kube/config" % s["kubeconfig_user"]) if s["kubeconfig_user"] else None
        return with_defaults(
            state="rebuilt", strategy=s["strategy"], datastore=result["datastore"], node_ip=target,
            flannel_iface=result["recommended_flannel_iface"], node_name=result["node_name"],
            backup_dir=os.path.join(s["backup_root"].rstrip("/"), stamp), backup_paths=s["pv_paths"],
            keep_backups=int(s["keep_backups"]), keep_days=int(s.get("keep_days", KEEP_DAYS_DEFAULT)),
            service=s["service"], binary=s["binary"],
            config_file=s["config_file"], data_dir=result["data_dir"], admin_kubeconfig=s["admin_kubeconfig"],
            user_kubeconfig=user, ready_timeout=float(s["ready_timeout"]), stop_timeout=float(s["stop_timeout"]),
            stack_dir=s["stack_dir"] or None, project_name=s["project_name"] or None,
            compose_files=s["compose_files"], app_kubeconfig=s["app_kubeconfig"] if s["stack_dir"] else None,
            cert_generator_service=s["cert_generator_service"], worker_services=s["worker_services"],
            app_probe_path=s["app_probe_path"], app_kubeconfig_mode=s["app_kubeconfig_mode"],
            app_timeout=float(s["app_timeout"]), lock_path=s["lock_path"],
            run_id="watch-%s-%d" % (stamp, os.getpid()),
            lock_owner="integr8scode-k3s-drift-check (k3s_recover_watch_mode=recover)",
            recheck=self.drift_params(), pins=dict((key, s[key]) for key in PINNED),
            backup_meta=dict(old_node_ip=result["node_ip"]["config"], by="watcher",
                             findings=[f["check"] for f in result["findings"] if f["severity"] == "drift"]),
        )  # fmt: skip

    def recover(self, result, target):
        params = self.rebuild_params(result, target)
        errors = validate(params)
        if errors:
            log(3, "ERROR: not recovering, the role's settings are invalid: %s" % "; ".join(errors))
            self.save("drifted, invalid settings")
            return 1
        job = Rebuild(params, self.runner)
        record = dict(at=self.clock(), node_ip=target, backup=params["backup_dir"], run_id=params["run_id"])

        def announce():
            log(
                5,
                "recovering k3s onto %s (%s) with strategy %s: backup to %s first; follow with journalctl -u "
                "integr8scode-k3s-watch -u integr8scode-k3s-drift"
                % (target, result["node_address"]["reason"], params["strategy"], params["backup_dir"]),
            )

        try:
            # The unit's timeout covers the bounded waits; the backup's share is its size's.
            budget = backup_budget(job.backup_sources()[0]) + float(self.s.get("timeout_base") or 0)
            if extend_unit_timeout(budget):
                log(6, "unit timeout extended to %ds from now for a backup of this size" % budget)
            execute(job, on_locked=announce)
        except ModuleFailure as exc:
            if job.result.get("stage") == "lock":
                log(5, "not recovering now: %s" % exc)
                self.save("drifted, another run holds the lock")
                return 0
            if job.result.get("stage") == "interrupted":
                # A stop signal before the wipe: nothing deleted, k3s and the workers started again.
                # Not a failed recovery; the process ends as it was asked to (journal.py).
                log(4, "WARNING: %s" % exc)
                self.save("drifted, recovery interrupted before the wipe")
                raise SystemExit(143) from None
            if job.result.get("stage") == "recheck":
                # The check under the lock found the host changed since this look (the timer's check
                # and the follower both decided; the first one recovered): nothing was deleted, and
                # the next look judges the host as it is now. Not a failed recovery.
                log(5, "not recovering: %s" % exc)
                self.save("drifted, changed before the lock: judged again at the next look")
                return 0
            self.state.setdefault("recoveries", []).append(record["at"])
            record.update(outcome="failed at %s" % job.result.get("stage"), message=str(exc)[-3000:])
            if "backup" not in job.result:
                record["backup"] = None
            self.state["last_recovery"] = record
            # Stays until k3s is seen healthy again (decide): every check warns, none retries.
            self.state["failed_recovery"] = dict(record, stage=job.result.get("stage"))
            log(3, "ERROR: the automatic recovery failed (stage %s): %s" % (job.result.get("stage"), exc))
            self.save("drifted, recovery failed")
            return 1
        self.state.setdefault("recoveries", []).append(record["at"])
        backup = job.result.get("backup") or {}
        # The directory actually used: <stamp>-2 after a name clash, or an interrupted run's backup.
        record["backup"] = params["backup_dir"]
        record.update(
            outcome="ok",
            workers_ready_at=job.result.get("workers_ready_at"),
            verified=bool(backup.get("ok")),
            pruned=backup.get("pruned", []),
        )
        self.state["last_recovery"] = record
        self.state["failed_recovery"] = None
        app = job.result.get("app") or {}
        log(
            5,
            "recovered: node Ready at %s; backup %s verified (%s files)%s; %s"
            % (
                target,
                params["backup_dir"],
                backup.get("checked"),
                ", pruned " + ", ".join(backup["pruned"]) if backup.get("pruned") else "",
                "workers healthy, app kubeconfig points at %s" % app.get("kubeconfig_server")
                if app.get("reconnected")
                else "no app reconnected: %s" % app.get("reason"),
            ),
        )
        self.save("recovered onto %s" % target)
        if job.result.get("signals_deferred"):
            # Asked to stop after the wipe began: the recovery finished first, now the process ends.
            log(5, "stopping after the recovery: %s arrived during it" % ", ".join(job.result["signals_deferred"]))
            raise SystemExit(143)
        return 0

    def follow(self):
        """Wait for address events (``ip -o monitor address``, netlink) and check once they have
        stopped for the debounce; the timer stays as the fallback."""
        ip = self.runner.get_bin_path("ip", required=True)
        monitor = subprocess.Popen([ip, "-o", "monitor", "address"], stdout=subprocess.PIPE, universal_newlines=True)
        log(6, "following address changes (debounce %ss, mode %s)" % (self.s["debounce"], self.s["mode"]))
        self.check()
        pending, events = None, 0
        while monitor.poll() is None:
            timeout = None if pending is None else max(0.0, pending + float(self.s["debounce"]) - time.monotonic())
            ready, _w, _x = select.select([monitor.stdout], [], [], timeout)
            if ready:
                line = monitor.stdout.readline()
                if not line:
                    break
                if pending is None:
                    log(
                        6,
                        "address event: %s; judging k3s once the addresses are stable for %ss"
                        % (" ".join(line.split()[:5]), self.s["debounce"]),
                    )
                pending, events = time.monotonic(), events + 1
                continue
            # A burst may begin while a check or recovery runs (its own k3s restart changes cni0 and
            # flannel.1): its end is logged too, so every burst has a line when the follower acts on it.
            log(
                6,
                "addresses stable for %ss after %d address event(s); judging k3s" % (self.s["debounce"], events),
            )
            # Quiet for the debounce since the last event: the check need not wait again.
            self.state = read_json(self.state_file)
            links, _routes = read_network(self.runner.run_command)
            self.state["addresses"] = address_snapshot(links)
            self.state["addresses_since"] = self.clock() - (time.monotonic() - pending)
            pending, events = None, 0
            self.check()
        return 1


def read_status(state_dir):
    """(state, line): the watcher's state as it left it (with a hold, if any) and its status line,
    or "no check yet" when it never checked. ``--status`` prints the line; the host status
    (host_status module) reports both."""
    state = read_json(os.path.join(state_dir, "state.json"))
    state["held"] = read_json(os.path.join(state_dir, "hold.json")) or None
    line = status_line(state) if state.get("last_check") or state["held"] else "no check yet (%s)" % state_dir
    return state, line


def status(settings):
    sys.stdout.write(read_status(settings["state_dir"])[1] + "\n")
    return 0


# The program the role installs: the host library's launcher (programs.py) under this name, its
# settings in programs.settings_path(PROGRAM), so what the host runs is read without running it.
PROGRAM = "/usr/local/sbin/integr8scode-k3s-drift-check"


def installed_settings(program=PROGRAM, settings_dir=None):
    """The settings the installed watcher program runs with (its mode, state_dir, backup_root,
    ...), or None when no program is installed (watcher off, no scheduled backups). Raises
    ValueError when the program exists but its settings file cannot be read."""
    if not os.path.lexists(program):
        return None
    return read_program(program, settings_dir)["settings"]


def hold(state_dir, by, clock=time.time):
    """Keeps the watcher from recovering (a rollback: its "roll back, then strategy=reset" path must
    not be undone a minute later) until ``release``."""
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir, 0o755)
    atomic_write(os.path.join(state_dir, "hold.json"), json.dumps(dict(at=clock(), by=by)), 0o600)


def release(state_dir):
    """Ends a hold; True when there was one."""
    path = os.path.join(state_dir, "hold.json")
    if not os.path.exists(path):
        return False
    os.unlink(path)
    return True


def backup(settings, runner, lock_wait=SCHEDULED_LOCK_WAIT):
    """A scheduled backup of the running datastore (Rebuild.scheduled) into the backup root, under
    the run lock recoveries take: a recovery (or site.yml) holding it is waited for up to
    ``lock_wait`` seconds, then the backup is not taken and the exit code is 1, the holder named."""
    try:
        settings = with_pins(settings)
    except ConfigError as exc:
        log(4, "WARNING: %s; backing up with the rendered settings" % exc)
    stamp = utc_stamp()
    config = read_config(settings["config_file"])[0]
    data_dir = effective_data_dir(settings["config_file"], settings["data_dir"], config)
    datastore = datastore_kind(data_dir, config)
    params = with_defaults(
        state="backed_up", datastore=datastore, backup_dir=os.path.join(settings["backup_root"].rstrip("/"), stamp),
        backup_paths=settings["pv_paths"], keep_backups=int(settings["keep_backups"]),
        keep_days=int(settings.get("keep_days", KEEP_DAYS_DEFAULT)), binary=settings["binary"],
        config_file=settings["config_file"], data_dir=data_dir,
        admin_kubeconfig=settings["admin_kubeconfig"], run_id="%s%s-%d" % (SCHEDULED_RUN_ID, stamp, os.getpid()),
        lock_path=settings["lock_path"], lock_owner="integr8scode-k3s-drift-check --backup (scheduled backup)",
    )  # fmt: skip
    job = Rebuild(params, runner)
    try:
        result = job.scheduled(lock_wait)
    except ModuleFailure as exc:
        log(3, "ERROR: %s" % exc)
        return 1
    checked = result["backup"]
    log(
        5,
        "scheduled backup %s verified: %s files%s%s"
        % (
            params["backup_dir"],
            checked["checked"],
            ", PRAGMA integrity_check ok" if checked.get("integrity_check") == "ok" else "",
            ", pruned " + ", ".join(checked["pruned"]) if checked.get("pruned") else "",
        ),
    )
    return 0


def main(argv, settings, runner=LocalRunner):
    """integr8scode-k3s-drift-check (the launcher's entry point ``k3s.watch:main``): one drift check
    (the timer), ``--follow`` (the address follower), ``--status``, ``--hold BY`` / ``--release``
    (a rollback's hold) and ``--backup`` (the scheduled backup). Lines start with a syslog priority
    (<4> = warning), so `journalctl -u integr8scode-k3s-watch -p warning` lists what needs a person."""
    if "--status" in argv:
        return status(settings)
    if "--hold" in argv:
        hold(settings["state_dir"], " ".join(argv[argv.index("--hold") + 1 :]) or "a person")
        return 0
    if "--release" in argv:
        sys.stdout.write("released\n" if release(settings["state_dir"]) else "not held\n")
        return 0
    if "--backup" in argv:
        return backup(settings, runner)
    watcher = Watcher(settings, runner)
    return watcher.follow() if "--follow" in argv else watcher.check()

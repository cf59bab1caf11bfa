# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The self-healing watcher on the host (role k3s_recover, ``k3s_recover_watch_mode``): one drift
check (drift.py's ``detect``, the same as recover.yml's), a debounce until the host's addresses
have been stable, a flap guard, a status file, and in mode ``recover`` the recovery recover.yml
runs (rebuild.py's ``Rebuild`` under the shared run lock). Standard library only; the program
``integr8scode-k3s-drift-check`` installed by the role calls ``check``, ``follow``, ``backup``.

Journal lines start with a syslog priority (``<4>`` warning) so ``journalctl -p warning`` finds
the ones that need a person.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import select
import subprocess
import sys
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import iso, read_json, utc_stamp
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import read_config
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import datastore_kind
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import DriftError, detect
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    read_network,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (
    ModuleFailure,
    Rebuild,
    execute,
    validate,
    with_defaults,
)

HOUR = 3600
RECOVER_HINT = "ansible-playbook playbooks/recover.yml -e k3s_recover_confirm=true"


def log(priority, message):
    sys.stdout.write("<%d>%s\n" % (priority, message))
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


def flap_guard(state, now, limit):
    """(allowed, recent): at most ``limit`` automatic recoveries in the last hour."""
    recent = [t for t in state.get("recoveries", []) if now - t < HOUR]
    state["recoveries"] = recent
    return len(recent) < int(limit), recent


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
    return line


class Watcher:
    """``settings``: the role's variables as the template renders them (see the role's README)."""

    def __init__(self, settings, runner, clock=time.time, sleep=time.sleep):
        self.s = dict(settings)
        for name in ("debounce", "debounce_rounds", "max_recoveries"):
            self.s[name] = int(self.s[name])
        self.runner = runner
        self.clock = clock
        self.sleep = sleep
        self.state_file = os.path.join(settings["state_dir"], "state.json")
        self.status_file = os.path.join(settings["state_dir"], "status")
        self.state = read_json(self.state_file)

    def merge_recoveries(self):
        """Adds the recoveries another watcher process recorded on disk; returns the disk state."""
        disk = read_json(self.state_file)
        self.state["recoveries"] = sorted(set(disk.get("recoveries", [])) | set(self.state.get("recoveries", [])))
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

    def detect(self):
        s = self.s
        params = dict(
            config_file=s["config_file"], data_dir=s["data_dir"], service=s["service"],
            node_name=s["node_name"] or None, node_ip=s["node_ip"] or None,
            node_interface=s["node_interface"] or None, flannel_iface=s["flannel_iface"] or None,
            kubeconfigs=[s["admin_kubeconfig"]],
        )  # fmt: skip
        return detect(self.runner, params)[0]

    def check(self):
        """One look; waits out the debounce (bounded) before acting. Returns an exit code."""
        for _attempt in range(int(self.s["debounce_rounds"])):
            try:
                links, _routes = read_network(self.runner.run_command)
                wait = unstable_for(self.state, address_snapshot(links), self.clock(), self.s["debounce"])
                if wait > 0:
                    log(
                        5,
                        "the host's addresses changed %ss ago; waiting until they are stable for %ss before "
                        "judging k3s (k3s_recover_watch_debounce)"
                        % (int(self.s["debounce"] - wait), self.s["debounce"]),
                    )
                    self.save("waiting for stable addresses")
                    self.sleep(wait)
                    continue
                return self.judge()
            except (NodeAddressError, DriftError, OSError, ValueError) as exc:
                log(4, "WARNING: the drift check could not read the host: %s" % exc)
                self.save("error: %s" % exc)
                return 1
        log(4, "WARNING: the host's addresses kept changing for %d debounce periods; not acting now, the next "
            "check or address event tries again" % self.s["debounce_rounds"])  # fmt: skip
        self.save("addresses not stable")
        return 0

    def judge(self):
        s = self.s
        result = self.detect()
        if not result["installed"]:
            log(6, "k3s is not installed here (%s); nothing to check" % s["config_file"])
            self.save("k3s not installed")
            return 0
        if not result["drift"]:
            log(
                6,
                "k3s node IP %s is the node address (%s); %s is %s"
                % (
                    result["node_ip"]["config"],
                    result["node_address"]["reason"],
                    s["service"],
                    result["service"].get("active_state"),
                ),
            )
            self.save("healthy, node IP %s" % result["node_ip"]["config"])
            return 0
        problems = "; ".join(f["message"] for f in result["findings"] if f["severity"] == "drift")
        target = result["recommended_node_ip"]
        if not target:
            # Only a tunnel (or nothing) is up: nothing to recover onto yet.
            log(
                4,
                "WARNING: k3s drifted (%s) but there is no usable node address, waiting: %s"
                % (problems, result["node_address"]["error"]),
            )
            self.save("drifted, no usable node address")
            return 0
        log(4, "WARNING: k3s drifted after a VPN or IP change: %s. Run: ansible-playbook playbooks/recover.yml "
            "(integr8scode.provision.recover)" % problems)  # fmt: skip
        if s["mode"] != "recover":
            self.save("drifted (mode %s: warned only)" % s["mode"])
            return self.run_command_hook()
        # The timer's check and the follower share the count.
        self.merge_recoveries()
        allowed, recent = flap_guard(self.state, self.clock(), s["max_recoveries"])
        if not allowed:
            log(
                4,
                "WARNING: not recovering automatically: %d automatic recoveries in the last hour reached the limit "
                "k3s_recover_watch_max_recoveries=%d (the network is flapping); warning only until %s. Recover by "
                "hand: %s" % (len(recent), int(s["max_recoveries"]), iso(min(recent) + HOUR), RECOVER_HINT),
            )
            self.save("drifted, flap limit reached: warned only")
            return 0
        return self.recover(result, target)

    def run_command_hook(self):
        command = self.s.get("command")
        if not command:
            return 0
        log(5, "running the recovery: %s" % command)
        return subprocess.call(command, shell=True)

    def rebuild_params(self, result, target):
        s = self.s
        stamp = utc_stamp(self.clock())
        user = os.path.expanduser("~%s/.kube/config" % s["kubeconfig_user"]) if s["kubeconfig_user"] else None
        return with_defaults(
            state="rebuilt", strategy=s["strategy"], datastore=result["datastore"], node_ip=target,
            flannel_iface=result["recommended_flannel_iface"], node_name=result["node_name"],
            backup_dir=os.path.join(s["backup_root"].rstrip("/"), stamp), backup_paths=s["pv_paths"],
            keep_backups=int(s["keep_backups"]), service=s["service"], binary=s["binary"],
            config_file=s["config_file"], data_dir=result["data_dir"], admin_kubeconfig=s["admin_kubeconfig"],
            user_kubeconfig=user, ready_timeout=float(s["ready_timeout"]), stop_timeout=float(s["stop_timeout"]),
            stack_dir=s["stack_dir"] or None, project_name=s["project_name"] or None,
            compose_files=s["compose_files"], app_kubeconfig=s["app_kubeconfig"] if s["stack_dir"] else None,
            cert_generator_service=s["cert_generator_service"], worker_services=s["worker_services"],
            app_probe_path=s["app_probe_path"], app_kubeconfig_mode=s["app_kubeconfig_mode"],
            app_timeout=float(s["app_timeout"]), lock_path=s["lock_path"], lock_ttl=int(s["lock_ttl"]),
            run_id="watch-%s" % stamp, lock_owner="integr8scode-k3s-drift-check (k3s_recover_watch_mode=recover)",
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
            execute(job, on_locked=announce)
        except ModuleFailure as exc:
            if job.result.get("stage") == "lock":
                log(5, "not recovering now: %s" % exc)
                self.save("drifted, another recovery holds the lock")
                return 0
            self.state.setdefault("recoveries", []).append(record["at"])
            record.update(outcome="failed at %s" % job.result.get("stage"), message=str(exc)[-3000:])
            if "backup" not in job.result:
                record["backup"] = None
            self.state["last_recovery"] = record
            log(3, "ERROR: the automatic recovery failed (stage %s): %s" % (job.result.get("stage"), exc))
            self.save("drifted, recovery failed")
            return 1
        self.state.setdefault("recoveries", []).append(record["at"])
        backup = job.result.get("backup") or {}
        record.update(
            outcome="ok",
            workers_ready_at=job.result.get("workers_ready_at"),
            verified=bool(backup.get("ok")),
            pruned=backup.get("pruned", []),
        )
        self.state["last_recovery"] = record
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


def status(settings):
    line = read_json(os.path.join(settings["state_dir"], "state.json"))
    sys.stdout.write((status_line(line) if line else "no check yet (%s)" % settings["state_dir"]) + "\n")
    return 0


def backup(settings, runner):
    """A scheduled backup of the running datastore (Rebuild.scheduled) into the backup root."""
    stamp = utc_stamp()
    datastore = datastore_kind(settings["data_dir"], read_config(settings["config_file"])[0])
    params = with_defaults(
        state="backed_up", datastore=datastore, backup_dir=os.path.join(settings["backup_root"].rstrip("/"), stamp),
        backup_paths=settings["pv_paths"], keep_backups=int(settings["keep_backups"]), binary=settings["binary"],
        config_file=settings["config_file"], data_dir=settings["data_dir"],
        admin_kubeconfig=settings["admin_kubeconfig"], run_id="scheduled-%s" % stamp,
    )  # fmt: skip
    job = Rebuild(params, runner)
    try:
        result = job.scheduled()
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

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_restart
short_description: Start or restart k3s under the run lock the recovery and the drift watcher hold
version_added: "0.2.0"
description:
  - Restarts (O(state=restarted)) or starts and enables (O(state=started)) the k3s unit while
    holding the run lock that M(integr8scode.provision.k3s_rebuild) and the drift watcher of role
    C(k3s_recover) hold while they rebuild k3s, so a start never lands in the middle of a recovery
    (between its backup and its wipe, or while it starts k3s on a new address).
  - With O(state=started) a unit that is already active (and enabled, with O(enabled=true)) is
    left alone without taking the lock; a unit the recovery stopped is started only once the
    recovery released the lock, and then only if it is still not running.
  - Waits up to O(lock_wait) seconds while another run holds the lock; when the wait runs out it
    fails naming the holder, and k3s is not restarted.
  - A lock that M(integr8scode.provision.k3s_config) kept after writing config.yaml
    (its O(integr8scode.provision.k3s_config#module:lock_hold), RV(integr8scode.provision.k3s_config#module:lock.run_id)
    passed as O(run_id)) is taken over without waiting and released after the restart, so no
    recovery can start between the write and the restart that applies it.
  - The unit has C(TimeoutStartSec=0) (a k3s that never reports ready would keep C(systemctl
    restart) waiting forever), so the restart is bounded by O(timeout) and a failure carries the
    unit's journal tail.
options:
  state:
    description:
      - C(restarted) always restarts (the role's handler, after binary, config, unit or env file changed).
      - C(started) starts the unit when it is not active, and enables it with O(enabled).
    type: str
    choices: [restarted, started]
    default: restarted
  enabled:
    description: With O(state=started), also enable the unit at boot (C(systemctl enable)).
    type: bool
    default: true
  service:
    description: The k3s unit.
    type: str
    default: k3s
  timeout:
    description: Seconds the restart may take (C(Type=notify) returns once k3s serves); the role's C(k3s_ready_timeout).
    type: float
    default: 300
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (a changed unit file).
    type: bool
    default: true
  run_id:
    description:
      - The run the lock is held for. The C(lock.run_id) of a M(integr8scode.provision.k3s_config)
        write with O(integr8scode.provision.k3s_config#module:lock_hold) takes over the lock it kept.
      - Empty means a new run.
    type: str
    default: ""
author:
  - integr8scode.provision maintainers (@integr8scode)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - integr8scode.provision.run_lock
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Reports the restart without waiting for or taking the lock.
  diff_mode:
    support: none
seealso:
  - module: integr8scode.provision.k3s_config
  - module: integr8scode.provision.k3s_rebuild
"""

EXAMPLES = r"""
- name: Enable and start k3s unless it runs (waits while a recovery holds the lock)
  integr8scode.provision.k3s_restart:
    state: started
    timeout: "{{ k3s_ready_timeout }}"

- name: Restart k3s (handler), releasing the lock the config.yaml write kept
  integr8scode.provision.k3s_restart:
    timeout: "{{ k3s_ready_timeout }}"
    run_id: "{{ k3s__config_write.lock.run_id | default('') }}"
"""

RETURN = r"""
unit:
  description:
    - The unit as found before anything was done (C(active_state), C(sub_state), C(unit_file_state),
      C(load_state)). With O(state=started), the state seen again under the lock.
  returned: always
  type: dict
done:
  description: The systemctl verbs run (C(restart); or C(enable), C(start) as the unit needed them).
  returned: when the unit was (re)started, not in check mode
  type: list
  elements: str
  sample: [enable, start]
lock:
  description: The run lock.
  returned: when the unit was (re)started, not in check mode
  type: dict
  contains:
    path:
      description: The lock directory.
      type: str
    run_id:
      description: The run it was held for.
      type: str
    waited:
      description: Seconds waited for the lock.
      type: float
    taken_over:
      description: Whether it was the lock a M(integr8scode.provision.k3s_config) write of this run kept.
      type: bool
holder:
  description:
    - The owner record of the lock (C(by), C(run_id), C(started), and C(pid) of a running holder or
      C(expires) of a kept lock) when the wait ran out.
  returned: failure waiting for the lock
  type: dict
journal_tail:
  description: The unit's last journal lines when the restart failed or did not finish in time.
  returned: failure of the restart
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (
    LOCK_OPTIONS,
    BackupError,
    LockHeld,
    RunLock,
    read_json,
    utc_stamp,
    wait_for_lock,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    UnitError,
    run_systemctl,
    unit_state,
)

UNIT_KEYS = ("active_state", "sub_state", "unit_file_state", "load_state")


def pending(state, observed):
    """The systemctl verbs ``state`` (restarted/started with enabled) still needs on a unit in
    ``observed`` (unit.unit_state)."""
    if state["state"] == "restarted":
        return ["restart"]
    verbs = []
    if state["enabled"] and observed.get("unit_file_state") != "enabled":
        verbs.append("enable")
    if observed.get("active_state") != "active":
        verbs.append("start")
    return verbs


def observe(module, service):
    state = unit_state(module.run_command, service, module.get_bin_path("systemctl", required=True))
    return dict((key, state.get(key)) for key in UNIT_KEYS)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["restarted", "started"], default="restarted"),
            enabled=dict(type="bool", default=True),
            service=dict(type="str", default="k3s"),
            timeout=dict(type="float", default=300.0),
            daemon_reload=dict(type="bool", default=True),
            run_id=dict(type="str", default=""),
            **LOCK_OPTIONS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %r" % p["timeout"])
    observed = observe(module, p["service"])
    verbs = pending(p, observed)
    if not verbs:
        module.exit_json(changed=False, unit=observed)
    if module.check_mode:
        module.exit_json(
            changed=True,
            unit=observed,
            msg="check mode: would %s %s under the run lock" % (" and ".join(verbs), p["service"]),
        )
    run_id = p["run_id"] or "k3s_restart-%s-%d" % (utc_stamp(), os.getpid())
    lock = RunLock(p["lock_path"], run_id, p["lock_owner"] or "integr8scode.provision.k3s_restart")
    kept = bool(p["run_id"]) and read_json(lock.owner_file).get("run_id") == p["run_id"]
    info = dict(path=lock.path, run_id=run_id, taken_over=kept)
    try:
        _owner, info["waited"] = wait_for_lock(lock, p["lock_wait"])
    except LockHeld as exc:
        module.fail_json(
            msg="%s was not %s: %s. Nothing was changed; run again when that run is done, or raise lock_wait "
            "(k3s_lock_wait)." % (p["service"], p["state"], exc),
            holder=exc.owner,
            unit=observed,
        )
    except (BackupError, OSError) as exc:
        module.fail_json(
            msg="%s was not %s: cannot take the run lock %s: %s" % (p["service"], p["state"], lock.path, exc)
        )
    try:
        if p["daemon_reload"]:
            run_systemctl(module, "daemon-reload", None, 60)
        if p["state"] == "started" and info["waited"]:
            # A recovery held the lock meanwhile and has started k3s itself (or failed and said so).
            observed = observe(module, p["service"])
            verbs = pending(p, observed)
        for verb in verbs:
            run_systemctl(module, verb, p["service"], p["timeout"] if verb != "enable" else 60)
    except UnitError as exc:
        module.fail_json(msg=str(exc), journal_tail=exc.journal_tail, lock=info, unit=observed)
    finally:
        lock.release()
    module.exit_json(changed=bool(verbs), lock=info, unit=observed, done=verbs)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_restart
short_description: Restart k3s under the run lock the recovery and the drift watcher hold
version_added: "0.2.0"
description:
  - Restarts the k3s unit (C(systemctl daemon-reload), then C(systemctl restart)) while holding the
    run lock that M(integr8scode.provision.k3s_rebuild) and the drift watcher of role C(k3s_recover)
    hold while they rebuild k3s, so a restart never lands in the middle of a recovery (between
    its backup and its wipe, or while it starts k3s on a new address).
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
  lock_path:
    description:
      - The run lock shared with the recovery and the watcher (role C(k3s) C(k3s_lock_path)). An
        empty value means the default.
    type: path
    default: /run/lock/integr8scode-k3s-recover.lock
  lock_wait:
    description: Seconds to wait for the run lock while another run holds it (C(k3s_lock_wait)); C(0) tries once.
    type: float
    default: 900
  lock_ttl:
    description:
      - Seconds after which the lock, if this run died holding it, may be taken over; at least
        O(timeout) plus two minutes is used.
    type: int
    default: 3600
  lock_owner:
    description: Who runs it, recorded in the lock and named to a run that waits for it.
    type: str
    default: ""
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
- name: Restart k3s (handler), releasing the lock the config.yaml write kept
  integr8scode.provision.k3s_restart:
    timeout: "{{ k3s_ready_timeout }}"
    run_id: "{{ k3s__config_write.lock.run_id | default('') }}"
"""

RETURN = r"""
lock:
  description: The run lock.
  returned: success, not in check mode
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
  description: The owner record of the lock (C(by), C(run_id), C(started), C(expires)) when the wait ran out.
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
    LOCK_PATH,
    BackupError,
    LockHeld,
    RunLock,
    read_json,
    utc_stamp,
    wait_for_lock,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import UnitError, run_systemctl


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", default="k3s"),
            timeout=dict(type="float", default=300.0),
            daemon_reload=dict(type="bool", default=True),
            lock_path=dict(type="path", default=LOCK_PATH),
            lock_wait=dict(type="float", default=900.0),
            lock_ttl=dict(type="int", default=3600),
            lock_owner=dict(type="str", default=""),
            run_id=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %r" % p["timeout"])
    if module.check_mode:
        module.exit_json(changed=True, msg="check mode: would restart %s under the run lock" % p["service"])
    run_id = p["run_id"] or "k3s_restart-%s-%d" % (utc_stamp(), os.getpid())
    ttl = max(p["lock_ttl"], int(p["timeout"]) + 120)
    lock = RunLock(p["lock_path"], run_id, ttl, p["lock_owner"] or "integr8scode.provision.k3s_restart")
    kept = bool(p["run_id"]) and read_json(lock.owner_file).get("run_id") == p["run_id"]
    info = dict(path=lock.path, run_id=run_id, taken_over=kept)
    try:
        _owner, info["waited"] = wait_for_lock(lock, p["lock_wait"])
    except LockHeld as exc:
        module.fail_json(
            msg="%s was not restarted: %s. Nothing was changed; run again when that run is done, or raise lock_wait "
            "(k3s_lock_wait)." % (p["service"], exc),
            holder=exc.owner,
        )
    except (BackupError, OSError) as exc:
        module.fail_json(msg="%s was not restarted: cannot take the run lock %s: %s" % (p["service"], lock.path, exc))
    try:
        if p["daemon_reload"]:
            run_systemctl(module, "daemon-reload", None, 60)
        run_systemctl(module, "restart", p["service"], p["timeout"])
    except UnitError as exc:
        module.fail_json(msg=str(exc), journal_tail=exc.journal_tail, lock=info)
    finally:
        lock.release()
    module.exit_json(changed=True, lock=info)


if __name__ == "__main__":
    main()

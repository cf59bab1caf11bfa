# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The run lock (plugins/module_utils/k3s/backup.py RunLock) that site.yml's writes and restarts
    # wait for while a recovery or the drift watcher holds it.
    DOCUMENTATION = r"""
options:
  lock_path:
    description:
      - The run lock shared with the recovery and the watcher (role C(k3s) C(k3s_lock_path), role
        C(k3s_recover) C(k3s_recover_lock_path)). An empty value means the default.
      - A run holds it while its process lives (pid and start time in the owner file); the lock of
        a killed run is taken over at once.
    type: path
    default: /run/integr8scode/k3s-recover.lock
  lock_wait:
    description: Seconds to wait for the run lock while another run holds it (C(k3s_lock_wait)); C(0) tries once.
    type: float
    default: 900
  lock_owner:
    description: Who runs it, recorded in the lock and named to a run that waits for it.
    type: str
    default: ""
"""

# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of the poll engine (plugins/module_utils/poll.py) shared by every wait module.
    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Total seconds to wait, measured on a monotonic clock. C(0) probes exactly once.
      - The module fails when this passes without readiness, with the last observation.
    type: float
    default: 120
  interval:
    description:
      - Seconds between the first two probes. Later intervals grow by O(backoff) up to
        O(max_interval).
    type: float
    default: 0.1
  backoff:
    description: Factor applied to the interval after each probe (C(1) keeps it constant).
    type: float
    default: 1.5
  max_interval:
    description:
      - Cap on the interval between probes. The median delay between readiness and the module
        noticing it is about half of this, plus one probe.
    type: float
    default: 0.2
notes:
  - The wait happens inside one module invocation; it does not need C(until)/C(retries).
  - The module never reports C(changed). In check mode the wait is skipped and the result says so
    (C(skipped=true), C(ready=null)).
"""

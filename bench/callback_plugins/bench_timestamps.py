# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

"""Benchmark helper (bench/ only): append task start/end times (CLOCK_MONOTONIC) to $BENCH_TIMESTAMPS."""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timestamps
type: aggregate
short_description: Write task start and end times for bench/wait_latency.py
description:
  - Appends one JSON line per task start and per task result to the file named by the
    C(BENCH_TIMESTAMPS) environment variable, with C(time.monotonic()) times, which are
    comparable across processes on Linux.
requirements:
  - enable in ansible.cfg or with ANSIBLE_CALLBACKS_ENABLED
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timestamps"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("BENCH_TIMESTAMPS")

    def _write(self, event, name, **extra):
        if not self._path:
            return
        record = dict(event=event, task=name, t=time.monotonic())
        record.update(extra)
        with open(self._path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("start", task.get_name())

    def v2_runner_on_ok(self, result):
        self._write("end", result._task.get_name(), ok=True, attempts=result._result.get("attempts"))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("end", result._task.get_name(), ok=False, msg=str(result._result.get("msg"))[:300])

# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

"""The one poll engine behind every wait module of this collection.

Anchor roles wait with ``until``/``retries``/``delay`` loops that pay a whole module round trip per
try and time out saying nothing. The modules here wait inside one invocation instead: a probe is
called, starting at a short interval that grows by ``backoff`` up to ``max_interval``, until it
reports ready, reports that waiting can no longer succeed (``hopeless``), or the monotonic deadline
passes. The clock and the sleep are injectable so the engine is tested without real time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

# Defaults shared by the doc fragment and every module. A loopback probe costs milliseconds, so a
# short cap buys low detection latency for almost nothing (issue 3 target: median <= 0.3 s).
DEFAULT_INTERVAL = 0.1
DEFAULT_BACKOFF = 1.5
DEFAULT_MAX_INTERVAL = 0.2


def poll_argument_spec(timeout=120.0):
    """Argument spec of the poll options (see the ``integr8scode.provision.poll`` doc fragment)."""
    return dict(
        timeout=dict(type="float", default=timeout),
        interval=dict(type="float", default=DEFAULT_INTERVAL),
        backoff=dict(type="float", default=DEFAULT_BACKOFF),
        max_interval=dict(type="float", default=DEFAULT_MAX_INTERVAL),
    )


def validate_poll_params(params):
    """Return a list of messages naming each bad poll option; empty when all are fine."""
    errors = []
    timeout = params.get("timeout")
    interval = params.get("interval")
    backoff = params.get("backoff")
    max_interval = params.get("max_interval")
    if timeout is None or timeout < 0:
        errors.append("timeout must be zero or a positive number of seconds, got %r" % (timeout,))
    if interval is None or interval <= 0:
        errors.append("interval must be a positive number of seconds, got %r" % (interval,))
    if backoff is None or backoff < 1:
        errors.append("backoff must be a factor of at least 1, got %r" % (backoff,))
    if max_interval is None or max_interval <= 0:
        errors.append("max_interval must be a positive number of seconds, got %r" % (max_interval,))
    elif interval is not None and interval > 0 and max_interval < interval:
        errors.append("max_interval (%r) must not be smaller than interval (%r)" % (max_interval, interval))
    return errors


class ProbeResult:
    """What one probe saw: ready, hopeless (waiting cannot succeed), an observation and a message."""

    __slots__ = ("ready", "hopeless", "observation", "message")

    def __init__(self, ready=False, hopeless=False, observation=None, message=""):
        self.ready = bool(ready)
        self.hopeless = bool(hopeless)
        self.observation = observation if observation is not None else {}
        self.message = message or ""

    def __iter__(self):
        return iter((self.ready, self.hopeless, self.observation, self.message))

    def __repr__(self):
        return "ProbeResult(ready=%r, hopeless=%r, message=%r)" % (self.ready, self.hopeless, self.message)


def _as_probe_result(value):
    if isinstance(value, ProbeResult):
        return value
    if isinstance(value, (tuple, list)) and 1 <= len(value) <= 4:
        return ProbeResult(*value)
    raise TypeError("a probe must return a ProbeResult or a (ready, hopeless, observation, message) tuple")


class PollResult:
    """Outcome of :func:`poll`."""

    __slots__ = ("ready", "hopeless", "timed_out", "attempts", "elapsed", "observation", "message")

    def __init__(self, *, ready, hopeless, timed_out, attempts, elapsed, observation, message):
        self.ready = ready
        self.hopeless = hopeless
        self.timed_out = timed_out
        self.attempts = attempts
        self.elapsed = elapsed
        self.observation = observation
        self.message = message

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)

    def __repr__(self):
        return "PollResult(%s)" % ", ".join("%s=%r" % (k, v) for k, v in self.as_dict().items() if k != "observation")


def poll(  # noqa: PLR0917 - the positional signature is the collection's shared interface
    probe,
    timeout,
    interval=DEFAULT_INTERVAL,
    backoff=DEFAULT_BACKOFF,
    max_interval=DEFAULT_MAX_INTERVAL,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Call ``probe()`` until it is ready, hopeless, or ``timeout`` seconds have passed.

    The probe is always called at least once, even with ``timeout=0``, and once more right at the
    deadline when a sleep was cut short by it, so readiness that arrives just in time counts. The
    sleep never overshoots the deadline. Exceptions from the probe propagate: probes classify their
    own errors into observations.
    """
    errors = validate_poll_params(dict(timeout=timeout, interval=interval, backoff=backoff, max_interval=max_interval))
    if errors:
        raise ValueError("; ".join(errors))
    start = clock()
    deadline = start + timeout
    delay = float(interval)
    attempts = 0
    while True:
        attempts += 1
        result = _as_probe_result(probe())
        now = clock()
        elapsed = now - start
        if result.ready or result.hopeless:
            return PollResult(
                ready=result.ready,
                hopeless=result.hopeless and not result.ready,
                timed_out=False,
                attempts=attempts,
                elapsed=elapsed,
                observation=result.observation,
                message=result.message,
            )
        remaining = deadline - now
        if remaining <= 0:
            return PollResult(
                ready=False,
                hopeless=False,
                timed_out=True,
                attempts=attempts,
                elapsed=elapsed,
                observation=result.observation,
                message=result.message,
            )
        sleep(min(delay, remaining))
        delay = min(delay * backoff, max_interval)


class Deadline:
    """A monotonic deadline probes use to cap their own request timeouts."""

    def __init__(self, timeout, clock=time.monotonic):
        self._clock = clock
        self.start = clock()
        self.end = self.start + timeout

    def remaining(self):
        return max(0.0, self.end - self._clock())

    def elapsed(self):
        return self._clock() - self.start


def check_mode_result(**extra):
    """The result every wait module returns in check mode: nothing waited for, nothing changed."""
    result = dict(
        changed=False,
        skipped=True,
        ready=None,
        attempts=0,
        elapsed=0.0,
        msg="check mode: the wait was skipped",
    )
    result.update(extra)
    return result

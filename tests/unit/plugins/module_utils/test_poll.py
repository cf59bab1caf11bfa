"""The poll engine, driven by a controllable clock (no real sleeping)."""

import pytest
import yaml
from ansible_collections.integr8scode.provision.plugins.doc_fragments.poll import ModuleDocFragment
from ansible_collections.integr8scode.provision.plugins.module_utils import poll as engine


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def run(probe, clock, **kw):
    kw.setdefault("interval", 0.1)
    kw.setdefault("backoff", 2.0)
    kw.setdefault("max_interval", 1.0)
    return engine.poll(probe, kw.pop("timeout", 10), clock=clock, sleep=clock.sleep, **kw)


def test_ready_at_once_probes_once():
    clock = FakeClock()
    result = run(lambda: engine.ProbeResult(True, False, {"x": 1}, ""), clock)
    assert (result.ready, result.hopeless, result.timed_out, result.attempts) == (True, False, False, 1)
    assert result.observation == {"x": 1}
    assert result.elapsed == 0
    assert clock.sleeps == []


def test_backoff_grows_to_the_cap_and_readiness_is_seen():
    clock = FakeClock()
    ready_at = clock.now + 5.0

    def probe():
        return (clock.now >= ready_at, False, {"t": clock.now}, "not yet")

    result = run(probe, clock, timeout=60)
    assert result.ready and not result.timed_out
    assert clock.sleeps[:5] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert max(clock.sleeps) == 1.0
    # Readiness is noticed at the first probe after it happened, at most one cap later.
    assert ready_at <= clock.now <= ready_at + 1.0
    assert result.attempts == len(clock.sleeps) + 1
    assert result.elapsed == pytest.approx(sum(clock.sleeps))


def test_hopeless_stops_at_once_with_its_message():
    clock = FakeClock()
    calls = []

    def probe():
        calls.append(1)
        return engine.ProbeResult(False, len(calls) == 3, {"n": len(calls)}, "exited with code 3")

    result = run(probe, clock, timeout=300)
    assert result.hopeless and not result.ready and not result.timed_out
    assert result.attempts == 3
    assert result.message == "exited with code 3"
    assert result.observation == {"n": 3}


def test_timeout_reports_last_observation_and_never_oversleeps():
    clock = FakeClock()
    start = clock.now
    result = run(lambda: (False, False, {"t": clock.now}, "still 500"), clock, timeout=2.5)
    assert result.timed_out and not result.ready and not result.hopeless
    assert clock.now == pytest.approx(start + 2.5)  # the last sleep was cut to the deadline
    assert result.observation == {"t": clock.now}  # and the probe ran once more right at it
    assert result.message == "still 500"
    assert result.elapsed == pytest.approx(2.5)


def test_timeout_zero_probes_exactly_once():
    clock = FakeClock()
    result = run(lambda: (False, False, {}, "no"), clock, timeout=0)
    assert result.timed_out and result.attempts == 1 and clock.sleeps == []


def test_ready_wins_over_hopeless():
    clock = FakeClock()
    result = run(lambda: (True, True, {}, ""), clock)
    assert result.ready and not result.hopeless


def test_backoff_one_keeps_interval_constant():
    clock = FakeClock()
    run(lambda: (False, False, {}, ""), clock, timeout=1.0, interval=0.25, backoff=1.0, max_interval=0.25)
    assert clock.sleeps == [0.25, 0.25, 0.25, 0.25]


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"timeout": -1}, "timeout must be zero or a positive"),
        ({"interval": 0}, "interval must be a positive"),
        ({"backoff": 0.5}, "backoff must be a factor of at least 1"),
        ({"max_interval": 0.05}, "max_interval (0.05) must not be smaller than interval"),
    ],
)
def test_bad_parameters_are_named(kw, fragment):
    params = dict(timeout=10, interval=0.1, backoff=1.5, max_interval=1.0)
    params.update(kw)
    errors = engine.validate_poll_params(params)
    assert len(errors) == 1 and fragment in errors[0]
    with pytest.raises(ValueError, match="must"):
        engine.poll(lambda: (True, False, {}, ""), **params)


def test_probe_must_return_a_result():
    with pytest.raises(TypeError, match="probe must return"):
        engine.poll(lambda: "yes", 1, 0.1, 1.5, 1.0)


def test_probe_exceptions_propagate():
    def probe():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        engine.poll(probe, 1, 0.1, 1.5, 1.0, clock=FakeClock(), sleep=lambda s: None)


def test_deadline_and_check_mode_result():
    clock = FakeClock()
    deadline = engine.Deadline(3.0, clock=clock)
    clock.sleep(1.0)
    assert deadline.remaining() == pytest.approx(2.0)
    assert deadline.elapsed() == pytest.approx(1.0)
    clock.sleep(5.0)
    assert deadline.remaining() == 0.0
    result = engine.check_mode_result(url="u")
    assert result["changed"] is False and result["skipped"] is True and result["ready"] is None
    assert result["url"] == "u"


def test_poll_argument_spec_defaults_match_the_doc_fragment():
    options = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = engine.poll_argument_spec(timeout=120)
    assert set(options) == set(spec)
    for name, option in options.items():
        assert option["default"] == spec[name]["default"], name
        assert option["type"] == spec[name]["type"], name

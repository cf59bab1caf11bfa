"""tests/ci/failure_digest.py picks a failed item's cause out of molecule's framed, coloured log."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("failure_digest", ROOT / "tests/ci/failure_digest.py")
failure_digest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(failure_digest)

LOG = [
    "\x1b[36mINFO    \x1b[0m recover-sqlite ➜ verify: Starting\n",
    "  \x1b[2m│\x1b[0m tests/test_watch.py::test_recover_mode_heals PASSED\n",
    "  │ FAILED - RETRYING: [localhost]: Wait for instance(s) creation to complete (299 retries left).\n",
    "  \x1b[2m│\x1b[0m tests/test_watch.py::test_flapping FAILED\n",
    "  \x1b[2m│\x1b[0m E   AssertionError: one recovery onto 10.94.0.5 not seen within 300 s\n",
    "  \x1b[2m│\x1b[0m E   assert False\n",
    '  │ fatal: [i8c-recover-sqlite]: FAILED! => {"msg": "' + "x" * 900 + '"}\n',
    "  │ ok: [i8c-recover-sqlite]\n",
    "  │ FAILED tests/test_watch.py::test_flapping - AssertionError: one recovery\n",
    "\x1b[31mERROR   \x1b[0m Verifier tests failed\n",
]


def test_the_cause_and_the_summary_are_picked_without_colour_or_frame():
    picked = failure_digest.digest(LOG, 40)
    assert picked[0] == "E   AssertionError: one recovery onto 10.94.0.5 not seen within 300 s"
    assert picked[1] == "E   assert False"
    assert picked[2].startswith("fatal: [i8c-recover-sqlite]: FAILED! => ") and picked[2].endswith(" [...]")
    assert len(picked[2]) == failure_digest.WIDTH + len(" [...]")
    assert picked[3] == "FAILED tests/test_watch.py::test_flapping - AssertionError: one recovery"
    assert picked[4] == "ERROR    Verifier tests failed"
    assert not any("PASSED" in line or "RETRYING" in line or line.startswith("ok:") for line in picked)


def test_a_long_digest_keeps_its_first_and_last_lines():
    lines = [f"E   line {n}\n" for n in range(100)]
    picked = failure_digest.digest(lines, 10)
    assert picked[:5] == [f"E   line {n}" for n in range(5)]
    assert picked[5] == "[... 90 lines ...]"
    assert picked[6:] == [f"E   line {n}" for n in range(95, 100)]

"""Check mode on the converged harness host reports no change."""


def test_check_mode_changes_nothing(converge_in_check_mode):
    run = converge_in_check_mode
    assert run.returncode == 0, run.output[-3000:]
    assert run.recap, "no PLAY RECAP found in check-mode output"
    assert run.total("changed") == 0, f"changed in check mode: {run.changed_tasks()}"

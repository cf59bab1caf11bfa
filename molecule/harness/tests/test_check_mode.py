"""Check mode on the converged harness host reports no change."""


def test_check_mode_changes_nothing(converge_in_check_mode):
    converge_in_check_mode.assert_no_changes("check-mode run")

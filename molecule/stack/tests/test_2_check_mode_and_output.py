"""Check mode on the converged host changes nothing; -vvv output never shows a secret."""

from stackhost import secret_values


def test_check_mode_changes_nothing(converge_in_check_mode):
    run = converge_in_check_mode
    assert run.returncode == 0, run.output[-3000:]
    assert run.recap, "no PLAY RECAP found in check-mode output"
    assert run.total("changed") == 0, f"changed in check mode: {run.changed_tasks()}"


def test_verbose_run_prints_no_secret(host, ansible_playbook):
    run = ansible_playbook("stack-only.yml", "-vvv")
    assert run.returncode == 0, run.output[-3000:]
    assert run.total("changed") == 0, f"changed on a converged host: {run.changed_tasks()}"
    # The run really was verbose and really handled the secrets.
    assert "ESTABLISH" in run.output and "Write .env" in run.output
    for value in secret_values(host):
        assert value not in run.output, f"a secret ({len(value)} characters) appears in the -vvv output"

"""Check mode on the converged host changes nothing; -vvv output never shows a secret."""

from stackhost import STACK_DIR, secret_values


def test_check_mode_changes_nothing(converge_in_check_mode):
    converge_in_check_mode.assert_no_changes("check-mode run")


def test_verbose_run_prints_no_secret(host, ansible_playbook):
    # A converged host's .env is left as it is (compose_env_file compares it),
    # so the file is made to differ first: the -vvv run then really writes it.
    host.run(f"echo '# edited by hand' >> {STACK_DIR}/.env")
    run = ansible_playbook("stack-only.yml", "-vvv")
    assert run.returncode == 0, run.output[-3000:]
    write_env = "integr8scode.provision.stack : Write .env with the secrets (generated once where not given)"
    assert run.changed_tasks() == [write_env], run.changed_tasks()
    # The run really was verbose and really handled the secrets.
    assert "ESTABLISH" in run.output and "compose_env_file" in run.output
    for value in secret_values(host):
        assert value not in run.output, f"a secret ({len(value)} characters) appears in the -vvv output"

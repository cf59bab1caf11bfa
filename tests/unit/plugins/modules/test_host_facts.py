"""host_facts' platform facts are the ones ansible.builtin.setup gathers (the roles read them instead)."""

import json
import os
import subprocess
import sys

from conftest import COLLECTIONS


def test_platform_facts_match_setup(run_module):
    ours = run_module("host_facts", {"platform": True})["ansible_facts"]
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    argv = [ansible, "localhost", "-c", "local", "-m", "ansible.builtin.setup"]
    argv += ["-a", "gather_subset=!all,!min,distribution,platform"]
    argv += ["-e", "ansible_python_interpreter=" + sys.executable]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    gathered = json.loads(proc.stdout.split(" => ", 1)[1])["ansible_facts"]
    assert set(ours) >= {"distribution", "distribution_version", "distribution_release", "architecture"}
    assert ours == {key: gathered["ansible_" + key] for key in ours}


def test_without_platform_no_facts_are_set(run_module):
    assert "ansible_facts" not in run_module("host_facts", {"paths": ["/etc"]})

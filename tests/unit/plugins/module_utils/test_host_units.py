"""host_facts' unit states (module_utils/host.py unit_states) come from the k3s checks' one reading
of a unit (module_utils/k3s/unit.py unit_states): the names `systemctl is-enabled` / `is-active`
print, which the roles compare (docker.service, the stack's refresh timer)."""

from __future__ import annotations

from ansible_collections.integr8scode.provision.plugins.module_utils import host
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import unit

BLOCKS = {
    "docker.service": "ActiveState=active\nSubState=running\nUnitFileState=enabled\nLoadState=loaded\n",
    "docker.socket": "ActiveState=inactive\nSubState=dead\nUnitFileState=disabled\nLoadState=loaded\n",
    "containerd.service": "ActiveState=failed\nSubState=failed\nUnitFileState=static\nLoadState=loaded\n",
    "i8c-refresh.timer": "ActiveState=inactive\nSubState=dead\nUnitFileState=\nLoadState=not-found\n",
}


def test_enabled_and_active_as_the_roles_compare_them_in_one_systemctl_call():
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "\n".join(BLOCKS[name] for name in argv[2:-1]), ""

    states = host.unit_states(run, list(BLOCKS))
    assert calls == [["systemctl", "show"] + list(BLOCKS) + ["--property=" + ",".join(unit.PROPERTIES)]]
    assert states == {
        "docker.service": {"enabled": "enabled", "active": "active"},
        "docker.socket": {"enabled": "disabled", "active": "inactive"},
        "containerd.service": {"enabled": "static", "active": "failed"},
        "i8c-refresh.timer": {"enabled": "", "active": "inactive"},
    }


def test_no_units_no_call_and_an_unreadable_state_is_empty():
    def never(argv):
        raise AssertionError(f"ran {argv}")

    assert host.unit_states(never, []) == {}
    failed = host.unit_states(lambda argv: (1, "", "System has not been booted with systemd"), ["docker.service"])
    assert failed == {"docker.service": {"enabled": "", "active": ""}}

"""The systemd test host boots fully and a converge reached it."""


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert state == "running", f"system state {state!r}; failed units: {failed}"


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_converge_wrote_marker(host):
    marker = host.file("/etc/integr8scode-harness")
    assert marker.is_file
    assert marker.mode == 0o644
    assert marker.content_string == "harness converged\n"

"""The NordVPN client stand-in behaves like the real client where our role touches it.

Every expected message below is the real client's (NordSecurity/nordvpn-linux,
cli/messages.go, client/messages.go, internal/message.go, cli/cli.go,
internal/errors.go); the stand-in's header cites them. These tests run the daemon
in the test's own namespace and never connect; connecting, routing and firewall
are in test_nordvpn_standin_connect.py, inside network namespaces.
"""

from __future__ import annotations

import socket
import stat

import pytest


def settings_lines(client) -> list[str]:
    result = client.run("settings")
    assert result.returncode == 0, result.stdout
    return result.stdout.splitlines()


def test_settings_prints_key_value_lines_with_lan_discovery(nordvpn):
    lines = settings_lines(nordvpn)
    assert "LAN Discovery: disabled" in lines
    assert lines[0] == "Technology: NORDLYNX"
    assert all(": " in line for line in lines), lines
    assert not any(line.startswith("Allowlisted") for line in lines)


def test_settings_follow_the_5x_layout(nordvpn):
    # cli/cli_settings.go: Protocol/Obfuscate only for OpenVPN, Post-quantum VPN only for NordLynx.
    assert settings_lines(nordvpn) == [
        "Technology: NORDLYNX",
        "Firewall: enabled",
        "Firewall Mark: 0xe1f1",
        "Routing: enabled",
        "User Consent: disabled",
        "Kill Switch: disabled",
        "Threat Protection Lite: disabled",
        "Notify: disabled",
        "Tray: enabled",
        "Auto-connect: disabled",
        "Meshnet: disabled",
        "DNS: disabled",
        "LAN Discovery: disabled",
        "Virtual Location: enabled",
        "Post-quantum VPN: disabled",
        "ARP Ignore: disabled",
    ]
    nordvpn.ok("set", "technology", "openvpn")
    lines = settings_lines(nordvpn)
    assert lines[:3] == ["Technology: OPENVPN", "Protocol: UDP", "Firewall: enabled"]
    assert "Obfuscate: disabled" in lines
    assert "Post-quantum VPN: disabled" not in lines


def test_set_technology_messages(nordvpn):
    result = nordvpn.run("set", "technology", "OpenVPN")
    assert (result.returncode, result.stdout) == (0, "Technology has been successfully set to 'OpenVPN'.\n")
    again = nordvpn.run("s", "technology", "OPENVPN")
    assert (again.returncode, again.stdout) == (0, "Technology is already set to 'OpenVPN'.\n")
    back = nordvpn.run("set", "technology", "nordlynx")
    assert (back.returncode, back.stdout) == (0, "Technology has been successfully set to 'NordLynx'.\n")
    assert settings_lines(nordvpn)[0] == "Technology: NORDLYNX"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "The command you entered has an incorrect number of arguments. Run 'nordvpn set technology --help'"),
        (("wireguard",), "The command you entered is not valid. Run 'nordvpn set technology --help'"),
        (("openvpn", "extra"), "The command you entered is not valid. Run 'nordvpn set technology --help'"),
    ],
)
def test_set_technology_refuses_bad_arguments(nordvpn, args, message):
    result = nordvpn.run("set", "technology", *args)
    assert result.returncode == 1
    assert result.stdout.startswith(message)
    assert settings_lines(nordvpn)[0] == "Technology: NORDLYNX"


def test_set_autoconnect_messages(nordvpn):
    off = nordvpn.run("set", "autoconnect", "off")
    assert (off.returncode, off.stdout) == (0, "Auto-connect is already set to 'disabled'.\n")
    on = nordvpn.run("set", "autoconnect", "on", "Netherlands")
    assert (on.returncode, on.stdout) == (0, "Auto-connect has been successfully set to 'enabled'.\n")
    assert "Auto-connect: enabled" in settings_lines(nordvpn)
    again = nordvpn.run("set", "autoconnect", "enabled")
    assert (again.returncode, again.stdout) == (0, "Auto-connect has been successfully set to 'enabled'.\n")
    assert nordvpn.ok("set", "autoconnect", "0") == "Auto-connect has been successfully set to 'disabled'.\n"
    assert "Auto-connect: disabled" in settings_lines(nordvpn)


def test_set_autoconnect_to_an_unknown_server_fails(nordvpn):
    result = nordvpn.run("set", "autoconnect", "on", "atlantis")
    assert (result.returncode, result.stdout) == (1, "The specified server does not exist.\n")
    assert "Auto-connect: disabled" in settings_lines(nordvpn)
    bad = nordvpn.run("set", "autoconnect", "perhaps")
    assert bad.returncode == 1
    assert bad.stdout.startswith("The command you entered is not valid. Run 'nordvpn set autoconnect --help'")


def test_status_and_disconnect_while_disconnected(nordvpn):
    status = nordvpn.run("status")
    assert (status.returncode, status.stdout) == (0, "Status: Disconnected\n")
    for command in ("disconnect", "d"):
        result = nordvpn.run(command)
        # color.Yellow, not an error: exit 0 (cli/cli_disconnect.go).
        assert (result.returncode, result.stdout) == (0, "You are not connected to NordVPN.\n")


@pytest.mark.parametrize("word", ["enabled", "enable", "on", "true", "1", "ON", "True"])
def test_set_lan_discovery_accepts_every_true_spelling(nordvpn, word):
    result = nordvpn.run("set", "lan-discovery", word)
    assert result.returncode == 0
    assert result.stdout == "LAN Discovery has been successfully set to 'enabled'.\n"
    assert "LAN Discovery: enabled" in settings_lines(nordvpn)


@pytest.mark.parametrize("word", ["disabled", "disable", "off", "false", "0"])
def test_set_lan_discovery_accepts_every_false_spelling(nordvpn, word):
    assert nordvpn.run("set", "lan-discovery", "on").returncode == 0
    result = nordvpn.run("set", "lan-discovery", word)
    assert result.returncode == 0
    assert result.stdout == "LAN Discovery has been successfully set to 'disabled'.\n"
    assert "LAN Discovery: disabled" in settings_lines(nordvpn)


def test_setting_the_same_value_again_is_an_error_with_the_clients_message(nordvpn):
    assert nordvpn.run("set", "lan-discovery", "enabled").returncode == 0
    again = nordvpn.run("set", "lan-discovery", "on")
    assert again.returncode == 1
    assert again.stdout == "LAN discovery is already set to enabled.\n"
    off = nordvpn.run("set", "lan-discovery", "disabled")
    assert off.returncode == 0
    assert nordvpn.run("set", "lan-discovery", "off").stdout == "LAN discovery is already set to disabled.\n"


def test_bad_value_and_argument_count_are_refused(nordvpn):
    bad = nordvpn.run("set", "lan-discovery", "maybe")
    assert bad.returncode == 1
    assert bad.stdout.startswith("The command you entered is not valid. Run 'nordvpn set lan-discovery --help'")
    missing = nordvpn.run("set", "lan-discovery")
    assert missing.returncode == 1
    assert "incorrect number of arguments" in missing.stdout
    assert "LAN Discovery: disabled" in settings_lines(nordvpn)


def test_allowlist_subnets_are_listed_tab_indented_after_the_settings(nordvpn):
    add = nordvpn.run("allowlist", "add", "subnet", "10.42.0.0/16")
    assert add.returncode == 0
    assert add.stdout == "Subnet 10.42.0.0/16 has been successfully added to the allowlist.\n"
    assert nordvpn.run("whitelist", "add", "subnet", "8.8.8.0/24").returncode == 0
    lines = settings_lines(nordvpn)
    index = lines.index("Allowlisted subnets:")
    assert lines[index + 1 :] == ["\t10.42.0.0/16", "\t8.8.8.0/24"]


def test_allowlist_add_twice_and_remove_missing_fail(nordvpn):
    assert nordvpn.run("allowlist", "add", "subnet", "10.43.0.0/16").returncode == 0
    again = nordvpn.run("allowlist", "add", "subnet", "10.43.0.0/16")
    assert (again.returncode, again.stdout) == (1, "Subnet 10.43.0.0/16 is already on the allowlist.\n")
    removed = nordvpn.run("allowlist", "remove", "subnet", "10.43.0.0/16")
    assert (removed.returncode, removed.stdout) == (0, "Subnet 10.43.0.0/16 has been deleted from the allowlist.\n")
    missing = nordvpn.run("allowlist", "remove", "subnet", "10.43.0.0/16")
    assert (missing.returncode, missing.stdout) == (1, "Subnet 10.43.0.0/16 is not on the allowlist.\n")


@pytest.mark.parametrize("subnet", ["10.42.0.0", "2001:db8::/32"])
def test_allowlist_rejects_an_invalid_or_ipv6_cidr(nordvpn, subnet):
    # daemon/rpc_set_allowlist.go isSubnetValid: unparsable or not IPv4.
    result = nordvpn.run("allowlist", "add", "subnet", subnet)
    assert result.returncode == 1
    assert "The command you entered is not valid" in result.stdout
    assert not any(line.startswith("Allowlisted") for line in settings_lines(nordvpn))


def test_private_subnets_are_refused_while_lan_discovery_is_on(nordvpn):
    assert nordvpn.run("set", "lan-discovery", "on").returncode == 0
    private = nordvpn.run("allowlist", "add", "subnet", "192.168.5.0/24")
    assert private.returncode == 1
    assert private.stdout == (
        "Allowlisting a private subnet is not available while local network discovery is turned on.\n"
    )
    assert nordvpn.run("allowlist", "add", "subnet", "8.8.8.0/24").returncode == 0


def test_enabling_lan_discovery_drops_private_subnets_from_the_allowlist(nordvpn):
    for subnet in ("10.42.0.0/16", "169.254.0.0/16", "8.8.8.0/24"):
        assert nordvpn.run("allowlist", "add", "subnet", subnet).returncode == 0
    result = nordvpn.run("set", "lan-discovery", "enabled")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "Turning on local network discovery will remove your private subnets from the allowlist.",
        "LAN Discovery has been successfully set to 'enabled'.",
    ]
    lines = settings_lines(nordvpn)
    assert lines[lines.index("Allowlisted subnets:") + 1 :] == ["\t8.8.8.0/24"]


def test_state_survives_a_daemon_restart_and_is_private(nordvpn):
    assert nordvpn.run("set", "lan-discovery", "on").returncode == 0
    nordvpn.stop()
    nordvpn.start()
    assert "LAN Discovery: enabled" in settings_lines(nordvpn)
    assert stat.S_IMODE(nordvpn.state.stat().st_mode) == 0o600


def test_daemon_not_running_reports_the_missing_socket(nordvpn_client):
    client = nordvpn_client
    commands = (
        ("settings",),
        ("status",),
        ("disconnect",),
        ("set", "lan-discovery", "on"),
        ("set", "technology", "openvpn"),
        ("allowlist", "add", "subnet", "10.42.0.0/16"),
    )
    for args in commands:
        result = client.run(*args)
        assert result.returncode == 1
        assert result.stdout.splitlines()[0] == (
            f"Couldn't find {client.sock}. To fix the issue, you may need to reinstall the app."
        )
        assert "The NordVPN background service isn't running." in result.stdout
        assert "systemctl enable --now nordvpnd" in result.stdout
    assert not client.state.exists()


def test_stopped_daemon_removes_its_socket(nordvpn):
    nordvpn.stop()
    assert not nordvpn.sock.exists()
    assert nordvpn.run("settings").returncode == 1


def test_socket_without_a_listener_cannot_reach_the_daemon(nordvpn_client):
    client = nordvpn_client
    client.sock.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(client.sock))
    stale.close()
    result = client.run("settings")
    assert (result.returncode, result.stdout) == (1, "We couldn't reach System Daemon.\n")


def test_unknown_command_fails(nordvpn):
    result = nordvpn.run("teleport")
    assert (result.returncode, result.stdout) == (1, "Command 'teleport' doesn't exist.\n")


def test_version_flag_answers_without_the_daemon(nordvpn_client):
    result = nordvpn_client.run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("NordVPN Version ")


# ----------------------------------------------------------------- allowlisted ports (settings only)


def test_allowlist_ports_are_listed_before_the_subnets(nordvpn):
    # cli/cli_allowlist_add_port.go: no protocol means both, shown `UDP|TCP`.
    assert nordvpn.ok("allowlist", "add", "port", "53") == (
        "Port 53 (UDP|TCP) has been successfully added to the allowlist.\n"
    )
    assert nordvpn.ok("allowlist", "add", "port", "8080", "protocol", "TCP") == (
        "Port 8080 (TCP) has been successfully added to the allowlist.\n"
    )
    nordvpn.ok("allowlist", "add", "port", "8081", "protocol", "TCP")
    nordvpn.ok("allowlist", "add", "subnet", "203.0.113.0/24")
    lines = settings_lines(nordvpn)
    # cli/cli_settings.go displayAllowlist: runs of ports, widths from the largest port.
    assert lines[lines.index("Allowlisted ports:") :] == [
        "Allowlisted ports:",
        "           53 (UDP|TCP)",
        "  8080 - 8081 (TCP)",
        "Allowlisted subnets:",
        "\t203.0.113.0/24",
    ]


def test_allowlist_port_noop_range_and_argument_errors(nordvpn):
    nordvpn.ok("allowlist", "add", "port", "53", "protocol", "UDP")
    # arePortsValid: one protocol already there makes the whole request a no-op.
    result = nordvpn.run("allowlist", "add", "port", "53")
    assert (result.returncode, result.stdout) == (1, "Port 53 (UDP|TCP) is already on the allowlist.\n")
    assert "Port 53 (TCP) has been successfully added" in nordvpn.ok(
        "allowlist", "add", "port", "53", "protocol", "TCP"
    )
    result = nordvpn.run("allowlist", "remove", "port", "54")
    assert (result.returncode, result.stdout) == (1, "Port 54 (UDP|TCP) is not on the allowlist.\n")
    result = nordvpn.run("allowlist", "add", "port", "70000")
    assert (result.returncode, result.stdout) == (1, "Port 70000 value is out of range [1 - 65535].\n")
    for args in (("53", "protocol", "udp"), ("dns",)):
        result = nordvpn.run("allowlist", "add", "port", *args)
        assert result.returncode == 1
        assert result.stdout.startswith("The command you entered is not valid."), result.stdout
    result = nordvpn.run("allowlist", "add", "port", "53", "TCP")
    assert result.stdout.startswith("The command you entered has an incorrect number of arguments."), result.stdout
    assert nordvpn.ok("allowlist", "remove", "port", "53") == (
        "Port 53 (UDP|TCP) has been deleted from the allowlist.\n"
    )
    assert "Allowlisted ports:" not in settings_lines(nordvpn)


def test_kill_switch_is_shown_and_refused_outside_a_test_namespace(nordvpn):
    assert "Kill Switch: disabled" in settings_lines(nordvpn)
    with pytest.raises(pytest.fail.Exception, match="nordvpn_host"):
        nordvpn.run("set", "killswitch", "on")

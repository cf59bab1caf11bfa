# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""What the NordVPN client says about itself: ``nordvpn status`` and ``nordvpn settings`` as
printed by nordvpn-linux 3.x/4.x (cli/cli_status.go, cli/cli_settings.go), and whether its daemon
answers at all.

The nordvpn role parses the same output in YAML (roles/nordvpn/tasks/configure.yml, task "Parse
the client's settings", and vars/main.yml ``nordvpn__daemon_down_patterns``); the two must read
the client alike. Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# What the client prints when its daemon is not there: the socket file is missing ("Couldn't
# find /run/nordvpn/nordvpnd.sock", older "... not found"), or nobody answers on it ("We couldn't
# reach System Daemon.", older "Whoops! Cannot reach System Daemon."); nordvpn-linux cli/cli.go,
# internal/errors.go. The role's twin: nordvpn__daemon_down_patterns.
DAEMON_DOWN_PATTERNS = ("System Daemon", "nordvpnd.sock", "background service isn't running")
# "Key: value" lines; the client starts some with a dash or spaces in older versions.
KEY_VALUE = re.compile(r"^[\s-]*([A-Za-z][A-Za-z0-9 ._/-]*?):\s*(.*?)\s*$")
# Older clients say "Whitelisted subnets:".
SUBNETS_HEADER = re.compile(r"^(Allowlisted|Whitelisted) subnets:\s*$")


def daemon_down(text):
    """Whether the client's output says its daemon does not answer."""
    return any(pattern in (text or "") for pattern in DAEMON_DOWN_PATTERNS)


def _pairs(text):
    found = {}
    for line in (text or "").splitlines():
        match = KEY_VALUE.match(line)
        if match and match.group(2):
            found.setdefault(match.group(1).strip(), match.group(2))
    return found


def parse_status(text):
    """``nordvpn status``: ``status`` (Connected, Disconnected, Connecting, or None when the line
    is missing), ``connected``, ``server``, ``hostname``, ``technology``, ``protocol``, ``uptime``."""
    pairs = _pairs(text)
    status = pairs.get("Status")
    return dict(
        status=status,
        connected=(status or "").lower() == "connected",
        server=pairs.get("Server") or pairs.get("Current server"),
        hostname=pairs.get("Hostname"),
        technology=pairs.get("Current technology") or pairs.get("Technology"),
        protocol=pairs.get("Current protocol") or pairs.get("Protocol"),
        uptime=pairs.get("Uptime"),
    )


def parse_settings(text):
    """``nordvpn settings``: ``lan_discovery`` (enabled, disabled, or None on a client too old to
    know it), ``firewall``, ``kill_switch``, ``technology`` and ``allowlisted_subnets`` (the
    tab-indented CIDRs under "Allowlisted subnets:")."""
    pairs = _pairs(text)
    subnets, inblock = [], False
    for line in (text or "").splitlines():
        if SUBNETS_HEADER.match(line):
            inblock = True
        elif inblock and re.match(r"^\s+\S", line):
            subnets.append(line.strip())
        else:
            inblock = False
    lan = (pairs.get("LAN Discovery") or "").split()
    return dict(
        lan_discovery=lan[0] if lan else None,
        firewall=pairs.get("Firewall"),
        kill_switch=pairs.get("Kill Switch"),
        technology=pairs.get("Technology"),
        allowlisted_subnets=subnets,
    )

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nordvpn_settings
short_description: NordVPN client's LAN discovery, allowlist and DNS port, read once and set in a safe order
version_added: "0.6.0"
description:
  - The NordVPN client side of the role C(integr8scode.provision.nordvpn), in one execution on the host.
  - Finds the client (C(nordvpn) on PATH). Without it, returns RV(installed=false) and changes
    nothing; that is never a failure.
  - Reads C(nordvpn settings) once, with the collection's one parser of the client's output
    (C(module_utils/nordvpn.py), which M(integr8scode.provision.host_status) uses too). Fails,
    naming O(daemon_service) and the command that starts it, when the daemon does not answer
    (C(Couldn't find /run/nordvpn/nordvpnd.sock), C(We couldn't reach System Daemon.)).
  - Works out what must reach past a connected client (O(reach), and with O(reach_node_subnet) the
    subnet of the node address the k3s role's node-address policy chooses), and of that what LAN
    discovery does not let through; that part is allowlisted. A range the client would refuse
    (private address, but reaching beyond the private ranges, while LAN discovery stays on) fails
    the module before anything changes.
  - Then sets only what differs, so a rerun changes nothing - LAN discovery (O(lan_discovery)),
    the missing subnets (O(allowlist_subnets) and the uncovered ranges; none is ever removed), and
    port 53 for each protocol not yet listed (O(allowlist_dns)).
  - Turning LAN discovery off and allowlisting run back to back in this one execution - in
    between, a connected client's firewall drops LAN traffic, which may carry the Ansible
    connection itself. When an allowlist addition fails then, LAN discovery is turned back on and
    the module fails saying so.
  - With O(routes), also returns the IPv4 routes of every routing table (C(ip -4 -json route show
    table all)) for the route-overlap check (filter P(integr8scode.provision.route_overlaps#filter)),
    so a converged host costs this one execution.
  - Messages name the nordvpn role's variables (C(nordvpn_lan_discovery), C(nordvpn_node_ip)) next
    to the options they feed.
options:
  settings:
    description:
      - Read and converge the client's settings. V(false) only finds the client (and reads the
        routes with O(routes)); the daemon is not asked anything.
    type: bool
    default: true
  lan_discovery:
    description: Wanted LAN discovery. Unset leaves it as it is.
    type: bool
  allowlist_subnets:
    description: IPv4 subnets to have on the client's allowlist, added when missing (compared as written).
    type: list
    elements: str
    default: []
  reach:
    description:
      - IPv4 ranges (or addresses) that must reach past a connected client, keyed by where they come
        from (the key names them in the messages), e.g. C(nordvpn_protected_cidrs). What LAN discovery
        does not let through is allowlisted.
    type: dict
    default: {}
  reach_node_subnet:
    description:
      - Add the subnet of the node address to O(reach), chosen by the k3s role's node-address policy
        (as M(integr8scode.provision.k3s_config) chooses it) from O(node_ip), O(node_interface) and
        the C(node-ip) already in O(k3s_config_file) - the LAN address, never the tunnel that holds the
        default route while the client is connected.
    type: bool
    default: false
  node_ip:
    description: The pinned node address (the nordvpn role's C(nordvpn_node_ip), by default C(k3s_node_ip)).
    type: str
    default: ""
  node_interface:
    description: The pinned node interface (C(nordvpn_node_interface), by default C(k3s_node_interface)).
    type: str
    default: ""
  k3s_config_file:
    description: k3s's configuration file, whose C(node-ip) the node-address policy prefers when it is still assigned.
    type: path
    default: /etc/rancher/k3s/config.yaml
  allowlist_dns:
    description:
      - Allowlist port 53 for UDP and TCP (each protocol only when not listed yet). NordVPN 5.x drops
        DNS to private ranges while connected or with the kill switch on unless port 53 is allowlisted
        (nordvpn-linux C(daemon/firewall/nft/nft.go) C(addLanDNSDrop)).
    type: bool
    default: false
  routes:
    description: Also read the IPv4 routes of every routing table and return them (RV(routes)).
    type: bool
    default: false
  daemon_service:
    description: The daemon's systemd unit, named in the error when it does not answer.
    type: str
    default: nordvpnd
  command_timeout:
    description: Seconds one call of the client may take (it waits on its daemon's socket).
    type: int
    default: 60
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - The client applies C(set) and C(allowlist) changes itself; nothing is restarted.
  - Needs root (the client's daemon socket), C(ip) (iproute2) for the node address and the routes,
    and coreutils' C(timeout).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Reads the settings and routes for real, runs no setter, and reports what a real run would change.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: LAN discovery on, port 53 allowlisted, public ranges k3s needs allowlisted
  integr8scode.provision.nordvpn_settings:
    lan_discovery: true
    allowlist_dns: true
    reach:
      nordvpn_protected_cidrs: [10.42.0.0/16, 10.43.0.0/16]
      nordvpn_docker_cidrs: [172.20.0.0/14]
    reach_node_subnet: true
  register: vpn

- name: LAN discovery off; allowlist what k3s needs and the network Ansible comes from
  integr8scode.provision.nordvpn_settings:
    lan_discovery: false
    allowlist_subnets: [203.0.113.0/24]
    reach:
      k3s: [10.42.0.0/16, 10.43.0.0/16]
    reach_node_subnet: true

- name: Only look for the client
  integr8scode.provision.nordvpn_settings:
    settings: false
  register: found
"""

RETURN = r"""
installed:
  description: Whether C(nordvpn) is on PATH.
  returned: always
  type: bool
binary:
  description: The client found.
  returned: when installed
  type: str
  sample: /usr/bin/nordvpn
msg:
  description:
    - What was found - no client; or what must reach past the VPN, what LAN discovery lets through
      and what is allowlisted; or the failure.
  returned: always
  type: str
changes:
  description:
    - One line per change made, or in check mode per change a real run would make (for example
      C(LAN Discovery is disabled; a real run sets it to enabled.)).
  returned: always
  type: list
  elements: str
before:
  description:
    - The settings as read - C(lan_discovery) (V(enabled), V(disabled), or null on a client too old
      for it), C(firewall), C(kill_switch), C(technology), C(allowlisted_subnets),
      C(allowlisted_ports) (runs of C(start), C(end), C(protocols)).
  returned: when the settings were read
  type: dict
after:
  description:
    - The settings read again after the changes (the same as RV(before) when nothing changed); in
      check mode what a real run would leave.
  returned: when the settings were read
  type: dict
needs:
  description: What must reach past the VPN, as networks, keyed by where it comes from.
  returned: when the settings were read
  type: dict
  sample: {"nordvpn_protected_cidrs": ["10.42.0.0/16", "10.43.0.0/16"]}
uncovered:
  description: The networks of RV(needs) that LAN discovery does not let through, which are allowlisted.
  returned: when the settings were read
  type: list
  elements: str
node:
  description: The node address chosen (C(address), C(interface), C(prefix), C(subnet), C(source), C(reason)).
  returned: with reach_node_subnet, when the settings were read
  type: dict
commands:
  description: The setters run, each with C(args), C(rc) and the client's C(output).
  returned: always
  type: list
  elements: dict
routes:
  description:
    - The IPv4 routes of every table as C(ip -4 -json route show table all) printed them (empty when C(ip)
      failed).
  returned: with routes, when installed
  type: list
  elements: dict
routes_error:
  description: Why the routes could not be read.
  returned: when reading the routes failed
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils import nordvpn
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import recorded_node_ip
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
    read_network,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import bounded_argv


def node_subnet(module, p):
    """The node address the k3s role would use (its one node-address policy, read-only) and its subnet."""
    try:
        recorded = recorded_node_ip(p["k3s_config_file"])
        links, main_routes = read_network(module.run_command)
        choice = choose_node_address(
            links, main_routes, p["node_ip"] or None, p["node_interface"] or None, [recorded] if recorded else []
        )
    except (NodeAddressError, ValueError, OSError) as exc:
        module.fail_json(
            msg="The node address, whose subnet k3s and the stack need past the VPN, cannot be chosen from "
            "nordvpn_node_ip '%s' and nordvpn_node_interface '%s' (by default the k3s role's k3s_node_ip and "
            "k3s_node_interface): %s" % (p["node_ip"], p["node_interface"], exc),
            installed=True,
            changes=[],
            commands=[],
        )
    prefix = [s["prefix"] for s in choice["seen"] if s["address"] == choice["address"]][0]
    return dict(
        address=choice["address"],
        interface=choice["interface"],
        prefix=prefix,
        subnet=nordvpn.ipv4_network("%s/%s" % (choice["address"], prefix)),
        source=choice["source"],
        reason=choice["reason"],
    )


def read_routes(module):
    """``ip -4 -json route show table all``: (routes, error)."""
    ip = module.get_bin_path("ip")
    if not ip:
        return [], "ip (iproute2) not found"
    rc, out, err = module.run_command([ip, "-4", "-json", "route", "show", "table", "all"])
    if rc != 0:
        return [], "ip route failed (exit %d): %s" % (rc, (err or out).strip())
    try:
        routes = json.loads(out) if out.strip() else []
    except ValueError as exc:
        return [], "ip route printed no JSON: %s" % exc
    return routes, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            settings=dict(type="bool", default=True),
            lan_discovery=dict(type="bool"),
            allowlist_subnets=dict(type="list", elements="str", default=[]),
            reach=dict(type="dict", default={}),
            reach_node_subnet=dict(type="bool", default=False),
            node_ip=dict(type="str", default=""),
            node_interface=dict(type="str", default=""),
            k3s_config_file=dict(type="path", default="/etc/rancher/k3s/config.yaml"),
            allowlist_dns=dict(type="bool", default=False),
            routes=dict(type="bool", default=False),
            daemon_service=dict(type="str", default="nordvpnd"),
            command_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["command_timeout"] < 1:
        module.fail_json(msg="command_timeout must be at least 1 second, got %d" % p["command_timeout"])
    reach = []
    for source, cidrs in (p["reach"] or {}).items():
        if isinstance(cidrs, str) or not isinstance(cidrs, list):
            module.fail_json(msg="reach.%s must be a list of IPv4 CIDRs, got %r" % (source, cidrs))
        reach.append((source, ["%s" % c for c in cidrs]))

    binary = module.get_bin_path("nordvpn")
    if not binary:
        module.exit_json(
            changed=False,
            installed=False,
            msg="NordVPN client not found on this host (no `nordvpn` on PATH): nothing to do.",
            changes=[],
            commands=[],
        )
    result = dict(changed=False, installed=True, binary=binary, changes=[], commands=[])
    if p["routes"]:
        result["routes"], error = read_routes(module)
        if error:
            result["routes_error"] = error
    if not p["settings"]:
        module.exit_json(msg="NordVPN client found at %s; its settings were not asked for." % binary, **result)

    def run(args):
        rc, out, err = module.run_command(bounded_argv(module.get_bin_path, p["command_timeout"], binary, *args))
        # The client prints its errors on stdout (color.Red); stderr only adds to it.
        return rc, ((out or "") + (err or "")).strip()

    rc, said = run(["settings"])
    if rc != 0:
        module.fail_json(msg=nordvpn.settings_failure(p["daemon_service"], rc, said, p["command_timeout"]), **result)
    before = nordvpn.parse_settings(said)
    result["before"] = result["after"] = before
    if p["lan_discovery"] is not None and before["lan_discovery"] not in ("enabled", "disabled"):
        module.fail_json(
            msg='`nordvpn settings` printed no "LAN Discovery: enabled|disabled" line; this client is too old for '
            "LAN discovery (update NordVPN). It printed: %s" % " | ".join(said.splitlines()),
            **result,
        )

    lan_on = before["lan_discovery"] == "enabled" if p["lan_discovery"] is None else p["lan_discovery"]
    if p["reach_node_subnet"]:
        result["node"] = node_subnet(module, p)
        reach.append(
            (
                "the subnet of node address %s (%s)" % (result["node"]["address"], result["node"]["interface"]),
                [result["node"]["subnet"]],
            )
        )
    try:
        planned_reach = nordvpn.reach_plan(reach, lan_on)
    except ValueError as exc:
        module.fail_json(msg="reach: %s" % exc, **result)
    result["needs"] = dict(planned_reach["needs"])
    result["uncovered"] = planned_reach["uncovered"]
    if planned_reach["refused"]:
        module.fail_json(msg=nordvpn.refused_message(planned_reach["refused"]), **result)
    result["msg"] = (
        nordvpn.needs_message(planned_reach["needs"], planned_reach["uncovered"], lan_on)
        if planned_reach["needs"]
        else "LAN discovery is %s." % ("on" if lan_on else "off")
    )

    planned = nordvpn.plan_changes(
        before, p["lan_discovery"], list(p["allowlist_subnets"]) + planned_reach["uncovered"], p["allowlist_dns"]
    )
    result["changes"] = nordvpn.describe_plan(before, planned, module.check_mode)
    result["changed"] = bool(result["changes"])
    if not result["changed"]:
        module.exit_json(**result)
    if module.check_mode:
        result["after"] = nordvpn.predict(before, planned)
        module.exit_json(**result)
    try:
        result["commands"] = nordvpn.apply(run, before, planned)
    except nordvpn.NordVPNError as exc:
        result["commands"] = exc.done
        result["changes"] = []
        result["changed"] = any(step["rc"] == 0 for step in exc.done)
        result["msg"] = str(exc)
        module.fail_json(**result)
    rc, said = run(["settings"])
    if rc == 0:
        result["after"] = nordvpn.parse_settings(said)
    else:
        result["after"] = nordvpn.predict(before, planned)
        module.warn("`nordvpn settings` failed after the changes (exit %d): %s" % (rc, said))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

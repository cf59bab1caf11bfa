# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Drift between where k3s thinks it lives and where the host is now (the k3s_drift module's
logic; its argument spec lives here beside the code that reads it). The expected node address is
the collection's one node-address policy (node_address.py); the recorded ones come from
config.yaml, the serving certificates (tls.py), the datastore (datastore.py) and the kubeconfigs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    effective_data_dir,
    first_node_ip,
    is_ip,
    read_config,
    scalar,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import (
    api_node_names,
    datastore_kind,
    etcd_member_ips,
    sqlite_nodes,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.journal import describe as describe_journal
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.journal import read_journal, writer_alive
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
    excluded_reason,
    flannel_iface_for,
    is_down,
    main_default_metrics,
    read_network,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.tls import recorded_tls_ips
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import describe as describe_unit
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    etcd_member_mismatch,
    is_crash_looping,
    main_process_log,
    parse_unit_show,
    starting_for,
    unit_state,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.kubeconfig import kubeconfig_info

ARGUMENT_SPEC = dict(
    config_file=dict(type="path", default="/etc/rancher/k3s/config.yaml"),
    data_dir=dict(type="path"),
    service=dict(type="str", default="k3s"),
    node_name=dict(type="str"),
    node_ip=dict(type="str"),
    node_interface=dict(type="str"),
    flannel_iface=dict(type="str"),
    kubeconfigs=dict(type="list", elements="path", default=["/etc/rancher/k3s/k3s.yaml"]),
    hung_start_after=dict(type="float", default=300.0),
)


class DriftError(Exception):
    """The host could not be read."""


def host_addresses(links):
    """Global-scope addresses from `ip -d -j addr show`; ``tunnel`` is the node-address policy's
    verdict (a tunnel or virtual device never carries the node address)."""
    result = []
    for link in links:
        excluded = excluded_reason(link, links)
        for addr in link.get("addr_info", []):
            if addr.get("scope") != "global" or addr.get("family") not in ("inet", "inet6"):
                continue
            result.append(
                {
                    "interface": link.get("ifname", ""),
                    "address": addr.get("local"),
                    "prefix": addr.get("prefixlen"),
                    "family": addr.get("family"),
                    "tunnel": bool(excluded),
                    "down": is_down(link),
                }
            )
    return result


def default_route(links, main_routes):
    """The main table's default route (lowest metric, as the kernel picks it); NordVPN keeps its
    own in policy table 205."""
    metrics = main_default_metrics(main_routes)
    if not metrics:
        return None
    dev = sorted(metrics, key=lambda name: (metrics[name], name))[0]
    link = next((item for item in links if item.get("ifname") == dev), {"ifname": dev})
    return {"interface": dev, "tunnel": bool(excluded_reason(link, links))}


def refusals(config, sources, *, config_file, data_dir, node_name, nodes, etcd_peers):
    """What the recovery (recover.yml and the watcher alike) cannot rebuild safely, one message
    each: it writes only ``config_file``, wipes only this server's data dir, and knows one node.
    ``nodes``: node names in the datastore (SQLite's kine table, or the API while an etcd server
    serves); ``etcd_peers``: addresses in etcd's config."""
    found = []
    for key in ("node-ip", "flannel-iface"):
        where = sources.get(key)
        if where and where != config_file:
            # The drop-in wins over what the recovery writes, so k3s would come back on the old
            # address and the watcher would rebuild again and again.
            found.append(
                "%s is set in %s, not in %s: edit it there or move it; the recovery only writes %s"
                % (key, where, config_file, config_file)
            )
    items = config.get("node-ip")
    items = items if isinstance(items, (list, tuple)) else str(items or "").split(",")
    if any(":" in str(item) for item in items):
        found.append(
            "node-ip %s is IPv6 or dual-stack (in %s): the recovery supports single-stack IPv4 nodes only"
            % (",".join(str(i).strip() for i in items), sources.get("node-ip"))
        )
    if config.get("datastore-endpoint"):
        found.append(
            "k3s uses an external datastore (datastore-endpoint in %s): its data is not on this host, and "
            "wiping server/db would not move it" % sources.get("datastore-endpoint")
        )
    if config.get("server"):
        found.append(
            "this server joins another one (server: in %s): multi-server clusters are not supported by the recovery"
            % sources.get("server")
        )
    if len(etcd_peers) > 1:
        found.append(
            "embedded etcd lists other members (%s): multi-server clusters are not supported by the recovery"
            % ", ".join(etcd_peers)
        )
    others = sorted(name for name in nodes if name != node_name)
    if others:
        found.append(
            "the datastore holds other nodes (%s): a rebuild would drop them; agents are not supported by the "
            "recovery yet" % ", ".join(others)
        )
    configured = scalar(config.get("data-dir"))
    if configured and os.path.normpath(configured) != os.path.normpath(data_dir):
        found.append(
            "k3s's data-dir is %s (in %s) but the recovery is set to %s (k3s_recover_data_dir; empty follows "
            "config.yaml)" % (configured, sources.get("data-dir"), data_dir)
        )
    return found


# --------------------------------------------------------------------------- assessment


def assess(facts):
    """Findings from gathered facts; pure so it is unit-testable."""
    findings = []

    def add(check, severity, message, expected=None, actual=None, **extra):
        item = {"check": check, "severity": severity, "message": message, "expected": expected, "actual": actual}
        item.update(extra)
        findings.append(item)

    host_ips = {a["address"] for a in facts["addresses"]}
    config_ip = facts["config_ip"]
    expected = facts["expected_ip"]
    config_file = facts.get("config_ip_file") or facts["config_file"]

    if config_ip and config_ip not in host_ips:
        add(
            "config_node_ip_on_host",
            "drift",
            "node-ip %s in %s is not assigned to any interface (host has: %s)"
            % (config_ip, config_file, ", ".join(sorted(host_ips)) or "none"),
            expected=expected,
            actual=config_ip,
        )
    if not expected:
        add(
            "node_ip_available",
            "drift",
            facts.get("node_address_error") or "no usable address for the k3s node on this host",
            None,
            None,
        )
    elif config_ip and config_ip in host_ips and config_ip != expected:
        add(
            "config_node_ip_policy",
            "drift",
            "node-ip %s in %s is not the address the node-address policy chooses, %s (%s)"
            % (config_ip, config_file, expected, facts.get("node_address_reason") or "pinned"),
            expected=expected,
            actual=config_ip,
        )

    iface = facts.get("flannel_iface")
    if iface and iface not in facts["interfaces"]:
        add(
            "flannel_iface_exists",
            "drift",
            "flannel-iface %s does not exist on this host" % iface,
            expected=facts.get("recommended_iface"),
            actual=iface,
        )
    elif (
        iface
        and facts.get("recommended_iface")
        and expected
        and iface != facts.get("recommended_iface")
        and expected != config_ip
    ):
        add(
            "flannel_iface_matches_node_ip",
            "drift",
            "flannel-iface %s does not carry the new node IP %s (it is on %s)"
            % (iface, expected, facts["recommended_iface"]),
            expected=facts["recommended_iface"],
            actual=iface,
        )

    if expected:
        tls = facts.get("recorded_tls") or []
        if tls and expected not in tls:
            add(
                "tls_san",
                "drift",
                "k3s serving certificate covers %s, not %s (server/tls holds the old address)"
                % (", ".join(tls), expected),
                expected=expected,
                actual=tls,
            )
        store = facts.get("recorded_datastore") or []
        if store and expected not in store:
            add(
                "datastore_node_ip",
                "drift",
                "the %s datastore records the node at %s, not %s"
                % (facts.get("datastore"), ", ".join(store), expected),
                expected=expected,
                actual=store,
            )
        for kc in facts.get("kubeconfigs", []):
            host = kc.get("server_host")
            if not kc.get("exists") or not host or not is_ip(host):
                continue
            if ipaddress.ip_address(host).is_loopback:
                continue
            if host != expected:
                add(
                    "kubeconfig_server",
                    "drift",
                    "%s points at %s, not the node IP %s" % (kc["path"], kc["server"], expected),
                    expected=expected,
                    actual=host,
                    path=kc["path"],
                )
    for kc in facts.get("kubeconfigs", []):
        if kc.get("ca_matches") is False:
            add(
                "kubeconfig_ca",
                "drift",
                "%s trusts a different CA than the cluster's server-ca.crt (stale copy)" % kc["path"],
                path=kc["path"],
            )
    route = facts.get("default_route")
    if route and route.get("tunnel") and facts.get("recommended_iface") != route.get("interface"):
        add(
            "default_route_tunnel",
            "warning",
            "the default route is on %s (a tunnel, e.g. a VPN); flannel must stay on %s (k3s #12459)"
            % (route["interface"], facts.get("recommended_iface")),
            expected=facts.get("recommended_iface"),
            actual=route["interface"],
        )
    for warning in facts.get("node_address_warnings") or ():
        add("node_ip_carrier", "warning", warning)
    hang = facts.get("etcd_member_mismatch")
    if hang:
        add(
            "etcd_member",
            "drift",
            "k3s hangs starting (activating %ss, NRestarts=%s): embedded etcd's member list holds %s while k3s "
            "starts on %s, so etcd reports `not a member of the etcd cluster` (k3s #7558, #2732)"
            % (
                int(facts.get("starting_for") or 0),
                facts["service"].get("n_restarts"),
                ", ".join(hang[0]) or "another address",
                hang[1],
            ),
            expected=expected,
            actual=hang[0],
        )
    elif facts.get("starting_for") is not None and facts["starting_for"] >= facts.get("hung_start_after", 300.0):
        add(
            "service_start_hung",
            "warning",
            "%s has been starting for %ss without reporting ready (ActiveState=activating, NRestarts=%s)"
            % (facts["service_name"], int(facts["starting_for"]), facts["service"].get("n_restarts")),
        )
    if facts.get("crash_looping"):
        svc = facts["service"]
        add(
            "service_running",
            "warning",
            describe_unit("k3s", svc),
        )
    return findings


def detect(module, params, known_nodes=None):
    """(result, warnings) of the drift check; ``module`` runs commands (run_command,
    get_bin_path). ``known_nodes``: the node names a caller has just read through the API (the
    recovery, once its node was Ready), which with embedded etcd stand for the API listing. Raises
    DriftError when the host cannot be read."""
    if params["node_ip"] and not is_ip(params["node_ip"]):
        raise DriftError("node_ip: %r is not an IP address" % params["node_ip"])

    config, sources, config_errors = read_config(params["config_file"])
    data_dir = effective_data_dir(params["config_file"], params["data_dir"], config)
    installed = os.path.isfile(params["config_file"]) or os.path.isdir(os.path.join(data_dir, "server"))

    if not module.get_bin_path("ip"):
        raise DriftError("the ip command (iproute2) is required to read the host's addresses")
    try:
        links, main_routes = read_network(module.run_command)
    except NodeAddressError as exc:
        raise DriftError(str(exc)) from exc
    addresses = host_addresses(links)
    interfaces = sorted(link.get("ifname") for link in links)
    route = default_route(links, main_routes)

    warnings = list(config_errors)
    tls_dir = os.path.join(data_dir, "server", "tls")
    recorded_tls, tls_files, tls_errors = recorded_tls_ips(tls_dir, config, module.run_command)
    warnings.extend(tls_errors)

    db_dir = os.path.join(data_dir, "server", "db")
    etcd_dir = os.path.join(db_dir, "etcd")
    datastore = datastore_kind(data_dir, config, installed)
    # k3s lowercases the host name it registers (pkg/agent/config).
    node_name = (params["node_name"] or scalar(config.get("node-name")) or socket.gethostname()).lower()
    nodes = {}
    if datastore == "etcd":
        recorded_store, store_error = etcd_member_ips(etcd_dir)
    elif datastore == "sqlite":
        nodes, store_error = sqlite_nodes(os.path.join(db_dir, "state.db"))
        recorded_store = nodes.get(node_name) or sorted(set(ip for ips in nodes.values() for ip in ips))
    else:
        recorded_store, store_error = [], None
    if store_error:
        warnings.append(store_error)

    # The collection's one node-address policy, as the k3s role and the watcher apply it.
    config_ip = first_node_ip(config.get("node-ip"))
    flannel_iface = scalar(config.get("flannel-iface"))
    recorded = []
    for ip in [config_ip] + recorded_store:
        if ip and ip not in recorded:
            recorded.append(ip)
    try:
        choice = choose_node_address(links, main_routes, params["node_ip"], params["node_interface"], recorded)
        recommended, recommended_iface = choice["address"], flannel_iface_for(choice, params["flannel_iface"])
        policy = {"source": choice["source"], "reason": choice["reason"], "error": None, "warnings": choice["warnings"]}
    except NodeAddressError as exc:
        recommended, recommended_iface = None, None
        policy = {"source": None, "reason": None, "error": str(exc), "warnings": []}
    expected = recommended

    cluster_ca = None
    ca_path = os.path.join(tls_dir, "server-ca.crt")
    if os.path.isfile(ca_path):
        with open(ca_path, "rb") as handle:
            cluster_ca = handle.read()
    kubeconfigs = [kubeconfig_info(p, cluster_ca) for p in params["kubeconfigs"]]

    systemctl = module.get_bin_path("systemctl")
    if systemctl:
        service = unit_state(module.run_command, params["service"], systemctl)
    else:
        service = dict(parse_unit_show(""), error="systemctl not found")
    nodes_unknown = None
    if datastore == "etcd" and known_nodes is not None:
        nodes = dict((name, []) for name in known_nodes)
    elif datastore == "etcd":
        k3s_binary = module.get_bin_path("k3s")
        if service.get("active_state") == "active" and k3s_binary and params["kubeconfigs"]:
            names, nodes_unknown = api_node_names(module, k3s_binary, params["kubeconfigs"][0])
            nodes = dict((name, []) for name in names)
        else:
            nodes_unknown = "k3s does not serve its API (%s)" % service.get("active_state")
    crash = is_crash_looping(service)
    starting = starting_for(service)
    mismatch = None
    if starting is not None and datastore == "etcd":
        journalctl = module.get_bin_path("journalctl")
        if journalctl:
            mismatch = etcd_member_mismatch(main_process_log(module.run_command, service, journalctl=journalctl))

    facts = {
        "config_file": params["config_file"],
        "config_ip": config_ip,
        "config_ip_file": sources.get("node-ip"),
        "expected_ip": expected,
        "node_address_error": policy["error"],
        "node_address_reason": policy["reason"],
        "addresses": addresses,
        "interfaces": interfaces,
        "default_route": route,
        "flannel_iface": flannel_iface,
        "recommended_iface": recommended_iface,
        "recorded_tls": recorded_tls,
        "recorded_datastore": recorded_store,
        "datastore": datastore,
        "kubeconfigs": kubeconfigs,
        "service": service,
        "crash_looping": crash,
        "starting_for": starting,
        "hung_start_after": params["hung_start_after"],
        "service_name": params["service"],
        "etcd_member_mismatch": mismatch,
        "node_address_warnings": policy["warnings"],
    }
    findings = assess(facts) if installed else []
    interrupted = read_journal(data_dir)
    if interrupted and writer_alive(interrupted):
        # A recovery in progress (its process runs): not this check's to judge.
        warnings.append("a recovery is in progress: %s" % describe_journal(interrupted, "now at"))
        interrupted = None
    if interrupted:
        # A recovery that was killed: the next one undoes its stops or finishes it (journal.py).
        findings.append(dict(
            check="interrupted_recovery", severity="drift", expected=None, actual=interrupted.get("stage"),
            message="an interrupted %s: the next recovery finishes or undoes it" % describe_journal(interrupted),
        ))  # fmt: skip
    if nodes_unknown and any(f["severity"] == "drift" for f in findings):
        warnings.append(
            "other nodes in the etcd datastore cannot be ruled out: %s; a rebuild would drop agents joined "
            "to this server" % nodes_unknown
        )
    refused = (
        refusals(
            config,
            sources,
            config_file=params["config_file"],
            data_dir=data_dir,
            node_name=node_name,
            nodes=nodes,
            etcd_peers=recorded_store if datastore == "etcd" else [],
        )
        if installed
        else []
    )
    result = {
        "changed": False,
        "installed": installed,
        "drift": any(f["severity"] == "drift" for f in findings),
        "findings": findings,
        "datastore": datastore,
        "crash_looping": crash if installed else False,
        "refused": refused,
        "interrupted": interrupted,
        "starting_for": starting,
        "service": service,
        "node_ip": {
            "config": config_ip,
            "config_file": sources.get("node-ip"),
            "recorded_tls": recorded_tls,
            "tls_files": tls_files,
            "recorded_datastore": recorded_store,
            "expected": expected,
            "recommended": recommended,
        },
        "recommended_node_ip": recommended,
        "recommended_flannel_iface": recommended_iface,
        "node_address": policy,
        "flannel_iface": flannel_iface,
        "node_name": node_name,
        "host": {"addresses": addresses, "default_route": route, "interfaces": interfaces},
        "kubeconfigs": kubeconfigs,
        "data_dir": data_dir,
    }
    return result, warnings

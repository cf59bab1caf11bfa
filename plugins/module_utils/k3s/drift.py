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
import json
import os
import socket

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    DEFAULT_DATA_DIR,
    first_node_ip,
    is_ip,
    read_config,
    scalar,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.datastore import (
    datastore_kind,
    etcd_member_ips,
    sqlite_node_ips,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
    excluded_reason,
    flannel_iface_for,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.tls import recorded_tls_ips
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import describe as describe_unit
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    is_crash_looping,
    parse_unit_show,
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
)


class DriftError(Exception):
    """The host could not be read."""


def parse_ip_addr_json(text):
    """Global-scope addresses from `ip -j addr show`; ``tunnel`` is the node-address policy's
    verdict (a tunnel or virtual device never carries the node address)."""
    result = []
    for link in json.loads(text or "[]"):
        excluded = excluded_reason(link)
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
                }
            )
    return result


def parse_default_route_json(text):
    """The main table's default route; NordVPN keeps its own in policy table 205."""
    routes = json.loads(text or "[]")
    if not routes:
        return None
    # Lowest metric wins, as the kernel picks it.
    route = sorted(routes, key=lambda r: r.get("metric", 0))[0]
    dev = route.get("dev") or ""
    tunnel = bool(excluded_reason({"ifname": dev, "flags": route.get("flags")})) and dev != "lo"
    return {"interface": dev, "gateway": route.get("gateway"), "tunnel": tunnel}


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
    if facts.get("crash_looping"):
        svc = facts["service"]
        add(
            "service_running",
            "warning",
            describe_unit("k3s", svc),
        )
    return findings


def detect(module, params):
    """(result, warnings) of the drift check; ``module`` runs commands (run_command,
    get_bin_path). Raises DriftError when the host cannot be read."""
    if params["node_ip"] and not is_ip(params["node_ip"]):
        raise DriftError("node_ip: %r is not an IP address" % params["node_ip"])

    config, sources, config_errors = read_config(params["config_file"])
    data_dir = params["data_dir"] or scalar(config.get("data-dir")) or DEFAULT_DATA_DIR
    installed = os.path.isfile(params["config_file"]) or os.path.isdir(os.path.join(data_dir, "server"))

    ip_bin = module.get_bin_path("ip")
    if not ip_bin:
        raise DriftError("the ip command (iproute2) is required to read the host's addresses")
    rc, out, err = module.run_command([ip_bin, "-j", "addr", "show"])
    if rc != 0:
        raise DriftError("ip -j addr show failed: %s" % err.strip())
    links = json.loads(out or "[]")
    addresses = parse_ip_addr_json(out)
    interfaces = sorted(link.get("ifname") for link in links)
    rc, route_out, err = module.run_command([ip_bin, "-j", "-4", "route", "show", "table", "main"])
    main_routes = json.loads(route_out or "[]") if rc == 0 else []
    default_route = parse_default_route_json(
        json.dumps([r for r in main_routes if r.get("dst") in ("default", "0.0.0.0/0")])
    )

    warnings = list(config_errors)
    tls_dir = os.path.join(data_dir, "server", "tls")
    recorded_tls, tls_files, tls_errors = recorded_tls_ips(tls_dir, config, module.run_command)
    warnings.extend(tls_errors)

    db_dir = os.path.join(data_dir, "server", "db")
    etcd_dir = os.path.join(db_dir, "etcd")
    datastore = datastore_kind(data_dir, config, installed)
    node_name = params["node_name"] or scalar(config.get("node-name")) or socket.gethostname()
    if datastore == "etcd":
        recorded_store, store_error = etcd_member_ips(etcd_dir)
    elif datastore == "sqlite":
        recorded_store, store_error = sqlite_node_ips(os.path.join(db_dir, "state.db"), node_name)
    else:
        recorded_store, store_error = [], None
    if store_error:
        warnings.append(store_error)

    # The collection's one node-address policy, as the k3s role and the watcher apply it.
    config_ip = first_node_ip(config.get("node-ip"))
    flannel_iface = scalar(config.get("flannel-iface"))
    recorded = [ip for ip in [config_ip] + recorded_store if ip]
    try:
        choice = choose_node_address(links, main_routes, params["node_ip"], params["node_interface"], recorded)
        recommended, recommended_iface = choice["address"], flannel_iface_for(choice, params["flannel_iface"])
        policy = {"source": choice["source"], "reason": choice["reason"], "error": None}
    except NodeAddressError as exc:
        recommended, recommended_iface = None, None
        policy = {"source": None, "reason": None, "error": str(exc)}
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
    crash = is_crash_looping(service)

    facts = {
        "config_file": params["config_file"],
        "config_ip": config_ip,
        "config_ip_file": sources.get("node-ip"),
        "expected_ip": expected,
        "node_address_error": policy["error"],
        "node_address_reason": policy["reason"],
        "addresses": addresses,
        "interfaces": interfaces,
        "default_route": default_route,
        "flannel_iface": flannel_iface,
        "recommended_iface": recommended_iface,
        "recorded_tls": recorded_tls,
        "recorded_datastore": recorded_store,
        "datastore": datastore,
        "kubeconfigs": kubeconfigs,
        "service": service,
        "crash_looping": crash,
    }
    findings = assess(facts) if installed else []
    result = {
        "changed": False,
        "installed": installed,
        "drift": any(f["severity"] == "drift" for f in findings),
        "findings": findings,
        "datastore": datastore,
        "crash_looping": crash if installed else False,
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
        "host": {"addresses": addresses, "default_route": default_route, "interfaces": interfaces},
        "kubeconfigs": kubeconfigs,
        "data_dir": data_dir,
    }
    return result, warnings

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_drift
short_description: Detect that k3s's recorded node IP has drifted from the host (read-only)
version_added: "0.1.0"
description:
  - Compares, without changing anything, where k3s thinks it lives with where the host is now.
  - Reads C(node-ip) and C(flannel-iface) from the k3s configuration file and its drop-ins, the
    host's addresses and the interface that holds the default route (for example a VPN tunnel),
    the node IP k3s recorded in its serving certificates under C(server/tls), the node record in
    the SQLite datastore or the member URLs of embedded etcd, the server address of each given
    kubeconfig, and the state of the k3s systemd unit.
  - After a VPN switch or IP change k3s keeps the old address in its datastore and certificates
    and crash-loops (upstream Integr8sCode troubleshooting; k3s
    L(#5880,https://github.com/k3s-io/k3s/issues/5880)). This module is the detection half of the
    M(integr8scode.provision.k3s_recover) role and of its watcher.
  - A host without k3s (no configuration file and no data directory) reports C(installed=false)
    and C(drift=false).
options:
  config_file:
    description: The k3s configuration file. Drop-ins in C(<config_file>.d/*.yaml) are read too.
    type: path
    default: /etc/rancher/k3s/config.yaml
  data_dir:
    description:
      - The k3s data directory. Defaults to C(data-dir) from the configuration, else
        C(/var/lib/rancher/k3s).
    type: path
  service:
    description: The k3s systemd unit, for the crash-loop report.
    type: str
    default: k3s
  node_name:
    description:
      - Node name whose datastore record is read. Defaults to C(node-name) from the
        configuration, else the host name.
    type: str
  node_ip:
    description:
      - The node IP the host should use now (the k3s role's C(k3s_node_ip)). Without it the
        collection's node-address policy recommends one (see M(integr8scode.provision.k3s_config)):
        O(node_interface)'s address, else the address k3s records while a LAN interface still
        holds it, else the LAN interface of the main table's default route; never a tunnel or
        virtual device.
    type: str
  node_interface:
    description: Interface whose first IPv4 address is the node IP (C(k3s_node_interface)).
    type: str
  flannel_iface:
    description: C(flannel-iface) to recommend when it must differ from the node IP's interface (C(k3s_flannel_iface)).
    type: str
  kubeconfigs:
    description:
      - Kubeconfig files whose server address (and CA) are compared with the node IP, for
        example the admin C(k3s.yaml), the user's C(~/.kube/config) and the app's
        C(backend/kubeconfig.yaml). Missing files are reported, not errors.
    type: list
    elements: path
    default: [/etc/rancher/k3s/k3s.yaml]
author:
  - integr8scode.provision maintainers (@integr8scode)
notes:
  - Read-only; supports check mode. Needs C(ip) (iproute2) with JSON output and, for the unit
    state, C(systemctl). Certificates are parsed with the Python C(cryptography) library when it
    is present, else with the C(openssl) command; without either the certificate check is
    reported as unreadable.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Look for drift between k3s and the host
  integr8scode.provision.k3s_drift:
    kubeconfigs:
      - /etc/rancher/k3s/k3s.yaml
      - /root/.kube/config
      - /opt/Integr8sCode/backend/kubeconfig.yaml
  register: drift

- name: Say what drifted
  ansible.builtin.debug:
    msg: "{{ drift.findings | map(attribute='message') | list }}"
  when: drift.drift
"""

RETURN = r"""
installed:
  description: Whether k3s is present (configuration file or data directory exists).
  returned: always
  type: bool
drift:
  description: Whether any finding of severity C(drift) was made.
  returned: always
  type: bool
findings:
  description:
    - Every check that failed. C(severity) is C(drift) (recovery needed) or C(warning)
      (worth knowing, no recovery needed, e.g. the default route is on a tunnel).
  returned: always
  type: list
  elements: dict
  sample:
    - check: config_node_ip_on_host
      severity: drift
      expected: 10.77.0.5
      actual: 172.17.0.3
      message: node-ip 172.17.0.3 in /etc/rancher/k3s/config.yaml is not assigned to any interface
datastore:
  description: C(etcd) (embedded etcd, C(server/db/etcd) or C(cluster-init)), C(sqlite), or null.
  returned: always
  type: str
crash_looping:
  description: Whether the unit is failing to start (auto-restart, failed, or restarting).
  returned: always
  type: bool
service:
  description: The unit's C(active_state), C(sub_state), C(result), C(n_restarts), C(load_state).
  returned: always
  type: dict
node_ip:
  description:
    - C(config) (node-ip from the configuration, or null), C(config_file) (the file that sets
      it), C(recorded_tls) (IPs k3s put in its serving certificates), C(recorded_datastore)
      (InternalIP of the node record or etcd member URLs), C(expected) (what k3s should use
      now) and C(recommended) (what to write into the configuration; null when no address fits).
  returned: always
  type: dict
recommended_node_ip:
  description: Shortcut for C(node_ip.recommended).
  returned: always
  type: str
recommended_flannel_iface:
  description: The interface that holds the recommended node IP (or O(flannel_iface)).
  returned: always
  type: str
node_address:
  description: The node-address policy's C(source) and C(reason), or its C(error) when no address qualifies.
  returned: always
  type: dict
flannel_iface:
  description: C(flannel-iface) from the configuration, or null.
  returned: always
  type: str
host:
  description:
    - C(addresses) (list of C(interface), C(address), C(prefix), C(family), C(tunnel)),
      C(default_route) (C(interface), C(gateway), C(tunnel)).
  returned: always
  type: dict
kubeconfigs:
  description:
    - Per file C(path), C(exists), C(server), C(server_host), C(ca_matches) (null when unknown) and C(sha256)
      of the file (to notice that a kubeconfig was rewritten).
  returned: always
  type: list
  elements: dict
data_dir:
  description: The data directory that was read.
  returned: always
  type: str
"""

import base64
import hashlib
import ipaddress
import json
import os
import re
import socket
import sqlite3

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    DEFAULT_DATA_DIR,
    HAS_YAML,
    first_node_ip,
    is_ip,
    read_config,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import scalar as _scalar
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    NodeAddressError,
    choose_node_address,
    excluded_reason,
    flannel_iface_for,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    describe as describe_unit,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import (
    is_crash_looping,
    parse_unit_show,
    unit_state,
)

if HAS_YAML:
    import yaml

try:
    from cryptography import x509

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - exercised on hosts without cryptography
    HAS_CRYPTOGRAPHY = False

SERVING_CERTS = ("serving-kube-apiserver.crt", "dynamic-cert.json")
IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


def service_cluster_ip(config):
    """First address of service-cidr (10.43.0.1 by default): always a SAN, never the node."""
    cidr = _scalar(config.get("service-cidr")) or "10.43.0.0/16"
    result = set()
    for part in cidr.split(","):
        try:
            net = ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            continue
        result.add(str(net.network_address + 1))
    return result


def node_candidate_ips(ips, config):
    """SAN IPs minus loopback, link-local and the service IP.

    tls-san entries stay: installers commonly add the node IP there too, so they cannot be told
    apart; drift is judged by whether the certificate covers the node IP k3s must serve on now.
    """
    excluded = service_cluster_ip(config)
    out = []
    for ip in ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if addr.is_loopback or addr.is_link_local or addr.is_unspecified or ip in excluded:
            continue
        if ip not in out:
            out.append(ip)
    return out


def cert_ip_sans(pem_bytes, run_command=None):
    """IP SANs of the first certificate in a PEM blob."""
    if HAS_CRYPTOGRAPHY:
        cert = x509.load_pem_x509_certificate(pem_bytes)
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
    if run_command is None:
        raise RuntimeError("neither the cryptography library nor an openssl runner is available")
    rc, out, err = run_command(["openssl", "x509", "-noout", "-text"], data=pem_bytes, binary_data=True)
    if rc != 0:
        raise RuntimeError("openssl x509 failed: %s" % err.strip())
    return re.findall(r"IP Address:([0-9A-Fa-f:.]+)", out)


def pem_from_file(path):
    """PEM bytes of a .crt, or of the tls.crt inside k3s's dynamic-cert.json (Secret JSON)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if path.endswith(".json"):
        data = json.loads(raw.decode("utf-8"))
        blob = (data.get("data") or {}).get("tls.crt") or data.get("cert") or data.get("tls.crt")
        if not blob:
            raise ValueError("no tls.crt in %s" % path)
        return base64.b64decode(blob) if "BEGIN" not in blob else blob.encode()
    return raw


def recorded_tls_ips(tls_dir, config, run_command=None):
    """Node IPs k3s wrote into its serving certificates; (ips, files read, errors)."""
    files = [os.path.join(tls_dir, n) for n in SERVING_CERTS if os.path.isfile(os.path.join(tls_dir, n))]
    if not files and os.path.isdir(tls_dir):
        files = [
            os.path.join(tls_dir, n)
            for n in sorted(os.listdir(tls_dir))
            if n.startswith("serving-") and n.endswith(".crt")
        ]
    ips, errors = [], []
    for path in files:
        try:
            sans = cert_ip_sans(pem_from_file(path), run_command)
        except Exception as exc:  # unreadable certificate: report, don't fail detection
            errors.append("%s: %s" % (path, exc))
            continue
        for ip in node_candidate_ips(sans, config):
            if ip not in ips:
                ips.append(ip)
    return ips, files, errors


def ips_from_node_record(blob):
    """InternalIP addresses in a node object, stored as JSON or as Kubernetes protobuf.

    Protobuf NodeAddress is `type` then `address` as length-prefixed strings, so the address
    follows "InternalIP" within a few bytes; JSON may order the keys either way. The k3s
    annotation `k3s.io/internal-ip` is read as well.
    """
    if isinstance(blob, bytes):
        text = blob.decode("latin-1")
    else:
        text = str(blob)
    found = []
    patterns = (
        r"InternalIP[\"']?.{0,24}?(?:address[\"']?\s*:\s*[\"']?)?(\d{1,3}(?:\.\d{1,3}){3})",
        r"address[\"']?\s*:\s*[\"'](\d{1,3}(?:\.\d{1,3}){3})[\"']\s*,\s*[\"']type[\"']\s*:\s*[\"']InternalIP",
        r"k3s\.io/internal-ip[\"']?\s*[:=]?.{0,4}?(\d{1,3}(?:\.\d{1,3}){3})",
    )
    for pattern in patterns:
        for match in re.finditer(pattern, text, re.S):
            ip = match.group(1)
            if is_ip(ip) and ip not in found:
                found.append(ip)
    return found


def sqlite_node_ips(db_path, node_name):
    """(ips, error) from the newest kine row of the node (or of every node if the name is absent)."""
    if not os.path.isfile(db_path):
        return [], None
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=2)
    except sqlite3.Error as exc:
        return [], "cannot open %s: %s" % (db_path, exc)
    try:
        rows = conn.execute(
            "SELECT name, value, deleted FROM kine WHERE name LIKE '/registry/minions/%' ORDER BY id"
        ).fetchall()
    except sqlite3.Error as exc:
        return [], "cannot read node records from %s: %s" % (db_path, exc)
    finally:
        conn.close()
    latest = {}
    for name, value, deleted in rows:
        # kine appends a row per revision; the newest decides, and a deletion removes the node.
        if deleted:
            latest.pop(name, None)
        else:
            latest[name] = value
    wanted = "/registry/minions/%s" % node_name
    values = [latest[wanted]] if wanted in latest else list(latest.values())
    ips = []
    for value in values:
        for ip in ips_from_node_record(value or b""):
            if ip not in ips:
                ips.append(ip)
    return ips, None


def etcd_member_ips(etcd_dir):
    """Non-loopback IPs in the member URLs k3s writes to server/db/etcd/config."""
    path = os.path.join(etcd_dir, "config")
    if not os.path.isfile(path):
        return [], None
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        return [], "cannot read %s: %s" % (path, exc)
    ips = []
    keys = (
        "initial-advertise-peer-urls",
        "advertise-client-urls",
        "listen-peer-urls",
        "listen-client-urls",
        "initial-cluster",
    )
    for key in keys:
        for match in re.finditer(r"[\"']?%s[\"']?\s*:\s*[\"']?([^\n\"']*)" % re.escape(key), text):
            for ip in IPV4.findall(match.group(1)):
                if not ipaddress.ip_address(ip).is_loopback and ip not in ips:
                    ips.append(ip)
    return ips, None


def kubeconfig_info(path, cluster_ca_pem):
    info = {
        "path": path,
        "exists": os.path.isfile(path),
        "server": None,
        "server_host": None,
        "ca_matches": None,
        "sha256": None,
    }
    if not info["exists"]:
        return info
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        info["error"] = str(exc)
        return info
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", "replace")
    server, ca_data = None, None
    if HAS_YAML:
        try:
            data = yaml.safe_load(text) or {}
            clusters = data.get("clusters") or []
            cluster = (clusters[0] or {}).get("cluster", {}) if clusters else {}
            server, ca_data = cluster.get("server"), cluster.get("certificate-authority-data")
        except Exception as exc:
            info["error"] = "not valid YAML: %s" % exc
            return info
    else:
        match = re.search(r"^\s*server:\s*[\"']?(\S+?)[\"']?\s*$", text, re.M)
        server = match.group(1) if match else None
        match = re.search(r"^\s*certificate-authority-data:\s*[\"']?(\S+?)[\"']?\s*$", text, re.M)
        ca_data = match.group(1) if match else None
    info["server"] = server
    if server:
        match = re.match(r"^[a-z]+://(\[[^\]]+\]|[^:/]+)", server)
        info["server_host"] = match.group(1).strip("[]") if match else None
    if ca_data and cluster_ca_pem:
        try:
            info["ca_matches"] = _pem_der(base64.b64decode(ca_data)) == _pem_der(cluster_ca_pem)
        except (ValueError, TypeError):
            info["ca_matches"] = False
    return info


def _pem_der(pem):
    """Digest of the first certificate's body, so whitespace and trailing chains don't matter."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    match = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", text, re.S)
    body = "".join((match.group(1) if match else text).split())
    return hashlib.sha256(body.encode()).hexdigest()


# --------------------------------------------------------------------------- host state


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


def run_module():
    module = AnsibleModule(
        argument_spec={
            "config_file": {"type": "path", "default": "/etc/rancher/k3s/config.yaml"},
            "data_dir": {"type": "path"},
            "service": {"type": "str", "default": "k3s"},
            "node_name": {"type": "str"},
            "node_ip": {"type": "str"},
            "node_interface": {"type": "str"},
            "flannel_iface": {"type": "str"},
            "kubeconfigs": {"type": "list", "elements": "path", "default": ["/etc/rancher/k3s/k3s.yaml"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["node_ip"] and not is_ip(params["node_ip"]):
        module.fail_json(msg="node_ip: %r is not an IP address" % params["node_ip"])

    config, sources, config_errors = read_config(params["config_file"])
    data_dir = params["data_dir"] or _scalar(config.get("data-dir")) or DEFAULT_DATA_DIR
    installed = os.path.isfile(params["config_file"]) or os.path.isdir(os.path.join(data_dir, "server"))

    ip_bin = module.get_bin_path("ip")
    if not ip_bin:
        module.fail_json(msg="the ip command (iproute2) is required to read the host's addresses")
    rc, out, err = module.run_command([ip_bin, "-j", "addr", "show"])
    if rc != 0:
        module.fail_json(msg="ip -j addr show failed: %s" % err.strip())
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
    cluster_init = str(_scalar(config.get("cluster-init")) or "").lower() in ("true", "yes", "1")
    datastore = None
    if os.path.isdir(etcd_dir) or cluster_init:
        datastore = "etcd"
    elif installed:
        datastore = "sqlite"
    node_name = params["node_name"] or _scalar(config.get("node-name")) or socket.gethostname()
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
    flannel_iface = _scalar(config.get("flannel-iface"))
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
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()

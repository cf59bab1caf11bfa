# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The node addresses k3s wrote into its serving certificates under server/tls (read-only)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
import json
import os
import re

from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import scalar

try:
    from cryptography import x509

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - exercised on hosts without cryptography
    HAS_CRYPTOGRAPHY = False

SERVING_CERTS = ("serving-kube-apiserver.crt", "dynamic-cert.json")


def service_cluster_ip(config):
    """First address of service-cidr (10.43.0.1 by default): always a SAN, never the node."""
    cidr = scalar(config.get("service-cidr")) or "10.43.0.0/16"
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

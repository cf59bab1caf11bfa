# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The k3s role's write of config.yaml and the node-address pins (the k3s_config module's logic;
its argument spec lives here beside the code that reads it): the node address by the one policy
(node_address.py), the content by the one renderer and the pins by the one writer (config.py),
compared and written under the run lock the recovery and the watcher hold (backup.py), so a
site.yml that waited for a recovery compares against the recovered file and changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.integr8scode.provision.plugins.module_utils.files import file_differs, write_if_changed
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.backup import (
    LOCK_OPTIONS,
    RunLock,
    utc_stamp,
    wait_for_lock,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_DATA_DIR,
    PINNED,
    ConfigError,
    pins_differ,
    pins_path,
    recorded_node_ip,
    redact_config_text,
    render_config,
    role_settings,
    write_pins,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.node_address import (
    choose_node_address,
    flannel_iface_for,
    read_network,
)

ARGUMENT_SPEC = dict(
    path=dict(type="path", default=DEFAULT_CONFIG_FILE),
    node_ip=dict(type="str", default=""),
    node_interface=dict(type="str", default=""),
    flannel_iface=dict(type="str", default=""),
    bind_address=dict(type="str", default="0.0.0.0"),
    tls_san=dict(type="list", elements="str", default=[]),
    disable=dict(type="list", elements="str", default=[]),
    write_kubeconfig_mode=dict(type="str", default="0600"),
    cluster_init=dict(type="bool", default=False),
    data_dir=dict(type="path", default=DEFAULT_DATA_DIR),
    extra=dict(type="dict", default={}),
    lock_ttl=dict(type="int", default=300),
    lock_hold=dict(type="bool", default=False),
    **LOCK_OPTIONS,
)
CONFIG_MODE = 0o600


def plan(p, run_command):
    """What the parameters ``p`` (ARGUMENT_SPEC's names) make of this host: the node address, the
    content of config.yaml and the pins file, and which differ. Reads only; raises ConfigError
    (NodeAddressError for the address) with a message naming the variable."""
    recorded = recorded_node_ip(p["path"])
    links, routes = read_network(run_command)
    choice = choose_node_address(links, routes, p["node_ip"], p["node_interface"], [recorded] if recorded else [])
    names = [link.get("ifname") for link in links]
    if p["flannel_iface"] and p["flannel_iface"] not in names:
        raise ConfigError(
            "k3s_flannel_iface %s is not an interface of this host (%s)." % (p["flannel_iface"], ", ".join(names))
        )
    flannel_iface = flannel_iface_for(choice, p["flannel_iface"])
    try:
        content = render_config(role_settings(
            choice["address"], flannel_iface, bind_address=p["bind_address"], tls_san=p["tls_san"],
            disable=p["disable"], write_kubeconfig_mode=p["write_kubeconfig_mode"], cluster_init=p["cluster_init"],
            data_dir=p["data_dir"], extra=p["extra"],
        ))  # fmt: skip
    except ValueError as exc:  # write_kubeconfig_mode that is not octal
        raise ConfigError(str(exc)) from exc
    pins = dict((key, p[key]) for key in PINNED)
    pins_differs, pins_before, pins_after = pins_differ(pins, p["path"], p["data_dir"])
    # The owner, not the group: a config.yaml k3s reads as root is fine with any gid.
    config_differs, before = file_differs(p["path"], content, CONFIG_MODE, 0)
    return dict(
        choice=choice, flannel_iface=flannel_iface, recorded=recorded, content=content, before=before,
        config_differs=config_differs, pins=pins, pins_file=pins_path(p["path"]), pins_before=pins_before,
        pins_after=pins_after, pins_differs=pins_differs, differs=config_differs or pins_differs,
    )  # fmt: skip


def write(p, planned):
    """Write what ``planned`` found different (config.yaml 0600, the pins 0644, both root)."""
    if planned["config_differs"]:
        directory = os.path.dirname(p["path"])
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        write_if_changed(p["path"], planned["content"], CONFIG_MODE, 0, 0)
    if planned["pins_differs"]:
        write_pins(planned["pins"], p["path"], p["data_dir"])


def locked_write(p, run_command, clock=None, sleep=None):
    """Wait (``lock_wait``) for the run lock, plan again under it, write what still differs, and
    release the lock unless ``lock_hold`` keeps it for the restart (config.yaml changed). Returns
    (planned, lock info); raises LockHeld naming the holder when the wait ran out (nothing
    written), BackupError/OSError when the lock cannot be taken, ConfigError/NodeAddressError."""
    run_id = "k3s_config-%s-%d" % (utc_stamp(), os.getpid())
    lock = RunLock(p["lock_path"], run_id, p["lock_owner"] or "integr8scode.provision.k3s_config")
    timing = dict((k, v) for k, v in (("clock", clock), ("sleep", sleep)) if v is not None)
    info = dict(path=lock.path, run_id=run_id, held=False)
    _owner, info["waited"] = wait_for_lock(lock, p["lock_wait"], **timing)
    try:
        planned = plan(p, run_command)
        write(p, planned)
        if p["lock_hold"] and planned["config_differs"]:
            info["held"] = lock.keep(p["lock_ttl"]) is not None
    finally:
        if not info["held"]:
            lock.release()
    return planned, info


def diffs(p, planned):
    """--diff entries: config.yaml, then the pins file, each when it differs. config.yaml's with
    the values of k3s's secret flags redacted (config.py redact_config_text), since
    ``--check --diff`` prints them: the token, the S3 keys and a datastore password never show,
    every other change does; the file is written with the real values (write). When only secret
    values differ, the redacted texts are equal and a diff of them would print nothing, so the
    entry says so instead (a change of mode or owner alone keeps equal texts, as before). The
    pins file holds no secrets."""
    entries = []
    if planned["config_differs"]:
        path = p["path"]
        before, after = redact_config_text(planned["before"] or ""), redact_config_text(planned["content"])
        if before == after and (planned["before"] or "") != planned["content"]:
            entries.append(dict(prepared="%s: only values of k3s's secret flags differ (not shown)\n" % path))
        else:
            entries.append(dict(before=before, after=after, before_header=path, after_header=path))
    if planned["pins_differs"]:
        path, before = planned["pins_file"], planned["pins_before"] or ""
        entries.append(dict(before=before, after=planned["pins_after"], before_header=path, after_header=path))
    return entries

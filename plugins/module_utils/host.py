# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The host state the roles compare against, read without changing anything (module host_facts):
paths (type, mode, owner, gid, checksums, link target), accounts, groups, dpkg status, systemd
unit states, programs on PATH and command outputs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys

from ansible_collections.integr8scode.provision.plugins.module_utils.files import file_digest
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import unit_states as read_unit_states


def _owner(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def describe_path(path, sha256=False):
    """{} when missing; else type (file, dir, link, other) and, as applicable, mode (four octal
    digits), owner (name), gid, sha1 / sha256 (files) or target (links)."""
    real = os.path.expanduser(path)
    try:
        info = os.lstat(real)
    except OSError:
        return {}
    if stat.S_ISLNK(info.st_mode):
        return dict(type="link", target=os.readlink(real))
    entry = dict(mode="%04o" % stat.S_IMODE(info.st_mode), owner=_owner(info.st_uid), gid=info.st_gid)
    if stat.S_ISDIR(info.st_mode):
        entry["type"] = "dir"
    elif stat.S_ISREG(info.st_mode):
        entry.update(type="file", sha1=file_digest(real, "sha1"))
        if sha256:
            entry["sha256"] = file_digest(real, "sha256")
    else:
        entry["type"] = "other"
    return entry


def user_entry(name):
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return {}
    return dict(uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir, shell=entry.pw_shell)


def group_members(name):
    try:
        return sorted(grp.getgrnam(name).gr_mem)
    except KeyError:
        return None


def package_status(run_command, names):
    """{name: dpkg status}; packages dpkg has never heard of are `not-installed`."""
    status = dict((name, "not-installed") for name in names)
    if not names:
        return status
    _rc, out, _err = run_command(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + list(names))
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in status:
            status[parts[0]] = parts[1]
    return status


def unit_states(run_command, units):
    """{unit: {enabled, active}}: the unit file state and the active state, as `systemctl
    is-enabled` / `is-active` name them (enabled, disabled, static, masked, ...; active, inactive,
    activating, failed, ...), from the one reading of a unit's state (k3s/unit.py ``unit_states``,
    one `systemctl show` for all units); '' where systemd reports none (no unit file)."""
    return dict(
        (unit, dict(enabled=state.get("unit_file_state") or "", active=state.get("active_state") or ""))
        for unit, state in read_unit_states(run_command, units).items()
    )


def run_if_present(run_command, get_bin_path, argv):
    """{rc, stdout} of argv, or rc None when its program does not exist."""
    argv = [str(a) for a in argv or []]
    if not argv:
        return dict(rc=None, stdout="")
    program = argv[0] if "/" in argv[0] else get_bin_path(argv[0])
    if not program or not os.access(program, os.X_OK) or os.path.isdir(program):
        return dict(rc=None, stdout="")
    rc, out, _err = run_command([program] + argv[1:])
    return dict(rc=rc, stdout=out.strip())


def image_ids(run_command, get_bin_path, refs, record_path=None):
    """({ref: image ID or None}, record) with each ID as the ``docker save`` archive names it.

    The classic image store reports an image's config digest as its ID, which is what an archive's
    manifest.json calls ``Config``. The containerd image store, the default for new installations
    since Docker Engine 29 (Ubuntu 24.04's docker.io), reports the digest of the manifest it keeps
    instead, and an archive written by an older engine holds no such manifest. So the role records,
    after each load, what every reference became (``record_path``, JSON ``{ref: {archive_id,
    engine_id}}``), and an engine ID found there is reported as the archive's ID. A reference whose
    engine ID differs from the record (retagged, rebuilt) is reported as the engine has it."""
    record = {}
    if record_path:
        try:
            with open(os.path.expanduser(record_path)) as handle:
                loaded = json.load(handle)
            record = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            record = {}
    ids = {}
    for ref in refs:
        found = run_if_present(run_command, get_bin_path, ["docker", "image", "inspect", "--format", "{{.Id}}", ref])
        engine_id = found["stdout"] if found["rc"] == 0 and found["stdout"] else None
        entry = record.get(ref) if isinstance(record.get(ref), dict) else {}
        ids[ref] = entry.get("archive_id") if engine_id and entry.get("engine_id") == engine_id else engine_id
    return ids, record


class LocalRunner:
    """What the shared code asks of an AnsibleModule (run_command, get_bin_path, warn), for the
    programs the roles install on the host (drift watcher, kubeconfig refresh)."""

    @staticmethod
    def run_command(argv, cwd=None):
        proc = subprocess.run(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False
        )
        return proc.returncode, proc.stdout, proc.stderr

    @staticmethod
    def get_bin_path(name, required=False):
        path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")
        if required and not path:
            raise OSError("%s not found on PATH" % name)
        return path

    @staticmethod
    def warn(message):
        sys.stderr.write("<4>%s\n" % message)


# The facts the roles read (distribution and architecture), from the collectors
# ansible.builtin.setup uses, so the values are the same as gathered ones.
PLATFORM_FACTS = (
    "distribution",
    "distribution_version",
    "distribution_major_version",
    "distribution_release",
    "os_family",
    "architecture",
    "system",
    "machine",
    "userspace_architecture",
)


def platform_facts(module):
    """setup's distribution and platform facts the roles use (PLATFORM_FACTS), in one module run."""
    # Imported here: the host's own programs (host_library) import this file without Ansible.
    from ansible.module_utils.facts.system.distribution import DistributionFactCollector  # noqa: PLC0415
    from ansible.module_utils.facts.system.platform import PlatformFactCollector  # noqa: PLC0415

    facts = DistributionFactCollector().collect(module=module)
    facts.update(PlatformFactCollector().collect(module=module))
    return {key: facts[key] for key in PLATFORM_FACTS if key in facts}

# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""What k3s's k3s-killall.sh and k3s-uninstall.sh do, in one place: the k3s role's programs
(k3s-killall.sh, k3s-uninstall.sh: ``main``, through the host library's launcher, programs.py),
its ``k3s_state: absent`` (the k3s_teardown module) and the recovery before it wipes server/db
and server/tls (rebuild.py) all call this. Both the programs and the module take their settings
through ``settings`` (ARGUMENT_SPEC's names and defaults).

``systemctl stop k3s`` leaves the pods running by design (KillMode=process, k3s #2624): their
containerd-shim process trees, the overlay/shm/volume mounts under /run/k3s and /var/lib/kubelet
(k3s #1965, #1042), the CNI network namespaces, cni0/flannel.1 and the KUBE-/CNI-/flannel
iptables rules stay. The killall step removes all of them as the official script does; the
uninstall step then removes the unit, the links, the binaries and (when asked) the data.

One deliberate difference from upstream: nothing at or below a live mount point is deleted.
The official clean-up descends into mounted directories and has destroyed volume data that way
(k3s #3264); a path still mounted after the unmounts is reported as refused instead.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import signal
import sys
import tempfile
import time

from ansible_collections.integr8scode.provision.plugins.module_utils.host import LocalRunner
from ansible_collections.integr8scode.provision.plugins.module_utils.programs import settings_path

# k3s-killall.sh: `grep -w "${K3S_DATA_DIR}/data/[^/]*/bin/containerd-shim"` over `ps -e -o args`.
SHIM_ARG = r"/data/[^/]+/bin/containerd-shim"
# The mount prefixes k3s-killall.sh unmounts and removes (awk `$2 ~ ("^" path)`: plain prefixes).
RUNTIME_MOUNT_PREFIXES = ("/run/k3s", "/var/lib/kubelet/pods", "/var/lib/kubelet/plugins", "/run/netns/cni-")
# Links k3s-killall.sh deletes (flannel's VXLAN/WireGuard devices, kube-proxy's IPVS dummy).
LINKS = ("cni0", "flannel.1", "flannel-v6.1", "kube-ipvs0", "flannel-wg", "flannel-wg-v6")
# `grep -v KUBE- | grep -v CNI- | grep -iv flannel` over iptables-save.
RULE = re.compile(r"KUBE-|CNI-|(?i:flannel)")
CNI_STATE = "/var/lib/cni"
# What k3s-uninstall.sh removes besides the data directory and /etc/rancher/k3s.
RUN_STATE = ("/run/k3s", "/run/flannel")
KUBELET_DIR = "/var/lib/kubelet"


def unescape_mount(field):
    """/proc/self/mounts escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mounts_file="/proc/self/mounts"):
    with open(mounts_file) as handle:
        return [unescape_mount(line.split()[1]) for line in handle if len(line.split()) > 1]


def under(path, root):
    """``path`` is ``root`` or inside it."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/") or root == "/"


def remove_tree(path, mounts):
    """rm -rf ``path`` except what is at or below a mount point, and the directories leading to
    one. Returns (removed, refused): paths deleted, and live mount points left alone."""
    path = path.rstrip("/") or "/"
    if not os.path.lexists(path):
        return [], []
    inside = [m for m in mounts if under(m, path)]
    if not inside:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        return [path], []
    if path in mounts:
        return [], [path]
    removed, refused = [], []
    for name in sorted(os.listdir(path)):
        sub_removed, sub_refused = remove_tree(os.path.join(path, name), inside)
        removed += sub_removed
        refused += sub_refused
    return removed, refused


def process_table(proc="/proc"):
    """{pid: (ppid, argv)} of every process readable in ``proc``."""
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat")) as handle:
                stat = handle.read()
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
        except (IOError, OSError):
            continue
        # The command name in parentheses may itself contain spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry)] = (ppid, argv)
    return table


def shim_trees(data_dir, table):
    """The containerd-shim processes of this data directory and all their descendants."""
    pattern = re.compile(r"^" + re.escape(data_dir.rstrip("/")) + SHIM_ARG)
    roots = [pid for pid, (_ppid, argv) in table.items() if any(pattern.match(arg) for arg in argv)]
    found, queue = [], list(roots)
    while queue:
        pid = queue.pop()
        if pid in found:
            continue
        found.append(pid)
        queue += [child for child, (ppid, _argv) in table.items() if ppid == pid]
    return sorted(found)


class Teardown:
    """The two steps over a ``runner`` (run_command, get_bin_path: an AnsibleModule or
    host.LocalRunner). ``check``: report what would be done, change nothing. ``actions`` lists
    what was (or would be) done; ``refused`` the live mount points nothing was deleted below."""

    def __init__(self, runner, data_dir, check=False, proc="/proc", mounts_file="/proc/self/mounts"):
        self.runner = runner
        self.data_dir = data_dir.rstrip("/")
        self.check = check
        self.proc = proc
        self.mounts_file = mounts_file
        self.actions = []
        self.refused = []

    # ------------------------------------------------------------------ helpers

    def tool(self, name):
        return self.runner.get_bin_path(name)

    def act(self, what, argv=None):
        """Record ``what``; outside check mode run ``argv`` (rc, out, err)."""
        self.actions.append(what)
        if self.check or argv is None:
            return 0, "", ""
        return self.runner.run_command(argv)

    def remove(self, path):
        if not os.path.lexists(path):
            return
        if self.check:
            self.actions.append("remove %s" % path)
            return
        removed, refused = remove_tree(path, mount_points(self.mounts_file))
        self.actions += ["remove %s" % p for p in removed]
        self.refused += [p for p in refused if p not in self.refused]

    # ------------------------------------------------------------------ k3s-killall.sh

    def stop_units(self, units):
        systemctl = self.tool("systemctl")
        if not systemctl:
            return
        for unit in units:
            rc, out, _err = self.runner.run_command([systemctl, "is-active", unit])
            if out.strip() in ("active", "activating", "reloading", "deactivating"):
                self.act("stop %s" % unit, [systemctl, "stop", unit])

    def kill_shims(self):
        pids = shim_trees(self.data_dir, process_table(self.proc))
        if not pids:
            return
        self.actions.append("kill -9 %s (containerd-shim trees)" % " ".join(str(p) for p in pids))
        if self.check:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # A killed shim's mounts are busy until the kernel has reaped it.
        deadline = time.time() + 5
        for pid in pids:
            while time.time() < deadline and not zombie(self.proc, pid):
                time.sleep(0.05)

    def unmount_runtime(self):
        umount = self.tool("umount")
        for prefix in RUNTIME_MOUNT_PREFIXES:
            hits = sorted((m for m in mount_points(self.mounts_file) if m.startswith(prefix)), reverse=True)
            for mount in hits:
                rc, _out, err = self.act("umount %s" % mount, [umount, "-f", mount] if umount else None)
                if rc != 0:
                    # A lazy unmount detaches what -f could not (a busy tmpfs); the data goes with the last user.
                    self.runner.run_command([umount, "-l", mount])
            # do_unmount_and_remove: each former mount point goes (refused if still mounted).
            for mount in hits:
                self.remove(mount)

    def delete_network(self):
        ip = self.tool("ip")
        if not ip:
            return
        rc, out, _err = self.runner.run_command([ip, "netns", "show"])
        for line in out.splitlines() if rc == 0 else []:
            name = line.split()[0] if line.split() else ""
            if name.startswith("cni-"):
                self.act("ip netns delete %s" % name, [ip, "netns", "delete", name])
        rc, out, _err = self.runner.run_command([ip, "-o", "link", "show"])
        for line in out.splitlines() if rc == 0 else []:
            fields = line.split()
            if len(fields) > 1 and " master cni0 " in " %s " % line:
                iface = fields[1].rstrip(":").split("@")[0]
                self.act("ip link delete %s" % iface, [ip, "link", "delete", iface])
        for link in LINKS:
            if os.path.exists(os.path.join("/sys/class/net", link)):
                self.act("ip link delete %s" % link, [ip, "link", "delete", link])
        self.remove(CNI_STATE)

    def strip_rules(self):
        for family in ("iptables", "ip6tables"):
            save, restore = self.tool(family + "-save"), self.tool(family + "-restore")
            if not save or not restore:
                continue
            rc, out, _err = self.runner.run_command([save])
            if rc != 0:
                continue
            kept = [line for line in out.splitlines() if not RULE.search(line)]
            if len(kept) == len(out.splitlines()):
                continue
            stripped = len(out.splitlines()) - len(kept)
            if self.check:
                self.actions.append("%s: strip %d KUBE-/CNI-/flannel lines" % (family, stripped))
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as handle:
                handle.write("\n".join(kept) + "\n")
            try:
                self.act("%s: strip %d KUBE-/CNI-/flannel lines" % (family, stripped), [restore, handle.name])
            finally:
                os.remove(handle.name)

    def killall(self, units=("k3s.service", "k3s-agent.service")):
        """k3s-killall.sh: stop the units, kill the shim trees, unmount and remove the runtime
        mounts, delete CNI namespaces, links and state, strip the iptables rules."""
        self.stop_units(units)
        self.kill_shims()
        self.unmount_runtime()
        self.delete_network()
        self.strip_rules()
        return self.report()

    # ------------------------------------------------------------------ k3s-uninstall.sh

    def uninstall(self, params):
        """k3s-uninstall.sh over ARGUMENT_SPEC's ``params``: killall, then disable and remove the
        unit and its environment file, the kubectl/crictl/ctr links pointing at k3s, the binaries
        and programs; with ``remove_data`` also the configuration directory, the data directory
        and /var/lib/kubelet (never below a live mount)."""
        unit_file, env_file, bin_dir = params["unit_file"], params["env_file"], params["bin_dir"]
        link, programs = params["link"], params["programs"]
        unit = os.path.basename(unit_file)
        self.killall(units=(unit,))
        systemctl = self.tool("systemctl")
        if systemctl and os.path.exists(unit_file):
            rc, out, _err = self.runner.run_command([systemctl, "is-enabled", unit])
            if out.strip() == "enabled":
                self.act("disable %s" % unit, [systemctl, "disable", unit])
        existed = [p for p in (unit_file, env_file) if os.path.lexists(p)]
        for path in existed:
            self.remove(path)
        if existed and systemctl:
            self.act("daemon-reload", [systemctl, "daemon-reload"])
            self.runner.run_command([systemctl, "reset-failed", unit])
        targets = [os.path.realpath(link)] if os.path.lexists(link) else []
        for name in ("kubectl", "crictl", "ctr"):
            path = os.path.join(bin_dir, name)
            if os.path.islink(path) and os.readlink(path) in (link, "k3s"):
                self.remove(path)
        versioned = [os.path.join(bin_dir, n) for n in sorted(os.listdir(bin_dir)) if n.startswith("k3s-v")]
        # Each program goes with its settings file (programs.py: the launcher reads it).
        installed = [p for program in programs for p in (program, settings_path(program))]
        for path in [link] + versioned + targets + installed:
            self.remove(path)
        for path in RUN_STATE:
            self.remove(path)
        if params["remove_data"]:
            for path in (params["config_dir"], self.data_dir, KUBELET_DIR):
                self.remove(path)
        return self.report()

    def report(self):
        return dict(changed=bool(self.actions), actions=list(self.actions), refused=list(self.refused))


def zombie(proc, pid):
    """The process has exited (a zombie waiting for its parent, or gone): its mounts are free."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (IOError, OSError):
        return True


ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["killed", "uninstalled"], default="killed"),
    data_dir=dict(type="path", default="/var/lib/rancher/k3s"),
    remove_data=dict(type="bool", default=False),
    unit_file=dict(type="path", default="/etc/systemd/system/k3s.service"),
    env_file=dict(type="path", default="/etc/systemd/system/k3s.service.env"),
    bin_dir=dict(type="path", default="/usr/local/bin"),
    link=dict(type="path", default="/usr/local/bin/k3s"),
    config_dir=dict(type="path", default="/etc/rancher/k3s"),
    programs=dict(type="list", elements="path", default=[]),
)


def settings(values, **overrides):
    """The teardown's settings, built in one place: ARGUMENT_SPEC's defaults, then ``values`` (the
    k3s_teardown module's params, or a program's settings file that the k3s role writes from the
    same variable it passes the module, k3s__teardown), then ``overrides`` (a program's
    --keep-data). A name ARGUMENT_SPEC does not know is refused (ValueError)."""
    unknown = sorted(set(values) - set(ARGUMENT_SPEC))
    if unknown:
        raise ValueError("unknown teardown settings: %s" % ", ".join(unknown))
    params = dict((name, spec.get("default")) for name, spec in ARGUMENT_SPEC.items())
    params.update((name, value) for name, value in values.items() if value is not None)
    params.update(overrides)
    if params["state"] not in ARGUMENT_SPEC["state"]["choices"]:
        raise ValueError(
            "teardown state must be one of %s, not %r" % (", ".join(ARGUMENT_SPEC["state"]["choices"]), params["state"])
        )
    return params


def run(params, runner, check=False, **job):
    """One teardown by ``params`` (``settings``'s result); ``job``: Teardown's proc and mounts_file."""
    teardown = Teardown(runner, params["data_dir"], check=check, **job)
    if params["state"] == "killed":
        return teardown.killall(units=(os.path.basename(params["unit_file"]),))
    return teardown.uninstall(params)


def main(argv, values, runner=LocalRunner, geteuid=os.geteuid, **job):
    """k3s-killall.sh / k3s-uninstall.sh [--keep-data] (the launcher's entry point ``k3s.teardown:main``;
    ``values``: its settings file, state killed or uninstalled). Prints what was done; nothing at or
    below a live mount point is deleted (k3s #3264): those paths are listed and the status is 1."""
    name = os.path.basename(sys.argv[0] or "k3s-teardown")
    if geteuid() != 0:
        sys.stderr.write("%s: must be run as root\n" % name)
        return 1
    try:
        params = settings(values, remove_data="--keep-data" not in argv)
    except ValueError as exc:
        sys.stderr.write("%s: %s\n" % (name, exc))
        return 2
    result = run(params, runner, **job)
    for action in result["actions"]:
        sys.stdout.write("+ %s\n" % action)
    for path in result["refused"]:
        sys.stderr.write("still mounted, nothing at or below it deleted (k3s #3264): %s\n" % path)
    return 1 if result["refused"] else 0

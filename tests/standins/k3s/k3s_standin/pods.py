"""k3s stand-in: what a running k3s leaves on the host (see the package docstring).

- flannel at start: `flannel.1` (a VXLAN device in k3s; this kernel has no vxlan, so a veth
  pair of that name stands in, ../shared/facts/test-environment.md) and the KUBE-, CNI- and
  FLANNEL iptables chains with their jumps.
- per pod (the packaged deployments not disabled): the bridge CNI plugin's `cni0`, a network
  namespace `cni-<uuid>` with a veth on cni0; containerd's rootfs mount under
  /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs (overlay in k3s, tmpfs
  here) and the kubelet's memory emptyDir under /var/lib/kubelet/pods/<uid>/volumes (tmpfs, k3s
  #1965, #1042); then a containerd-shim-runc-v2 process from <data-dir>/data/<hash>/bin (the
  path k3s-killall.sh looks for) in its own session, whose container process runs in a cgroup
  below the unit's (Delegate=yes). The unit's KillMode=process stops only k3s itself, so all of
  this survives `systemctl stop k3s` (k3s #2624); a later start finds the shims and leaves them.

Test hook K3S_STANDIN_PODS=0: none of the above (unit tests run on a shared machine). A stand-in
not run by systemd (no INVOCATION_ID: a test, a shell) starts none either.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid

from k3s_standin.common import info, warn

RUNTIME_TASKS = "/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io"
KUBELET_PODS = "/var/lib/kubelet/pods"
SHIM = """#!/usr/bin/python3
# TEST STAND-IN for containerd-shim-runc-v2, written by the k3s stand-in. Runs the
# "container" (sleep) in the cgroup given by K3S_STANDIN_POD_CGROUP and waits for it.
import os, subprocess, sys
cgroup = os.environ.get("K3S_STANDIN_POD_CGROUP", "")
def enter():
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as handle:
                handle.write(str(os.getpid()))
        except OSError:
            pass
sys.exit(subprocess.call(["sleep", "infinity"], preexec_fn=enter))
"""
# iptables chains k3s's kube-proxy, CNI portmap and flannel keep, with the jumps into them.
CHAINS = (
    ("filter", "FORWARD", "KUBE-FORWARD"),
    ("filter", "FORWARD", "FLANNEL-FWD"),
    ("nat", "PREROUTING", "KUBE-SERVICES"),
    ("nat", "PREROUTING", "CNI-HOSTPORT-DNAT"),
    ("nat", "POSTROUTING", "FLANNEL-POSTRTG"),
)


def enabled() -> bool:
    """Pods, links and chains are host-wide: only for a stand-in systemd runs as a service
    (INVOCATION_ID is set for every unit process), never for one a test or a shell starts."""
    return os.environ.get("K3S_STANDIN_PODS", "1") != "0" and bool(os.environ.get("INVOCATION_ID"))


def _run(*argv: str) -> bool:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        warn(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.returncode == 0


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def start_network() -> None:
    """flannel's device and the iptables chains, as soon as k3s runs."""
    if not enabled():
        return
    if not _link_exists("flannel.1"):
        _run("ip", "link", "add", "flannel.1", "type", "veth", "peer", "name", "flannel.1-peer")
        _run("ip", "link", "set", "flannel.1", "up")
    for table, parent, chain in CHAINS:
        if (
            subprocess.run(
                ["iptables", "-w", "-t", table, "-n", "-L", chain], capture_output=True, check=False
            ).returncode
            != 0
        ):
            _run("iptables", "-w", "-t", table, "-N", chain)
        jump = [parent, "-m", "comment", "--comment", f"k3s {chain}", "-j", chain]
        if (
            subprocess.run(["iptables", "-w", "-t", table, "-C", *jump], capture_output=True, check=False).returncode
            != 0
        ):
            _run("iptables", "-w", "-t", table, "-A", *jump)
    info("Running flannel backend.")


def shim_path(data_dir: str, version: str) -> str:
    return os.path.join(
        data_dir, "data", hashlib.sha256(version.encode()).hexdigest(), "bin", "containerd-shim-runc-v2"
    )


def running_shims(shim: str) -> set[str]:
    """Container ids of the shims of this data dir that still run (k3s finds them at start)."""
    ids = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if shim in argv and "-id" in argv:
            ids.add(argv[argv.index("-id") + 1])
    return ids


def own_cgroup() -> str:
    """This process's directory in the hierarchy systemd tracks units by: name=systemd on a hybrid
    cgroup host, else the unified (v2) one. /proc/self/cgroup names it from the root of the
    cgroup namespace, which may sit above what /sys/fs/cgroup shows in a container, so the
    longest tail of the path that exists there is the directory."""
    with open("/proc/self/cgroup") as handle:
        lines = dict(line.strip().split(":", 2)[1:] for line in handle if line.count(":") >= 2)
    choices = [("name=systemd", "/sys/fs/cgroup/systemd"), ("", "/sys/fs/cgroup/unified"), ("", "/sys/fs/cgroup")]
    for key, mount in choices:
        if key not in lines or not os.path.exists(os.path.join(mount, "cgroup.procs")):
            continue
        parts = [p for p in lines[key].split("/") if p]
        for start in range(len(parts)):
            candidate = os.path.join(mount, *parts[start:])
            if os.path.isdir(candidate):
                return candidate
    return ""


def start_pods(data_dir: str, version: str, names: list[str]) -> None:
    if not enabled():
        return
    shim = shim_path(data_dir, version)
    os.makedirs(os.path.dirname(shim), exist_ok=True)
    if not os.path.exists(shim):
        with open(shim, "w") as handle:
            handle.write(SHIM)
        os.chmod(shim, 0o755)
    running = running_shims(shim)
    if not _link_exists("cni0"):
        _run("ip", "link", "add", "cni0", "type", "bridge")
        _run("ip", "addr", "add", "10.42.0.1/24", "dev", "cni0")
        _run("ip", "link", "set", "cni0", "up")
    for name in names:
        cid = hashlib.sha256(f"{data_dir}/{name}".encode()).hexdigest()
        if cid in running:
            info(f"Container {cid[:13]} of kube-system/{name} is still running")
            continue
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, cid))
        netns = f"cni-{uid}"
        veth = f"veth{cid[:8]}"
        if not os.path.exists(f"/run/netns/{netns}"):
            _run("ip", "netns", "add", netns)
        if not _link_exists(veth):
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            _run("ip", "link", "set", veth, "master", "cni0", "up")
        for path in (
            f"{RUNTIME_TASKS}/{cid}/rootfs",
            f"{KUBELET_PODS}/{uid}/volumes/kubernetes.io~empty-dir/tmp",
        ):
            os.makedirs(path, exist_ok=True)
            if not os.path.ismount(path):
                _run("mount", "-t", "tmpfs", "tmpfs", path)
        cgroup = own_cgroup()
        pod_cgroup = os.path.join(cgroup, "kubepods", f"pod{uid}", cid) if cgroup else ""
        try:
            if pod_cgroup:
                os.makedirs(pod_cgroup, exist_ok=True)
        except OSError as exc:
            warn(f"cgroup {pod_cgroup}: {exc}")
            pod_cgroup = ""
        subprocess.Popen(  # noqa: S603 - our own shim
            [shim, "-namespace", "k8s.io", "-id", cid, "-address", "/run/k3s/containerd/containerd.sock"],
            env=dict(os.environ, K3S_STANDIN_POD_CGROUP=pod_cgroup),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        info(f"Started container {cid[:13]} of pod kube-system/{name}")

"""k3s stand-in: cli (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import os
import sys

from k3s_standin.certificate import cmd_certificate
from k3s_standin.common import GO_VERSION, K3S_STANDIN_VERSION, Fatal, _log, git_commit
from k3s_standin.etcd import cmd_etcd_snapshot
from k3s_standin.images import cmd_ctr
from k3s_standin.kubectl import KubectlError, cmd_kubectl
from k3s_standin.server import cmd_server


# ----------------------------------------------------------------------- main
def print_version(version: str) -> int:
    print(f"k3s version {version} ({git_commit(version)})")
    print(f"go version {GO_VERSION}")
    return 0


def main(argv: list[str]) -> int:
    version = K3S_STANDIN_VERSION
    prog = os.path.basename(argv[0])
    args = argv[1:]
    try:
        if prog == "kubectl":
            return cmd_kubectl(args)
        if prog == "ctr":
            return cmd_ctr(args)
        if prog == "crictl":
            sys.stderr.write(f"{prog}: not modelled by the k3s test stand-in (no container runtime runs)\n")
            return 1
        if not args or args[0] in ("-h", "--help", "help"):
            print(
                f"k3s {version} test stand-in: server, kubectl, ctr images ls, etcd-snapshot, certificate rotate,"
                " --version"
            )
            return 0
        if args[0] in ("--version", "-v", "version"):
            return print_version(version)
        cmd, rest = args[0], args[1:]
        if cmd == "server":
            return cmd_server(rest, version)
        if cmd == "kubectl":
            return cmd_kubectl(rest)
        if cmd == "etcd-snapshot":
            return cmd_etcd_snapshot(rest)
        if cmd == "certificate":
            return cmd_certificate(rest)
        if cmd == "ctr":
            return cmd_ctr(rest)
        if cmd in ("crictl", "agent", "check-config", "token", "secrets-encrypt", "completion"):
            sys.stderr.write(f"k3s {cmd}: not modelled by the k3s test stand-in\n")
            return 1
        _log("fatal", f"No help topic for '{cmd}'")
        return 1
    except Fatal as exc:
        _log("fatal", str(exc))
        return 1
    except KubectlError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1


def run() -> None:
    sys.exit(main(sys.argv))

"""k3s stand-in: certificate (see the package docstring for what is modelled and why)."""

from __future__ import annotations

import os
import shutil
import time

from k3s_standin.common import DEFAULT_DATA_DIR, Fatal, info
from k3s_standin.config import parse_flags
from k3s_standin.pki import issue_cert


# ---------------------------------------------------------------- certificate
def cmd_certificate(argv: list[str]) -> int:
    if not argv or argv[0] != "rotate":
        raise Fatal("the k3s stand-in models only `k3s certificate rotate`")
    opts = parse_flags(argv[1:], {"data-dir", "config", "service"}, set(), {"debug"})[0]
    data_dir = os.path.abspath(opts.get("data-dir") or DEFAULT_DATA_DIR)
    tls = os.path.join(data_dir, "server", "tls")
    if not os.path.isdir(tls):
        raise Fatal(f"stat {tls}: no such file or directory")
    info("Server detected, rotating server certificates")
    backup = f"{tls}-{int(time.time())}"
    shutil.copytree(tls, backup)
    for leaf in ("client-admin", "serving-kube-apiserver"):
        info(f"Rotating certificates for {leaf} service")
        for ext in ("crt", "key"):
            try:
                os.unlink(os.path.join(tls, f"{leaf}.{ext}"))
            except FileNotFoundError:
                pass
    issue_cert(tls, "client", "client-admin", cn="system:admin", org="system:masters", server=False)
    info(
        f"Successfully backed up certificates for all services to path {backup}, "
        "please restart k3s server or agent to rotate certificates"
    )
    return 0

"""Offline replacement for ansible-test's pip bootstrap script.

ansible-test creates each sanity virtualenv without pip and then runs a
``get-pip.py`` it downloads from ci-files.testing.ansible.com, which our
machines cannot reach. It says the script "can be manually downloaded and
saved" to its cache; ``make sanity`` saves this file there instead. It does
what get-pip does with the same arguments: puts pip into the interpreter
(from the wheel ensurepip bundles), then installs the requested packages
(``pip==<version>``) from PyPI, which is reachable.
"""

import ensurepip
import os
import subprocess
import sys

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

ensurepip.bootstrap(upgrade=True)
# get-pip understands these two; plain `pip install` does not.
arguments = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
# ansible-test runs pip with a reduced environment; trust the system's CA
# bundle (as the machine's own pip configuration does) rather than pip's
# vendored one.
if os.path.exists(SYSTEM_CA_BUNDLE):
    arguments = ["--cert", SYSTEM_CA_BUNDLE, *arguments]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *arguments]))

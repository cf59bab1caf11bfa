"""`python3 k3s_standin` (the package directory) or the built executable (a zipapp whose
entry point is k3s_standin.cli:run)."""

import os
import sys

if not __package__:
    # Run as a directory: make the package importable from its parent.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from k3s_standin.cli import run  # noqa: E402

run()

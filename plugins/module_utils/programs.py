# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""The programs the roles install on the host (k3s-killall.sh, k3s-uninstall.sh,
integr8scode-kubeconfig-refresh, integr8scode-k3s-drift-check) are this file: role host_library
installs it, with ``#!/usr/bin/python3`` in front, under each program's name. Run so, it reads
its settings file, SETTINGS_DIR/<its own name>.json, written by the role that installed the
program (``{"library": ..., "entry": "k3s.watch:main", "settings": {...}}``), puts the library
(this collection's module_utils on the host) on sys.path and returns what the entry point,
``<module under module_utils>:<function>(argv, settings)``, returns as the exit status. The
programs' code is module_utils code, linted and tested like the modules'; no program is a
template.

Standard library only, no import from the collection at module level: run as a program, the
library is not on sys.path yet.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import json
import os
import sys

SETTINGS_DIR = "/etc/integr8scode-provision"
PACKAGE = "ansible_collections.integr8scode.provision.plugins.module_utils"
# The exit status when the settings file is missing or broken (the entry points use 0, 1 and 3).
BROKEN = 2


def settings_path(program, settings_dir=None):
    """The settings file of ``program`` (a path or a name)."""
    return os.path.join(settings_dir or SETTINGS_DIR, os.path.basename(program) + ".json")


def read_program(program, settings_dir=None):
    """The installed program's settings file as a dict (library, entry, settings). Raises
    ValueError naming the file when it is missing, unreadable or not such a dict."""
    path = settings_path(program, settings_dir)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except (IOError, OSError) as exc:
        raise ValueError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise ValueError("%s is not JSON: %s" % (path, exc)) from None
    if not (
        isinstance(document, dict)
        and isinstance(document.get("library"), str)
        and isinstance(document.get("entry"), str)
        and ":" in document["entry"]
        and isinstance(document.get("settings"), dict)
    ):
        raise ValueError("%s does not hold library, entry (module:function) and settings" % path)
    return document


def launch(argv, settings_dir=None):
    """Run the program named by ``argv[0]`` with ``argv[1:]``; its exit status."""
    name = os.path.basename(argv[0])
    try:
        document = read_program(name, settings_dir)
    except ValueError as exc:
        sys.stderr.write("%s: %s (installed by integr8scode.provision)\n" % (name, exc))
        return BROKEN
    if document["library"] not in sys.path:
        sys.path.insert(0, document["library"])
    module, function = document["entry"].split(":", 1)
    entry = getattr(importlib.import_module("%s.%s" % (PACKAGE, module)), function)
    return entry(list(argv[1:]), document["settings"])


if __name__ == "__main__":
    raise SystemExit(launch(sys.argv))

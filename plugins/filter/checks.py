# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Input validation filters for every role (docs: failed_checks.yml, credential_mode_problem.yml,
checksum_mismatch.yml beside this file).

failed_checks: the one way a role reports wrong input (issue 18): from a list of rules, one line
per rule that fails, naming the variable, its value (never a secret's) and what is expected; valid
inputs are not mentioned. credential_mode_problem: the one judgement of a file mode for a file that
holds credentials. checksum_mismatch: a get_url checksum failure as a line naming the variable,
the URL, the expected and the actual digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

_MODE = re.compile(r"^0?[0-7]{3}$")
_REQUIRED = ("var", "ok", "expect")


def _value_text(value):
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def failed_checks(rules):
    """One "<var> = <value>: <expect>" line per rule whose ``ok`` is false, in the rules' order."""
    if not isinstance(rules, Sequence) or isinstance(rules, (str, bytes)):
        raise AnsibleFilterError("failed_checks input must be a list of rules, got %s" % type(rules).__name__)
    lines = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or any(key not in rule for key in _REQUIRED):
            raise AnsibleFilterError(
                "failed_checks: rule %d must be a mapping with %s, got %r" % (index, ", ".join(_REQUIRED), rule)
            )
        ok = rule["ok"]
        if not isinstance(ok, bool):
            raise AnsibleFilterError(
                "failed_checks: rule %d (%s): ok must be a boolean, got %r" % (index, rule["var"], ok)
            )
        if ok:
            continue
        if "value" in rule and not rule.get("secret", False):
            lines.append("%s = %s: %s" % (rule["var"], _value_text(rule["value"]), rule["expect"]))
        else:
            lines.append("%s: %s" % (rule["var"], rule["expect"]))
    return lines


def credential_mode_problem(mode):
    """Why ``mode`` is unfit for a file holding credentials ('' when fit).

    Refused: not an octal mode string, group- or world-writable, world-readable (anyone on the
    host could read or replace the credentials). Group-readable is allowed (a group of operators).
    """
    # An unquoted YAML 0644 arrives as the integer 420.
    text = mode if isinstance(mode, str) else ""
    if not _MODE.match(text):
        return "not an octal mode string such as '0600' (quote it in YAML)"
    bits = int(text, 8)
    reasons = [
        what
        for bit, what in ((0o020, "group-writable"), (0o002, "world-writable"), (0o004, "world-readable"))
        if bits & bit
    ]
    return ", ".join(reasons)


# ansible.builtin.get_url's message on a mismatch (modules/get_url.py, ansible-core 2.19):
# "The checksum for <tmp file> did not match <expected>; it was <actual>."
_GET_URL_MISMATCH = re.compile(r"did not match (?:sha256:)?(?P<expected>[0-9a-fA-F]+); it was (?P<actual>[0-9a-fA-F]+)")


def checksum_mismatch(result, var, source, expected=None):
    """The line naming ``var``, ``source``, the expected and the actual digest when ``result`` (a failed
    get_url result) is a checksum mismatch; '' for any other failure."""
    msg = result.get("msg", "") if isinstance(result, Mapping) else str(result or "")
    match = _GET_URL_MISMATCH.search(str(msg))
    if not match:
        return ""
    return "%s: the sha256 checksum of %s is %s, expected %s" % (
        var,
        source,
        match.group("actual").lower(),
        (expected or match.group("expected")).lower(),
    )


class FilterModule:
    def filters(self):
        return {
            "failed_checks": failed_checks,
            "credential_mode_problem": credential_mode_problem,
            "checksum_mismatch": checksum_mismatch,
        }

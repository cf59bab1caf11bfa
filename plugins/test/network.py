# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Jinja tests ipv4_address and ipv4_cidr (docs: ipv4_address.yml, ipv4_cidr.yml beside this file).

The one judgement of "an IPv4 address" and "an IPv4 CIDR" in the roles' input checks, instead of a
dotted-quad regex in each role. Strict: four decimal octets 0-255 without leading zeros (``010``
is octal to inet_aton and glibc, decimal to Python: the same text would name two addresses), no
blanks, and for a CIDR a prefix 0-32, also without leading zeros. Host bits are allowed in a CIDR
(``10.42.7.9/16``), as docker's ``bip`` and an interface's address are written.
"""

from __future__ import annotations

import ipaddress
import re

# ipaddress alone is not enough: Python < 3.9.5 accepts leading zeros, and every version accepts
# non-ASCII digits in int(); the pattern pins the text, ipaddress the ranges.
_DOTTED_QUAD = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}", re.ASCII)
_PREFIX = re.compile(r"0|[1-9][0-9]?", re.ASCII)


def ipv4_address(value):
    """True for an IPv4 address in strict dotted-quad form (``192.168.1.20``), False for anything
    else: IPv6, a CIDR, leading zeros, blanks, a number that is not a string."""
    if not isinstance(value, str) or not _DOTTED_QUAD.fullmatch(value):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def ipv4_cidr(value):
    """True for ``<ipv4_address>/<prefix>`` with a prefix 0-32 (host bits allowed), else False."""
    if not isinstance(value, str) or value.count("/") != 1:
        return False
    address, prefix = value.split("/")
    if not ipv4_address(address) or not _PREFIX.fullmatch(prefix):
        return False
    return int(prefix) <= 32


class TestModule:
    def tests(self):
        return {"ipv4_address": ipv4_address, "ipv4_cidr": ipv4_cidr}

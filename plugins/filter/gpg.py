# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""OpenPGP key filters (docs: gpg_fingerprints.yml beside this file).

gpg_fingerprints: the fingerprints in ``gpg --with-colons`` output (roles docker and nordvpn:
an apt repository's signing key is checked against its expected primary fingerprint before it is
written to /etc/apt/keyrings).
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible.errors import AnsibleFilterError

# Colon listing records (GnuPG doc/DETAILS): the key records, and the `fpr` record that follows
# each of them with the key's fingerprint in field 10. pub/sec are primary keys, sub/ssb
# subkeys (public and secret listings).
_PRIMARY = ("pub", "sec")
_SUBKEY = ("sub", "ssb")
_FINGERPRINT_FIELD = 9


def _lines(listing):
    if isinstance(listing, str):
        return listing.splitlines()
    if isinstance(listing, bytes) or not isinstance(listing, Sequence):
        raise AnsibleFilterError(
            "gpg_fingerprints input must be the text or the lines of `gpg --with-colons` output, got %s"
            % type(listing).__name__
        )
    for index, line in enumerate(listing):
        if not isinstance(line, str):
            raise AnsibleFilterError(
                "gpg_fingerprints input[%d] must be a line (string), got %s" % (index, type(line).__name__)
            )
    return listing


def gpg_fingerprints(listing, subkeys=False):
    """The fingerprints of the primary keys (and with ``subkeys`` of their subkeys too) in a
    ``gpg --with-colons`` listing, upper-case, in listing order, each once.

    A `fpr` record counts for the key record before it; a `fpr` without one (or after a user id)
    is not a key's fingerprint and is ignored.
    """
    wanted = _PRIMARY + (_SUBKEY if subkeys else ())
    found = []
    owner = None
    for line in _lines(listing):
        fields = line.strip().split(":")
        record = fields[0]
        if record == "fpr":
            if owner in wanted and len(fields) > _FINGERPRINT_FIELD and fields[_FINGERPRINT_FIELD]:
                fingerprint = fields[_FINGERPRINT_FIELD].upper()
                if fingerprint not in found:
                    found.append(fingerprint)
            owner = None
        elif record:
            owner = record
    return found


class FilterModule:
    def filters(self):
        return {"gpg_fingerprints": gpg_fingerprints}

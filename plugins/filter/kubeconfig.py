# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""Kubeconfig filters (docs: point_kubeconfig_at.yml beside this file).

point_kubeconfig_at: a kubeconfig's loopback server pointed at an address (role k3s: the copy
fetched to the controller), over the recovery's own rewrite of the user's kubeconfig
(module_utils/kube/kubeconfig.py ``point_kubeconfig_at``), so both write the same file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.kubeconfig import (
    point_kubeconfig_at as _point_kubeconfig_at,
)


def point_kubeconfig_at(text, address):
    """``text`` with every loopback ``server:`` URL pointing at ``address`` (port kept)."""
    if not isinstance(text, str):
        raise AnsibleFilterError(
            "point_kubeconfig_at input must be a kubeconfig's text (e.g. slurp's content | b64decode), got %s"
            % type(text).__name__
        )
    if not isinstance(address, str) or not address.strip() or address != address.strip():
        raise AnsibleFilterError(
            "point_kubeconfig_at: address must be a host address such as 10.0.0.5, got %r" % (address,)
        )
    return _point_kubeconfig_at(text, address)


class FilterModule:
    def filters(self):
        return {"point_kubeconfig_at": point_kubeconfig_at}

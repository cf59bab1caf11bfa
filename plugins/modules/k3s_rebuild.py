#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_rebuild
short_description: Back up, verify and rebuild a drifted k3s server on its new node IP, then reconnect the app
version_added: "0.2.0"
description:
  - Runs the recovery of a k3s server whose node IP changed (VPN switch, new DHCP lease) in one
    process on the host, so a recovery takes about as long as upstream's bare manual sequence
    while adding a verified backup and real readiness checks. The integr8scode.provision.k3s_recover
    role decides whether to call it (integr8scode.provision.k3s_drift) and asks for confirmation.
  - "O(state=rebuilt): under a run lock, stops the app's kubeconfig consumers in the background,
    saves an etcd snapshot into the backup directory (etcd only; a crash-looping server may not
    answer, the cold copy below is then the backup), stops k3s, copies config.yaml, the token,
    C(server/manifests), C(server/tls), C(server/db), the kubeconfigs and O(backup_paths) into
    O(backup_dir) with a sha256 manifest, and verifies the copy (checksums, required files
    non-empty, C(PRAGMA integrity_check) for SQLite). Nothing is deleted before that verification
    passed; when it fails, k3s and the workers are started again as they were and the module
    fails saying nothing was deleted."
  - Then, with O(strategy=wipe) (upstream's documented fix), deletes C(server/db), C(server/tls) and
    the stale admin kubeconfig; with O(strategy=reset), keeps the datastore and resets in place
    (etcd C(--cluster-reset), or SQLite C(certificate rotate) plus deleting the stale node object).
    Writes O(node_ip) and O(flannel_iface) into config.yaml, starts k3s and waits until the node
    is Ready at O(node_ip) (the probe of integr8scode.provision.k3s_ready).
  - Then refreshes O(user_kubeconfig) from the new admin kubeconfig, re-runs the app's
    cert-generator one-shot and waits until it exits 0 and wrote a new kubeconfig, starts the
    workers that read it and waits until they are ready (the probe of
    integr8scode.provision.compose_wait; upstream's workers have no healthcheck, so running, not
    restarting and up for 5 seconds since a start after the kubeconfig was written), and proves
    the app's kubeconfig with a real API request using its token. A failure after the deletion
    keeps the backup and says how to restore it.
  - O(state=restored) verifies a backup and puts config.yaml, C(server/db) and C(server/tls) back,
    restarting k3s; O(state=verified) only verifies a backup (read-only).
options:
  state:
    description: What to do (see the description).
    type: str
    choices: [rebuilt, restored, verified]
    default: rebuilt
  node_ip:
    description:
      - The node's new address; it must be assigned to an interface of the host.
      - Required with O(state=rebuilt).
    type: str
  flannel_iface:
    description: Interface flannel uses; written as C(flannel-iface) when set (k3s issues 12459, 12056).
    type: str
  strategy:
    description:
      - C(wipe) deletes C(server/db) and C(server/tls) (upstream's procedure; cluster objects are
        lost, the app's cert-generator recreates what it needs).
      - C(reset) keeps the datastore; etcd runs C(k3s server --cluster-reset) (k3s 4296), SQLite
        rotates the serving certificates and deletes the node object that still carries the old
        address so the kubelet registers it again (k3s 5880).
    type: str
    choices: [wipe, reset]
    default: wipe
  datastore:
    description: The datastore k3s uses, as integr8scode.provision.k3s_drift reported it.
    type: str
    choices: [sqlite, etcd]
    default: sqlite
  node_name:
    description: The node's name, needed by O(strategy=reset) with SQLite (default the host name).
    type: str
  backup_dir:
    description:
      - New directory for this run's backup, outside C(server/db); its parent is the backup root
        (created 0700). Required with O(state=rebuilt).
      - With O(state=restored) or O(state=verified), the existing backup to use.
    type: path
  backup_paths:
    description: Further files or directories to back up (persistent volume data).
    type: list
    elements: path
    default: []
  keep_backups:
    description:
      - The newest backups kept under the backup root once this one verified; C(0) keeps all.
      - Also kept, whatever the count (README, Restore points), are the newest backup that verifies; for every
        resource kind, the newest verified backup holding the most objects of it; every backup taken before a
        wipe for O(keep_days), and after that until a newer verified backup that is kept holds at least as many
        objects of every kind (counted into the manifest when the backup is taken, SQLite only); and of those
        taken before a wipe whose objects were not counted (etcd), the newest and the largest.
    type: int
    default: 5
  keep_days:
    description:
      - Days every backup taken before a wipe is kept, whatever it holds; C(0) for no such window (only what the
        datastore held decides). Past them it is kept until a newer verified backup holds at least as much.
    type: int
    default: 7
  backup_meta:
    description: Free-form facts recorded in the manifest (run id, old and new address, findings).
    type: dict
    default: {}
  service:
    description: systemd unit of the k3s server.
    type: str
    default: k3s
  binary:
    description: The k3s binary.
    type: path
    default: /usr/local/bin/k3s
  config_file:
    description:
      - k3s config.yaml. Rendered again by the renderer the k3s role uses
        (integr8scode.provision.k3s_config) with the new C(node-ip) and C(flannel-iface), and the
        old address replaced by the new one in C(tls-san); every other setting is kept.
    type: path
    default: /etc/rancher/k3s/config.yaml
  data_dir:
    description:
      - k3s data directory (holds C(server/db), C(server/tls), C(server/token)).
      - Empty means C(data-dir) from O(config_file) and its drop-ins, else C(/var/lib/rancher/k3s), as k3s
        reads it; the role passes the drift check's C(data_dir).
    type: path
  admin_kubeconfig:
    description: The kubeconfig k3s writes (C(write-kubeconfig)); backed up, removed by a wipe and rewritten by k3s.
    type: path
    default: /etc/rancher/k3s/k3s.yaml
  user_kubeconfig:
    description:
      - A user's copy of the admin kubeconfig (C(~/.kube/config)); backed up, and refreshed from the
        new admin kubeconfig when it exists, keeping its owner. When it pointed at the node
        address rather than loopback, it points at O(node_ip) afterwards.
    type: path
  ready_timeout:
    description: Seconds for starting k3s and the node Ready at O(node_ip), together; past it the recovery fails.
    type: float
    default: 300
  stop_timeout:
    description: Seconds each C(systemctl stop) may take (the unit's C(TimeoutStartSec=0) never bounds anything).
    type: float
    default: 120
  snapshot_timeout:
    description: Seconds an etcd snapshot request may take before the cold copy is relied on.
    type: float
    default: 60
  stack_dir:
    description: The app's compose project directory; without it (or without O(app_kubeconfig)) no app is reconnected.
    type: path
  project_name:
    description:
      - The compose project name (the stack role's C(stack_project_name)); empty uses the
        directory's or the file's C(name:).
    type: str
  compose_files:
    description:
      - Compose files relative to O(stack_dir) (the stack role's C(stack_compose_files)); empty
        uses the default.
    type: list
    elements: str
    default: []
  app_kubeconfig:
    description: The kubeconfig cert-generator writes for the app (backed up; must be rewritten by the re-run).
    type: path
  cert_generator_service:
    description: The one-shot compose service that writes O(app_kubeconfig).
    type: str
    default: cert-generator
  worker_services:
    description: Long-running compose services that read O(app_kubeconfig) at start-up.
    type: list
    elements: str
    default: [k8s-worker, pod-monitor]
  app_kubeconfig_mode:
    description:
      - Mode the rewritten app kubeconfig is given (it holds a token; the stack role's
        C(stack_kubeconfig_mode)).
    type: str
    default: "0600"
  app_api_port:
    description: Port of the API in the app kubeconfig's server URL (C(https://<node_ip>:<port>)).
    type: int
    default: 6443
  app_probe_path:
    description:
      - API path requested with the app kubeconfig's own CA and token to prove it; 200 or 403
        (authenticated, refused by RBAC) accept the token, as the stack role judges it.
    type: str
    default: /api/v1/namespaces
  app_timeout:
    description: Seconds to wait for cert-generator and then for the workers.
    type: float
    default: 300
  lock_path:
    description:
      - Lock directory that keeps two recoveries (or a recovery and a rollback, or site.yml's
        config.yaml write and restart, M(integr8scode.provision.k3s_config) and
        M(integr8scode.provision.k3s_restart)) from interleaving.
      - An empty value means the default.
    type: path
    default: /run/integr8scode/k3s-recover.lock
  run_id:
    description: Identifies this run in the lock and the manifest.
    type: str
    required: true
  lock_owner:
    description: Who runs it, recorded in the lock.
    type: str
    default: ""
  recheck:
    description:
      - With O(state=rebuilt), the parameters of the M(integr8scode.provision.k3s_drift) check the
        plan was made from. Under the lock, before anything stops, the check runs again; the run
        stops without a change when k3s is no longer drifted (unless O(force)), when the host can
        no longer be rebuilt, or when the node address is no longer O(node_ip). Right before
        deleting, O(node_ip) must still be assigned to the host.
    type: dict
  force:
    description: With O(recheck), rebuild also when the check under the lock finds no drift.
    type: bool
    default: false
  pins:
    description:
      - With O(state=rebuilt), the node-address pins as the user set them (keys C(node_ip),
        C(node_interface), C(flannel_iface); empty = not pinned; the recovery's
        C(k3s_recover_node_ip), C(k3s_recover_node_interface), C(k3s_recover_flannel_iface)).
      - Written with config.yaml into C(integr8scode-node.json) in O(config_file)'s directory
        (with O(config_file) and O(data_dir); mode 0644, no secrets), the file
        M(integr8scode.provision.k3s_config) writes for site.yml and the drift watcher reads at every
        check. Omitted, that file is left as it is.
    type: dict
  final_check:
    description:
      - >-
        With O(state=rebuilt), after a recovery that succeeded, the M(integr8scode.provision.k3s_drift)
        check once more in the same process, on what the run rebuilt (O(config_file), O(data_dir),
        O(service), O(node_name), O(node_ip) pinned, and the kubeconfigs the run rewrote, O(admin_kubeconfig),
        O(user_kubeconfig) and O(app_kubeconfig) once the app was reconnected); the nodes the run saw Ready
        stand for the API listing.
      - Drift it still finds fails the module (stage C(final_check)); the recovery stands and its verified
        backup is kept. RV(after) holds its findings.
    type: bool
    default: false
  release_hold:
    description:
      - >-
        With O(state=rebuilt), the drift watcher's state directory. A hold a rollback set there (the watcher
        does not recover while held) ends once the recovery succeeded (RV(hold_released)).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Nothing is changed; O(state=verified) runs, the other states report the plan.
  diff_mode:
    support: none
notes:
  - Needs the Kubernetes client (python3-kubernetes) on the host, which the k3s role installs; the
    app's containers are reached through the Docker Engine API with the standard library.
seealso:
  - module: integr8scode.provision.k3s_drift
  - module: integr8scode.provision.k3s_ready
  - module: integr8scode.provision.compose_wait
author:
  - integr8scode.provision maintainers (@integr8scode)
"""

EXAMPLES = r"""
- name: Rebuild k3s on the address the drift check recommends
  integr8scode.provision.k3s_rebuild:
    node_ip: "{{ drift.recommended_node_ip }}"
    flannel_iface: "{{ drift.recommended_flannel_iface }}"
    datastore: "{{ drift.datastore }}"
    backup_dir: /var/backups/integr8scode-k3s/{{ now(utc=true).strftime('%Y%m%dT%H%M%SZ') }}
    user_kubeconfig: /root/.kube/config
    stack_dir: /opt/Integr8sCode
    app_kubeconfig: /opt/Integr8sCode/backend/kubeconfig.yaml
    run_id: "{{ now(utc=true).timestamp() }}"
  register: rebuild

- name: Verify a backup without touching anything
  integr8scode.provision.k3s_rebuild:
    state: verified
    backup_dir: /var/backups/integr8scode-k3s/20261128T101500Z
    run_id: verify

- name: Put config.yaml, server/db and server/tls back from it
  integr8scode.provision.k3s_rebuild:
    state: restored
    backup_dir: /var/backups/integr8scode-k3s/20261128T101500Z
    run_id: rollback-1
"""

RETURN = r"""
backup:
  description:
    - The backup and its verification (C(ok), C(checked) files, C(integrity_check), C(errors), C(pruned)).
    - C(backup_dir) is the directory really used, O(backup_dir) or, when another run's backup already has that
      name (two runs in one second), C(<name>-2), C(<name>-3)... beside it.
    - C(contents) counts the objects per resource kind in the backup's datastore (C(counts) is null for etcd);
      C(retention) says for every backup under the root whether it was kept or pruned, and why.
  returned: always, once a backup was taken or verified
  type: dict
snapshot:
  description: Whether an etcd snapshot went into the backup, and why not.
  returned: state=rebuilt with etcd
  type: dict
removed:
  description: Paths deleted by the wipe.
  returned: state=rebuilt
  type: list
  elements: str
config:
  description:
    - The keys written into config.yaml and whether the file changed; with O(pins), also the
      C(pins) written and whether the pins file changed (C(pins_changed)).
  returned: state=rebuilt
  type: dict
nodes:
  description: The nodes seen when the node was Ready (name, ready, internal_ip).
  returned: state=rebuilt
  type: list
  elements: dict
user_kubeconfig:
  description: The refreshed user kubeconfig (path, refreshed, server).
  returned: state=rebuilt
  type: dict
app:
  description:
    - The app's reconnection (C(reconnected), cert-generator's and the workers' services as compose_wait
      reports them, C(kubeconfig_server), C(probe_status)). The token itself is never returned.
  returned: state=rebuilt
  type: dict
restored:
  description: Paths put back from the backup.
  returned: state=restored
  type: list
  elements: str
timings:
  description: Seconds spent in each phase (prepare, backup, rebuild, k3s_ready, cert_generator, workers, final_check).
  returned: state=rebuilt
  type: dict
started_at:
  description: Epoch seconds when the module started.
  returned: always
  type: float
workers_ready_at:
  description: >-
    Epoch seconds when the workers were ready (running without a restart for 5 seconds; they have
    no healthcheck, as upstream's), before the token proof (null without an app).
  returned: state=rebuilt
  type: float
after:
  description:
    - With O(final_check), the drift check after the recovery (C(drift), C(findings), C(node_ip)), as
      M(integr8scode.provision.k3s_drift) returns them.
  returned: state=rebuilt with final_check, once the recovery succeeded
  type: dict
hold_released:
  description: With O(release_hold), whether a hold of the watcher was ended.
  returned: state=rebuilt with release_hold, once the recovery succeeded
  type: bool
stage:
  description:
    - On failure, the phase that failed (C(lock), C(backup), C(rebuild), C(k3s_ready), C(app), C(final_check)).
  returned: failure
  type: str
journal_tail:
  description: On a k3s that did not start or report ready in time, the last lines of its unit's journal.
  returned: failure in stage k3s_ready
  type: str
restore_command:
  description: On a failure after the deletion, the command that restores the backup.
  returned: failure after the deletion
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.rebuild import (
    ARGUMENT_SPEC,
    ModuleFailure,
    Rebuild,
    execute,
    validate,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.api import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    errors = validate(p)
    if errors:
        module.fail_json(msg="; ".join(errors))
    job = Rebuild(p, module)
    if p["state"] == "verified" or (module.check_mode and p["state"] == "restored"):
        try:
            job.verified()
        except ModuleFailure as exc:
            module.fail_json(msg=str(exc), **job.result)
        module.exit_json(**job.result)
    if module.check_mode:
        job.result.update(
            changed=True,
            msg="check mode: would back up to %s and %s k3s onto %s" % (p["backup_dir"], p["strategy"], p["node_ip"]),
        )
        module.exit_json(**job.result)
    if p["state"] == "rebuilt" and not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes (python3-kubernetes)"), exception=KUBERNETES_IMPORT_ERROR)

    try:
        execute(job)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), **job.result)
    module.exit_json(**job.result)


if __name__ == "__main__":
    main()

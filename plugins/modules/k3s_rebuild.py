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
    workers that read it and waits until they are healthy (the probe of
    integr8scode.provision.compose_wait), and proves the app's kubeconfig with a real API request
    using its token. A failure after the deletion keeps the backup and says how to restore it.
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
    description: Backups (by timestamp name) kept under the backup root once this one verified; C(0) keeps all.
    type: int
    default: 5
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
    description: k3s data directory (holds C(server/db), C(server/tls), C(server/token)).
    type: path
    default: /var/lib/rancher/k3s
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
    description: Seconds to wait for the node to be Ready at O(node_ip).
    type: float
    default: 300
  snapshot_timeout:
    description: Seconds an etcd snapshot request may take before the cold copy is relied on.
    type: float
    default: 60
  stack_dir:
    description: The app's compose project directory; without it (or without O(app_kubeconfig)) no app is reconnected.
    type: path
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
    description: Lock directory that keeps two recoveries (or a recovery and a rollback) from interleaving.
    type: path
    default: /run/lock/integr8scode-k3s-recover.lock
  lock_ttl:
    description: Seconds after which a lock left by a run that died may be taken over.
    type: int
    default: 3600
  run_id:
    description: Identifies this run in the lock and the manifest.
    type: str
    required: true
  lock_owner:
    description: Who runs it, recorded in the lock.
    type: str
    default: ""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Nothing is changed; O(state=verified) runs, the other states report the plan.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Needs the Docker SDK for Python (python3-docker) and the Kubernetes client (python3-kubernetes)
    on the host when an app is reconnected; the k3s and stack roles install them.
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
  description: The backup and its verification (C(ok), C(checked) files, C(integrity_check), C(errors), C(pruned)).
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
  description: The keys written into config.yaml and whether the file changed.
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
  description: Seconds spent in each phase (prepare, backup, rebuild, k3s_ready, cert_generator, workers).
  returned: state=rebuilt
  type: dict
started_at:
  description: Epoch seconds when the module started.
  returned: always
  type: float
workers_ready_at:
  description: Epoch seconds when the workers were healthy (null without an app).
  returned: state=rebuilt
  type: float
stage:
  description: On failure, the phase that failed (C(lock), C(backup), C(rebuild), C(k3s_ready), C(app)).
  returned: failure
  type: str
restore_command:
  description: On a failure after the deletion, the command that restores the backup.
  returned: failure after the deletion
  type: str
"""

import ipaddress
import os
import re
import threading
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.integr8scode.provision.plugins.module_utils.compose import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    LABEL_SERVICE,
    ComposeError,
    ComposeProbe,
    DockerException,
    EventWaker,
    docker_client,
    failure_details,
    list_containers,
    load_definition,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.files import atomic_write, write_if_changed
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import (
    readdress,
    render_config,
    settings_from_text,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s_api import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    K3sProbe,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s_backup import (
    BackupError,
    RunLock,
    create_backup,
    prepare_backup_dir,
    remove_path,
    restore,
    verify,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (
    judge as judge_app_kubeconfig,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (
    prove_token,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.app_kubeconfig import (
    secure as secure_app_kubeconfig,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.kubeconfig import (
    KubeconfigError,
    current_server,
    read_kubeconfig,
    server_host,
)
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import (
    Deadline,
    ProbeResult,
    poll,
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SERVER_LINE = re.compile(r"^(\s*server:\s*https://)(127\.0\.0\.1|localhost|\[::1\])(:\d+)", re.MULTILINE)


class StepError(Exception):
    """A failed step; ``details`` are merged into the module result."""

    def __init__(self, message, **details):
        super(StepError, self).__init__(message)
        self.details = details


class Settings:
    """The module seen by a shared probe with the probe's own settings as ``params``."""

    def __init__(self, module, **params):
        self._module = module
        self.params = params

    def __getattr__(self, name):
        return getattr(self._module, name)


class Background:
    """A command run through module.run_command on a thread, so the workers' stop timeout passes
    while the backup and the rebuild run."""

    def __init__(self, module, argv, cwd):
        self.outcome = (None, "")
        self.thread = threading.Thread(target=self._run, args=(module, argv, cwd), name="background-command")
        self.thread.daemon = True
        self.thread.start()

    def _run(self, module, argv, cwd):
        rc, out, err = module.run_command(argv, cwd=cwd)
        self.outcome = (rc, err or out)

    def wait(self, timeout):
        """(rc, output); rc is None when it did not finish within ``timeout`` seconds."""
        self.thread.join(timeout)
        return self.outcome


class Rebuild:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.started_at = time.time()
        self.timings = {}
        self.result = dict(changed=False, started_at=self.started_at, timings=self.timings)
        self.server_dir = os.path.join(self.p["data_dir"], "server")
        self.db_dir = os.path.join(self.server_dir, "db")
        self.tls_dir = os.path.join(self.server_dir, "tls")

    # ------------------------------------------------------------------ small tools

    def run(self, argv, what, cwd=None, ok=(0,)):
        rc, out, err = self.module.run_command(argv, cwd=cwd)
        if rc not in ok:
            raise StepError("%s failed (rc=%d): %s" % (what, rc, (err or out).strip()[-1500:]))
        return rc, out, err

    def bounded(self, seconds, *argv):
        """argv under coreutils' timeout: k3s commands that may hang on a server that does not answer."""
        return [self.module.get_bin_path("timeout", required=True), str(max(1, int(seconds)))] + list(argv)

    def systemctl(self, verb):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        self.run([systemctl, verb, self.p["service"]], "systemctl %s %s" % (verb, self.p["service"]))

    def active_state(self):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        _rc, out, _err = self.module.run_command([systemctl, "show", "-p", "ActiveState", "--value", self.p["service"]])
        return out.strip()

    def containers(self, client, definition, service):
        """The project's containers of one service (by the labels compose sets)."""
        found = [
            c["Id"]
            for c in list_containers(client, definition.name)
            if (c.get("Labels") or {}).get(LABEL_SERVICE) == service
        ]
        if not found:
            raise StepError(
                "the compose project %s has no container for %s (deploy the stack first)" % (definition.name, service),
                stage="app",
            )
        return found

    def phase(self, name, since):
        self.timings[name] = round(time.monotonic() - since, 3)
        return time.monotonic()

    # ------------------------------------------------------------------ rebuilt

    def app_present(self):
        p = self.p
        return bool(p["stack_dir"] and p["app_kubeconfig"] and os.path.isfile(p["app_kubeconfig"]))

    def kubeconfig_server_host(self, path):
        try:
            return server_host(current_server(read_kubeconfig(path)))[0]
        except KubeconfigError:
            return None

    def rebuilt(self):
        p = self.p
        app = self.app_present()
        user = p["user_kubeconfig"] if p["user_kubeconfig"] and p["user_kubeconfig"] != p["admin_kubeconfig"] else None
        user_host = self.kubeconfig_server_host(user) if user and os.path.isfile(user) else None
        was_active = self.active_state() in ("active", "activating", "reloading")

        # The workers cannot reach k3s until the end anyway; stopping them now lets their stop
        # timeout run alongside the backup and the rebuild instead of after them.
        stopper, client, definition = None, None, None
        if app:
            docker = self.module.get_bin_path("docker", required=True)
            stopper = Background(self.module, [docker, "compose", "stop"] + p["worker_services"], p["stack_dir"])
        self.timings["prepare"] = round(time.time() - self.started_at, 3)
        mark = time.monotonic()
        try:
            if app:
                client = docker_client()
                definition = load_definition(
                    Settings(self.module, project_src=p["stack_dir"], project_name=None), client
                )
            self.backup()
        except (StepError, BackupError, ComposeError, DockerException, OSError) as exc:
            self.undo_stops(stopper, was_active)
            self.fail(
                "backup",
                "The backup failed or did not verify: %s. Nothing was deleted; %s and %s are untouched and %s was "
                "started again as it was. Free space or fix the source under %s and re-run."
                % (exc, self.db_dir, self.tls_dir, p["service"], os.path.dirname(p["backup_dir"].rstrip("/"))),
            )
        mark = self.phase("backup", mark)

        try:
            self.rebuild_k3s()
            mark = self.phase("rebuild", mark)
            self.wait_ready()
            mark = self.phase("k3s_ready", mark)
            self.refresh_user_kubeconfig(user, user_host)
            if app:
                self.reconnect(client, definition, stopper, mark)
            else:
                self.result["app"] = dict(reconnected=False, reason="no app kubeconfig at %s" % p["app_kubeconfig"])
                self.result["workers_ready_at"] = None
        except (StepError, BackupError, ComposeError, DockerException, KubeconfigError, OSError) as exc:
            self.fail(
                getattr(exc, "details", {}).get("stage", "rebuild"),
                "Recovery failed after the backup: %s. The verified backup is kept at %s. Fix the cause and re-run "
                "recover.yml, or restore the previous state: %s (by hand: %s/RESTORE.txt)."
                % (exc, p["backup_dir"], self.restore_command(), p["backup_dir"]),
                restore_command=self.restore_command(),
                **{k: v for k, v in getattr(exc, "details", {}).items() if k != "stage"},
            )
        self.result["changed"] = True
        self.result["elapsed"] = round(time.time() - self.started_at, 3)

    def restore_command(self):
        return (
            "ansible-playbook playbooks/recover.yml -e k3s_recover_rollback=true -e k3s_recover_rollback_from=%s "
            "-e k3s_recover_confirm=true" % self.p["backup_dir"]
        )

    def undo_stops(self, stopper, was_active):
        """After a failed backup: the workers and k3s run again as they did before."""
        if stopper is not None:
            stopper.wait(self.p["app_timeout"])
            docker = self.module.get_bin_path("docker", required=True)
            self.module.run_command([docker, "compose", "start"] + self.p["worker_services"], cwd=self.p["stack_dir"])
        if was_active:
            systemctl = self.module.get_bin_path("systemctl", required=True)
            self.module.run_command([systemctl, "start", self.p["service"]])

    def backup(self):
        p = self.p
        # Upstream's manual fix runs `k3s etcd-snapshot save` without --dir, which writes into
        # server/db/snapshots, the directory it deletes next; here it goes into the backup. A
        # crash-looping server may not answer: the cold copy of server/db/etcd is then the backup.
        if p["datastore"] == "etcd":
            # create_backup prepares the directory too; the snapshot has to land in it first.
            prepare_backup_dir(p["backup_dir"])
            snapshot = dict(saved=False, dir=os.path.join(p["backup_dir"], "etcd-snapshot"))
            rc, out, err = self.module.run_command(
                self.bounded(p["snapshot_timeout"], p["binary"], "etcd-snapshot", "save", "--dir", snapshot["dir"],
                             "--name", "recover")
            )  # fmt: skip
            snapshot["saved"] = rc == 0
            if rc != 0:
                lines = (err or out).strip().splitlines()
                snapshot["reason"] = lines[-1] if lines else "rc=%d" % rc
            self.result["snapshot"] = snapshot
        # SQLite cannot be snapshotted at all (k3s 11388, kine 88); the maintainers' advice is to
        # stop k3s and copy server/db (k3s 1318), which also gives etcd a consistent cold copy.
        self.systemctl("stop")
        paths = [
            p["config_file"],
            p["config_file"] + ".d",
            os.path.join(self.server_dir, "token"),
            os.path.join(self.server_dir, "manifests"),
            self.tls_dir,
            self.db_dir,
            p["admin_kubeconfig"],
        ]
        paths += [x for x in (p["user_kubeconfig"], p["app_kubeconfig"]) if x] + p["backup_paths"]
        required = [p["config_file"], os.path.join(self.server_dir, "token")]
        if p["datastore"] == "sqlite":
            required.append(os.path.join(self.db_dir, "state.db"))
        self.result["backup"] = create_backup(
            p["backup_dir"],
            paths,
            datastore=p["datastore"],
            db_dir=self.db_dir,
            required=required,
            # etcd's data file; an empty one means a cold copy of nothing.
            required_nonempty=["/server/db/etcd/member/snap/db$"] if p["datastore"] == "etcd" else [],
            meta=dict(p["backup_meta"], run_id=p["run_id"], strategy=p["strategy"], new_node_ip=p["node_ip"]),
            keep=p["keep_backups"],
        )

    def write_config(self):
        """config.yaml on the new address through the k3s role's renderer, so the next site.yml
        renders the same bytes (it once line-edited a copy and a rerun undid the recovery)."""
        p = self.p
        with open(p["config_file"]) as handle:
            settings = settings_from_text(handle.read())
        settings = readdress(settings, p["node_ip"], p["flannel_iface"] or settings.get("flannel-iface"))
        changed, _before = write_if_changed(p["config_file"], render_config(settings), 0o600, 0, 0)
        keys = ("node-ip", "flannel-iface", "tls-san")
        return dict(file=p["config_file"], set=dict((k, settings[k]) for k in keys), changed=changed)

    def rebuild_k3s(self):
        p = self.p
        if p["strategy"] == "wipe":
            # k3s.yaml goes too (it is in the backup): k3s writes a new one for the new CA on
            # start, and nothing may read the stale one in between.
            self.result["removed"] = [x for x in (self.db_dir, self.tls_dir, p["admin_kubeconfig"]) if remove_path(x)]
        self.result["config"] = self.write_config()
        if p["strategy"] == "reset" and p["datastore"] == "etcd":
            # Rewrites the member's peer address and makes it a single-member cluster (k3s 4296).
            self.run(
                self.bounded(p["ready_timeout"], p["binary"], "server", "--cluster-reset"), "k3s server --cluster-reset"
            )
        elif p["strategy"] == "reset":
            self.run([p["binary"], "certificate", "rotate"], "k3s certificate rotate")
        self.systemctl("start")
        if p["strategy"] == "reset" and p["datastore"] == "sqlite":
            self.delete_stale_node()
            self.systemctl("restart")

    def delete_stale_node(self):
        """k3s serves the API for a few seconds before the node-IP check stops it; the delete is
        retried until it lands in such a window (k3s 5880). Already gone counts as done."""
        name = self.p["node_name"] or os.uname()[1]
        argv = [self.p["binary"], "kubectl", "delete", "node", name]

        def probe():
            rc, out, err = self.module.run_command(argv)
            return ProbeResult(rc == 0 or "NotFound" in err, False, dict(stdout=out, stderr=err), err.strip())

        outcome = poll(probe, self.p["ready_timeout"], interval=0.5, max_interval=1.0)
        if not outcome.ready:
            raise StepError("could not delete the stale node object %s: %s" % (name, outcome.message))

    def wait_ready(self):
        p = self.p
        settings = Settings(
            self.module,
            kubeconfig=p["admin_kubeconfig"],
            context=None,
            node_name=None,
            node_ip=p["node_ip"],
            deployments=[],
            request_timeout=5.0,
        )
        outcome = poll(K3sProbe(settings, Deadline(p["ready_timeout"])), p["ready_timeout"])
        self.result["nodes"] = outcome.observation.get("nodes", [])
        if not outcome.ready:
            raise StepError(
                "k3s not Ready at %s after %ss: %s" % (p["node_ip"], p["ready_timeout"], outcome.message),
                stage="k3s_ready",
                readyz=outcome.observation.get("readyz"),
            )

    def refresh_user_kubeconfig(self, user, user_host):
        """A new CA makes every copy of k3s.yaml stale. Only a copy that exists is refreshed
        (creating one is the k3s role's job); it keeps its owner and pointing at the node address
        if it did so before."""
        info = dict(path=user, refreshed=False)
        self.result["user_kubeconfig"] = info
        if not user or not os.path.isfile(user):
            return
        with open(self.p["admin_kubeconfig"]) as handle:
            text = handle.read()
        if user_host and user_host not in LOOPBACK_HOSTS:
            text = SERVER_LINE.sub(lambda m: m.group(1) + self.p["node_ip"] + m.group(3), text)
        atomic_write(user, text, 0o600)
        info.update(refreshed=True, server=self.kubeconfig_server_host(user))

    def wait_compose(self, client, definition, services, oneshots, what):
        settings = Settings(self.module, restart_threshold=3, unhealthy_grace=30.0, stable_after_restart=2.0)
        probe = ComposeProbe(settings, client, definition, services, oneshots)
        waker = EventWaker(client, definition.name)
        try:
            outcome = poll(probe, self.p["app_timeout"], sleep=waker.sleep)
        finally:
            waker.close()
        services_seen = outcome.observation.get("services", {})
        if not outcome.ready:
            bad = sorted((outcome.observation.get("failed") or outcome.observation.get("waiting") or {}).keys())
            health_logs, logs = failure_details(client, probe, bad, 30)
            raise StepError(
                "%s did not become ready: %s" % (what, outcome.message),
                stage="app",
                services=services_seen,
                healthcheck_logs=health_logs,
                logs=logs,
            )
        return services_seen

    def reconnect(self, client, definition, stopper, mark):
        """cert-generator writes a new kubeconfig (new address, token of a new ServiceAccount); the
        workers read it only at start-up, so they start after it."""
        p = self.p
        app = dict(reconnected=False)
        self.result["app"] = app
        unknown = [s for s in [p["cert_generator_service"]] + p["worker_services"] if s not in definition.services]
        if unknown:
            raise StepError(
                "the compose project in %s defines no %s" % (p["stack_dir"], ", ".join(unknown)), stage="app"
            )
        # What `docker compose restart` / `start` do to existing containers, through the API the
        # probes already hold: no CLI start-up on the path to healthy workers.
        for cid in self.containers(client, definition, p["cert_generator_service"]):
            client.api.restart(cid, timeout=10)
        generator = p["cert_generator_service"]
        app["cert_generator"] = self.wait_compose(client, definition, [generator], {generator}, generator)
        # Its exit code is only that of its last script: success is a file this run wrote, for
        # the new address (the stack role judges it with the same function).
        config, facts = judge_app_kubeconfig(
            p["app_kubeconfig"], p["node_ip"], p["app_api_port"], app["cert_generator"][generator]["started_at"]
        )
        if facts["problems"]:
            raise StepError(
                "%s exited 0 but %s is not usable: %s" % (generator, p["app_kubeconfig"], "; ".join(facts["problems"])),
                stage="app",
            )
        # As the stack role leaves it, so its next run changes nothing.
        secure_app_kubeconfig(p["app_kubeconfig"], int(p["app_kubeconfig_mode"], 8))
        mark = self.phase("cert_generator", mark)
        rc, err = stopper.wait(p["app_timeout"])
        if rc is None:
            raise StepError("docker compose stop of the workers did not finish in %ss" % p["app_timeout"], stage="app")
        if rc != 0:
            raise StepError("docker compose stop of the workers failed: %s" % err.strip()[-1500:], stage="app")
        for worker in p["worker_services"]:
            for cid in self.containers(client, definition, worker):
                client.api.start(cid)
        app["workers"] = self.wait_compose(
            client, definition, p["worker_services"], definition.oneshots, ", ".join(p["worker_services"])
        )
        self.result["workers_ready_at"] = time.time()
        self.phase("workers", mark)
        accepted, status, error = prove_token(config, p["app_probe_path"])
        if not accepted:
            raise StepError(
                "the API refused the app's kubeconfig (%s, GET %s): status %s %s"
                % (p["app_kubeconfig"], p["app_probe_path"], status, error),
                stage="app",
            )
        app.update(kubeconfig_server=facts["server"], probe_status=status)
        app["reconnected"] = True

    # ------------------------------------------------------------------ restored, verified

    def verified(self):
        checked = verify(self.p["backup_dir"])
        self.result["backup"] = dict(checked, backup_dir=self.p["backup_dir"])
        if not checked["ok"]:
            self.fail("verify", "backup %s did not verify: %s" % (self.p["backup_dir"], "; ".join(checked["errors"])))

    def restored(self):
        p = self.p
        self.verified()
        targets = [p["config_file"], self.db_dir, self.tls_dir]
        try:
            self.systemctl("stop")
            self.result["restored"] = restore(p["backup_dir"], targets)
        except (StepError, BackupError, OSError) as exc:
            self.fail("restore", "Rollback from %s failed: %s" % (p["backup_dir"], exc))
        self.result["changed"] = True
        # On a host whose address differs from the backup's, k3s fails to start again; the
        # restore itself is done, so that is reported, not a failure.
        try:
            self.systemctl("start")
            self.result["started"] = True
        except StepError as exc:
            self.result.update(started=False, start_error=str(exc))

    def fail(self, stage, msg, **extra):
        self.result.update(extra)
        self.result["stage"] = stage
        raise ModuleFailure(msg)


class ModuleFailure(Exception):
    pass


def validate(module):
    p = module.params
    errors = []
    if p["state"] == "rebuilt":
        for name in ("node_ip", "backup_dir"):
            if not p[name]:
                errors.append("%s is required with state=rebuilt" % name)
        if p["node_ip"]:
            try:
                p["node_ip"] = str(ipaddress.ip_address(p["node_ip"].strip()))
            except ValueError:
                errors.append("node_ip must be an IP address, got %r" % (p["node_ip"],))
        if p["backup_dir"]:
            backup = os.path.abspath(p["backup_dir"])
            server = os.path.abspath(os.path.join(p["data_dir"], "server"))
            if backup == server or backup.startswith(server + os.sep):
                errors.append("backup_dir %s must be outside %s, which a wipe deletes" % (backup, server))
        if p["stack_dir"] and not p["app_kubeconfig"]:
            errors.append("app_kubeconfig is required with stack_dir")
        if not p["worker_services"]:
            errors.append("worker_services must name at least one service")
    elif not p["backup_dir"]:
        errors.append("backup_dir is required with state=%s" % p["state"])
    for name in ("ready_timeout", "app_timeout", "snapshot_timeout"):
        if p[name] <= 0:
            errors.append("%s must be a positive number of seconds, got %r" % (name, p[name]))
    if p["keep_backups"] < 0:
        errors.append("keep_backups must be zero (keep all) or positive, got %d" % p["keep_backups"])
    if not p["app_probe_path"].startswith("/"):
        errors.append("app_probe_path must start with /, got %r" % p["app_probe_path"])
    return errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["rebuilt", "restored", "verified"], default="rebuilt"),
            node_ip=dict(type="str"),
            flannel_iface=dict(type="str"),
            strategy=dict(type="str", choices=["wipe", "reset"], default="wipe"),
            datastore=dict(type="str", choices=["sqlite", "etcd"], default="sqlite"),
            node_name=dict(type="str"),
            backup_dir=dict(type="path"),
            backup_paths=dict(type="list", elements="path", default=[]),
            keep_backups=dict(type="int", default=5),
            backup_meta=dict(type="dict", default={}),
            service=dict(type="str", default="k3s"),
            binary=dict(type="path", default="/usr/local/bin/k3s"),
            config_file=dict(type="path", default="/etc/rancher/k3s/config.yaml"),
            data_dir=dict(type="path", default="/var/lib/rancher/k3s"),
            admin_kubeconfig=dict(type="path", default="/etc/rancher/k3s/k3s.yaml"),
            user_kubeconfig=dict(type="path"),
            ready_timeout=dict(type="float", default=300.0),
            snapshot_timeout=dict(type="float", default=60.0),
            stack_dir=dict(type="path"),
            app_kubeconfig=dict(type="path"),
            cert_generator_service=dict(type="str", default="cert-generator"),
            worker_services=dict(type="list", elements="str", default=["k8s-worker", "pod-monitor"]),
            app_probe_path=dict(type="str", default="/api/v1/namespaces"),
            app_api_port=dict(type="int", default=6443),
            app_kubeconfig_mode=dict(type="str", default="0600"),
            app_timeout=dict(type="float", default=300.0),
            lock_path=dict(type="path", default="/run/lock/integr8scode-k3s-recover.lock"),
            lock_ttl=dict(type="int", default=3600),
            run_id=dict(type="str", required=True),
            lock_owner=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors = validate(module)
    if errors:
        module.fail_json(msg="; ".join(errors))
    job = Rebuild(module)
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
    if job.app_present() and not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (python3-docker)"), exception=DOCKER_IMPORT_ERROR)
    if p["state"] == "rebuilt" and not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes (python3-kubernetes)"), exception=KUBERNETES_IMPORT_ERROR)

    lock = RunLock(p["lock_path"], p["run_id"], p["lock_ttl"], p["lock_owner"])
    try:
        try:
            owner = lock.acquire()
        except (BackupError, OSError) as exc:
            job.fail("lock", str(exc))
        job.result["lock"] = dict(path=p["lock_path"], owner=owner, stale_lock_taken_over=lock.taken_over)
        if p["state"] == "rebuilt":
            job.rebuilt()
        else:
            job.restored()
    except ModuleFailure as exc:
        lock.release()
        module.fail_json(msg=str(exc), **job.result)
    lock.release()
    module.exit_json(**job.result)


if __name__ == "__main__":
    main()

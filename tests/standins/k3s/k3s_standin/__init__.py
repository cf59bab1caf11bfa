"""TEST STAND-IN for the k3s binary. Never install this for users.

Real k3s cannot be downloaded on our machines (no GitHub), so tests install this
program where the k3s role would put the real binary. It is worth exactly as much
as its fidelity: at every point our roles and the recovery playbook touch, it
behaves like k3s v1.32 (paths, flags, files written, exit codes, messages,
systemd readiness). Built into a release-like directory by build-release.sh,
which bakes the version in (K3S_STANDIN_VERSION below).

Modelled behaviours and the k3s issues behind them:
- `k3s --version` / `-v` prints k3s's two-line format; argv[0] dispatch
  (`kubectl` symlink acts as `k3s kubectl`), as the install script's symlinks do.
- `k3s server`: config from /etc/rancher/k3s/config.yaml plus config.yaml.d/*.yaml
  (later files override, `key+:` appends), then CLI flags; unknown keys are
  warned about and skipped ("Unknown flag --x found in config.yaml, skipping",
  k3s #11388 shows the message). First start writes server/tls (CAs, serving
  cert with node-ip, tls-san, 127.0.0.1, localhost, kubernetes... SANs; the
  serving cert is re-issued when the SAN set changes, like dynamiclistener),
  server/token (K10<ca-hash>::server:<secret>), the datastore (kine-like SQLite
  table in server/db/state.db, or with cluster-init a store under
  server/db/etcd/ with a member record holding the peer URL), server/manifests/,
  and /etc/rancher/k3s/k3s.yaml (server https://127.0.0.1:6443, admin client
  certificate, mode from write-kubeconfig-mode, default 0600).
- HTTPS on bind-address:6443 (https-listen-port): /readyz /livez /healthz
  /version anonymous; a small Kubernetes API (discovery, nodes, namespaces,
  serviceaccounts + TokenRequest, secrets, configmaps, pods, services,
  deployments, RBAC kinds stored not enforced, networkpolicies) authenticated by
  client certificates of the client CA or by bearer tokens signed with
  server/tls/service.key. Wiping server/tls means a new CA and key: old
  kubeconfigs fail TLS verification, old tokens get 401.
- sd_notify READY=1 on $NOTIFY_SOCKET once the API serves (unit Type=notify).
- IP change (k3s #9879, #6969, #5880): the node object keeps the old
  InternalIP. When the node IP (configured or auto-detected from the
  default-route interface) differs from it, or node-ip is on no interface, the
  server comes up, reports READY, then dies a few seconds later the way
  k3s #12639 shows ("Failed to start networking: unable to initialize network
  policy controller: error getting node subnet: failed to find interface with
  specified node ip"), exit 1: with Restart=always that is the crash loop
  (`activating (auto-restart)`). In that window `kubectl delete node` works,
  after which a restart registers the node with the new IP (k3s #5880). With
  embedded etcd, a recorded peer address that can no longer be bound fails
  start-up at once with etcd's "listen tcp IP:2380: bind: cannot assign
  requested address"; `--cluster-reset` rewrites the member peer address and
  exits 0 with k3s's "Managed etcd cluster membership has been reset, restart
  without --cluster-reset flag now..." (k3s #4296, #7148, rke2 #5651).
- `k3s etcd-snapshot save [--name N] [--dir D]` / `ls` ask the running server,
  as k3s >= 1.29 does: with etcd it writes <name>-<node>-<unix-seconds>
  (default name on-demand, dir server/db/snapshots); with SQLite it fails with
  "see server log for details: etcd datastore disabled", exit 1 (k3s #11388;
  kine never snapshots, kine #88).
- `k3s kubectl get nodes|namespaces|... [-o json|wide|name]`,
  `k3s kubectl delete node NAME` (k3s #5880).
- `k3s certificate rotate` (k3s stopped): backs server/tls up to
  server/tls-<unix-seconds>, re-issues leaf certificates (CAs and service.key
  kept, as in k3s); the next start writes a new k3s.yaml.
- Airgap images in agent/images/ are "imported" (logged, nothing runs).

Not modelled: containers and pods (nothing runs; pod lists are empty), watches,
RBAC enforcement, admission, server-side apply, JSON patch, applying
server/manifests/*.yaml, agents/joining, flannel, traefik, crictl/ctr,
`k3s check-config`, IPv6 node addresses, etcd snapshots to S3, snapshot restore.

Test hooks (defaults identical to real k3s): K3S_STANDIN_ETC_DIR replaces
/etc/rancher/k3s; K3S_STANDIN_CRASH_DELAY (seconds, default 3) is how long the
server lives before the IP-change fatal error; K3S_STANDIN_NEVER_READY (set: on)
makes `k3s server` behave as embedded etcd after an address change does (k3s #7558,
#2732): it logs "Failed to test data store connection: this server is a not a member of
the etcd cluster. Found [...], expect: ..." every K3S_STANDIN_NEVER_READY_INTERVAL
seconds (default 5), never serves the API, never notifies READY=1 and exits 0 only on
SIGTERM, so a unit with TimeoutStartSec=0 stays `activating`.
"""

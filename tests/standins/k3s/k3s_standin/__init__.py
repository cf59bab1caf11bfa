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
  serving cert is re-issued when a SAN is missing, like deps.go fieldsChanged),
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
- Start order as in k3s (pkg/daemons/control server.go prepare): the certificates first
  (deps.GenServerDeps; the serving cert is re-issued when a SAN such as a new node-ip is missing),
  then the datastore, then the API. So whatever the datastore does next, server/tls already names
  the current node-ip.
- Node address (pkg/agent/run.go configureNode/updateAddressAnnotations, pkg/cloudprovider): a new
  node is registered with node-ip; at every later start the agent patches the Node's
  k3s.io/internal-ip annotation (and flannel's public-ip) to node-ip, logs "Annotations and labels
  have been set successfully on node: <name>", and the k3s cloud provider sets the InternalIP from
  the annotation. K3S_STANDIN_STALE_INTERNAL_IP=1 models the regression k3s #12844 (fixed in the
  Sept 2025 releases): annotation patched, InternalIP left as it was -- what k3s #5880, #1977,
  #2827 describe (the node keeps the old InternalIP until `kubectl delete node`).
- IP change (k3s #9879, #6969, #12639): kube-router's network policy controller takes the Node
  object's InternalIP and looks it up among the local interfaces (pkg/agent/netpol/netpol.go Run);
  none holds it: the server comes up, reports READY, then dies a few seconds later the way k3s
  #12639 shows ("Failed to start networking: unable to initialize network policy controller:
  error getting node subnet: failed to find interface with specified node ip"), exit 1: with
  Restart=always that is the crash loop (`activating (auto-restart)`). With the InternalIP
  following node-ip this is "node-ip (configured, or auto-detected from the default-route
  interface) on no interface"; with the stale hook it is the old InternalIP that counts.
  `disable-network-policy: true` skips the controller and the crash. In the window before the
  crash `kubectl delete node` works.
- Embedded etcd (etcd.py; pkg/etcd/etcd.go, pkg/daemons/executor/executor.go): the member name
  `<node>-<8 hex>` is kept in server/db/etcd/name (ETCD.setName); every start writes
  server/db/etcd/config from the current node-ip before etcd starts (ETCDConfig.ToConfigFile:
  listen-peer-urls https://127.0.0.1:2380,https://IP:2380 and the client equivalents,
  initial-cluster only for a new cluster); only the member record in the store
  (/k3s-standin/etcd/member, standing for etcd's member bucket) keeps the peer URL it was given.
  An address no interface holds then fails with etcd's "listen tcp IP:2380: bind: cannot assign
  requested address" (rke2 #5651); an address that is held but differs from the member's peer URL
  is the readiness loop of pkg/executor/embed/embed.go Embedded.ETCD: "Failed to test etcd
  connection: this server is a not a member of the etcd cluster. Found [<name>=https://OLD:2380],
  expect: <name>=https://NEW:2380" (ETCD.Test's membershipError) every
  K3S_STANDIN_NEVER_READY_INTERVAL seconds (default 5), with no API, no READY=1 and no exit until
  SIGTERM (exit 0), so a unit with TimeoutStartSec=0 stays `activating` with NRestarts=0 (k3s
  #7558, #2732). Older k3s logged the same error as "Failed to test data store connection: ..."
  (pkg/cluster/managed.go testClusterDB).
- `--cluster-reset` (pkg/cluster/managed.go Cluster.start, pkg/etcd/etcd.go ETCD.Reset; k3s #4296,
  #7148, rke2 #5651): refused while server/db/reset-flag exists ("starting kubernetes: preparing
  server: start managed database: Managed etcd cluster membership was previously reset, please
  remove the cluster-reset flag and start k3s normally. If you need to perform another cluster
  reset, you must first manually delete the file at <data-dir>/server/db/reset-flag", exit 1).
  Otherwise: a new member name, the reset-flag, etcd/config for a forced new cluster listening on
  loopback only, etcd up (it publishes the new name); after K3S_STANDIN_RESET_INTERVAL seconds
  (default 5, the Reset ticker) the member's peer URL is updated to node-ip, after two more waits
  (the tick that finds the member, the 5-s shutdown) "Managed etcd cluster membership has been
  reset, restart without --cluster-reset flag now. Backup and delete ${datadir}/server/db on each
  peer etcd server and rejoin the nodes", exit 0. Node objects are never touched. Killed before
  the update, the flag stays and the member keeps the old peer URL. The next normal start deletes
  the reset-flag.
- Start to node Ready: a new node is NotReady ("cni plugin not initialized") for
  K3S_STANDIN_READY_DELAY seconds (default 30; k3s #4340, #4360 report 30-60 s), then Ready.
- Pods (pods.py): flannel's `flannel.1` (a veth pair: this kernel has no vxlan) and KUBE-, CNI-
  and FLANNEL iptables chains while k3s runs; once the node is Ready, per packaged component not
  disabled: `cni0`, a `cni-<uuid>` network namespace with a veth on cni0, a tmpfs at
  /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs and one at
  /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/tmp, and a
  <data-dir>/data/<hash>/bin/containerd-shim-runc-v2 process whose container runs in a cgroup
  below the unit's (Delegate=yes). With KillMode=process all of it survives `systemctl stop k3s`
  (k3s #2624, #1965, #1042); a later start finds the shims running and starts no second copy.
  k3s-killall.sh (the k3s role's) is what removes them.
- Datastore: kine's table; nodes under /registry/minions as Kubernetes protobuf (`k8s\x00` +
  runtime.Unknown, protobuf.py: the fields the stand-in uses), the rest as JSON (kine #36).
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
- Airgap images (images.py; pkg/agent/containerd/containerd.go PreloadImages, watcher.go
  importAndWatchImages/processImageEvent, preloadFile, wharfie tarfile.GetOpener, containerd's
  archive ImportIndex): at every start, before READY=1, every file in <data-dir>/agent/images
  (subdirectories too) whose name ends in .tar, .tar.lz4, .tar.bz2, .tbz, .tar.gz, .tgz, .tar.zst,
  .tzst (case-sensitive) is read as a `docker save` archive or an OCI layout; its images go into
  the image store under <data-dir>/agent/containerd (pinned, plus a <repo>@<digest> name) with
  k3s's log lines; other names are skipped silently; a bad archive logs "Failed to process image
  event: failed to import <file>: ..." and the next file follows; a user-created .cache.json skips
  unchanged files; pins of images whose file is gone are cleared. `ctr [-a A] [-n N] images ls [-q]`
  (`k3s ctr`, the ctr symlink) lists the store like containerd's ctr, once the server published its
  containerd address (/run/k3s/containerd/containerd.sock; K3S_STANDIN_CONTAINERD_ADDRESS).
  .tar.zst/.tar.lz4 need the zstd/lz4 program (Python lacks the codecs). Not modelled: the watcher
  that imports files added while k3s runs (k3s >= v1.32.0, v1.31.5, ...).

Not modelled: server/tls/etcd certificates, the window in which kube-router may read the Node
before the cloud provider updated its InternalIP, flannel with a node-ip no interface holds, the
node-password secret cleanup after a reset, pod objects in the API (pod lists are empty; the pods
above are processes and mounts only), pulling images, watches, RBAC enforcement, admission,
server-side apply, JSON patch, applying server/manifests/*.yaml, agents/joining, flannel, traefik,
crictl, ctr beyond `images ls`, `k3s check-config`, IPv6 node addresses, etcd snapshots to S3, snapshot restore.

Test hooks (defaults identical to real k3s): K3S_STANDIN_ETC_DIR replaces
/etc/rancher/k3s; K3S_STANDIN_CRASH_DELAY (seconds, default 3) is how long the server lives
before the IP-change fatal error; K3S_STANDIN_READY_DELAY (seconds, default 30) shortens the
start-to-Ready time where a test does not measure it; K3S_STANDIN_PODS=0 starts no pods, links or
chains (unit tests on a shared machine); K3S_STANDIN_NEVER_READY (set: on) enters the etcd "not
a member" loop above on any datastore and address, after the certificates (and, on etcd,
etcd/config) are written (the recovery's hang tests; the reported old peer is
K3S_STANDIN_NEVER_READY_PEER, default 10.0.0.1); K3S_STANDIN_RESET_INTERVAL (seconds, default 5)
is each of the three waits of `--cluster-reset`; K3S_STANDIN_STALE_INTERNAL_IP=1 models k3s #12844;
K3S_STANDIN_CONTAINERD_ADDRESS replaces /run/k3s/containerd/containerd.sock (unit tests).
"""

#!/usr/bin/env bash
# Benchmark baseline (prints numbers, asserts nothing): upstream Integr8sCode's
# documented manual fix for "k3s crash loop after VPN or IP change", as a bare
# shell script, run on the host itself. The recover scenarios run it after a
# second IP switch and compare its duration with playbooks/recover.yml's.
#
#   bench/manual_recovery.sh NEW_NODE_IP [STACK_DIR]
#
# Upstream's steps: 1. back up (k3s etcd-snapshot save, kubeconfigs);
# 2. systemctl stop k3s, delete server/db and server/tls, systemctl start k3s;
# 3. docker compose restart cert-generator; 4. restart k8s-worker and
# pod-monitor; 5. verify with the app's kubeconfig. A node-ip pinned in
# config.yaml has to be edited too, or k3s comes back on the old address.
# Kept as documented, traps included: the snapshot goes to server/db/snapshots
# (deleted in step 2) and fails outright with SQLite; nothing is verified.
# The waits poll every 0.2 s so the baseline is not slowed by its own sleeps.
set -euo pipefail

new_ip=${1:?usage: $0 NEW_NODE_IP [STACK_DIR]}
stack_dir=${2:-/opt/Integr8sCode}
config=/etc/rancher/k3s/config.yaml
# The data directory k3s uses (config.yaml's data-dir, else the default), as a person would look it up.
data_dir=$(sed -n 's/^data-dir:[[:space:]]*//p' "$config" | tr -d "\"'" | tail -n 1)
data_dir=${data_dir:-/var/lib/rancher/k3s}
backup=/root/k3s-manual-backup-$(date +%s)

now() { date +%s.%N; }
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) > deadline)); then echo "timed out waiting for: $*" >&2; return 1; fi
    sleep 0.2
  done
}
node_ready_at() { k3s kubectl get nodes -o wide | awk -v ip="$1" 'NR > 1 && $2 == "Ready" && $6 == ip {f=1} END {exit !f}'; }
oneshot_ok() { [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(docker compose ps -aq "$1")")" = "exited 0" ]; }
# Upstream's workers have no healthcheck ("started" = running). Ready as the playbook judges them
# (plugins/module_utils/compose/probe.py): running, not restarting, up for stable_seconds since the
# last start (STABLE_SECONDS in plugins/module_utils/compose/app.py), so both stop the clock alike.
stable_seconds=5
workers_ready() {
  local s status restarting started
  for s in "$@"; do
    read -r status restarting started < <(docker inspect -f '{{.State.Status}} {{.State.Restarting}} {{.State.StartedAt}}' "$(docker compose ps -q "$s")")
    [ "$status" = running ] && [ "$restarting" = false ] || return 1
    awk -v n="$(now)" -v t="$(date -d "$started" +%s.%N)" -v w="$stable_seconds" 'BEGIN { exit !(n - t >= w) }' || return 1
  done
}

start=$(now)

# 1. Back up.
k3s etcd-snapshot save || echo "(etcd-snapshot save failed, as upstream's step does with SQLite)"
mkdir -p "$backup"
cp -a /etc/rancher/k3s/k3s.yaml "$backup/" 2>/dev/null || true
cp -a "$stack_dir/backend/kubeconfig.yaml" "$backup/" 2>/dev/null || true

# 2. Stop, delete server/db and server/tls, point node-ip at the new address, start.
systemctl stop k3s
rm -rf "$data_dir/server/db" "$data_dir/server/tls"
sed -i "s/^node-ip:.*/node-ip: $new_ip/" "$config"
systemctl start k3s
wait_for 300 node_ready_at "$new_ip"
k3s_ready=$(now)

# 3. Regenerate the app kubeconfig.
cd "$stack_dir"
docker compose restart cert-generator
wait_for 300 oneshot_ok cert-generator

# 4. Restart the workers that read it.
docker compose restart k8s-worker pod-monitor
wait_for 300 workers_ready k8s-worker pod-monitor
end=$(now)

# 5. Verify (not timed): the app's kubeconfig against the API.
KUBECONFIG=backend/kubeconfig.yaml k3s kubectl get namespaces >/dev/null && echo "app kubeconfig works"

awk -v s="$start" -v k="$k3s_ready" -v e="$end" \
  'BEGIN { printf "manual recovery: %.1f s (start to workers ready; k3s node Ready after %.1f s)\n", e - s, k - s }'

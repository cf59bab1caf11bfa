#!/usr/bin/env bash
# Try-it lab: a throwaway systemd test host (molecule scenario `lab`, same
# platform settings as every scenario) provisioned by site.yml with offline
# sources. Usage: tests/lab/lab.sh up|down|switch-ip
set -euo pipefail
cd "$(dirname "$0")/../.."

host=i8c-lab

inventory() {
  local dir
  dir=$(molecule list -s lab --format yaml >/dev/null 2>&1; find "$HOME/.ansible/tmp" -maxdepth 1 -name 'molecule.*.lab' -type d | head -n 1)
  echo "$dir/inventory/ansible_inventory.yml"
}

up() {
  molecule create -s lab
  molecule prepare -s lab --force
  molecule converge -s lab
  local ip
  ip=$(docker exec "$host" ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -n 1)
  cat <<INFO

Lab host $host is up at $ip (reachable from this machine only).
  backend   https://$ip/api/v1/health/live   (curl -k)
  frontend  https://$ip:5001                 (curl -k)
  k3s API   https://$ip:6443                 (docker exec $host k3s kubectl get nodes)
  shell     docker exec -it $host bash

Simulate a VPN/IP switch, then recover:
  tests/lab/lab.sh switch-ip
  ansible-playbook -i $(inventory) playbooks/recover.yml -e k3s_recover_confirm=true

Tear down: make lab-destroy
INFO
}

switch_ip() {
  # Same move as the recover scenarios: a new address on eth0, the old one
  # and its default route gone. Only inside the lab host.
  local old new=10.77.0.5
  old=$(docker exec "$host" ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n 1)
  docker exec "$host" sh -c "ip addr add $new/24 dev eth0 && ip addr del $old dev eth0 && ip route replace default via 10.77.0.1 dev eth0 onlink"
  echo "eth0: $old -> $new/24; k3s will crash-loop until recover.yml runs"
}

case "${1:-}" in
  up) up ;;
  down) molecule destroy -s lab ;;
  switch-ip) switch_ip ;;
  *) echo "usage: $0 up|down|switch-ip" >&2; exit 2 ;;
esac

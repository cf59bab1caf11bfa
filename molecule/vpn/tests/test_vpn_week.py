"""A laptop's week with NordVPN on the host site.yml provisioned while the VPN was connected.

Issue 14. prepare.yml installed the NordVPN client stand-in (tests/standins/nordvpn/), set it to
auto-connect and connected it (NordLynx) before converge ran site.yml on the bare host: step a is
"provision with the VPN connected". The steps then follow a user's week:

  a. provisioned with the VPN connected (plus a check-mode run)
  b. disconnect, while another VPN's tunnel (`tun0`) holds the default route in the main table
     (issue 13's walk: the tunnel's default route once in the main table, once through the
     client's policy rule and table 205 as in step a)
  c. connect to another server
  d. switch to OpenVPN (`nordvpn set technology openvpn`, reconnect: `nordtun`)
  e. LAN address change while connected, `playbooks/recover.yml -e k3s_recover_confirm=true`, site.yml
  f. a reboot with auto-connect: nordvpnd, k3s and Docker restarted in boot order
  g. DNS to a resolver at a private address behind a bridge (issue 28, item 10): the client's firewall
     drops DNS to private ranges unless port 53 is allowlisted (nordvpn-linux nft.go addLanDNSDrop);
     with the port removed the query fails from the host and from the k8s-worker container, and
     `site.yml --tags nordvpn` (nordvpn_allowlist_dns) allowlists it again
  h. a reboot with the kill switch on: at shutdown the client keeps its kill-switch table; at boot
     nordvpnd-killswitch.service applies default-deny with nothing allowlisted before
     network-pre.target, then nordvpnd (auto-connect), k3s and Docker start
  i. LAN discovery off: without the allowlist the worker is cut off from the k3s API; site.yml with
     nordvpn_lan_discovery=false allowlists exactly what k3s and the stack need and it reaches it again

After every step: node-ip in config.yaml is the LAN address on eth0, the backend's health endpoint
answers status ok, the k8s-worker container reaches the k3s API at the node address with the app
kubeconfig through the client's firewall, and a rerun of site.yml changes nothing. Each step prints
`VPN STEP <x>: <seconds>s` (printed, not asserted). Only the test host's own interfaces, its Docker
networks and loopback are involved; the tunnel is a veth whose peer is down, so nothing leaves it.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from testhost import CONFIG, STACK, eth0_ip, flat, k3s_config, sh, switch_ip, worker_state

REPO = Path(__file__).resolve().parents[3]
RECOVER = str(REPO / "playbooks" / "recover.yml")
NEW_IP, NEW_GW = "10.77.0.5", "10.77.0.1"
ROLE = "integr8scode.provision.nordvpn : "
# The role's one task on the host (module nordvpn_settings): it reports every change.
SETTINGS = ROLE + (
    "Read the NordVPN client's settings and set LAN discovery, the allowlist and port 53 where they differ"
)
# Step g, h: a DNS responder in a network namespace of the test host, behind the bridge br-i8cdns,
# at a private address (10/8: inside LAN discovery's ranges and NordVPN's lan_ranges set).
DNS_PROGRAM = (Path(__file__).resolve().parents[1] / "dns_responder.py").read_text()
DNS_NETNS, DNS_BRIDGE, DNS_GW, DNS_SERVER = "i8c-dns", "br-i8cdns", "10.53.0.1", "10.53.0.53"
DNS_RESPONDER = "/usr/local/lib/i8c-dns-responder.py"
STATE: dict = {"durations": {}}

# Run inside the k8s-worker container: the app kubeconfig the worker uses (server at node-ip, CA,
# ServiceAccount token) against the k3s API, a 3 s timeout so a dropped connection fails quickly.
API_PROBE = r"""
import base64, ssl, sys, urllib.request, yaml
config = yaml.safe_load(open("/app/kubeconfig.yaml"))
cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
request = urllib.request.Request(
    cluster["server"] + "/api/v1/namespaces/integr8scode", headers={"Authorization": "Bearer " + user["token"]}
)
try:
    with urllib.request.urlopen(request, context=ctx, timeout=3) as response:
        print(cluster["server"], response.status)
except Exception as exc:
    print(cluster["server"], type(exc).__name__, exc)
    sys.exit(1)
"""


@contextlib.contextmanager
def step(name: str):
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    STATE["durations"][name] = took
    print(f"\nVPN STEP {name}: {took:.1f}s")


def eventually(check, what: str, limit: float = 120, interval: float = 1.0):
    """Poll `check` (returning (ok, detail)) until ok; the limit only bounds a hang. The assertion
    names what was waited for and the last detail seen."""
    deadline = time.monotonic() + limit
    while True:
        ok, detail = check()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; last seen: {detail}")
        time.sleep(interval)


def worker_api(host) -> tuple[bool, str]:
    result = host.run(f"cd {STACK} && docker compose exec -T k8s-worker python3 - <<'EOF'\n{API_PROBE}EOF")
    return result.rc == 0, (result.stdout + result.stderr).strip()


def node(host, lan_ip: str) -> tuple[bool, str]:
    status = json.loads(sh(host, "k3s kubectl get nodes -o json"))["items"][0]["status"]
    ready = {c["type"]: c["status"] for c in status["conditions"]}.get("Ready")
    internal = [a["address"] for a in status["addresses"] if a["type"] == "InternalIP"]
    return (ready, internal) == ("True", [lan_ip]), f"Ready={ready} InternalIP={internal}"


def backend(host) -> tuple[bool, str]:
    result = host.run("curl -sk --max-time 5 https://localhost/api/v1/health/live")
    try:
        return json.loads(result.stdout).get("status") == "ok", result.stdout
    except ValueError:
        return False, f"rc={result.rc} {result.stdout}{result.stderr}"


def vpn_status(host) -> dict[str, str]:
    out = sh(host, "nordvpn status")
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def vpn_answers(host) -> tuple[bool, str]:
    """nordvpnd.service is Type=simple: `systemctl restart` returns before the daemon listens."""
    result = host.run("nordvpn status")
    return result.rc == 0, (result.stdout + result.stderr).strip()


def allowlist(host) -> list[str]:
    lines = sh(host, "nordvpn settings").splitlines()
    if "Allowlisted subnets:" not in lines:
        return []
    rest = lines[lines.index("Allowlisted subnets:") + 1 :]
    out = []
    for line in rest:
        if not line.startswith(("\t", " ")):
            break
        out.append(line.strip())
    return out


@contextlib.contextmanager
def dns_resolver(host):
    """The DNS responder at DNS_SERVER, in its own namespace behind the bridge DNS_BRIDGE (host side
    DNS_GW): a query from the host leaves through the client's output chain, one from a container
    through its forward chain. Removed again afterwards."""
    sh(host, f"cat > {DNS_RESPONDER} <<'EOF'\n{DNS_PROGRAM}EOF")
    sh(
        host,
        f"ip netns add {DNS_NETNS} && ip link add {DNS_BRIDGE} type bridge && "
        f"ip addr add {DNS_GW}/24 dev {DNS_BRIDGE} && ip link set {DNS_BRIDGE} up && "
        f"ip link add i8cdns-h type veth peer name i8cdns-n && ip link set i8cdns-h master {DNS_BRIDGE} up && "
        f"ip link set i8cdns-n netns {DNS_NETNS} && ip -n {DNS_NETNS} addr add {DNS_SERVER}/24 dev i8cdns-n && "
        f"ip -n {DNS_NETNS} link set i8cdns-n up && ip -n {DNS_NETNS} link set lo up && "
        f"ip -n {DNS_NETNS} route add default via {DNS_GW}",
    )
    try:
        sh(host, f"systemd-run --unit=i8c-dns ip netns exec {DNS_NETNS} python3 {DNS_RESPONDER} serve {DNS_SERVER}")
        # Asked from inside its own namespace (no client firewall there): it answers.
        eventually(
            lambda: dns_query(host, f"ip netns exec {DNS_NETNS} python3"),
            "the DNS responder never answered inside its own namespace",
            limit=30,
        )
        yield
    finally:
        host.run("systemctl stop i8c-dns; systemctl reset-failed i8c-dns")
        host.run(f"ip link del {DNS_BRIDGE}; ip link del i8cdns-h; ip netns del {DNS_NETNS}")


def dns_query(host, python: str, tcp: bool = False) -> tuple[bool, str]:
    """(answered, detail) of one A query to DNS_SERVER run with `python` (a command prefix)."""
    proto = " tcp" if tcp else ""
    result = host.run(f"{python} - query {DNS_SERVER} kafka.lan{proto} <<'EOF'\n{DNS_PROGRAM}EOF")
    return result.rc == 0, (result.stdout + result.stderr).strip()


def dns_paths(host) -> dict[str, tuple[bool, str]]:
    """The query over UDP and TCP from the host (output chain) and from the k8s-worker container
    (Docker bridge -> host -> DNS_BRIDGE: forward chain)."""
    worker = f"cd {STACK} && docker compose exec -T k8s-worker python3"
    return {
        "host udp": dns_query(host, "python3"),
        "host tcp": dns_query(host, "python3", tcp=True),
        "k8s-worker udp": dns_query(host, worker),
        "k8s-worker tcp": dns_query(host, worker, tcp=True),
    }


def dns_port_protocols(host) -> list[str]:
    """Protocols for which `nordvpn settings` lists port 53 as allowlisted."""
    lines = sh(host, "nordvpn settings").splitlines()
    found = [line.split("(")[1].rstrip(")").split("|") for line in lines if line.strip().startswith("53 (")]
    return sorted(proto for protos in found for proto in protos)


def check_host(host, ansible_playbook, name: str, lan_ip: str, *extra: str):
    """The four checks after every step; each failure names the step and the check."""
    config = k3s_config(host)
    assert (config.get("node-ip"), config.get("flannel-iface")) == (lan_ip, "eth0"), (
        f"step {name}: node-ip/flannel-iface in {CONFIG} left the LAN address {lan_ip} on eth0: {config}"
    )
    eventually(lambda: node(host, lan_ip), f"step {name}: the node never was Ready with InternalIP {lan_ip}")
    for worker in ("k8s-worker", "pod-monitor"):
        eventually(lambda w=worker: worker_state(host, w), f"step {name}: {worker} never was up")
    eventually(lambda: backend(host), f"step {name}: the backend's /api/v1/health/live never answered status ok")
    detail = eventually(
        lambda: worker_api(host),
        f"step {name}: k8s-worker never reached the k3s API at https://{lan_ip}:6443 through the VPN's firewall",
    )
    assert detail.split() == [f"https://{lan_ip}:6443", "200"], (
        f"step {name}: the worker's kubeconfig does not point at the node address {lan_ip}: {detail}"
    )
    start = time.monotonic()
    run = ansible_playbook("converge.yml", *extra)
    print(f"\nVPN STEP {name}: no-change rerun of site.yml {time.monotonic() - start:.1f}s")
    run.assert_no_changes(f"step {name}: rerun of site.yml")
    assert "WARNING: NordVPN routes overlap" not in flat(run.output), (
        f"step {name}: the route-overlap check reported the connected client's routes: {run.output[-3000:]}"
    )
    return run


def test_step_a_provisioned_with_the_vpn_connected(host, ansible_playbook, converge_in_check_mode):
    with step("a"):
        status = vpn_status(host)
        assert (status.get("Status"), status.get("Current technology")) == ("Connected", "NORDLYNX"), (
            f"step a: the VPN is not connected with NordLynx after converge: {status}"
        )
        route = json.loads(sh(host, "ip -j -4 route get 1.1.1.1"))[0]["dev"]
        assert route == "nordlynx", f"step a: the tunnel does not hold the default route (route get: {route})"
        STATE["lan_ip"] = eth0_ip(host)
        check_host(host, ansible_playbook, "a", STATE["lan_ip"])
        converge_in_check_mode.assert_no_changes("step a: check-mode run of site.yml")


def test_step_b_disconnect_with_another_tunnel_on_the_main_default_route(host, ansible_playbook):
    """Issue 13: with a tunnel holding the default route, Ansible's default-route fact names the
    tunnel and site.yml once moved node-ip onto it. Here the main table's default route goes into
    another VPN's device (a veth named tun0 with an OpenVPN-style address, peer down), the layout
    a client that replaces the default route leaves behind."""
    with step("b"):
        out = sh(host, "nordvpn disconnect")
        assert "You are disconnected from NordVPN." in out, f"step b: disconnect failed: {out}"
        assert vpn_status(host).get("Status") == "Disconnected", "step b: still connected"
        gateway = json.loads(sh(host, "ip -j -4 route show default"))[0]["gateway"]
        sh(
            host,
            "ip link add tun0 type veth peer name tun0-peer && ip addr add 10.8.0.2/24 dev tun0 && "
            "ip link set tun0 up && ip route replace default dev tun0",
        )
        try:
            route = json.loads(sh(host, "ip -j -4 route get 1.1.1.1"))[0]["dev"]
            assert route == "tun0", f"step b: tun0 does not hold the main table's default route ({route})"
            check_host(host, ansible_playbook, "b", STATE["lan_ip"])
            assert "10.8.0.2" not in k3s_config(host).get("tls-san", []), (
                "step b: the tunnel's address went into tls-san"
            )
        finally:
            sh(host, f"ip route replace default via {gateway} dev eth0 && ip link del tun0")


def test_step_c_connect_to_another_server(host, ansible_playbook):
    with step("c"):
        out = sh(host, "nordvpn connect Netherlands")
        assert "You are connected to Netherlands #842" in out, f"step c: connect failed: {out}"
        status = vpn_status(host)
        assert status.get("Server") == "Netherlands #842", f"step c: not on the other server: {status}"
        check_host(host, ansible_playbook, "c", STATE["lan_ip"])


def test_step_d_switch_to_openvpn(host, ansible_playbook):
    with step("d"):
        out = sh(host, "nordvpn set technology openvpn")
        assert "Please reconnect to apply the setting." in out, f"step d: technology not set: {out}"
        out = sh(host, "nordvpn connect")
        assert "You are connected to" in out, f"step d: reconnect failed: {out}"
        status = vpn_status(host)
        assert status.get("Current technology") == "OPENVPN", f"step d: not on OpenVPN: {status}"
        assert host.run("ip link show nordtun").rc == 0, "step d: no nordtun device after the reconnect"
        assert host.run("ip link show nordlynx").rc != 0, "step d: nordlynx still there after the switch"
        check_host(host, ansible_playbook, "d", STATE["lan_ip"])


def test_step_e_lan_change_while_connected_recover_then_site(host, ansible_playbook):
    with step("e"):
        old = switch_ip(host, NEW_IP, NEW_GW)
        assert old == STATE["lan_ip"], f"step e: eth0 held {old}, not the LAN address {STATE['lan_ip']}"
        assert vpn_status(host).get("Status") == "Connected", "step e: the VPN dropped with the LAN change"
        start = time.monotonic()
        run = ansible_playbook(RECOVER, "-e", "k3s_recover_confirm=true")
        print(f"\nVPN STEP e: recover.yml {time.monotonic() - start:.1f}s")
        assert run.returncode == 0, f"step e: recover.yml failed: {run.output[-4000:]}"
        assert f"k3s recovered: node Ready at {NEW_IP} (flannel-iface eth0)" in flat(run.output), (
            f"step e: recover.yml did not report the node Ready at {NEW_IP}: {run.output[-3000:]}"
        )
        STATE["lan_ip"] = NEW_IP
        check_host(host, ansible_playbook, "e", NEW_IP)


def test_step_f_reboot_with_auto_connect(host, ansible_playbook):
    """No real reboot in a test host: the units restart in boot order. nordvpnd's stop disconnects
    and its start auto-connects (OpenVPN since step d); then k3s; then Docker, whose restart policy
    brings the stack's containers back as at boot."""
    with step("f"):
        sh(host, "systemctl restart nordvpnd")
        eventually(lambda: vpn_answers(host), "step f: nordvpnd never answered after its restart", limit=30)
        status = vpn_status(host)
        assert (status.get("Status"), status.get("Current technology")) == ("Connected", "OPENVPN"), (
            f"step f: auto-connect did not bring the VPN back after the nordvpnd restart: {status}"
        )
        sh(host, "systemctl restart k3s")
        sh(host, "systemctl restart docker")
        check_host(host, ansible_playbook, "f", STATE["lan_ip"])


def test_step_g_dns_to_a_private_resolver_across_a_bridge(host, ansible_playbook):
    """nordvpn-linux daemon/firewall/nft/nft.go addLanDNSDrop: `ip daddr @lan_ranges udp|tcp dport 53
    drop` in output and forward, ahead of the LAN-discovery accept, unless port 53 is allowlisted.
    Converge allowlisted it (nordvpn_allowlist_dns); removed, every path fails, which the role's
    rerun repairs."""
    with step("g"), dns_resolver(host):
        assert dns_port_protocols(host) == ["TCP", "UDP"], "step g: converge did not allowlist port 53"
        paths = dns_paths(host)
        assert all(a[0] for a in paths.values()), f"step g: DNS across the bridge failed while connected: {paths}"

        # Without the role's allowlisting (what a connected client has by default): dropped.
        sh(host, "nordvpn allowlist remove port 53")
        paths = dns_paths(host)
        assert not any(a[0] for a in paths.values()), (
            f"step g: DNS to {DNS_SERVER} got through with port 53 not allowlisted: {paths}"
        )
        check = ansible_playbook("converge.yml", "--tags", "nordvpn", "--check")
        assert check.returncode == 0, f"step g: check mode failed: {check.output[-3000:]}"
        assert check.changed_tasks() == [SETTINGS], f"step g: check mode: {check.changed_tasks()}"
        assert "A real run adds port 53 (UDP, TCP) to the NordVPN allowlist." in flat(check.output), (
            f"step g: check mode did not say what it would add: {check.output[-3000:]}"
        )
        assert dns_port_protocols(host) == [], "step g: check mode allowlisted port 53"

        start = time.monotonic()
        run = ansible_playbook("converge.yml", "--tags", "nordvpn")
        print(f"\nVPN STEP g: site.yml --tags nordvpn allowlisting port 53 {time.monotonic() - start:.1f}s")
        assert run.returncode == 0, f"step g: site.yml --tags nordvpn failed: {run.output[-4000:]}"
        # One addition per protocol (the client refuses `add port 53` whole when one protocol has it), in
        # the one module execution.
        assert run.changed_tasks() == [SETTINGS], f"step g: unexpected changes: {run.changed_tasks()}"
        assert "Added port 53 (UDP, TCP) to the NordVPN allowlist." in flat(run.output), run.output[-3000:]
        assert dns_port_protocols(host) == ["TCP", "UDP"], "step g: port 53 not allowlisted for both protocols"
        paths = dns_paths(host)
        assert all(a[0] for a in paths.values()), f"step g: DNS still dropped after the role ran: {paths}"
        check_host(host, ansible_playbook, "g", STATE["lan_ip"])


def test_step_h_reboot_with_the_kill_switch_on(host, ansible_playbook):
    """No real reboot in a test host (step f). Shutdown: Docker, k3s, then nordvpnd with /run/nologin
    present as during a shutdown, so the client keeps its kill-switch table (daemon/jobs.go
    StopKillSwitch, internal/systemd.go IsSystemShutdown). The reboot empties the kernel's tables
    and /run. Boot: nordvpnd-killswitch.service (before network-pre.target) applies default-deny
    with nothing allowlisted (cmd/daemon/main.go --killswitch-mode), then nordvpnd (kill switch with
    the stored allowlist, then auto-connect), k3s and Docker."""
    with step("h"):
        out = sh(host, "nordvpn set killswitch on")
        assert "Kill Switch has been successfully set to 'enabled'." in out, f"step h: {out}"
        before = sh(host, "systemctl show -p Before --value nordvpnd-killswitch.service").split()
        assert {"network-pre.target", "nordvpnd.service"} <= set(before), f"step h: killswitch unit Before={before}"

        sh(host, "systemctl stop docker.socket docker.service k3s.service")
        try:
            sh(host, "touch /run/nologin && systemctl stop nordvpnd.service")
            assert "table inet nordvpn" in sh(host, "nft list tables"), "step h: the kill switch went at shutdown"
        finally:
            host.run("rm -f /run/nologin")
        sh(host, "nft delete table inet nordvpn && systemctl stop nordvpnd-killswitch.service")

        sh(host, "systemctl start nordvpnd-killswitch.service")
        table = sh(host, "nft list table inet nordvpn")
        assert table.count("policy drop;") == 3 and "allowlist" not in table, (
            f"step h: the boot-time kill switch is not default-deny with nothing allowlisted: {table}"
        )
        with dns_resolver(host):
            ok, detail = dns_query(host, "python3")
            assert not ok, f"step h: DNS left the host under the boot-time kill switch: {detail}"

            sh(host, "systemctl start nordvpnd.service")
            eventually(lambda: vpn_answers(host), "step h: nordvpnd never answered after boot", limit=30)
            status = vpn_status(host)
            assert status.get("Status") == "Connected", f"step h: auto-connect did not connect at boot: {status}"
            assert "Kill Switch: enabled" in sh(host, "nordvpn settings"), "step h: kill switch lost"
            sh(host, "systemctl start k3s.service")
            sh(host, "systemctl start docker.service")
            check_host(host, ansible_playbook, "h", STATE["lan_ip"])
            paths = dns_paths(host)
            assert all(a[0] for a in paths.values()), f"step h: DNS across the bridge failed after boot: {paths}"


def test_step_i_lan_discovery_off_allowlists_what_k3s_and_the_stack_need(host, ansible_playbook):
    with step("i"):
        mirror = allowlist(host)  # prepare's apt mirror entries
        # Without LAN discovery and without the allowlist the client's firewall drops the worker's
        # path to the API: the check below can fail.
        sh(host, "nordvpn set lan-discovery disabled")
        try:
            ok, detail = worker_api(host)
        finally:
            sh(host, "nordvpn set lan-discovery enabled")
        assert not ok, f"step i: the worker reached the API with LAN discovery off and nothing allowlisted: {detail}"

        # The user changes one setting and runs that part: `site.yml --tags nordvpn`.
        start = time.monotonic()
        run = ansible_playbook("converge.yml", "--tags", "nordvpn", "-e", "nordvpn_lan_discovery=false")
        print(f"\nVPN STEP i: site.yml --tags nordvpn turning LAN discovery off {time.monotonic() - start:.1f}s")
        assert run.returncode == 0, f"step i: site.yml with nordvpn_lan_discovery=false failed: {run.output[-4000:]}"
        # LAN discovery off and the allowlisting in one module execution: the firewall drops the LAN in between.
        assert run.changed_tasks() == [SETTINGS], f"step i: unexpected changes: {run.changed_tasks()}"
        assert "LAN Discovery was enabled; set to disabled." in flat(run.output), run.output[-3000:]
        assert "LAN Discovery: disabled" in sh(host, "nordvpn settings"), "step i: LAN discovery still on"
        needed = ["10.42.0.0/16", "10.43.0.0/16", "172.20.0.0/14", "10.77.0.0/24"]
        assert sorted(allowlist(host)) == sorted(mirror + needed), (
            f"step i: the allowlist is not exactly the k3s CIDRs, Docker's pools and the node's subnet "
            f"(plus prepare's mirror {mirror}): {allowlist(host)}"
        )
        check_host(host, ansible_playbook, "i", STATE["lan_ip"], "-e", "nordvpn_lan_discovery=false")
    total = sum(STATE["durations"].values())
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in STATE["durations"].items())
    print(f"\nVPN WEEK total {total:.1f}s ({steps})")

"""Role `k3s` with the k3s stand-in: install, config, API, kubeconfigs, airgap, upgrade, refusals.

The tests run in file order: the later ones change versions and return to the
converged state (version B, URL path); the last ones take k3s down with
k3s-killall.sh, k3s_state=absent and playbooks/reset.yml.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from testhost import flat

# The archive builder the stand-in's unit tests use too (tests/standins/k3s, tests only).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "standins" / "k3s"))
from image_archive import write_docker_save  # noqa: E402

A = "v1.32.10+k3s1"
B = "v1.32.11+k3s1"
ROLE = "integr8scode.provision.k3s : "
BUILD = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp/i8c-k3s-release")) / "k3s-release"
# prepare.yml writes it, molecule.yml lists it in k3s_airgap_image_archives.
ARCHIVE = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "airgap" / "busybox-standin.tar"
IMAGES = "/var/lib/rancher/k3s/agent/images"
# One host_files call writes the binary link, the image archives, the env file and the unit.
WRITE_FILES = ROLE + "Write k3s's files (config dir, registries, binary link, images, programs, env file, unit)"
FETCHED = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "kubeconfig-k3s.yaml"


def node_ip(host) -> str:
    route = host.run("ip -4 -o route get 1.1.1.1").stdout.split()
    return route[route.index("src") + 1]


def main_pid(host) -> str:
    return host.run("systemctl show -p MainPID --value k3s.service").stdout.strip()


def starts(host) -> int:
    """How often systemd has started k3s.service (each start logs one 'Started' line)."""
    out = host.run("journalctl -u k3s.service -o cat --no-pager").stdout
    return sum(1 for line in out.splitlines() if line.startswith("Started k3s.service"))


def ctr_images(host) -> dict[str, str]:
    """`k3s ctr images ls` as a user looks: reference -> digest."""
    listing = host.run("k3s ctr images ls")
    assert listing.rc == 0, listing.stderr
    return {line.split()[0]: line.split()[2] for line in listing.stdout.splitlines()[1:]}


def release_sha(version: str) -> str:
    for line in (BUILD / version / "sha256sum-amd64.txt").read_text().splitlines():
        digest, name = line.split()
        if name == "k3s":
            return digest
    raise AssertionError(f"no k3s line in the {version} sums file")


def test_service_is_active_and_enabled(host):
    service = host.service("k3s")
    assert service.is_running
    assert service.is_enabled


def test_unit_has_the_install_scripts_settings(host):
    unit = host.file("/etc/systemd/system/k3s.service").content_string
    for line in (
        "Type=notify",
        "Restart=always",
        "RestartSec=5s",
        "KillMode=process",
        "Delegate=yes",
        "TimeoutStartSec=0",
        "LimitNOFILE=1048576",
        "EnvironmentFile=-/etc/systemd/system/k3s.service.env",
        "ExecStart=/usr/local/bin/k3s server",
    ):
        assert line in unit.splitlines(), line
    env = host.file("/etc/systemd/system/k3s.service.env")
    assert env.mode == 0o600


def test_config_yaml_keys(host):
    config_file = host.file("/etc/rancher/k3s/config.yaml")
    assert config_file.mode == 0o600
    text = config_file.content_string
    ip = node_ip(host)
    # cert-generator greps a top-level scalar line.
    assert f"node-ip: {ip}" in text.splitlines()
    config = yaml.safe_load(text)
    assert config["node-ip"] == ip
    assert config["flannel-iface"] == "eth0"
    assert config["bind-address"] == "0.0.0.0"
    assert "host.docker.internal" in config["tls-san"]
    assert ip in config["tls-san"]
    assert config["disable"] == ["traefik"]
    assert config["write-kubeconfig-mode"] == "0600"
    assert "cluster-init" not in config


def test_node_is_ready_at_the_node_ip_via_the_api(host):
    result = host.run("kubectl get nodes -o json")
    assert result.rc == 0, result.stderr
    nodes = json.loads(result.stdout)["items"]
    assert len(nodes) == 1
    addresses = {a["type"]: a["address"] for a in nodes[0]["status"]["addresses"]}
    assert addresses["InternalIP"] == node_ip(host)
    ready = [c for c in nodes[0]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"


def test_binary_and_symlinks(host):
    link = host.file("/usr/local/bin/k3s")
    assert link.is_symlink
    assert link.linked_to == f"/usr/local/bin/k3s-{B}"
    assert host.file(f"/usr/local/bin/k3s-{B}").mode == 0o755
    assert host.file(f"/usr/local/bin/k3s-{B}").sha256sum == release_sha(B)
    for tool in ("kubectl", "crictl", "ctr"):
        tool_link = host.file(f"/usr/local/bin/{tool}")
        assert tool_link.is_symlink, tool
        assert host.run(f"readlink /usr/local/bin/{tool}").stdout.strip() == "/usr/local/bin/k3s"
    assert host.run("k3s --version").stdout.startswith(f"k3s version {B} ")


# The launcher every program the roles install runs (role host_library): module_utils/programs.py.
LAUNCHER = "#!/usr/bin/python3\n" + (
    Path(__file__).resolve().parents[3] / "plugins/module_utils/programs.py"
).read_text(encoding="utf-8")


def test_killall_and_uninstall_programs_are_the_launcher_with_a_settings_file(host):
    """No template: the same static launcher under both names, each with its settings file (the
    teardown's settings and its state), the library it imports beside them."""
    for name, state in (("k3s-killall.sh", "killed"), ("k3s-uninstall.sh", "uninstalled")):
        program = host.file(f"/usr/local/bin/{name}")
        assert program.mode == 0o755 and program.user == "root"
        assert program.content_string == LAUNCHER, name
        settings = host.file(f"/etc/integr8scode-provision/{name}.json")
        assert settings.mode == 0o644 and settings.user == "root"
        document = json.loads(settings.content_string)
        assert document["entry"] == "k3s.teardown:main" and document["settings"]["state"] == state
        assert document["settings"]["programs"] == ["/usr/local/bin/k3s-killall.sh", "/usr/local/bin/k3s-uninstall.sh"]
        library = document["library"] + "/ansible_collections/integr8scode/provision/plugins/module_utils"
        assert host.file(library + "/k3s/teardown.py").exists
    # Not root: the program says so (exit 1) before it touches anything.
    run = host.run("runuser -u nobody -- /usr/local/bin/k3s-killall.sh")
    assert (run.rc, run.stderr) == (1, "k3s-killall.sh: must be run as root\n")


def test_kubeconfigs(host):
    admin = host.file("/etc/rancher/k3s/k3s.yaml")
    assert admin.mode == 0o600
    user = host.file("/home/i8c-operator/.kube/config")
    assert user.mode == 0o600
    assert user.user == "i8c-operator"
    assert host.file("/home/i8c-operator/.kube").mode == 0o700
    assert user.content_string == admin.content_string
    as_user = host.run("sudo -u i8c-operator -H kubectl --kubeconfig /home/i8c-operator/.kube/config get nodes -o name")
    assert as_user.rc == 0, as_user.stderr
    assert FETCHED.stat().st_mode & 0o777 == 0o600
    fetched = yaml.safe_load(FETCHED.read_text())
    assert fetched["clusters"][0]["cluster"]["server"] == f"https://{node_ip(host)}:6443"


def test_check_mode_changes_nothing(host, converge_in_check_mode):
    # `host` keeps this test in file order (testinfra groups host-parametrized tests).
    assert host.service("k3s").is_running
    converge_in_check_mode.assert_no_changes("check-mode run")


def test_image_archives_are_copied_and_imported_by_k3s_at_start(host, tmp_path):
    copy = host.file(f"{IMAGES}/{ARCHIVE.name}")
    assert copy.exists
    assert (copy.mode, copy.user, copy.group) == (0o644, "root", "root")
    assert copy.sha256sum == hashlib.sha256(ARCHIVE.read_bytes()).hexdigest()
    digest = write_docker_save(str(tmp_path / "same.tar"), "busybox:standin")
    assert (tmp_path / "same.tar").read_bytes() == ARCHIVE.read_bytes()
    images = ctr_images(host)
    assert images.get("docker.io/library/busybox:standin") == digest, images
    assert f"docker.io/library/busybox@{digest}" in images
    journal = host.run("journalctl -u k3s.service -o cat --no-pager").stdout
    assert f"Imported images from {IMAGES}/{ARCHIVE.name} in " in journal


def test_a_changed_image_archive_restarts_k3s_once_and_is_imported(host, ansible_playbook, tmp_path):
    changed = tmp_path / ARCHIVE.name
    new_digest = write_docker_save(str(changed), "busybox:standin", "changed\n")
    old_digest = ctr_images(host)["docker.io/library/busybox:standin"]
    assert new_digest != old_digest
    archives = ["-e", json.dumps({"k3s_airgap_image_archives": [str(changed)]})]
    starts_before = starts(host)
    try:
        run = ansible_playbook("converge.yml", *archives)
        assert run.returncode == 0, run.output[-3000:]
        assert WRITE_FILES in run.changed_tasks(), run.changed_tasks()
        assert starts(host) == starts_before + 1
        assert ctr_images(host)["docker.io/library/busybox:standin"] == new_digest
        again = ansible_playbook("converge.yml", *archives)
        again.assert_no_changes("rerun with the same archive")
        assert starts(host) == starts_before + 1
    finally:
        restore = ansible_playbook("converge.yml")
        assert restore.returncode == 0, restore.output[-3000:]
    # Back to the scenario's archive: copied again, one more restart, its image is the tag again.
    assert WRITE_FILES in restore.changed_tasks()
    assert starts(host) == starts_before + 2
    assert ctr_images(host)["docker.io/library/busybox:standin"] == old_digest


@pytest.mark.parametrize("case", ["a name k3s does not import", "two archives of one name"])
def test_bad_image_archive_lists_fail_before_anything_changes(host, ansible_playbook, tmp_path, case):
    if case == "a name k3s does not import":
        wrong = tmp_path / "busybox.tar.xz"
        wrong.write_bytes(ARCHIVE.read_bytes())
        archives, named = [str(ARCHIVE), str(wrong)], '(names k3s does not import) = ["busybox.tar.xz"]'
    else:
        (tmp_path / "other").mkdir()
        twin = tmp_path / "other" / ARCHIVE.name
        twin.write_bytes(ARCHIVE.read_bytes())
        archives, named = [str(ARCHIVE), str(twin)], '(file names) = ["busybox-standin.tar", "busybox-standin.tar"]'
    pid_before = main_pid(host)
    run = ansible_playbook("converge.yml", "-e", json.dumps({"k3s_airgap_image_archives": archives}))
    assert run.returncode != 0
    assert f"k3s_airgap_images_src / k3s_airgap_image_archives {named}" in flat(run.output)
    assert run.total("changed") == 0
    assert not host.file(f"{IMAGES}/busybox.tar.xz").exists
    assert main_pid(host) == pid_before


def test_node_ip_not_on_the_host_fails_before_config_changes(host, ansible_playbook):
    config_before = host.file("/etc/rancher/k3s/config.yaml").sha256sum
    pid_before = main_pid(host)
    run = ansible_playbook("converge.yml", "-e", "k3s_node_ip=10.99.99.99")
    assert run.returncode != 0
    assert "k3s_node_ip 10.99.99.99 is not an IPv4 address assigned on this host" in flat(run.output)
    assert run.total("changed") == 0
    assert host.file("/etc/rancher/k3s/config.yaml").sha256sum == config_before
    assert main_pid(host) == pid_before


def test_node_interface_selects_the_same_address(host, ansible_playbook):
    """The same address through k3s_node_interface: config.yaml and k3s stay as they are; only the
    pins file records the new pin (the drift watcher reads the user's pins from it)."""
    assert host.service("k3s").is_running
    config = host.file("/etc/rancher/k3s/config.yaml").sha256sum
    pid = host.check_output("systemctl show k3s -p MainPID --value")
    try:
        run = ansible_playbook("converge.yml", "-e", "k3s_node_interface=eth0")
        assert run.returncode == 0, run.output[-3000:]
        write = "integr8scode.provision.k3s : Write /etc/rancher/k3s/config.yaml and the node-address pins"
        assert run.changed_tasks() == [write + " (under the run lock)"], run.changed_tasks()
        assert host.file("/etc/rancher/k3s/config.yaml").sha256sum == config
        assert host.check_output("systemctl show k3s -p MainPID --value") == pid, "no restart"
        pins = json.loads(host.file("/etc/rancher/k3s/integr8scode-node.json").content_string)
        assert pins["node_interface"] == "eth0"
    finally:
        assert ansible_playbook("converge.yml").returncode == 0


def test_unknown_flannel_iface_fails_before_config_changes(host, ansible_playbook):
    config_before = host.file("/etc/rancher/k3s/config.yaml").sha256sum
    run = ansible_playbook("converge.yml", "-e", "k3s_flannel_iface=nope0")
    assert run.returncode != 0
    assert "k3s_flannel_iface nope0 is not an interface of this host" in flat(run.output)
    assert run.total("changed") == 0
    assert host.file("/etc/rancher/k3s/config.yaml").sha256sum == config_before


def test_downgrade_is_refused_without_k3s_allow_downgrade(host, ansible_playbook):
    run = ansible_playbook("converge.yml", "-e", f"k3s_version={A}")
    assert run.returncode != 0
    assert f"k3s_version {A} is older than the installed {B}" in flat(run.output)
    assert run.total("changed") == 0
    assert host.file("/usr/local/bin/k3s").linked_to == f"/usr/local/bin/k3s-{B}"
    assert not host.file(f"/usr/local/bin/k3s-{A}").exists


@pytest.mark.parametrize("how", ["k3s_sha256", "release sums file"])
def test_bad_checksum_fails_before_anything_is_replaced(host, ansible_playbook, how):
    sums = f"/srv/k3s-release/{A}/sha256sum-amd64.txt"
    args = ["-e", f"k3s_version={A}", "-e", "k3s_allow_downgrade=true"]
    if how == "k3s_sha256":
        args += ["-e", "k3s_sha256=" + "0" * 64]
    else:
        assert host.run(f"cp {sums} {sums}.orig && sed -i 's/^[0-9a-f]\\{{4\\}}/0000/' {sums}").rc == 0
    pid_before = main_pid(host)
    try:
        run = ansible_playbook("converge.yml", *args)
    finally:
        if how != "k3s_sha256":
            host.run(f"mv {sums}.orig {sums}")
    assert run.returncode != 0
    assert f"Could not install k3s {A}" in flat(run.output)
    assert "did not match" in flat(run.output) or "checksum" in flat(run.output).lower()
    assert not host.file(f"/usr/local/bin/k3s-{A}").exists
    assert host.file("/usr/local/bin/k3s").linked_to == f"/usr/local/bin/k3s-{B}"
    assert main_pid(host) == pid_before


def test_airgap_install_of_a_forced_downgrade(host, ansible_playbook):
    images = BUILD / A / "k3s-airgap-images-amd64.tar.gz"
    run = ansible_playbook(
        "converge.yml",
        "-e",
        f"k3s_version={A}",
        "-e",
        "k3s_allow_downgrade=true",
        "-e",
        f"k3s_airgap_binary_src={BUILD / A / 'k3s'}",
        "-e",
        f"k3s_sha256={release_sha(A)}",
        "-e",
        f"k3s_airgap_images_src={images}",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert host.file("/usr/local/bin/k3s").linked_to == f"/usr/local/bin/k3s-{A}"
    assert host.file(f"/usr/local/bin/k3s-{A}").sha256sum == release_sha(A)
    image_copy = host.file(f"/var/lib/rancher/k3s/agent/images/{images.name}")
    assert image_copy.exists
    assert image_copy.mode == 0o644
    assert host.run("k3s --version").stdout.startswith(f"k3s version {A} ")
    # The old version stays beside the new one until uninstall.
    assert host.file(f"/usr/local/bin/k3s-{B}").exists


def test_airgap_binary_with_a_wrong_k3s_sha256_is_refused(host, ansible_playbook):
    run = ansible_playbook(
        "converge.yml",
        "-e",
        f"k3s_version={B}",
        "-e",
        f"k3s_airgap_binary_src={BUILD / A / 'k3s'}",
        "-e",
        f"k3s_sha256={release_sha(B)}",
    )
    assert run.returncode != 0
    assert "not k3s_sha256" in flat(run.output)
    assert host.file("/usr/local/bin/k3s").linked_to == f"/usr/local/bin/k3s-{A}"


def test_upgrade_a_to_b_downloads_flips_the_symlink_and_restarts_once(host, ansible_playbook):
    # B is downloaded again through the URL path (it was installed by converge).
    assert host.run(f"rm /usr/local/bin/k3s-{B}").rc == 0
    starts_before = starts(host)
    assert starts_before > 0, "no 'Started k3s.service' lines in the journal"
    run = ansible_playbook("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    changed = run.changed_tasks()
    assert ROLE + f"Download the binary to /usr/local/bin/k3s-{B}" in changed
    assert WRITE_FILES in changed
    assert starts(host) == starts_before + 1
    assert host.file("/usr/local/bin/k3s").linked_to == f"/usr/local/bin/k3s-{B}"
    assert host.file(f"/usr/local/bin/k3s-{B}").sha256sum == release_sha(B)
    assert host.run("k3s --version").stdout.startswith(f"k3s version {B} ")
    again = ansible_playbook("converge.yml")
    assert again.returncode == 0, again.output[-3000:]
    assert again.total("changed") == 0, again.changed_tasks()
    assert starts(host) == starts_before + 1


SHIMS = "pgrep -f '^/usr/bin/python3 /var/lib/rancher/k3s/data/[^/]+/bin/containerd-shim-runc-v2 '"
POLL = "for i in $(seq 1 {n}); do {cond} && exit 0; sleep 0.5; done; exit 1"
RESET = "../../playbooks/reset.yml"
RECOVER = "../../playbooks/recover.yml"
# What recover.yml leaves on the host (role k3s_recover: the watcher, the scheduled backups).
WATCHER_PROGRAM = "/usr/local/sbin/integr8scode-k3s-drift-check"
WATCHER_STATE = "/var/lib/integr8scode-k3s-watch"
BACKUPS = "/var/backups/integr8scode-k3s"
VOLUME = "/var/lib/rancher/k3s/storage/pvc-kept"


def leftovers(host) -> dict:
    """What a stopped k3s may leave behind (k3s #2624, #1965, #1042); all empty after a teardown."""
    mounts = host.check_output("findmnt -rn -o TARGET").splitlines()
    rules = host.check_output("iptables-save").splitlines()
    return {
        "k3s processes": host.run("pgrep -f '/usr/local/bin/[k]3s server|[c]ontainerd-shim'").stdout.split(),
        "runtime mounts": [m for m in mounts if m.startswith(("/run/k3s", "/var/lib/kubelet"))],
        "links": [n for n in ("cni0", "flannel.1") if host.run(f"ip link show {n}").rc == 0],
        "netns": host.check_output("ip netns list").split(),
        "rules": [r for r in rules if "KUBE-" in r or "CNI-" in r or "flannel" in r.lower()],
    }


def wait_for_pods(host):
    running = host.run(POLL.format(n=240, cond=f"[ $({SHIMS} | wc -l) -ge 1 ]"))
    assert running.rc == 0, host.run("journalctl -u k3s -n 30 --no-pager -o cat").stdout
    found = leftovers(host)
    assert found["runtime mounts"] and found["links"] and found["rules"], found


def test_k3s_killall_program_ends_the_pods_and_k3s_brings_them_back(host):
    """The role's k3s-killall.sh: after it no k3s process, runtime mount, CNI link, netns or
    KUBE-/CNI-/FLANNEL rule is left; the data stays; the next start brings the pods back."""
    wait_for_pods(host)
    run = host.run("/usr/local/bin/k3s-killall.sh")
    assert run.rc == 0, run.stdout + run.stderr
    assert "+ stop k3s.service" in run.stdout
    assert all(not v for v in leftovers(host).values()), leftovers(host)
    assert host.file("/var/lib/rancher/k3s/server/token").exists
    host.run_expect([0], "systemctl start k3s")
    wait_for_pods(host)


def test_state_absent_uninstalls_but_keeps_data(host, ansible_playbook):
    wait_for_pods(host)
    run = ansible_playbook("converge.yml", "-e", "k3s_state=absent")
    assert run.returncode == 0, run.output[-3000:]
    assert not host.service("k3s").is_running
    assert all(not v for v in leftovers(host).values()), leftovers(host)
    for path in ("/etc/systemd/system/k3s.service", "/usr/local/bin/k3s", f"/usr/local/bin/k3s-{A}"):
        assert not host.file(path).exists, path
    assert not host.file(f"/usr/local/bin/k3s-{B}").exists
    for tool in ("kubectl", "crictl", "ctr", "k3s-killall.sh", "k3s-uninstall.sh"):
        assert not host.file(f"/usr/local/bin/{tool}").exists, tool
    for name in ("k3s-killall.sh", "k3s-uninstall.sh"):
        assert not host.file(f"/etc/integr8scode-provision/{name}.json").exists, name
    # Data and configuration stay without k3s_uninstall_data.
    assert host.file("/etc/rancher/k3s/config.yaml").exists
    assert host.file("/var/lib/rancher/k3s/server").is_directory
    again = ansible_playbook("converge.yml", "-e", "k3s_state=absent")
    assert again.returncode == 0, again.output[-3000:]
    assert again.total("changed") == 0, again.changed_tasks()


def test_reset_playbook_stops_unless_confirmed(host, ansible_playbook):
    run = ansible_playbook("converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    refused = ansible_playbook(RESET)
    assert refused.returncode != 0
    assert "Not confirmed: reset_confirm is not true" in flat(refused.output)
    assert host.service("k3s").is_running


@pytest.fixture
def live_volume(host):
    """A tmpfs mounted where local-path-provisioner keeps volumes, with data in it (k3s #3264)."""
    host.run_expect([0], f"mkdir -p {VOLUME} && mount -t tmpfs tmpfs {VOLUME} && echo kept > {VOLUME}/data")
    yield VOLUME
    host.run(f"umount {VOLUME}")


def watcher_leftovers(host) -> dict:
    """The watcher's and the scheduled backup's units (loaded or on disk), program and state."""
    pattern = "'integr8scode-k3s-*'"
    # Both exit 1 when nothing matches.
    units = host.run(f"systemctl list-units --all --plain --no-legend {pattern}").stdout
    files = host.run(f"systemctl list-unit-files --plain --no-legend {pattern}").stdout
    return {
        "units": [line.split()[0] for line in units.splitlines() if line.strip()],
        "unit files": [line.split()[0] for line in files.splitlines() if line.strip()],
        "files": [path for path in (WATCHER_PROGRAM, WATCHER_STATE) if host.file(path).exists],
    }


def install_watcher_and_scheduled_backups(host, ansible_playbook):
    """recover.yml on the healthy host, watcher on (warn) and a backup schedule, and one scheduled
    backup taken: what reset.yml must take away again, except the backup."""
    run = ansible_playbook(RECOVER, "-e", "k3s_recover_watch_mode=warn", "-e", "k3s_recover_backup_schedule=daily",
                           "-e", "k3s_recover_stack_dir=")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    host.run_expect([0], "systemctl start integr8scode-k3s-backup.service")
    found = watcher_leftovers(host)
    assert {"integr8scode-k3s-drift.timer", "integr8scode-k3s-watch.service", "integr8scode-k3s-backup.timer"} <= set(
        found["unit files"]
    ), found
    assert WATCHER_PROGRAM in found["files"], found
    backups = host.check_output(f"ls -1 {BACKUPS}").split()
    assert len(backups) == 1, backups
    return backups


def test_reset_removes_k3s_and_its_data_but_nothing_below_a_live_mount(host, ansible_playbook, live_volume):
    wait_for_pods(host)
    backups = install_watcher_and_scheduled_backups(host, ansible_playbook)
    run = ansible_playbook(RESET, "-e", "reset_confirm=true", "-e", "reset_remove_data=true")
    text = flat(run.output)
    assert run.returncode != 0, "a live mount below the data directory must fail the reset"
    assert live_volume in text
    assert host.file(f"{live_volume}/data").content_string == "kept\n"
    assert all(not v for v in leftovers(host).values()), leftovers(host)
    for path in ("/var/lib/rancher/k3s/server", "/etc/rancher/k3s", "/etc/systemd/system/k3s.service"):
        assert not host.file(path).exists, path
    host.run_expect([0], f"umount {live_volume}")
    again = ansible_playbook(RESET, "-e", "reset_confirm=true", "-e", "reset_remove_data=true")
    assert again.returncode == 0, again.output[-3000:]
    assert not host.file("/var/lib/rancher/k3s").exists
    # recover.yml's watcher and scheduled backups are gone (issue 27 item 10); the backups stay.
    assert watcher_leftovers(host) == {"units": [], "unit files": [], "files": []}, watcher_leftovers(host)
    assert host.check_output(f"ls -1 {BACKUPS}").split() == backups
    third = ansible_playbook(RESET, "-e", "reset_confirm=true", "-e", "reset_remove_data=true")
    assert third.returncode == 0, third.output[-3000:]
    assert third.total("changed") == 0, third.changed_tasks()

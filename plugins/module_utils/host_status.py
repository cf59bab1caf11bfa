# -*- coding: utf-8 -*-
# Copyright: integr8scode.provision maintainers
# Apache License 2.0 (see galaxy.yml)
"""One look at the host (the host_status module, playbooks/status.yml): every part site.yml and
recover.yml set up, judged by the function that already owns that fact, in one table.

Nothing here decides a fact anew. The node address and why: the drift check (k3s/drift.py
``detect`` over node_address.py ``choose_node_address``), which also reads the k3s unit
(k3s/unit.py). Ready nodes: the readiness probe of k3s_ready (kube/api.py ``K3sProbe``), one probe.
The compose services: compose_wait's probe (compose/probe.py ``ComposeProbe``), one probe, with the
thresholds of the recovery's reconnect (compose/app.py). The app token: kube/app_kubeconfig.py
(``judge``, ``token_expiry``, ``prove_token``). The watcher: its installed settings and status
line (k3s/watch.py). Backups: k3s/backup.py (``describe_backup``, ``newest_verified``,
``verify``). NordVPN: module_utils/nordvpn.py.

Each section is gathered by a ``gather_*`` function (I/O; never raises: a part that cannot be
read becomes a section saying why) and judged by a pure ``*_section`` function that returns
``state`` (OK, WARN, FAIL, or NONE for a part that is not there), ``summary``, ``rows`` and the
facts it saw. ``render`` makes the table. Secrets never enter a section: the app token is read
for its expiry only, and the compose definition for its service names only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.integr8scode.provision.plugins.module_utils import nordvpn
from ansible_collections.integr8scode.provision.plugins.module_utils.compose import app, project
from ansible_collections.integr8scode.provision.plugins.module_utils.compose.probe import ComposeProbe
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import backup as backups
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s import watch
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.config import recorded_node_ip
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import ARGUMENT_SPEC as DRIFT_SPEC
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.drift import DriftError, detect
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import bounded_argv, unit_state
from ansible_collections.integr8scode.provision.plugins.module_utils.k3s.unit import describe as describe_unit
from ansible_collections.integr8scode.provision.plugins.module_utils.kube import app_kubeconfig
from ansible_collections.integr8scode.provision.plugins.module_utils.kube.api import HAS_KUBERNETES, K3sProbe
from ansible_collections.integr8scode.provision.plugins.module_utils.poll import Deadline

OK, WARN, FAIL, NONE = "ok", "WARN", "FAIL", "-"
# Worst first: a section is as bad as its worst row.
SEVERITY = {FAIL: 3, WARN: 2, OK: 1, NONE: 0}
# The watcher's follower (roles/k3s_recover/templates/integr8scode-k3s-watch.service.j2), which
# runs in modes warn and recover.
FOLLOWER = "integr8scode-k3s-watch.service"
# Seconds a NordVPN CLI call may take (the client waits on its daemon's socket).
CLI_TIMEOUT = 15
# Compose states in which a long-running service is not running now.
DOWN = ("exited", "dead", "created", "missing", "removing", "paused")


def section(state, summary, rows=(), **facts):
    facts.update(state=state, summary=summary, rows=list(rows))
    return facts


def row(name, state, text):
    return dict(name=name, state=state, text=text)


def worst(states, default=OK):
    states = [s for s in states if s is not None]
    return max(states, key=lambda s: SEVERITY[s]) if states else default


def iso(epoch):
    return backups.iso(epoch)


def duration(seconds):
    """A coarse human duration: 45s, 12m, 3h 5m, 2d 4h."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm" % (seconds // 60)
    if seconds < 86400:
        return "%dh %dm" % (seconds // 3600, seconds // 60 % 60)
    return "%dd %dh" % (seconds // 86400, seconds // 3600 % 24)


def relative(epoch, now):
    """``in 3h 5m`` or ``3h 5m ago``."""
    return "in %s" % duration(epoch - now) if epoch >= now else "%s ago" % duration(now - epoch)


# ------------------------------------------------------------------------- node address, k3s


def node_section(drift, error=None):
    """The node address the policy chooses and why (k3s_drift's result), with the drift findings
    recover.yml would act on."""
    if drift is None:
        return section(WARN, "the host's addresses could not be read: %s" % error, address=None)
    policy = drift["node_address"]
    configured = drift["node_ip"]["config"]
    findings = drift["findings"]
    rows = []
    for finding in findings:
        drifted = finding["severity"] == "drift"
        rows.append(row("drift" if drifted else "warning", FAIL if drifted else WARN, finding["message"]))
    facts = dict(
        address=drift["recommended_node_ip"],
        interface=None,
        source=policy.get("source"),
        reason=policy.get("reason"),
        configured=configured,
        drift=drift["drift"],
        findings=[dict(check=f["check"], severity=f["severity"], message=f["message"]) for f in findings],
    )
    if policy.get("error"):
        return section(FAIL, policy["error"], rows, **facts)
    address = drift["recommended_node_ip"]
    for entry in drift["host"]["addresses"]:
        if entry["address"] == address:
            facts["interface"] = entry["interface"]
    summary = "%s on %s (%s): %s" % (address, facts["interface"], policy["source"], policy["reason"])
    if not drift["installed"]:
        summary += " (k3s is not installed: the address it would get)"
    elif configured and configured != address:
        summary += "; config.yaml has %s" % configured
    rows += [row("warning", WARN, w) for w in policy.get("warnings") or () if w not in [f["message"] for f in findings]]
    if drift["drift"] and drift.get("refused"):
        rows.append(row("fix", FAIL, "recover.yml refuses this host: %s" % "; ".join(drift["refused"])))
    elif drift["drift"]:
        rows.append(row("fix", FAIL, "ansible-playbook playbooks/recover.yml"))
    return section(worst([r["state"] for r in rows]), summary, rows, **facts)


def unit_text(name, service):
    text = "%s %s (%s)" % (name, service.get("active_state") or "unknown", service.get("sub_state") or "?")
    if service.get("n_restarts"):
        text += ", restarted %d times" % service["n_restarts"]
    return text


def k3s_section(drift, nodes=None, service_name="k3s"):
    """The k3s unit (from the drift check) and the Ready nodes (one k3s_ready probe: ``nodes`` is
    its ``ready``, ``nodes`` and ``message``, or a ``skipped`` reason)."""
    if drift is None:
        return section(WARN, "not read (the drift check could not run)", installed=None)
    if not drift["installed"]:
        return section(NONE, "k3s is not installed (no config.yaml, no server data directory)", installed=False)
    service = drift["service"]
    facts = dict(
        installed=True,
        datastore=drift.get("datastore"),
        active_state=service.get("active_state"),
        sub_state=service.get("sub_state"),
        n_restarts=service.get("n_restarts"),
        crash_looping=drift["crash_looping"],
        nodes=[],
        nodes_ready=0,
        api_error=None,
    )
    rows = []
    if service.get("load_state") == "not-found":
        state, unit = FAIL, "unit %s not found" % service_name
    elif drift["crash_looping"]:
        state, unit = FAIL, describe_unit(service_name, service)
    elif service.get("active_state") != "active":
        state, unit = FAIL, "%s: not running" % unit_text(service_name, service)
    else:
        state, unit = OK, unit_text(service_name, service)
    nodes = nodes or {}
    if nodes.get("skipped"):
        facts["api_error"] = nodes["skipped"]
        summary = "%s; nodes not read: %s" % (unit, nodes["skipped"])
        if state == OK:
            state = WARN
        return section(state, summary, rows, **facts)
    seen = nodes.get("nodes") or []
    facts.update(nodes=seen, nodes_ready=len([n for n in seen if n.get("ready")]))
    for node in seen:
        addresses = "/".join(node.get("internal_ip") or []) or "none"
        ready = node.get("ready")
        rows.append(
            row(
                node["name"], OK if ready else FAIL, "%s, InternalIP %s" % ("Ready" if ready else "NotReady", addresses)
            )
        )
    summary = "%s; %d of %d nodes Ready" % (unit, facts["nodes_ready"], len(seen))
    if not nodes.get("ready"):
        facts["api_error"] = nodes.get("message") or "not ready"
        summary += "; API: %s" % facts["api_error"]
        state = FAIL
    return section(worst([state] + [r["state"] for r in rows]), summary, rows, **facts)


# ------------------------------------------------------------------------------------ compose


def container_text(entry):
    """What one compose_wait probe entry says about a service's container."""
    if entry.get("state") in (None, "missing"):
        return "no container"
    text = entry["state"]
    if entry.get("health"):
        text += ", %s" % entry["health"]
    if entry["state"] in ("exited", "dead"):
        text += " (exit code %s)" % entry.get("exit_code")
    if entry.get("oneshot"):
        text = "one-shot, " + text
    return "%s, restarts %d" % (text, entry.get("restart_count") or 0)


def service_row(name, entry, failed=None, waiting=None):
    """A service as the probe judged it. The probe waits (a container that exited with a restart
    policy "will be restarted"); a look at the host cannot: a long-running service that is not
    running now is down, whatever its policy (a `docker stop`ped container stays stopped)."""
    text = container_text(entry)
    if entry.get("ready"):
        return row(name, OK, text)
    if failed:
        return row(name, FAIL, "%s: %s" % (text, failed))
    if not entry.get("oneshot") and (entry.get("state") or "missing") in DOWN:
        return row(name, FAIL, "%s: not running" % text)
    return row(name, WARN, "%s: %s" % (text, waiting or "not ready"))


def compose_section(stack_dir, project=None, observation=None, error=None, present=True):
    if not present:
        return section(NONE, "no stack in %s" % stack_dir, stack_dir=stack_dir, project=None, services={})
    if error:
        return section(FAIL, "%s: %s" % (stack_dir, error), stack_dir=stack_dir, project=project, services={})
    services = observation.get("services") or {}
    failed = observation.get("failed") or {}
    waiting = observation.get("waiting") or {}
    rows = [service_row(name, services[name], failed.get(name), waiting.get(name)) for name in sorted(services)]
    bad = [r["name"] for r in rows if r["state"] != OK]
    summary = "project %s in %s: %d of %d services as they should be%s" % (
        project,
        stack_dir,
        len(rows) - len(bad),
        len(rows),
        "; not: %s" % ", ".join(bad) if bad else "",
    )
    keys = ("state", "health", "exit_code", "restart_count", "oneshot", "ready")
    facts = dict(
        stack_dir=stack_dir,
        project=project,
        services=dict((name, dict((k, entry.get(k)) for k in keys)) for name, entry in services.items()),
    )
    return section(worst([r["state"] for r in rows], FAIL), summary, rows, **facts)


# ------------------------------------------------------------------------------------ app token


def token_section(path, now, *, present=True, judged=None, expires=None, proof=None, refresh=None):
    """``judged``: app_kubeconfig.judge's facts; ``expires``: token_expiry; ``proof``:
    prove_token's (accepted, status, error), or None when not asked; ``refresh``: the refresh
    timer's last outcome (compose/app.py read_refresh), None when it never ran."""
    facts = dict(
        path=path,
        server=None,
        mode=None,
        expires=expires,
        expires_at=None,
        expires_in=None,
        accepted=None,
        probe_status=None,
        problems=[],
    )
    if not present:
        return section(NONE, "no stack, no app kubeconfig", **facts)
    judged = judged or {}
    facts.update(server=judged.get("server"), mode=judged.get("mode"), problems=list(judged.get("problems") or ()))
    rows = [row("problem", FAIL, p) for p in facts["problems"]]
    # The token lives 24 h and the workers read it once: a failed refresh is a stack that stops
    # working at the expiry shown above.
    facts["refresh"] = app.refresh_status_line(refresh, now)
    rows.append(row("refresh", NONE if not refresh else OK if refresh.get("ok") else FAIL, facts["refresh"]))
    if expires is None:
        when, state = "its token names no expiry", OK
    else:
        facts.update(expires_at=iso(expires), expires_in=int(expires - now))
        expired = expires <= now
        when = "%s %s (%s)" % ("EXPIRED" if expired else "expires", iso(expires), relative(expires, now))
        state = FAIL if expired else OK
    if proof is not None:
        accepted, status, error = proof
        facts.update(accepted=accepted, probe_status=status)
        if not accepted:
            rows.append(row("api", FAIL, "the k3s API did not accept the token: %s %s" % (status, error)))
    if judged.get("mode") is None and facts["problems"]:
        return section(FAIL, "%s: %s" % (path, facts["problems"][0]), **facts)
    summary = "%s; %s" % (when, "accepted by the API (%s)" % facts["probe_status"] if facts["accepted"] else path)
    return section(worst([state] + [r["state"] for r in rows]), summary, rows, **facts)


# ------------------------------------------------------------------------------------ watcher


def watcher_section(settings, state=None, line=None, follower=None, error=None):
    """``settings``: the installed program's (watch.installed_settings), None when none is
    installed; ``state``, ``line``: watch.read_status; ``follower``: its unit's state."""
    if error:
        return section(WARN, "the watcher program could not be read: %s" % error, mode=None)
    if settings is None:
        return section(NONE, "not installed (k3s_recover_watch_mode off, no scheduled backups)", mode="off")
    mode = settings.get("mode") or "off"
    state = state or {}
    last = state.get("last_recovery") or {}
    facts = dict(
        mode=mode,
        state_dir=settings.get("state_dir"),
        follower=(follower or {}).get("active_state"),
        last_check=dict((k, (state.get("last_check") or {}).get(k)) for k in ("at", "outcome")),
        last_recovery=dict((k, last.get(k)) for k in ("at", "outcome", "node_ip", "backup")) if last else None,
        failed_recovery=bool(state.get("failed_recovery")),
        held=bool(state.get("held")),
        status_line=line,
    )
    rows = []
    if mode == "off":
        return section(NONE, "mode off (the program is installed for the scheduled backups)", **facts)
    if facts["follower"] != "active":
        rows.append(
            row(
                "follower",
                WARN,
                "%s is %s: address changes are seen only by the timer" % (FOLLOWER, facts["follower"] or "unknown"),
            )
        )
    if facts["failed_recovery"]:
        rows.append(row("recovery", FAIL, "the last automatic recovery failed and needs a person"))
    if facts["held"]:
        rows.append(row("hold", WARN, "held: no automatic recovery until released"))
    return section(worst([r["state"] for r in rows]), "mode %s; %s" % (mode, line), rows, **facts)


# ------------------------------------------------------------------------------------ backups


def backup_section(root, now, *, described=(), newest=None, unverified=(), error=None):
    """``described``: describe_backup records; ``newest``: (record, verify result) of the newest
    that verifies (backup.newest_verified), None when none does; ``unverified``: [(name, first
    error)] of newer backups that did not verify."""
    facts = dict(root=root, count=len(described), newest=None, unverified=[n for n, _e in unverified])
    if error:
        return section(WARN, "%s could not be read: %s" % (root, error), **facts)
    if not described:
        return section(NONE, "no backups in %s" % root, **facts)
    rows = [row(name, WARN, "newer, does not verify: %s" % why) for name, why in unverified]
    if newest is None:
        return section(FAIL, "%d backups in %s, none verifies" % (len(described), root), rows, **facts)
    record, checked = newest
    age = None if record["created"] is None else now - record["created"]
    facts["newest"] = dict(
        name=record["name"],
        kind=record["kind"],
        created=record["created"],
        age=age,
        files=checked.get("checked"),
        path=os.path.join(root, record["name"]),
    )
    taken = "age unknown" if age is None else duration(age) + " ago"
    summary = "%s (%s), taken %s (%s), verified now: %s files; %d in %s" % (
        record["name"],
        record["kind"],
        iso(record["created"]),
        taken,
        checked.get("checked"),
        len(described),
        root,
    )
    return section(worst([r["state"] for r in rows]), summary, rows, **facts)


# ------------------------------------------------------------------------------------ NordVPN


def vpn_section(installed, status_text="", settings_text="", failed=None):
    """``failed``: what the client printed when a call failed."""
    if not installed:
        return section(NONE, "NordVPN client not installed", installed=False)
    if failed is not None:
        down = nordvpn.daemon_down(failed)
        return section(
            FAIL,
            "%s: %s"
            % (
                "the NordVPN daemon does not answer (systemctl enable --now nordvpnd)" if down else "nordvpn failed",
                failed.strip()[-300:],
            ),
            installed=True,
            daemon=not down,
        )
    status = nordvpn.parse_status(status_text)
    settings = nordvpn.parse_settings(settings_text)
    facts = dict(installed=True, daemon=True, **status)
    facts.update(
        lan_discovery=settings["lan_discovery"],
        allowlisted_subnets=settings["allowlisted_subnets"],
        firewall=settings["firewall"],
    )
    link = status["status"] or "status unknown"
    if status["connected"]:
        link = "Connected to %s (%s)" % (status["server"] or status["hostname"] or "?", status["technology"] or "?")
    summary = "%s; LAN discovery %s; allowlisted: %s" % (
        link,
        settings["lan_discovery"] or "unknown",
        ", ".join(settings["allowlisted_subnets"]) or "none",
    )
    rows = []
    if settings["lan_discovery"] is None:
        rows.append(row("lan discovery", WARN, "the client prints no LAN Discovery setting (too old a client)"))
    elif settings["lan_discovery"] != "enabled" and not settings["allowlisted_subnets"]:
        # Connected, the client's firewall drops what is neither LAN discovery nor allowlisted:
        # the k3s API at node-ip and Docker's networks (nordvpn-linux #1527).
        rows.append(
            row(
                "lan discovery",
                WARN if not status["connected"] else FAIL,
                "LAN discovery is off and nothing is allowlisted: %s drops k3s and the stack's traffic "
                "(run site.yml --tags nordvpn)"
                % ("the firewall" if status["connected"] else "once connected, the firewall"),
            )
        )
    return section(worst([r["state"] for r in rows]), summary, rows, **facts)


# ------------------------------------------------------------------------------------ table

TITLES = (
    ("node_address", "node address"),
    ("k3s", "k3s"),
    ("compose", "compose"),
    ("app_token", "app token"),
    ("watcher", "watcher"),
    ("backup", "backup"),
    ("vpn", "vpn"),
)


def problems(sections):
    """``part: text`` of every section and row that is WARN or FAIL, worst first."""
    found = []
    for key, title in TITLES:
        sec = sections.get(key)
        if not sec:
            continue
        bad = [r for r in sec["rows"] if r["state"] in (WARN, FAIL)]
        if sec["state"] in (WARN, FAIL) and not bad:
            found.append((sec["state"], "%s: %s" % (title, sec["summary"])))
        found += [(r["state"], "%s/%s: %s" % (title, r["name"], r["text"])) for r in bad]
    return [text for _s, text in sorted(found, key=lambda item: -SEVERITY[item[0]])]


def render(host, sections, now):
    """The table, one line each: a part, its state and what was seen; rows indented below it."""
    lines = [(title, sections[key]) for key, title in TITLES if key in sections]
    names = [title for title, _s in lines] + ["  " + r["name"] for _t, s in lines for r in s["rows"]]
    width = max(len(n) for n in names) + 2
    out = ["Integr8sCode on %s at %s" % (host, iso(now)), "%-*s%-6s%s" % (width, "PART", "STATE", "WHAT WAS SEEN")]
    for title, sec in lines:
        out.append("%-*s%-6s%s" % (width, title, sec["state"], sec["summary"]))
        for r in sec["rows"]:
            out.append("%-*s%-6s%s" % (width, "  " + r["name"], r["state"], r["text"]))
    found = problems(sections)
    out.append("%d problem(s)%s" % (len(found), ": " + " | ".join(found) if found else ": none found"))
    return out


# ------------------------------------------------------------------------------------ gathering


def gather_drift(runner, params):
    """(result, warnings, error) of recover.yml's drift check, never raising."""
    try:
        result, warnings = detect(runner, params)
    except (DriftError, OSError, ValueError) as exc:
        return None, [], str(exc)
    return result, warnings, None


def gather_nodes(drift, kubeconfig, request_timeout):
    """One k3s_ready probe of every node, or why it was not made."""
    if drift is None or not drift["installed"]:
        return {"skipped": "k3s is not installed"}
    if drift["service"].get("active_state") != "active":
        return {"skipped": "k3s is %s" % drift["service"].get("active_state")}
    if not HAS_KUBERNETES:
        return {"skipped": "the kubernetes Python client (python3-kubernetes) is missing on the host"}
    if not os.path.exists(kubeconfig):
        return {"skipped": "%s does not exist" % kubeconfig}
    probe = K3sProbe(Deadline(request_timeout * 2), kubeconfig=kubeconfig, request_timeout=request_timeout)
    outcome = probe()
    return dict(ready=outcome.ready, nodes=outcome.observation.get("nodes") or [], message=outcome.message)


def gather_compose(runner, stack_dir, project_name, compose_files, docker_host):
    """compose_section for the stack in ``stack_dir``: its services (the definition's, and any
    other container of the project, e.g. of a profile) judged by one ComposeProbe."""
    if not stack_dir or not os.path.isdir(stack_dir):
        return compose_section(stack_dir or "(no stack_dir)", present=False)
    try:
        client = project.docker_client(docker_host)
        definition = project.load_definition(runner, client, stack_dir, project_name or None, compose_files)
        labels = [c.get("Labels") or {} for c in project.list_containers(client, definition.name)]
        targets = sorted(
            set(definition.services)
            | set(lab[project.LABEL_SERVICE] for lab in labels if lab.get(project.LABEL_SERVICE))
        )
        oneshots = set(definition.oneshots) | project.oneshots_from_labels(labels)
        probe = ComposeProbe(
            client,
            definition,
            targets,
            oneshots,
            restart_threshold=app.RESTART_THRESHOLD,
            unhealthy_grace=app.UNHEALTHY_GRACE,
            stable_seconds=app.STABLE_SECONDS,
        )
        observation = probe().observation
    except (project.ComposeError, project.DockerException, OSError, ValueError) as exc:
        return compose_section(stack_dir, project_name, error=str(exc))
    if not labels:
        return compose_section(
            stack_dir, definition.name, error="project %s has no containers (not started)" % definition.name
        )
    return compose_section(stack_dir, definition.name, observation)


def gather_token(
    path, now, *, config_file, api_port, probe_path, timeout, present=True, refresh_state=app.REFRESH_STATE
):
    if not present or not path:
        return token_section(path, now, present=False)
    refresh = app.read_refresh(refresh_state)
    try:
        node_ip = recorded_node_ip(config_file)
    except (OSError, ValueError):
        node_ip = None
    config, judged = app_kubeconfig.judge(path, node_ip, api_port)
    if config is None:
        return token_section(path, now, judged=judged, refresh=refresh)
    proof = app_kubeconfig.prove_token(config, probe_path, timeout=timeout)
    return token_section(
        path, now, judged=judged, expires=app_kubeconfig.token_expiry(config), proof=proof, refresh=refresh
    )


def gather_watcher(runner, program):
    try:
        settings = watch.installed_settings(program)
    except ValueError as exc:
        return watcher_section(None, error=str(exc))
    if settings is None:
        return watcher_section(None)
    state, line = watch.read_status(settings.get("state_dir") or "")
    systemctl = runner.get_bin_path("systemctl")
    follower = unit_state(runner.run_command, FOLLOWER, systemctl) if systemctl else {}
    return watcher_section(settings, state, line, follower)


def gather_backups(root, now):
    try:
        names = backups.backup_names(root)
        described = [backups.describe_backup(root, name) for name in names]
        results = {}

        def verifies(record):
            results[record["name"]] = backups.verify(os.path.join(root, record["name"]))
            return results[record["name"]]["ok"]

        newest = backups.newest_verified(described, verifies)
    except OSError as exc:
        return backup_section(root, now, error=str(exc))
    # verify() was asked newest first up to the one that verified: the others asked did not.
    unverified = [
        (name, "; ".join(r["errors"][:2])) for name, r in sorted(results.items(), reverse=True) if not r["ok"]
    ]
    found = (newest, results[newest["name"]]) if newest else None
    return backup_section(root, now, described=described, newest=found, unverified=unverified)


def gather_vpn(runner):
    binary = runner.get_bin_path("nordvpn")
    if not binary:
        return vpn_section(False)
    said = {}
    for verb in ("status", "settings"):
        rc, out, err = runner.run_command(bounded_argv(runner.get_bin_path, CLI_TIMEOUT, binary, verb))
        if rc != 0:
            return vpn_section(True, failed=(out + " " + err).strip() or "exit %d" % rc)
        said[verb] = out
    return vpn_section(True, said["status"], said["settings"])


def look(runner, p, host):
    """Every section of the host, and the table: (sections, table, problems)."""
    now = time.time()
    sections = {}
    kubeconfigs = [k for k in [p["admin_kubeconfig"], p["app_kubeconfig"]] + list(p["kubeconfigs"] or []) if k]
    # The drift check's own options, as the module took them (its argument spec), with every
    # kubeconfig to compare and its own hung-start default.
    params = dict((key, p[key]) for key in DRIFT_SPEC if key in p)
    params.update(kubeconfigs=kubeconfigs, hung_start_after=DRIFT_SPEC["hung_start_after"]["default"])
    drift, warnings, error = gather_drift(runner, params)
    sections["node_address"] = node_section(drift, error)
    sections["k3s"] = k3s_section(drift, gather_nodes(drift, p["admin_kubeconfig"], p["request_timeout"]), p["service"])
    sections["compose"] = gather_compose(
        runner, p["stack_dir"], p["project_name"], p["compose_files"], p["docker_host"]
    )
    present = bool(p["stack_dir"]) and os.path.isdir(p["stack_dir"])
    sections["app_token"] = gather_token(
        p["app_kubeconfig"],
        now,
        config_file=p["config_file"],
        api_port=p["api_port"],
        probe_path=p["app_probe_path"],
        timeout=p["request_timeout"],
        present=present,
    )
    sections["watcher"] = gather_watcher(runner, p["watcher_program"])
    sections["backup"] = gather_backups(p["backup_root"], now)
    sections["vpn"] = gather_vpn(runner)
    return sections, render(host, sections, now), problems(sections), warnings

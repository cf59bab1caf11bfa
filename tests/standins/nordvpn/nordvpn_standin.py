"""NordVPN Linux client STAND-IN for offline tests. Never installed for users.

One program, two roles, run through the two sh wrappers beside it:
  nordvpn   the CLI: `settings`, `set lan-discovery <bool>`,
            `allowlist add|remove subnet <CIDR>` (alias `whitelist`), `version`
  nordvpnd  the daemon (this program with --daemon): listens on
            /run/nordvpn/nordvpnd.sock and keeps the settings in a JSON state
            file (/var/lib/nordvpn/standin-settings.json)

Behaviours modelled, each taken from the public NordSecurity/nordvpn-linux source:
- `nordvpn settings` prints one `Key: value` line per setting with booleans as
  enabled/disabled, `LAN Discovery: ...` among them, then `Allowlisted subnets:`
  and one tab-indented CIDR per line, only when there are any
  (cli/cli_settings.go: Settings, displayAllowlist).
- Booleans accepted by `set`: 1 true enable on enabled / 0 false disable off
  disabled (cli/messages.go: MsgSetBoolDescription; nstrings.BoolFromString).
- `set lan-discovery`: "LAN Discovery has been successfully set to 'enabled'."
  exit 0; same value again: "LAN discovery is already set to enabled." exit 1
  (the CLI returns ALREADY_SET as an error; cli/cli_set_lan_discovery.go,
  cli/messages.go MsgSetSuccess / SetLANDiscoveryAlreadyEnabled). Enabling it
  drops private and link-local subnets from the allowlist and then first prints
  SetLANDiscoveryAllowlistReset (daemon/rpc_set_lan_discovery.go).
- `allowlist add subnet`: success / "is already on the allowlist" / private
  subnet refused while LAN discovery is on ("Allowlisting a private subnet is not
  available while local network discovery is turned on.") / invalid CIDR gives
  the argument-parsing error; `remove subnet`: success / "is not on the
  allowlist" (cli/cli_allowlist_add_subnet.go, cli_allowlist_remove_subnet.go,
  daemon/rpc_set_allowlist.go containsPrivateNetwork: netip IsPrivate or
  IsLinkLocalUnicast).
- Daemon not running: the socket file is missing -> "Couldn't find
  /run/nordvpn/nordvpnd.sock. To fix the issue, you may need to reinstall the
  app." plus the "background service isn't running" hint; socket present but
  nobody listening -> "We couldn't reach System Daemon."; exit 1 either way
  (cli/cli.go cmd.action, cli/cli_ping.go, internal/errors.go, internal/constants.go).
- Errors, like the real client's `color.Red` output, go to stdout; the exit
  status is 1 for every error, 0 on success (cmd/cli/main.go).

Not modelled: logging in, connecting, the nordlynx interface and its routes,
firewall rules, ports in the allowlist, other settings than LAN discovery
(printed with fixed defaults), socket activation (nordvpnd.socket), the
`nordvpn` group permission check, meshnet.

Stand-in only knobs (environment): NORDVPND_SOCKET (socket path),
NORDVPND_STATE (state file); the wrappers read NORDVPN_STANDIN (program path).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sys
from pathlib import Path

VERSION = "3.20.0"
SOCKET = os.environ.get("NORDVPND_SOCKET", "/run/nordvpn/nordvpnd.sock")
STATE = os.environ.get("NORDVPND_STATE", "/var/lib/nordvpn/standin-settings.json")

TRUE_WORDS = ("1", "true", "enable", "on", "enabled")
FALSE_WORDS = ("0", "false", "disable", "off", "disabled")

# Daemon reply codes (internal/codes.go).
CODE_SUCCESS = 1000
CODE_FAILURE = 1001
CODE_PRIVATE_SUBNET_LAN_DISCOVERY = 3040
CODE_ALLOWLIST_INVALID_SUBNET = 3044
CODE_ALLOWLIST_SUBNET_NOOP = 3045
ALREADY_SET = "ALREADY_SET"
CONFIGURED = "DISCOVERY_CONFIGURED"
CONFIGURED_RESET = "DISCOVERY_CONFIGURED_ALLOWLIST_RESET"

# Client messages (cli/messages.go, internal/errors.go, cli/cli.go).
MSG_SET_SUCCESS = "{} has been successfully set to '{}'."
MSG_LAN_ALREADY = "LAN discovery is already set to {}."
MSG_LAN_RESET = "Turning on local network discovery will remove your private subnets from the allowlist."
MSG_ADD_EXISTS = "Subnet {} is already on the allowlist."
MSG_ADD_SUCCESS = "Subnet {} has been successfully added to the allowlist."
MSG_ADD_LAN = "Allowlisting a private subnet is not available while local network discovery is turned on."
MSG_REMOVE_MISSING = "Subnet {} is not on the allowlist."
MSG_REMOVE_SUCCESS = "Subnet {} has been deleted from the allowlist."
MSG_ARG_COUNT = (
    "The command you entered has an incorrect number of arguments. Run '{} --help' to view available options."
)
MSG_ARG_PARSE = "The command you entered is not valid. Run '{} --help' to view available options."
MSG_NO_COMMAND = "Command '{}' doesn't exist."
MSG_UNHANDLED = "Something went wrong. Please try again. If the problem persists, contact our customer support."
MSG_CONN_REFUSED = "We couldn't reach System Daemon."
MSG_SOCKET_NOT_FOUND = "Couldn't find {}. To fix the issue, you may need to reinstall the app."
MSG_SERVICE_NOT_RUNNING = (
    'The NordVPN background service isn\'t running. Execute the "systemctl enable --now nordvpnd" command '
    "with root privileges to start the background service. If you're using NordVPN in an environment without "
    'systemd (a container, for example), use the "/etc/init.d/nordvpn start" command.'
)


def label(flag: bool) -> str:
    return "enabled" if flag else "disabled"


# ----------------------------------------------------------------- daemon side


def load_state() -> dict:
    try:
        state = json.loads(Path(STATE).read_text())
    except FileNotFoundError:
        state = {}
    state.setdefault("lan_discovery", False)
    state.setdefault("subnets", [])
    return state


def save_state(state: dict) -> None:
    path = Path(STATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def is_private(cidr: str) -> bool:
    # Go's netip Addr.IsPrivate (10/8, 172.16/12, 192.168/16, fc00::/7) or
    # IsLinkLocalUnicast (169.254/16, fe80::/10), on the prefix's address.
    addr = ipaddress.ip_network(cidr, strict=False).network_address
    if addr.version == 4:
        nets = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
    else:
        nets = ("fc00::/7", "fe80::/10")
    return any(addr in ipaddress.ip_network(net) for net in nets)


def parse_prefix(text: str) -> str | None:
    # netip.ParsePrefix: address/bits, host bits allowed; canonical form kept as given.
    if "/" not in text:
        return None
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return text


def handle(request: dict) -> dict:
    state = load_state()
    op = request.get("op")
    if op == "ping":
        return {"type": CODE_SUCCESS}
    if op == "settings":
        return {"type": CODE_SUCCESS, "lan_discovery": state["lan_discovery"], "subnets": state["subnets"]}
    if op == "set_lan_discovery":
        enabled = bool(request.get("enabled"))
        if state["lan_discovery"] == enabled:
            return {"error": ALREADY_SET}
        status = CONFIGURED
        if enabled:
            kept = [s for s in state["subnets"] if not is_private(s)]
            if len(kept) != len(state["subnets"]):
                status = CONFIGURED_RESET
            state["subnets"] = kept
        state["lan_discovery"] = enabled
        save_state(state)
        return {"status": status}
    if op in ("allowlist_add_subnet", "allowlist_remove_subnet"):
        subnet = str(request.get("subnet", ""))
        remove = op == "allowlist_remove_subnet"
        if state["lan_discovery"] and parse_prefix(subnet) and is_private(subnet):
            return {"type": CODE_PRIVATE_SUBNET_LAN_DISCOVERY}
        if parse_prefix(subnet) is None:
            return {"type": CODE_ALLOWLIST_INVALID_SUBNET}
        present = subnet in state["subnets"]
        if present != remove:
            return {"type": CODE_ALLOWLIST_SUBNET_NOOP}
        state["subnets"] = [s for s in state["subnets"] if s != subnet] if remove else state["subnets"] + [subnet]
        save_state(state)
        return {"type": CODE_SUCCESS}
    return {"type": CODE_FAILURE}


def daemon() -> int:
    path = Path(SOCKET)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o770)
    server.listen(8)

    def stop(_signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # Inside the try: a stop right after this line must still remove the socket.
        print(f"nordvpnd stand-in {VERSION} listening on {path}", flush=True)
        while True:
            conn, _peer = server.accept()
            with conn, conn.makefile("rwb") as stream:
                line = stream.readline()
                try:
                    reply = handle(json.loads(line or b"{}"))
                except (ValueError, OSError) as exc:
                    reply = {"type": CODE_FAILURE, "detail": str(exc)}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()
    finally:
        server.close()
        # The daemon removes its socket on a clean stop, so a stopped service
        # reads as "socket not found" to the client, as with the real nordvpnd.
        if path.exists():
            path.unlink()


# ----------------------------------------------------------------- client side


class ClientExit(Exception):
    def __init__(self, code: int, *lines: str):
        super().__init__(code)
        self.code = code
        self.lines = lines


def call(request: dict) -> dict:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(SOCKET)
    except FileNotFoundError as exc:
        raise ClientExit(1, MSG_SOCKET_NOT_FOUND.format(SOCKET), MSG_SERVICE_NOT_RUNNING) from exc
    except OSError as exc:
        raise ClientExit(1, MSG_CONN_REFUSED) from exc
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(request).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    if not line:
        raise ClientExit(1, MSG_CONN_REFUSED)
    return json.loads(line)


def parse_bool(text: str) -> bool | None:
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def cmd_settings(args: list[str]) -> list[str]:
    reply = call({"op": "settings"})
    lines = [
        "Technology: NORDLYNX",
        "Firewall: enabled",
        "Firewall Mark: 0xe1f1",
        "Routing: enabled",
        "Analytics: disabled",
        "Kill Switch: disabled",
        "Threat Protection Lite: disabled",
        "Notify: disabled",
        "Tray: enabled",
        "Auto-connect: disabled",
        "IPv6: disabled",
        "Meshnet: disabled",
        "DNS: disabled",
        f"LAN Discovery: {label(reply['lan_discovery'])}",
        "Virtual Location: enabled",
        "Post-quantum VPN: disabled",
    ]
    if reply["subnets"]:
        lines.append("Allowlisted subnets:")
        lines.extend(f"\t{subnet}" for subnet in reply["subnets"])
    return lines


def cmd_set_lan_discovery(args: list[str]) -> list[str]:
    name = "nordvpn set lan-discovery"
    if len(args) != 1:
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    enabled = parse_bool(args[0])
    if enabled is None:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    call({"op": "ping"})
    reply = call({"op": "set_lan_discovery", "enabled": enabled})
    if reply.get("error") == ALREADY_SET:
        raise ClientExit(1, MSG_LAN_ALREADY.format(label(enabled)))
    lines = [MSG_LAN_RESET] if reply.get("status") == CONFIGURED_RESET else []
    return [*lines, MSG_SET_SUCCESS.format("LAN Discovery", label(enabled))]


def cmd_allowlist_subnet(action: str, args: list[str]) -> list[str]:
    name = f"nordvpn allowlist {action} subnet"
    if len(args) != 1:
        raise ClientExit(1, MSG_ARG_COUNT.format(name))
    subnet = args[0]
    call({"op": "ping"})
    reply = call({"op": f"allowlist_{action}_subnet", "subnet": subnet})
    code = reply.get("type")
    if code == CODE_PRIVATE_SUBNET_LAN_DISCOVERY:
        raise ClientExit(1, MSG_ADD_LAN)
    if code == CODE_ALLOWLIST_INVALID_SUBNET:
        raise ClientExit(1, MSG_ARG_PARSE.format(name))
    if code == CODE_ALLOWLIST_SUBNET_NOOP:
        raise ClientExit(1, (MSG_ADD_EXISTS if action == "add" else MSG_REMOVE_MISSING).format(subnet))
    if code != CODE_SUCCESS:
        raise ClientExit(1, MSG_UNHANDLED)
    return [(MSG_ADD_SUCCESS if action == "add" else MSG_REMOVE_SUCCESS).format(subnet)]


def client(argv: list[str]) -> int:
    try:
        lines = dispatch(argv)
    except ClientExit as exc:
        for line in exc.lines:
            print(line)
        return exc.code
    for line in lines:
        print(line)
    return 0


def dispatch(argv: list[str]) -> list[str]:
    if not argv or argv[0] in ("-h", "--help", "help"):
        return [f"Welcome to NordVPN Linux client app!\nVersion {VERSION}"]
    if argv[0] in ("-v", "--version"):
        return [f"NordVPN Version {VERSION}"]
    command, rest = argv[0], argv[1:]
    if command == "settings":
        call({"op": "ping"})
        return cmd_settings(rest)
    if command == "version":
        call({"op": "ping"})
        return [f"NordVPN Version {VERSION}"]
    if command in ("set", "s") and rest and rest[0] == "lan-discovery":
        return cmd_set_lan_discovery(rest[1:])
    if command in ("allowlist", "whitelist") and rest[:2] in (["add", "subnet"], ["remove", "subnet"]):
        return cmd_allowlist_subnet(rest[0], rest[2:])
    raise ClientExit(1, MSG_NO_COMMAND.format(" ".join(argv)))


def main() -> int:
    if sys.argv[1:] == ["--daemon"]:
        return daemon()
    return client(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

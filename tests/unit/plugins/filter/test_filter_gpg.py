"""Filter gpg_fingerprints (plugins/filter/gpg.py) over `gpg --with-colons` listings as GnuPG 2.2
prints them (`--show-keys` of an exported file, `--list-secret-keys`): pub/sec, fpr, uid, sub/ssb,
grp records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.integr8scode.provision.plugins.filter.gpg import FilterModule, gpg_fingerprints

ROOT = Path(__file__).resolve().parents[4]

# `gpg --batch --no-options --homedir H --show-keys --with-colons two.asc`: an ed25519 primary key
# with a cv25519 encryption subkey, then an RSA primary key without subkeys.
SHOW_KEYS = """\
pub:-:255:22:705ED365AEA7F53F:1796693022:::-:::scESC:::::ed25519:::0:
fpr:::::::::9C9B18A5E59742173D3F5DC8705ED365AEA7F53F:
uid:-::::1796693022::2B381C06559FFC6D69D5699AFF837381AA5D3824::Test Key <t@example.org>::::::::::0:
sub:-:255:18:304C74B8E587FC5E:1796693022::::::e:::::cv25519::
fpr:::::::::EA0F4CA71CE71FD657D58B74304C74B8E587FC5E:
pub:-:2048:1:0F340546A2838342:1796693022:::-:::scSC::::::23::0:
fpr:::::::::82D118A93DDCFD4A49BDDF7E0F340546A2838342:
uid:-::::1796693022::9AB6E234C5E22B33AF611FF6309B36CE38EE3B0A::Second <s@example.org>::::::::::0:
"""
# `gpg --list-secret-keys --with-colons` of the same keys: sec/ssb, and grp (keygrip) records.
SECRET = """\
sec:u:255:22:705ED365AEA7F53F:1796693022:::u:::scESC:::+::ed25519:::0:
fpr:::::::::9C9B18A5E59742173D3F5DC8705ED365AEA7F53F:
grp:::::::::0B70DFD1D9E9E7D13E96DB4DFA83C292DFF04F60:
uid:u::::1796693022::2B381C06559FFC6D69D5699AFF837381AA5D3824::Test Key <t@example.org>::::::::::0:
ssb:u:255:18:304C74B8E587FC5E:1796693022::::::e:::+::cv25519::
fpr:::::::::EA0F4CA71CE71FD657D58B74304C74B8E587FC5E:
grp:::::::::D9CDAD7D623D9080B6AD8DA55392065D1BFE5D07:
"""
PRIMARY = ["9C9B18A5E59742173D3F5DC8705ED365AEA7F53F", "82D118A93DDCFD4A49BDDF7E0F340546A2838342"]
SUBKEY = "EA0F4CA71CE71FD657D58B74304C74B8E587FC5E"


def test_registered_under_its_name():
    assert FilterModule().filters() == {"gpg_fingerprints": gpg_fingerprints}


def test_primary_fingerprints_from_text_and_lines():
    assert gpg_fingerprints(SHOW_KEYS) == PRIMARY
    assert gpg_fingerprints(SHOW_KEYS.splitlines()) == PRIMARY


def test_subkeys_only_when_asked():
    assert gpg_fingerprints(SHOW_KEYS, subkeys=True) == [PRIMARY[0], SUBKEY, PRIMARY[1]]
    assert SUBKEY not in gpg_fingerprints(SHOW_KEYS)


def test_secret_listings_and_keygrips():
    assert gpg_fingerprints(SECRET) == PRIMARY[:1]
    assert gpg_fingerprints(SECRET, subkeys=True) == [PRIMARY[0], SUBKEY]


def test_upper_case_once_each_and_nothing_from_a_stray_fpr():
    listing = SHOW_KEYS.lower() + SHOW_KEYS
    assert gpg_fingerprints(listing) == PRIMARY
    # An fpr that follows no key record (or follows a uid) is not a key's fingerprint.
    assert gpg_fingerprints("fpr:::::::::AAAA:\nuid:-::::1::x::y:\nfpr:::::::::BBBB:\n") == []
    assert gpg_fingerprints("") == []
    # Not an OpenPGP key: gpg prints nothing on stdout.
    assert gpg_fingerprints([]) == []


@pytest.mark.parametrize("value", [None, 42, {"stdout": ""}, b"pub:", ["pub:", 3]])
def test_bad_input_fails_the_template(value):
    with pytest.raises(AnsibleFilterError, match="gpg_fingerprints input"):
        gpg_fingerprints(value)


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_a_real_gpg_listing(tmp_path):
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))

    def gpg(*args: str) -> str:
        run = subprocess.run(["gpg", "--batch", *args], env=env, capture_output=True, text=True, check=True)
        return run.stdout

    gpg("--passphrase", "", "--quick-gen-key", "Filter Test <f@example.org>", "ed25519", "sign", "never")
    listing = gpg("--list-keys", "--with-colons")
    primary = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")][0]
    gpg("--passphrase", "", "--quick-add-key", primary, "cv25519", "encr", "never")
    (tmp_path / "key.asc").write_text(gpg("--armor", "--export"))
    shown = gpg("--no-options", "--show-keys", "--with-colons", str(tmp_path / "key.asc"))
    assert gpg_fingerprints(shown) == [primary]
    assert len(gpg_fingerprints(shown, subkeys=True)) == 2


def test_by_fqcn_in_a_playbook(tmp_path):
    playbook = tmp_path / "gpg.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Call gpg_fingerprints by its FQCN
              hosts: localhost
              gather_facts: false
              tasks:
                - name: Print what it returns
                  ansible.builtin.debug:
                    msg: "{{ listing | integr8scode.provision.gpg_fingerprints }}"
            """
        )
    )
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
        + ["-e", json.dumps({"listing": SHOW_KEYS.splitlines()}), str(playbook)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert all(fingerprint in run.stdout for fingerprint in PRIMARY), run.stdout[-3000:]
    assert SUBKEY not in run.stdout

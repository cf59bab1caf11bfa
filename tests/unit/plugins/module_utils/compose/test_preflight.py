"""What the stack role settles before `docker compose up` (module_utils/compose/preflight.py): the
override document, the merged config.toml, name and port clashes, the memory sum."""

from __future__ import annotations

import json

try:
    import tomllib
except ImportError:  # Python 3.10 (the lowest controller): pytest's own dependency tomli, the same parser
    import tomli as tomllib

import pytest
from ansible_collections.integr8scode.provision.plugins.module_utils.compose import preflight
from hypothesis import given
from hypothesis import strategies as st

# Upstream's shape (docker-compose.yaml at 1f59759), as `docker compose config --format json` renders it.
SERVICES = {
    "cert-generator": {"volumes": [{"type": "bind", "source": "/opt/I/backend", "target": "/backend"}]},
    "backend": {
        "container_name": "backend",
        "mem_limit": "805306368",
        "ports": [
            {"mode": "ingress", "target": 443, "published": "443", "protocol": "tcp"},
            {"mode": "ingress", "host_ip": "127.0.0.1", "target": 9090, "published": "9090", "protocol": "tcp"},
        ],
        "volumes": [{"type": "bind", "source": "/opt/I/backend/config.toml", "target": "/app/config.toml"}],
    },
    "k8s-worker": {
        "container_name": "k8s-worker",
        "mem_limit": "167772160",
        "depends_on": {"kafka": {"condition": "service_healthy"}},
        "volumes": ["./backend/config.toml:/app/config.toml:ro"],
    },
    "pod-monitor": {"container_name": "pod-monitor", "mem_limit": 167772160},
    "kafka": {"container_name": "kafka", "ports": [{"host_ip": "127.0.0.1", "target": 9092, "published": "9092"}]},
}

UPSTREAM_TOML = """# Integr8sCode backend configuration (development defaults).
PROJECT_NAME = "integr8scode"
MONGO_DB   = "integr8scode"
LOG_LEVEL = "DEBUG"

APP_URL = "https://localhost"

CORS_ORIGINS = [
    "https://app.integr8scode.cc",
    "https://localhost:5001", # the dev frontend
]
TRACING_SAMPLING_RATE = 1.0
"""


def test_the_consumers_wait_for_cert_generator_and_nothing_else_changes():
    doc = preflight.override_document(SERVICES, "cert-generator", ["k8s-worker", "pod-monitor"])
    assert doc == {
        "services": {
            name: {"depends_on": {"cert-generator": {"condition": "service_completed_successfully", "required": True}}}
            for name in ("k8s-worker", "pod-monitor")
        }
    }


def test_settings_replace_every_config_toml_mount():
    doc = preflight.override_document(SERVICES, "cert-generator", ["k8s-worker"], "./backend/x.toml")
    mounted = {name for name, spec in doc["services"].items() if "volumes" in spec}
    assert mounted == {"backend", "k8s-worker"}  # short and long volume syntax alike
    assert doc["services"]["backend"]["volumes"][0]["target"] == "/app/config.toml"


def test_an_unknown_consumer_or_generator_is_named():
    with pytest.raises(preflight.PreflightError, match="no service result-procesor"):
        preflight.override_document(SERVICES, "cert-generator", ["result-procesor"])
    with pytest.raises(preflight.PreflightError, match="no service certgen"):
        preflight.override_document(SERVICES, "certgen", [])


def test_the_override_text_is_yaml_that_compose_reads_as_json():
    text = preflight.render_override(preflight.override_document(SERVICES, "cert-generator", ["k8s-worker"]))
    assert text.startswith("# Managed by integr8scode.provision")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert json.loads(body)["services"]["k8s-worker"]["depends_on"]


def test_settings_are_merged_where_they_stand_and_new_ones_appended():
    merged = preflight.merge_settings(
        UPSTREAM_TOML, {"LOG_LEVEL": "INFO", "CORS_ORIGINS": ["https://code.example.org"], "WEB_WORKERS": 4}
    )
    parsed = tomllib.loads(merged)
    assert parsed["LOG_LEVEL"] == "INFO"
    assert parsed["CORS_ORIGINS"] == ["https://code.example.org"]
    assert parsed["WEB_WORKERS"] == 4
    assert parsed["APP_URL"] == "https://localhost" and parsed["TRACING_SAMPLING_RATE"] == 1.0
    lines = merged.splitlines()
    assert lines.index('LOG_LEVEL = "INFO"') == UPSTREAM_TOML.splitlines().index('LOG_LEVEL = "DEBUG"')
    assert "# Integr8sCode backend configuration (development defaults)." in lines


def test_tables_and_multiline_strings_are_refused_with_their_line():
    with pytest.raises(preflight.PreflightError, match="tables .* line 2"):
        preflight.merge_settings("A = 1\n[section]\nB = 2\n", {"A": 2})
    with pytest.raises(preflight.PreflightError, match=r"multi-line strings .*\(line 1\)"):
        preflight.merge_settings('A = """x\ny"""\n', {"A": "z"})


def test_values_without_a_toml_form_are_refused():
    with pytest.raises(preflight.PreflightError, match="stack_app_settings.X"):
        preflight.toml_value(float("nan"), "X")
    with pytest.raises(preflight.PreflightError, match="stack_app_settings.Y: dict"):
        preflight.toml_value({"a": 1}, "Y")


SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
KEYS = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)


@given(st.dictionaries(KEYS, st.one_of(SCALARS, st.lists(SCALARS, max_size=4)), max_size=6))
def test_merged_settings_read_back_as_given_over_upstreams_defaults(settings):
    parsed = tomllib.loads(preflight.merge_settings(UPSTREAM_TOML, settings))
    expected = dict(tomllib.loads(UPSTREAM_TOML), **settings)
    assert parsed == expected


def test_a_name_held_by_another_project_or_by_no_project_is_a_clash():
    containers = [
        {"Id": "a" * 64, "Names": ["/kafka"], "State": "running", "Labels": {"com.docker.compose.project": "old"}},
        {"Id": "b" * 64, "Names": ["/backend"], "State": "exited", "Labels": {}},
        {"Id": "c" * 64, "Names": ["/k8s-worker"], "State": "running", "Labels": {"com.docker.compose.project": "i8c"}},
        {"Id": "d" * 64, "Names": ["/unrelated"], "State": "running", "Labels": {}},
    ]
    assert preflight.name_clashes(SERVICES, containers, "i8c") == [
        "container name backend (service backend): held by container bbbbbbbbbbbb (not from compose, exited)",
        "container name kafka (service kafka): held by container aaaaaaaaaaaa (compose project old, running)",
    ]


SS = """LISTEN 0      4096         0.0.0.0:443        0.0.0.0:*    users:(("nginx",pid=812,fd=6))
LISTEN 0      4096       127.0.0.1:9092       0.0.0.0:*    users:(("docker-proxy",pid=91,fd=4))
LISTEN 0      4096            [::]:9090          [::]:*    users:(("node_exporter",pid=77,fd=3))
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*    users:(("systemd-resolve",pid=5,fd=14))
"""


def test_listeners_on_published_ports_are_clashes_unless_the_project_publishes_them():
    listeners = preflight.parse_listeners(SS)
    assert ("127.0.0.53", 53, "systemd-resolve (pid 5)") in listeners
    labels = {"com.docker.compose.project": "i8c"}
    own = preflight.own_published(
        [
            {"State": "running", "Labels": labels, "Ports": [{"IP": "127.0.0.1", "PublicPort": 9092}]},
            {"State": "exited", "Labels": labels, "Ports": [{"IP": "0.0.0.0", "PublicPort": 443}]},
        ],
        "i8c",
    )
    assert own == [("127.0.0.1", 9092)]
    assert preflight.port_clashes(SERVICES, listeners, own) == [
        "port 0.0.0.0:443 (service backend): held by nginx (pid 812) on 0.0.0.0:443",
        # 127.0.0.1:9090 overlaps a listener on every IPv6 address ([::]).
        "port 127.0.0.1:9090 (service backend): held by node_exporter (pid 77) on :::9090",
    ]


def test_a_listener_on_another_address_is_not_a_clash():
    listeners = preflight.parse_listeners("LISTEN 0 5 192.168.1.5:9090 0.0.0.0:*\n")
    assert preflight.port_clashes(SERVICES, listeners, []) == []


def test_memory_sum_against_the_host():
    limits = preflight.memory_limits(SERVICES)
    assert limits == {"backend": 805306368, "k8s-worker": 167772160, "pod-monitor": 167772160}
    assert preflight.memory_problem(limits, 2 * 2**30) is None
    problem = preflight.memory_problem(limits, 1 * 2**30)
    assert problem.startswith("the services' mem_limits add up to 1.1 GiB (backend 768 MiB, k8s-worker 160 MiB")
    assert problem.endswith("the host has 1.0 GiB of memory")
    assert preflight.host_memory("MemTotal:       16314856 kB\nMemFree: 1 kB\n") == 16314856 * 1024
    with pytest.raises(preflight.PreflightError, match="service x: mem_limit"):
        preflight.memory_limits({"x": {"mem_limit": "lots"}})

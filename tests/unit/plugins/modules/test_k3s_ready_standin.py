"""k3s_ready against the k3s stand-in (tests/standins/k3s) serving on loopback: start-up and a TLS reset."""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys

import pytest
from waitlib_servers import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
STANDIN = os.path.join(REPO, "tests", "standins", "k3s", "k3s_standin")

pytestmark = pytest.mark.skipif(not os.path.exists(STANDIN), reason="the k3s stand-in is not in this checkout")


class StandinServer:
    def __init__(self, base):
        self.base = str(base)
        self.port = free_port()
        self.kubeconfig = os.path.join(self.base, "k3s.yaml")
        self.proc = None

    def start(self):
        env = dict(os.environ, K3S_STANDIN_ETC_DIR=os.path.join(self.base, "etc"))
        os.makedirs(env["K3S_STANDIN_ETC_DIR"], exist_ok=True)
        self.log = open(os.path.join(self.base, "k3s.log"), "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                STANDIN,
                "server",
                "--data-dir",
                os.path.join(self.base, "data"),
                "--https-listen-port",
                str(self.port),
                "--bind-address",
                "127.0.0.1",
                "--node-ip",
                "127.0.0.1",
                "--write-kubeconfig",
                self.kubeconfig,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None


@pytest.fixture
def standin(tmp_path):
    server = StandinServer(tmp_path)
    yield server
    server.stop()


def test_waits_for_the_standin_to_start_then_ready(run_module, standin):
    # The module and k3s start together, as after the k3s role's restart handler: the module first
    # finds no kubeconfig or a refusing port, and waits.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            run_module,
            "k3s_ready",
            dict(kubeconfig=standin.kubeconfig, node_ip="127.0.0.1", deployments=["kube-system/coredns"], timeout=120),
        )
        standin.start()
        res = future.result()
    assert res["_rc"] == 0, res
    assert res["ready"] is True and res["readyz"] == "ok"
    assert res["nodes"][0]["ready"] is True and "127.0.0.1" in res["nodes"][0]["internal_ip"]
    assert res["deployments"]["kube-system/coredns"]["available"] is True


def test_stale_kubeconfig_after_tls_reset_fails_fast(run_module, standin, tmp_path):
    standin.start()
    res = run_module("k3s_ready", dict(kubeconfig=standin.kubeconfig, timeout=120))
    assert res["_rc"] == 0, res
    stale = str(tmp_path / "stale-k3s.yaml")
    shutil.copy(standin.kubeconfig, stale)

    # The documented manual fix: stop k3s, delete server/tls, start k3s: a new CA.
    standin.stop()
    shutil.rmtree(os.path.join(standin.base, "data", "server", "tls"))
    os.unlink(standin.kubeconfig)
    standin.start()
    res = run_module("k3s_ready", dict(kubeconfig=standin.kubeconfig, timeout=120))
    assert res["_rc"] == 0, res

    res = run_module("k3s_ready", dict(kubeconfig=stale, timeout=300))
    assert res["failed"] and res["error_kind"] == "tls_unknown_ca" and res["attempts"] == 1, res
    assert "k3s's CA was probably regenerated" in res["msg"]


def test_stopped_standin_is_connection_refused(run_module, standin):
    standin.start()
    res = run_module("k3s_ready", dict(kubeconfig=standin.kubeconfig, timeout=120))
    assert res["_rc"] == 0, res
    standin.stop()  # returns once the process has exited, so its port is closed
    res = run_module("k3s_ready", dict(kubeconfig=standin.kubeconfig, timeout=0.5))
    assert res["failed"] and res["error_kind"] == "connection_refused", res

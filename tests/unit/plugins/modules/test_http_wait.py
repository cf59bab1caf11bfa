"""http_wait through its entry point, against real local HTTP(S) servers."""

import threading

import pytest
from waitlib_servers import ServerThread, free_port, tls_context

FAST = dict(interval=0.05, backoff=1.5, max_interval=0.2)


@pytest.fixture
def tls(pki):
    return tls_context(pki["server_cert"], pki["server_key"])


def test_https_becomes_ready_after_a_delay(run_module, pki, tls):
    # Ready after two 503s, counted rather than timed: a loaded machine may start the module later
    # than any fixed delay.
    served = []

    def handler(_req):
        served.append(_req)
        if len(served) > 2:
            return 200, {"Content-Type": "application/json"}, {"status": "ok", "version": "1"}
        return 503, {"Content-Type": "application/json"}, {"status": "starting"}

    with ServerThread(handler, tls) as srv:
        res = run_module(
            "http_wait",
            dict(
                url=srv.url("/api/v1/health/live"), ca_path=pki["ca"], json_query="status == 'ok'", timeout=30, **FAST
            ),
        )
    assert res["_rc"] == 0, res
    assert res["ready"] is True and res["changed"] is False
    assert res["status"] == 200 and res["json"] == {"status": "ok", "version": "1"}
    assert res["attempts"] == 3  # it waited through both 503s
    assert res["last_error"] is None


def test_persistent_500_times_out_with_the_status(run_module, pki, tls):
    with ServerThread(lambda _r: (500, {}, "internal error"), tls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], timeout=1, **FAST))
    assert res["_rc"] != 0 and res["failed"] is True
    assert res["status"] == 500
    assert res["last_error"] == "status 500 is not in [200]"
    assert "did not become ready within 1.0s" in res["msg"]
    assert res["attempts"] >= 2


def test_500_accepted_when_listed(run_module, pki, tls):
    with ServerThread(lambda _r: (500, {}, "internal error"), tls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], status_code=[200, 500], timeout=5))
    assert res["_rc"] == 0 and res["status"] == 500 and res["attempts"] == 1


def test_wrong_json_is_not_ready(run_module, pki, tls):
    body = {"status": "degraded", "checks": [{"name": "mongo", "ok": False}]}
    with ServerThread(lambda _r: (200, {"Content-Type": "application/json"}, body), tls) as srv:
        res = run_module(
            "http_wait", dict(url=srv.url(), ca_path=pki["ca"], json_query="status == 'ok'", timeout=1, **FAST)
        )
        assert res["failed"] and res["json"] == body
        assert "json_query" in res["last_error"] and "not truthy" in res["last_error"]
        res = run_module(
            "http_wait", dict(url=srv.url(), ca_path=pki["ca"], json_query="checks[?name=='mongo'] | [0].ok", timeout=0)
        )
        assert res["failed"] and res["attempts"] == 1
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], json_query="checks[0].name", timeout=0))
        assert res["_rc"] == 0 and res["ready"] is True


def test_non_json_body_fails_json_query_and_regex_is_searched(run_module, pki, tls):
    with ServerThread(lambda _r: (200, {"Content-Type": "text/plain"}, "service: up\n"), tls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], json_query="status", timeout=0))
        assert res["failed"] and "not JSON" in res["last_error"] and res["json"] is None
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], body_regex="^service: down", timeout=0))
        assert res["failed"] and res["last_error"] == "body does not match body_regex"
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], body_regex="up$", timeout=0))
        assert res["_rc"] == 0


def test_dropped_connections_are_retried(run_module, pki, tls):
    seen = []

    def handler(_req):
        seen.append(1)
        return None if len(seen) <= 3 else (200, {}, "ok")

    with ServerThread(handler, tls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], timeout=30, **FAST))
    assert res["_rc"] == 0, res
    assert res["attempts"] == 4


def test_dropped_connections_until_timeout_name_the_error(run_module, pki, tls):
    with ServerThread(lambda _r: None, tls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], timeout=0.6, **FAST))
    assert res["failed"] and res["status"] == -1
    assert res["last_error"] == "connection reset or closed without a response"


def test_refused_then_listening(run_module):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    res = run_module("http_wait", dict(url=url, timeout=1.5, **FAST))
    assert res["failed"] and res["last_error"] == "connection refused" and res["attempts"] >= 2

    # A server that starts listening while the module waits.
    holder = {}

    def start():
        holder["srv"] = ServerThread(lambda _r: (200, {}, "ok"), port=port).__enter__()

    # Late enough that the module has refused attempts behind it even on a loaded machine.
    timer = threading.Timer(3.0, start)
    timer.start()
    try:
        res = run_module("http_wait", dict(url=url, timeout=30, **FAST))
    finally:
        timer.join()
        holder["srv"].__exit__(None, None, None)
    assert res["_rc"] == 0 and res["attempts"] > 1


def test_tls_untrusted_certificate_is_retried_then_reported(run_module, pki, tls):
    with ServerThread(lambda _r: (200, {}, "ok"), tls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["other_ca"], timeout=1.5, **FAST))
        assert res["failed"] and res["attempts"] >= 2
        assert res["last_error"].startswith("TLS certificate verification failed")
        res = run_module("http_wait", dict(url=srv.url(), validate_certs=False, timeout=5))
        assert res["_rc"] == 0 and res["status"] == 200


def test_tls_name_mismatch_is_reported(run_module, pki):
    wrong = tls_context(pki["wrong_san_cert"], pki["wrong_san_key"])
    with ServerThread(lambda _r: (200, {}, "ok"), wrong) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], timeout=0))
    assert res["failed"] and res["last_error"].startswith("TLS certificate verification failed")
    assert "mismatch" in res["last_error"] or "match" in res["last_error"]


def test_client_certificate(run_module, pki):
    mtls = tls_context(pki["server_cert"], pki["server_key"], client_ca_path=pki["ca"])
    with ServerThread(lambda r: (200, {}, r.connection.getpeercert()["subject"][0][0][1]), mtls) as srv:
        res = run_module("http_wait", dict(url=srv.url(), ca_path=pki["ca"], timeout=0.4, **FAST))
        assert res["failed"]  # no client certificate: the handshake is refused every time
        res = run_module(
            "http_wait",
            dict(
                url=srv.url(),
                ca_path=pki["ca"],
                client_cert=pki["client_cert"],
                client_key=pki["client_key"],
                body_regex="^system:admin$",
                timeout=5,
            ),
        )
    assert res["_rc"] == 0, res


def test_headers_are_sent_and_never_returned(run_module):
    secret = "Bearer s3cr3t-token-value"

    def handler(req):
        ok = req.headers.get("Authorization") == secret
        return (200 if ok else 401), {}, {"auth": "ok" if ok else "no"}

    with ServerThread(handler) as srv:
        res = run_module("http_wait", dict(url=srv.url(), headers={"Authorization": secret}, method="post", timeout=5))
    assert res["_rc"] == 0 and res["json"] == {"auth": "ok"}
    assert "s3cr3t-token-value" not in repr(res)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (dict(url="localhost:8080/health"), "url must be an absolute http:// or https:// URL"),
        (dict(url="ftp://127.0.0.1/"), "url must be an absolute http:// or https:// URL"),
        (dict(url="http://127.0.0.1:99999/"), "invalid port"),
        (dict(url="http://127.0.0.1/", timeout=-1), "timeout must be zero or a positive number"),
        (dict(url="http://127.0.0.1/", request_timeout=0), "request_timeout must be a positive"),
        (dict(url="http://127.0.0.1/", status_code=[200, 999]), "status_code entries must be HTTP status codes"),
        (dict(url="http://127.0.0.1/", body_regex="(unclosed"), "body_regex is not a valid regular expression"),
        (dict(url="http://127.0.0.1/", json_query="status =="), "json_query is not a valid JMESPath expression"),
        (dict(url="http://127.0.0.1/", ca_path="/nonexistent/ca.pem"), "ca_path /nonexistent/ca.pem cannot be read"),
        (dict(url="http://127.0.0.1/", client_key="/etc/hostname"), "client_key needs client_cert"),
        (dict(url="http://127.0.0.1/", then_urls=["127.0.0.1:5001"]), "then_urls must be an absolute http://"),
    ],
)
def test_bad_arguments_fail_before_any_request(run_module, args, fragment):
    # check mode too: validation must happen before the wait is skipped
    res = run_module("http_wait", args)
    assert res["failed"] is True and fragment in res["msg"], res
    assert "attempts" not in res
    # Check mode validates the arguments too, except files a role may create in the same run.
    res = run_module("http_wait", args, check_mode=True)
    if "cannot be read" in fragment:
        assert res["_rc"] == 0 and res["skipped"] is True, res
    else:
        assert res["failed"] is True and fragment in res["msg"], res


def test_check_mode_skips_the_wait(run_module):
    res = run_module("http_wait", dict(url=f"http://127.0.0.1:{free_port()}/", timeout=300), check_mode=True)
    assert res["_rc"] == 0 and res["skipped"] is True and res["changed"] is False and res["attempts"] == 0


def test_then_urls_are_waited_for_in_the_same_run_and_named_when_late(run_module, pki, tls):
    # The backend answers JSON at once; the frontend (another server) only after two 503s.
    served = []

    def frontend(_req):
        served.append(_req)
        return (200, {}, "<html>") if len(served) > 2 else (503, {}, "starting")

    def backend(_req):
        return 200, {"Content-Type": "application/json"}, {"status": "ok"}

    with ServerThread(backend, tls) as api, ServerThread(frontend, tls) as web:
        args = dict(url=api.url("/health"), json_query="status == 'ok'", then_urls=[web.url("/")], ca_path=pki["ca"])
        res = run_module("http_wait", dict(args, timeout=30, **FAST))
        assert res["_rc"] == 0 and res["attempts"] == 1, res
        assert [(t["url"], t["status"], t["attempts"]) for t in res["then"]] == [(web.url("/"), 200, 3)]
    with ServerThread(backend, tls) as api, ServerThread(lambda _r: (503, {}, "down"), tls) as web:
        res = run_module(
            "http_wait", dict(url=api.url("/"), then_urls=[web.url("/")], ca_path=pki["ca"], timeout=1, **FAST)
        )
    assert res["failed"] and res["msg"].startswith(
        f"{web.url('/')} did not become ready within 1.0s (after {api.url('/')})"
    )
    assert res["then"][0]["status"] == 503

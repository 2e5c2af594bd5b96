"""The http step against a local server of the tests' own, executed by a real worker."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.errors import InputError, StepConfigError
from jobs.models import Connector
from runs.models import Run
from runs.services import run_cancel, run_trigger
from tests.factories import ConnectorFactory, make_job
from tests.http_server import LocalServer, Recorder
from tests.processes import Process, start_worker, wait_for, wait_terminal
from workers.steps import get_step_type
from workers.steps.http_policy import UrlPolicy

TOKEN = "tok-5d1e9a"
BY = "user:otto"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture
def api(worker: Process, server: LocalServer) -> Connector:
    """An http connector for the server's /api base, with a bearer token and a header."""
    options = {"auth": {"type": "bearer", "token": TOKEN}, "headers": {"X-Team": "data"}}
    return ConnectorFactory(name="api", kind="http", url=f"{server.base}/api", options=options)


def trigger(op_kwargs: dict[str, Any], params: dict[str, Any] | None = None, **step: Any) -> Run:
    job = make_job({"type": "http", "op_kwargs": op_kwargs, **step}, params=params or {})
    return run_trigger(job_id=job.id, overrides={}, triggered_by="api")[0]


def run_http(op_kwargs: dict[str, Any], **step: Any) -> Run:
    return wait_terminal(trigger(op_kwargs, **step), timeout=60)


def messages(run: Run) -> list[str]:
    return list(run.log_lines.order_by("seq").values_list("message", flat=True))


def error(run: Run) -> str:
    return run.steps.get().error


def test_get_through_a_connector_sends_its_auth_and_headers_and_logs_status_size_time(
    api: Connector, server: LocalServer
) -> None:
    run = run_http({"connector": "api", "path": "echo", "headers": {"X-Step": "1"}})

    assert run.state == "SUCCEEDED", error(run)
    sent = server.requests[-1]
    assert (sent["path"], sent["headers"]["Authorization"]) == ("/api/echo", f"Bearer {TOKEN}")
    assert (sent["headers"]["X-Team"], sent["headers"]["X-Step"]) == ("data", "1")
    lines = messages(run)
    assert "step F0001 · type=http · GET connector=api" in lines
    assert any(re.fullmatch(rf"GET {server.base}/api/echo → 200 · \d+ B · \d+\.\d\d s", line) for line in lines)


def test_the_body_is_logged_at_debug_truncated_with_secrets_masked(api: Connector, server: LocalServer) -> None:
    big = run_http({"connector": "api", "path": "big/10000"})

    assert not any(line.startswith("body:") for line in messages(big))  # INFO run: no body
    job_debug = make_job({"type": "http", "op_kwargs": {"connector": "api", "path": "big/10000"}}, log_level="DEBUG")
    debug = wait_terminal(run_trigger(job_id=job_debug.id, triggered_by="api")[0])
    body = next(line for line in messages(debug) if line.startswith("body:"))
    assert body == "body: " + "y" * 2048 + " … (7952 more bytes)"
    assert any("→ 200 · 9.8 KB · " in line for line in messages(debug))
    echo_debug = make_job({"type": "http", "op_kwargs": {"connector": "api", "path": "echo"}}, log_level="DEBUG")
    echoed = wait_terminal(run_trigger(job_id=echo_debug.id, triggered_by="api")[0])
    body = next(line for line in messages(echoed) if line.startswith("body:"))
    assert '"Authorization": "***"' in body and TOKEN not in body  # the server echoed the token back


@pytest.mark.parametrize(
    ("op_kwargs", "method", "body", "content_type"),
    [
        ({"method": "POST", "json": {"a": [1, 2]}}, "POST", '{"a":[1,2]}', "application/json"),
        ({"method": "put", "data": "raw text"}, "PUT", "raw text", None),
        (
            {"method": "PATCH", "data": {"f": "1", "g": "x y"}},
            "PATCH",
            "f=1&g=x+y",
            "application/x-www-form-urlencoded",
        ),
        ({"method": "DELETE"}, "DELETE", "", None),
    ],
)
def test_methods_and_bodies(api: Connector, server: LocalServer, op_kwargs: dict, method: str, body: str,
                            content_type: str | None) -> None:  # fmt: skip
    run = run_http({"connector": "api", "path": "echo", **op_kwargs})

    assert run.state == "SUCCEEDED", error(run)
    sent = server.requests[-1]
    assert (sent["method"], sent["body"].replace(", ", ",").replace(": ", ":")) == (method, body)
    assert sent["headers"].get("Content-Type") == content_type


def test_a_relative_url_with_a_connector_goes_under_its_base_url(api: Connector, server: LocalServer) -> None:
    first = run_http({"connector": "api", "url": "echo?x=1"})
    second = run_http({"connector": "api", "url": "/ok"})

    assert (first.state, second.state) == ("SUCCEEDED", "SUCCEEDED"), error(first) + error(second)
    assert [r["path"] for r in server.requests] == ["/api/echo?x=1", "/api/ok"]
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("base", ["https://h.example/api/", "https://h.example/api", "https://h.example:8443/"])
@pytest.mark.parametrize("url", ["items/1", "/items", "items/1?x=2", "?q=1", "a b/c%20d"])
def test_a_relative_url_is_joined_as_httpx_base_url_joins_it(base: str, url: str) -> None:
    expected = httpx.Client(base_url=base).build_request("GET", url).url  # builds, sends nothing

    assert UrlPolicy(base, allow_any=False).first_url(url, None) == expected


def test_basic_auth_from_the_connector_options(worker: Process, server: LocalServer) -> None:
    options = {"auth": {"type": "basic", "username": "ann", "password": "pw-4242"}}
    ConnectorFactory(name="basic", kind="http", url=f"{server.base}/api/", options=options)

    assert run_http({"connector": "basic", "path": "/ok"}).state == "SUCCEEDED"
    assert server.requests[-1]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ann:pw-4242").decode()


def test_an_unexpected_status_fails_the_step(api: Connector, server: LocalServer) -> None:
    run = run_http({"connector": "api", "path": "status/503"})

    assert run.state == "FAILED"
    assert error(run).endswith(f"GET {server.base}/api/status/503 → 503; expected 2xx")


@pytest.mark.parametrize("expect_status", [404, [200, 404]])
def test_expect_status_accepts_the_listed_codes(api: Connector, expect_status: Any) -> None:
    assert run_http({"connector": "api", "path": "status/404", "expect_status": expect_status}).state == "SUCCEEDED"


def test_a_slow_server_fails_the_step_at_timeout_s(api: Connector, server: LocalServer) -> None:
    run = run_http({"connector": "api", "path": "slow", "timeout_s": 0.5})

    assert run.state == "FAILED"
    assert f"GET {server.base}/api/slow: no complete response within timeout_s=0.5 s" in error(run)


def test_a_refused_connection_is_a_clear_error(worker: Process, recorder: Recorder) -> None:
    port = recorder.url.rsplit(":", 1)[1]
    recorder.close()  # nothing listens there any more
    ConnectorFactory(name="gone", kind="http", url=f"http://127.0.0.1:{port}/")

    run = run_http({"connector": "gone"})

    assert run.state == "FAILED" and f"GET http://127.0.0.1:{port}/: ConnectError" in error(run)


def test_redirects_under_the_base_are_followed_and_logged(api: Connector, server: LocalServer) -> None:
    run = run_http({"connector": "api", "path": "redirect?to=/api/echo&code=303", "method": "POST", "json": {"a": 1}})

    assert run.state == "SUCCEEDED", error(run)
    assert [r["method"] for r in server.requests] == ["POST", "GET"]  # 303: the next hop is a GET
    lines = messages(run)
    # `code` is a secret word (OAuth's ?code=): masked, and the rest of the URL as sent.
    assert f"POST {server.base}/api/redirect?to=/api/echo&code=*** → 303 · redirect to {server.base}/api/echo" in lines


def test_a_307_keeps_the_method_and_body(api: Connector, server: LocalServer) -> None:
    run = run_http({"connector": "api", "path": "redirect?to=echo&code=307", "method": "PUT", "data": "same"})

    assert run.state == "SUCCEEDED", error(run)
    assert [(r["method"], r["body"]) for r in server.requests] == [("PUT", "same"), ("PUT", "same")]


def test_more_than_five_redirects_fail(api: Connector, server: LocalServer) -> None:
    run = run_http({"connector": "api", "path": "loop/0"})

    assert run.state == "FAILED" and "more than 5 redirects; stopped" in error(run)
    assert len(server.requests) == 6


def test_cancel_aborts_the_request_mid_download(api: Connector, server: LocalServer) -> None:
    run = trigger({"connector": "api", "path": "huge", "timeout_s": 600})
    wait_for(lambda: server.huge_bytes_sent > 20_000_000, 60, what="20 MB into the download")

    run_cancel(run_id=run.id, by=BY)

    run = wait_terminal(run)
    step = run.steps.get()
    assert (run.state, step.state, step.reason) == ("CANCELED", "CANCELED", f"canceled by {BY}")
    assert not run.log_lines.filter(message__contains="terminating worker process").exists()  # stopped within grace
    assert server.huge_disconnected.wait(10), "the worker kept the connection open"


# --- SSRF: refused before any connection ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("http://127.0.0.1:6379/", "http://127.0.0.1:6379/ is not under an http connector's base URL"),
        ("http://169.254.169.254/latest/meta-data/", "is not under an http connector's base URL"),
        ("file:///etc/passwd", 'scheme "file" is not allowed (only http and https)'),
        ("gopher://127.0.0.1:6379/_PING", 'scheme "gopher" is not allowed'),
    ],
)
def test_urls_without_a_connector_are_refused_at_trigger(transactional_db: None, url: str, text: str) -> None:
    with pytest.raises(InputError, match=re.escape(text)):
        trigger({"url": "{{ params.target }}"}, params={"target": url})


@pytest.mark.parametrize(
    ("op_kwargs", "text"),
    [
        ({"url": "{recorder}/x"}, "url {recorder}/x refused: not under the connector's base URL {base}/api"),
        ({"url": "{base}/apix"}, "refused: not under the connector's base URL"),
        ({"url": "http://127.0.0.1:1@169.254.169.254/"}, "url http://169.254.169.254/ refused"),
        ({"path": "../../admin"}, "url {base}/admin refused: not under the connector's base URL"),
        ({"url": "../../admin"}, "url {base}/admin refused: not under the connector's base URL"),
        ({"url": "/x/../../admin"}, "url {base}/admin refused: not under the connector's base URL"),
        ({"url": "%2e%2e/x"}, "refused: dot segments or backslashes in the path"),
        ({"path": "%2e%2e/%2e%2e/x"}, "refused: dot segments or backslashes in the path"),
        ({"path": "redirect?to={recorder}/internal"}, "redirect {recorder}/internal refused: not under"),
        ({"path": "redirect?to=http://169.254.169.254/latest/"}, "redirect http://169.254.169.254/latest/ refused"),
        ({"path": "redirect?to=file:///etc/passwd"}, 'redirect refused: scheme "file" is not allowed'),
    ],
)
def test_ssrf_attempts_through_a_connector_are_refused_before_connecting(
    api: Connector, server: LocalServer, recorder: Recorder, op_kwargs: dict[str, str], text: str
) -> None:
    fill = {"recorder": recorder.url, "base": server.base}
    run = run_http({"connector": "api", **{k: v.format(**fill) for k, v in op_kwargs.items()}})

    assert run.state == "FAILED"
    assert text.format(**fill) in error(run)
    assert recorder.connections == 0
    assert not [r for r in server.requests if not r["path"].startswith("/api/redirect")]


def test_allow_any_url_lets_a_worker_call_other_urls_but_never_file(
    transactional_db: None, server: LocalServer, settings: Any
) -> None:
    settings.NOMAFLOW_HTTP_ALLOW_ANY_URL = True  # for validation here; the worker gets it from its environment
    worker = start_worker(queues="anyurl", concurrency=1, name="anyurl", NOMAFLOW_HTTP_ALLOW_ANY_URL="true")
    try:
        ok = run_http({"url": f"{server.base}/api/ok"}, queue="anyurl")
        with pytest.raises(InputError, match='scheme "file" is not allowed'):
            trigger({"url": "file:///etc/passwd"}, queue="anyurl")
    finally:
        worker.stop()
    assert ok.state == "SUCCEEDED", error(ok)
    assert server.requests[-1]["path"] == "/api/ok"


# --- validate() ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op_kwargs", "field", "text"),
    [
        ({}, "connector", "is required (an http connector), or give url"),
        ({"connector": "a", "method": "FETCH"}, "method", '"FETCH" is not one of GET, POST'),
        ({"connector": "a", "json": {}, "data": "x"}, "data", "cannot be given with json"),
        ({"connector": "a", "data": 3}, "data", "expected a string or an object"),
        ({"connector": "a", "headers": {"X": 1}}, "headers", "values must be strings"),
        ({"connector": "a", "headers": "X: 1"}, "headers", "expected an object"),
        ({"connector": "a", "expect_status": 99}, "expect_status", "must be a status code (100-599)"),
        ({"connector": "a", "expect_status": []}, "expect_status", "non-empty list"),
        ({"connector": "a", "expect_status": "200"}, "expect_status", "expected a status code"),
        ({"connector": "a", "timeout_s": 0}, "timeout_s", "must be more than 0"),
        ({"connector": "a", "path": "http://evil/x"}, "path", "must be a path under the base URL"),
        ({"connector": "a", "path": "//evil/x"}, "path", "must be a path under the base URL"),
        ({"url": "http://h/", "path": "x", "connector": "a"}, "path", "goes with connector, not with url"),
        ({"path": "x"}, "connector", "is required"),
        ({"connector": "a", "url": "ftp://h/x"}, "url", 'scheme "ftp" is not allowed'),
        ({"connector": "a", "url": "http://[::1"}, "url", "is not a valid URL"),
        ({"url": "items/1"}, "url", "is relative: give an absolute http(s) URL, or a connector"),
        ({"connector": "a", "url": "//evil.example/x"}, "url", "must be a path under the base URL"),
        ({"connector": "a", "url": "x\\..\\admin"}, "url", "must be a path under the base URL"),
        ({"connector": "a", "follow": True}, "follow", "is not an option of http"),
    ],
)
def test_bad_op_kwargs_name_the_field(op_kwargs: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(StepConfigError) as refused:
        get_step_type("http").validate(op_kwargs)

    assert refused.value.field == field
    assert text in refused.value.message


def test_good_op_kwargs_pass() -> None:
    step = get_step_type("http")
    step.validate({"connector": "a", "path": "x/1?y=2", "method": "post", "json": [1], "expect_status": [200, 201],
                   "timeout_s": 2.5, "headers": {"X": "1"}})  # fmt: skip
    step.validate({"connector": "a", "url": "items/1?y=2"})
    step.validate({"connector": "a", "url": "/items"})
    assert step.summary({"connector": "a", "method": "post"}) == "POST connector=a"
    assert json.dumps(step.summary({"url": "http://h/"})) == '"GET url"'

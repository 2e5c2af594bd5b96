"""`http`: one HTTP request, to a URL under an http connector's base URL.

The client is httpx.AsyncClient. It is asyncio-native: canceling the step's task
raises CancelledError at the read in progress, and leaving the response's context
closes the socket, so a cancel aborts the request at once, mid-download included.
`requests` would block a thread in a socket read that nothing outside can interrupt
(a cancel would wait for the server, or the worker process would be killed). httpx
also parses the URLs we check with the same parser it connects with, so the check
below cannot be fooled by two parsers disagreeing.

Where a request may go: only URLs under the connector's base URL (same scheme, host
and port, path under the base path), unless NOMAFLOW_HTTP_ALLOW_ANY_URL is set, and
never a scheme other than http or https. A relative `url` (or `path`) is joined to the
connector's base URL as httpx's `base_url` does: `items/1` and `/items/1` both go under it.
Redirects are followed here, not by httpx: at most MAX_REDIRECTS, each target checked by
the same rule before any connection to it.
The body is streamed: only its size and its first BODY_LOG_BYTES (logged at DEBUG) are
kept. Secrets from the connector are masked in every line and error this step writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from core.errors import StepConfigError

from .base import ConnectorConfig, Context, StepType, expect, reject_unknown
from .http_policy import UrlPolicy, display_url, redactor, request_headers, without_credentials

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
OPTIONS = ("connector", "url", "path", "method", "headers", "json", "data", "expect_status", "timeout_s")
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
BODY_LOG_BYTES = 2048
DEFAULT_TIMEOUT_S = 30.0
# httpx logs every request's full URL at INFO to the worker's output, where no redactor
# applies: a secret resolved into the path would be printed. The step's own request line
# (redacted) says the same in the run's log.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class Request:
    """One hop: where, how, and with what."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    body: dict[str, Any]  # keyword arguments for httpx: json=, content= or data=


class HttpStep(StepType):
    """Send one HTTP request; fail unless the final status is one of `expect_status`."""

    type_name = "http"
    connector_fields = {"connector": ("http",)}

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        check_options(op_kwargs)

    def summary(self, op_kwargs: dict[str, Any]) -> str:
        where = f"connector={op_kwargs['connector']}" if op_kwargs.get("connector") else "url"
        return f"{str(op_kwargs.get('method') or 'GET').upper()} {where}"

    async def execute(self, ctx: Context) -> None:
        op = ctx.op_kwargs
        check_options(op)
        connector = ctx.connector(op["connector"]) if op.get("connector") else None
        policy = UrlPolicy(connector.url if connector else None, settings.NOMAFLOW_HTTP_ALLOW_ANY_URL)
        redact = redactor(connector)
        request = Request(
            method=str(op.get("method") or "GET").upper(),
            url=policy.first_url(op.get("url"), op.get("path")),
            headers=request_headers(connector, op.get("headers") or {}),
            body=_body(op),
        )
        timeout_s = float(op.get("timeout_s") or DEFAULT_TIMEOUT_S)
        where = f"{request.method} {display_url(request.url)}"
        try:
            async with asyncio.timeout(timeout_s):
                await _exchange(ctx, request, policy, connector, _expected(op), redact)
        except TimeoutError:
            raise TimeoutError(redact(f"{where}: no complete response within timeout_s={timeout_s:g} s")) from None
        except httpx.HTTPError as exc:  # connection refused, reset, TLS …: name it, with no secret in it
            raise ConnectionError(redact(f"{where}: {type(exc).__name__}: {exc}")) from None


def check_options(op: dict[str, Any]) -> None:
    """Static checks of op_kwargs (types, values, and where a URL may point)."""
    reject_unknown(op, "http", OPTIONS)
    connector = expect(op, "connector", str, "the name of an http connector")
    url = expect(op, "url", str, "an http(s) URL, or one relative to the connector's base URL")
    path = expect(op, "path", str, "a path under the connector's base URL, e.g. items/42")
    if not connector and not url:
        raise StepConfigError("connector", "is required (an http connector), or give url")
    if url and path:
        raise StepConfigError("path", "goes with connector, not with url; give one or the other")
    if path and not connector:
        raise StepConfigError("path", "needs a connector whose base URL it is joined to")
    UrlPolicy.check_static(url, path, connector, settings.NOMAFLOW_HTTP_ALLOW_ANY_URL)
    method = expect(op, "method", str, "an HTTP method")
    if method and method.upper() not in METHODS:
        raise StepConfigError("method", f'"{method:.20}" is not one of {", ".join(METHODS)}')
    headers = expect(op, "headers", dict, "an object of header names to string values")
    if headers and not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise StepConfigError("headers", "values must be strings")
    if "json" in op and "data" in op:
        raise StepConfigError("data", "cannot be given with json; send one body")
    expect(op, "data", (str, dict), "a string or an object (form fields)")
    _expected(op)
    timeout = expect(op, "timeout_s", (int, float), "a number of seconds")
    if timeout is not None and not 0 < timeout <= 86400:
        raise StepConfigError("timeout_s", f"must be more than 0 and at most 86400, not {timeout}")


def _expected(op: dict[str, Any]) -> list[int] | None:
    """The accepted statuses, None meaning any 2xx."""
    value = expect(op, "expect_status", (int, list), "a status code or a list of them")
    if value is None:
        return None
    codes = value if isinstance(value, list) else [value]
    if not codes or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes):
        raise StepConfigError("expect_status", "must be a status code (100-599) or a non-empty list of them")
    return codes


def _body(op: dict[str, Any]) -> dict[str, Any]:
    if "json" in op:
        return {"json": op["json"]}
    data = op.get("data")
    if isinstance(data, str):
        return {"content": data.encode()}
    return {"data": data} if data is not None else {}


async def _exchange(
    ctx: Context, request: Request, policy: UrlPolicy, connector: ConnectorConfig | None,
    expected: list[int] | None, redact: Any,
) -> None:  # fmt: skip
    verify = bool((connector.options if connector else {}).get("verify", True))
    # trust_env off: no proxy or .netrc credentials from the worker's environment.
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=verify, timeout=None) as client:
        for _ in range(MAX_REDIRECTS + 1):
            started = time.monotonic()
            hop = client.stream(request.method, request.url, headers=request.headers, **request.body)
            async with hop as response:
                status = response.status_code
                if status in REDIRECTS and "location" in response.headers and not _accepted(status, expected):
                    following = _redirect(request, response, policy, connector)
                    ctx.log.info(redact(f"{_hop(request)} → {status} · redirect to {display_url(following.url)}"))
                    request = following
                    continue
                size, head = await _read(response)
            elapsed = time.monotonic() - started
            ctx.log.info(redact(f"{_hop(request)} → {status} · {_size(size)} · {elapsed:.2f} s"))
            if head:
                ctx.log.debug(redact(_body_line(head, size, response.encoding)))
            if not _accepted(status, expected):
                want = "2xx" if expected is None else ", ".join(map(str, expected))
                raise RuntimeError(redact(f"{_hop(request)} → {status}; expected {want}"))
            return
    raise RuntimeError(redact(f"{_hop(request)}: more than {MAX_REDIRECTS} redirects; stopped"))


def _redirect(
    request: Request, response: httpx.Response, policy: UrlPolicy, connector: ConnectorConfig | None
) -> Request:
    """The next hop, checked against the policy before anything connects to it."""
    target = policy.check(request.url.join(response.headers["location"]), "redirect")
    method, body = request.method, request.body
    if response.status_code == 303 or (response.status_code in (301, 302) and method not in ("GET", "HEAD")):
        method, body = "GET", {}  # what browsers do; 307 and 308 keep the method and body
    headers = request.headers
    if (target.scheme, target.host, target.port) != (request.url.scheme, request.url.host, request.url.port):
        headers = without_credentials(headers, connector)  # credentials stay with their origin
    return Request(method, target, headers, body)


async def _read(response: httpx.Response) -> tuple[int, bytes]:
    """Stream the body: count it, keep its first BODY_LOG_BYTES."""
    size, head = 0, bytearray()
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if len(head) < BODY_LOG_BYTES:
            head += chunk[: BODY_LOG_BYTES - len(head)]
    return size, bytes(head)


def _accepted(status: int, expected: list[int] | None) -> bool:
    return 200 <= status < 300 if expected is None else status in expected


def _hop(request: Request) -> str:
    return f"{request.method} {display_url(request.url)}"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _body_line(head: bytes, size: int, encoding: str | None) -> str:
    text = head.decode(encoding or "utf-8", errors="replace")
    more = f" … ({size - len(head)} more bytes)" if size > len(head) else ""
    return f"body: {text}{more}"

"""Where an `http` step may send a request, with which credentials, and how its URLs and
secrets appear in the log. No I/O here: every check happens before a connection."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx

from .base import ConnectorConfig, StepConfigError

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters, option keys and header names containing one of these hold secrets.
SECRET_WORDS = ("password", "passwd", "token", "secret", "key", "auth", "signature", "sig", "session", "cookie")
MASK = "***"


class UrlRefused(PermissionError):
    """A URL (first or redirected) that the policy does not let the worker connect to."""


class UrlPolicy:
    """Only http(s) URLs under the connector's base URL, unless `allow_any`."""

    def __init__(self, base: str | None, allow_any: bool) -> None:
        self.base = _without_userinfo(_parse(base, "connector url")) if base else None
        self.allow_any = allow_any

    @staticmethod
    def check_static(url: str | None, path: str | None, connector: str | None, allow_any: bool) -> None:
        """What can be told from op_kwargs alone, at job save and at trigger."""
        if url is not None:
            try:
                parsed = _parse(url, "url")
            except UrlRefused as exc:
                raise StepConfigError("url", str(exc)) from None
            if not connector and not allow_any:
                raise StepConfigError(
                    "url",
                    f"{display_url(parsed)} is not under an http connector's base URL; use connector (and path), "
                    "or set NOMAFLOW_HTTP_ALLOW_ANY_URL on the workers",
                )
        if path is not None and ("://" in path.split("?")[0] or path.startswith("//") or "\\" in path):
            raise StepConfigError("path", f'"{path:.80}" must be a path under the base URL (e.g. items/42), not a URL')

    def first_url(self, url: str | None, path: str | None) -> httpx.URL:
        if url is not None:
            return self.check(_parse(url, "url"), "url")
        if self.base is None:
            raise UrlRefused("no url and no connector base URL to send the request to")
        return self.check(_join(self.base, path or ""), "url")

    def check(self, url: httpx.URL, what: str) -> httpx.URL:
        """`url` if the worker may connect to it, else UrlRefused naming it and the rule."""
        _check_scheme(url, what)
        segments = url.path.split("/")
        if ".." in segments or "." in segments or "\\" in url.path:
            raise UrlRefused(f"{what} {display_url(url)} refused: dot segments or backslashes in the path")
        if self.allow_any:
            return url
        if self.base is None or not _under(url, self.base):
            base = display_url(self.base) if self.base else "(none: no connector)"
            raise UrlRefused(
                f"{what} {display_url(url)} refused: not under the connector's base URL {base} "
                "(NOMAFLOW_HTTP_ALLOW_ANY_URL is off)"
            )
        return url


def _parse(url: str, what: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UrlRefused(f'{what} "{url:.80}" is not a valid URL: {exc}') from None
    _check_scheme(parsed, what)
    return parsed


def _check_scheme(url: httpx.URL, what: str) -> None:
    if url.scheme not in SCHEMES:
        raise UrlRefused(f'{what} refused: scheme "{url.scheme}" is not allowed (only http and https)')
    if not url.host:
        raise UrlRefused(f"{what} {display_url(url)} refused: no host")


def _join(base: httpx.URL, path: str) -> httpx.URL:
    """`https://h/api` + `items/1?x=2` → `https://h/api/items/1?x=2` (dot segments resolved,
    so `../admin` climbs out and is refused by the check)."""
    if not path:
        return base
    root = base.copy_with(query=None, fragment=None)
    joined = httpx.URL(f"{str(root).rstrip('/')}/{path.lstrip('/')}")
    return joined.copy_merge_params(base.params) if base.query else joined


def _under(url: httpx.URL, base: httpx.URL) -> bool:
    if _origin(url) != _origin(base):
        return False
    prefix = base.path.rstrip("/")
    return url.path == prefix or url.path.startswith(prefix + "/")


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or DEFAULT_PORTS[url.scheme]


def _without_userinfo(url: httpx.URL) -> httpx.URL:
    return url.copy_with(userinfo=b"") if url.userinfo else url


def display_url(url: httpx.URL) -> str:
    """The URL for the log: no user info, secret-looking query values masked."""
    url = _without_userinfo(url)
    if not any(_is_secret(name) for name in url.params):
        return str(url)  # as sent, not re-encoded
    params = [(k, MASK if _is_secret(k) else v) for k, v in url.params.multi_items()]
    return str(url.copy_with(params=params))


def request_headers(connector: ConnectorConfig | None, headers: dict[str, str]) -> dict[str, str]:
    """The connector's headers and auth, then the step's own headers on top."""
    merged: dict[str, str] = {}
    if connector is not None:
        merged.update(connector.options.get("headers") or {})
        authorization = _authorization(connector)
        if authorization:
            merged["Authorization"] = authorization
    merged.update(headers)
    return merged


def without_credentials(headers: dict[str, str], connector: ConnectorConfig | None) -> dict[str, str]:
    """Headers for a redirect to another origin: no Authorization, none of the connector's."""
    own = {name.lower() for name in ((connector.options.get("headers") or {}) if connector else {})}
    return {k: v for k, v in headers.items() if k.lower() not in own | {"authorization", "cookie"}}


def _authorization(connector: ConnectorConfig) -> str | None:
    auth = connector.options.get("auth")
    if not auth:
        url = httpx.URL(connector.url)
        return _basic(url.username, url.password) if url.password else None
    kind = auth.get("type") if isinstance(auth, dict) else None
    if kind == "bearer" and isinstance(auth.get("token"), str):
        return f"Bearer {auth['token']}"
    if kind == "basic" and isinstance(auth.get("username"), str) and isinstance(auth.get("password"), str):
        return _basic(auth["username"], auth["password"])
    raise ValueError(
        f'connector "{connector.name}": options.auth must be {{"type": "bearer", "token": …}} '
        'or {"type": "basic", "username": …, "password": …}'
    )


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def redactor(connector: ConnectorConfig | None) -> Callable[[str], str]:
    """A function masking the connector's secrets in any text (a body can echo them)."""
    secrets: set[str] = set()
    if connector is not None:
        url = httpx.URL(connector.url)
        secrets.update(v for v in (url.password, *(v for k, v in url.params.multi_items() if _is_secret(k))) if v)
        secrets.update(_secret_values(connector.options))
        authorization = _authorization(connector)
        if authorization:
            secrets.update({authorization, authorization.partition(" ")[2]})
    ordered = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, MASK)
        return text

    return redact


def _secret_values(value: Any, secret: bool = False) -> list[str]:
    """Values under a secret-looking key (a token, a password, an X-Api-Key header …)."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _secret_values(v, _is_secret(k))]
    if isinstance(value, list):
        return [s for item in value for s in _secret_values(item, secret)]
    return [str(value)] if secret and isinstance(value, str | int) and not isinstance(value, bool) else []


def _is_secret(name: Any) -> bool:
    return any(word in str(name).lower() for word in SECRET_WORDS)

"""Where an `http` step may send a request, with which credentials, and how its URLs and
secrets appear in the log. No I/O here: every check happens before a connection."""

from __future__ import annotations

import base64

import httpx

from core.errors import StepConfigError
from core.secrets import Redactor, mask_url

from .base import ConnectorConfig

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


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
        if url is not None and is_relative(url):
            if not connector:
                raise StepConfigError(
                    "url",
                    f'"{url:.80}" is relative: give an absolute http(s) URL, or a connector whose base URL it is '
                    "joined to",
                )
            _check_relative("url", url)
        elif url is not None:
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
        if path is not None:
            _check_relative("path", path)

    def first_url(self, url: str | None, path: str | None) -> httpx.URL:
        if url is not None and not is_relative(url):
            return self.check(_parse(url, "url"), "url")
        if self.base is None:
            raise UrlRefused("no connector base URL to join a relative url or a path to")
        return self.check(_join(self.base, (path or "") if url is None else url), "url")

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


def is_relative(url: str) -> bool:
    """A url with no scheme is relative to the connector's base URL, as with httpx's `base_url`:
    `items/1` and `/items/1` both go under the base path."""
    try:
        return not httpx.URL(url).scheme
    except (httpx.InvalidURL, TypeError):
        return False  # _parse names what is wrong with it


def _check_relative(field: str, value: str) -> None:
    # A scheme-relative `//host/x` would leave the base's host: refused here rather than
    # quietly sent under the base path as httpx would.
    if "://" in value.split("?")[0] or value.startswith("//") or "\\" in value:
        raise StepConfigError(field, f'"{value:.80}" must be a path under the base URL (e.g. items/42), not a URL')


def _join(base: httpx.URL, path: str) -> httpx.URL:
    """`https://h/api` + `items/1?x=2` or `/items/1?x=2` → `https://h/api/items/1?x=2`, as
    httpx's `base_url` merges (dot segments resolved, so `../admin` climbs out and is refused
    by the check)."""
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
    return mask_url(str(_without_userinfo(url)))  # as sent, only the secret values replaced


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


def redactor(connector: ConnectorConfig | None) -> Redactor:
    """The Authorization header made from the connector's secrets (`Basic <base64>`), masked
    in any text: a body can echo it. The secrets themselves are hidden by the step's own
    redactor (workers.runtime), in every line and error the step records."""
    redact = Redactor()
    authorization = _authorization(connector) if connector is not None else ""
    if authorization:
        redact.add(authorization)
        redact.add(authorization.partition(" ")[2])
    return redact

"""Who is on a websocket, and from where: a DRF token header, or a browser's session.

Browsers always send `Origin` on a websocket handshake and attach the session cookie
whatever page opened it, so a handshake with an `Origin` must come from nomaflow's own
pages: the same scheme, host and port as the handshake itself (the `Host` header, which
must be in ALLOWED_HOSTS, and http for ws, https for wss or for a proxy's
SECURE_PROXY_SSL_HEADER), or exactly one of CSRF_TRUSTED_ORIGINS. The port matters: any
other service on the host (a dev server, a notebook, an admin tool) is another origin
and could otherwise read every live log with the visitor's cookie (cross-site websocket
hijacking). A handshake without `Origin` comes from a non-browser client: it is let
through, but only its `Authorization: Token <key>` header counts, never a cookie.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest

from accounts.tokens import user_for_key


class TokenAuthMiddleware(BaseMiddleware):
    """Puts the token's user in `scope["user"]`; without a token, a non-browser is anonymous."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization")
        if authorization is not None:
            scope = dict(scope, user=await _token_user(authorization.decode("latin1")))
        elif b"origin" not in headers:
            scope = dict(scope, user=AnonymousUser())
        return await super().__call__(scope, receive, send)


@database_sync_to_async
def _token_user(header: str) -> Any:
    kind, _, key = header.strip().partition(" ")
    if kind.lower() != "token" or not key.strip():
        return AnonymousUser()
    return user_for_key(key) or AnonymousUser()


class SameOriginValidator:
    """Refuses (403, before any other middleware) a handshake whose `Origin` is not allowed."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """No `Origin` (not a browser), the handshake's own origin, or a CSRF_TRUSTED_ORIGINS entry."""
    origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
    if not origins:
        return True
    origin = _origin_key(origins[-1].decode("latin1"))
    handshake = _Handshake(scope)
    try:
        own = f"{handshake.scheme}://{handshake.get_host()}"
    except DisallowedHost:  # a Host outside ALLOWED_HOSTS, or none at all
        return False
    allowed = [own, *settings.CSRF_TRUSTED_ORIGINS]
    return origin is not None and any(origin == _origin_key(url) for url in allowed)


def _origin_key(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None for `null` or junk."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


class _Handshake(HttpRequest):
    """The handshake as Django reads an HTTP request, so `get_host()` (ALLOWED_HOSTS,
    USE_X_FORWARDED_HOST) and `scheme` (SECURE_PROXY_SSL_HEADER) follow the rules every
    page follows. ws maps to http and wss to https: that is what a page's Origin says."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self.secure_transport = scope.get("scheme") == "wss"
        # Without a Host header Django would build one from these: empty, it matches no origin.
        self.META.update(SERVER_NAME="", SERVER_PORT="")
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            self.META[key] = value.decode("latin1")

    def _get_scheme(self) -> str:
        return "https" if self.secure_transport else "http"


def websocket_auth(inner: Any) -> Any:
    """Origin check, then the session user (CookieMiddleware, SessionMiddleware,
    AuthMiddleware), then the token header, which wins when present."""
    return SameOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)))

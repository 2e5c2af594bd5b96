"""Who is on a websocket, and from where: a DRF token header, or a browser's session.

Browsers always send `Origin` on a websocket handshake, so it is checked against
ALLOWED_HOSTS (cross-site websocket hijacking is a browser attack). A handshake without
`Origin` comes from a non-browser client: it is let through, but only its
`Authorization: Token <key>` header counts, never a cookie.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token


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
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    return token.user if token is not None and token.user.is_active else AnonymousUser()


class BrowserOriginValidator(OriginValidator):
    """channels' AllowedHostsOriginValidator, except that no `Origin` means "not a browser"."""

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


def websocket_auth(inner: Any) -> Any:
    """Origin check, then the session user (CookieMiddleware, SessionMiddleware,
    AuthMiddleware), then the token header, which wins when present."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)), allowed_hosts)

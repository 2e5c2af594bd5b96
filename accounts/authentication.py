"""DRF authentication for `Authorization: Token <key>`, looking the key up by its digest."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from .tokens import token_for_key


class HashedTokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication (same header, same 401 answers) over accounts.ApiToken."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token = token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

"""Issuing and checking API tokens: the one place that knows how a key is stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from .models import ApiToken

PREFIX_CHARS = 8


def digest(key: str) -> str:
    """What is stored for `key` (also used by the migration that hashed the old tokens)."""
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(user: Any) -> str:
    """A new token for `user`; returns the plain key, which exists nowhere else afterwards."""
    key = secrets.token_hex(20)  # 160 bits, the same shape as the keys of DRF's authtoken
    ApiToken.objects.create(user=user, digest=digest(key), prefix=key[:PREFIX_CHARS])
    return key


def revoke_tokens(user: Any) -> int:
    """Delete every token of `user`; returns how many there were."""
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return deleted


def token_for_key(key: str) -> ApiToken | None:
    """The token whose key is `key`, with its user, or None."""
    key = key.strip()
    if not key:
        return None
    return ApiToken.objects.select_related("user").filter(digest=digest(key)).first()


def user_for_key(key: str) -> Any | None:
    """The active user whose token is `key`, or None (unknown key, or the user is disabled)."""
    token = token_for_key(key)
    return token.user if token is not None and token.user.is_active else None

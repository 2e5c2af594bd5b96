"""Reading settings from the environment: each helper records the name it read (core/secrets.py
refuses to resolve any of them for a connector) and raises ImproperlyConfigured on a value
it cannot parse, so a typo in a deployment fails at start-up instead of at 3 a.m."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Every environment variable the settings read. A connector's `${NAME}` can never resolve
# one of them (core/secrets.py): they are nomaflow's own configuration, not secrets
# written for a step's destination.
SETTINGS_ENV_NAMES: set[str] = {"DJANGO_SETTINGS_MODULE"}


def env_raw(name: str) -> str | None:
    SETTINGS_ENV_NAMES.add(name)
    return os.environ.get(name)


def env_str(name: str, default: str) -> str:
    raw = env_raw(name)
    return default if raw is None else raw


def env_bool(name: str, default: bool) -> bool:
    raw = env_raw(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: use true or false")


def env_number(name: str, default: float, cast: type = float, minimum: float = 0) -> float:
    raw = env_raw(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a {cast.__name__}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def proxy_ssl_header() -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto:https: trust the proxy's word for HTTPS."""
    raw = env_str("SECURE_PROXY_SSL_HEADER", "")
    if not raw:
        return None
    header, sep, value = raw.partition(":")
    if not sep or not header.strip() or not value.strip():
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={raw!r}: use Header-Name:value, e.g. X-Forwarded-Proto:https"
        )
    return "HTTP_" + header.strip().upper().replace("-", "_"), value.strip()


def env_networks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A list of CIDRs (`10.0.0.0/8,::1/128`; a bare address is its own /32 or /128)."""
    parsed = []
    for value in env_list(name, default):
        try:
            parsed.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {value!r} is not a network; use CIDRs: 10.0.0.0/8,::1/128") from None
    return parsed


INSECURE_SECRET_KEY = "dev-insecure-secret-key-change-me"  # dev default, refused with DEBUG off
# Keys that were ever published as defaults (in settings, or in an old docker-compose.yml).
PUBLISHED_SECRET_KEYS = {INSECURE_SECRET_KEY, "change-me-in-production"}


def env_secret_key(key_file: Path, debug: bool) -> str:
    """$SECRET_KEY, else the key `make run` generated into `key_file`. The insecure dev key
    is only ever used with DEBUG on: a deployment that forgot to set one must not start
    signing sessions with a key that is printed in this file."""
    key = env_str("SECRET_KEY", "")
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    if key and key not in PUBLISHED_SECRET_KEYS:
        return key
    if debug:
        return INSECURE_SECRET_KEY
    raise ImproperlyConfigured(
        "SECRET_KEY is not set (or is the insecure dev key) and DEBUG is off: set SECRET_KEY to a long random "
        "value, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

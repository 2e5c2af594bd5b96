"""The one rule for secrets: which keys hold one, how they are masked and written back, which
`${NAME}` references may be resolved, and the redactor that hides resolved values.

Used by the API, the admin (edit and view pages), the audit trail and the worker (every
step type's log lines, errors and tracebacks). A value is secret when its key, or a key
above it, is secret; a url's password and its secret query values are secret too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from django.conf import settings

from .destinations import same_destination

MASK = "***"
# A key is secret when one of its words starts with one of these (`Authorization`,
# `api_keys`, `sessionid`, `X-Hub-Signature`, `pwd`), or when the whole key contains one
# of the words of five letters or more (`sslpassword`, `accesstoken`, `apikey`). Short
# words match only at a word's start because they hide inside innocent names: `zipcode`,
# `compass`, `design`, `monkey` stay visible. A false positive (`author`, `keyboard`,
# `zip_code`) only hides a value; a false negative would show a secret.
SECRET_WORDS = (
    "sig", "signature", "code", "pass", "pw", "session", "key", "token", "secret", "password", "auth",
    "cookie", "credential", "passwd", "passphrase", "apikey", "private",
)  # fmt: skip
_GLUED = tuple(word for word in SECRET_WORDS if len(word) >= 5)
_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_REDACTED = 4  # shorter values would blank out ordinary words in every log line


class MaskError(ValueError):
    """`***` written back where no stored secret may be kept; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_secret(key: Any) -> bool:
    text = str(key)
    if any(word in text.lower() for word in _GLUED):
        return True
    words = [w.lower() for w in _KEY_WORDS.findall(text)]
    return any(w.startswith(secret) for w in words for secret in SECRET_WORDS)


# --- masking ---------------------------------------------------------------------------------


def mask_options(value: Any, secret: bool = False) -> Any:
    """Every value under a secret key becomes `***`, at any depth: inside lists and objects
    under such a key too (`api_keys: ["a", "b"]` → `["***", "***"]`). Empty values and
    booleans stay as they are (they hide nothing, and show that nothing is set)."""
    if isinstance(value, dict):
        return {k: mask_options(v, secret or is_secret(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_options(item, secret) for item in value]
    return MASK if secret and _hideable(value) else value


def _hideable(value: Any) -> bool:
    return value not in (None, "") and not isinstance(value, bool)


def mask_url(url: str) -> str:
    """`postgresql://u:pw@host/db?sslpassword=x` → `postgresql://u:***@host/db?sslpassword=***`.
    Only the secret parts are replaced, in place: anything else comes back byte for byte."""
    parts = _UrlParts(url)
    if parts.password:
        parts.password = MASK
    parts.query = _replace_query(parts.query, lambda name, value: MASK)
    return str(parts)


def unmask_url(url: str, stored: str, *, keep: bool = True) -> str:
    """A url written back with `***` as its password (or a secret query value) takes the
    stored one; `keep=False` (the destination changed) makes that a MaskError."""
    parts, old = _UrlParts(url), _UrlParts(stored)
    if parts.password == MASK:
        _check_kept("url", "the password", old.password, keep)
        parts.password = old.password
    kept = dict(_query_items(old.query))

    def restore(name: str, value: str) -> str:
        if value != MASK:
            return value
        _check_kept("url", f"{name}=***", kept.get(name), keep)
        return kept[name]

    parts.query = _replace_query(parts.query, restore)
    return str(parts)


def unmask_options(value: Any, stored: Any, path: str = "options", *, keep: bool = True, secret: bool = False) -> Any:
    """Values written back as `***` under a secret key take the stored value at the same path."""
    if isinstance(value, dict):
        old = stored if isinstance(stored, dict) else {}
        return {
            k: unmask_options(v, old.get(k), f"{path}.{k}", keep=keep, secret=secret or is_secret(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        old_items = stored if isinstance(stored, list) else []
        return [
            unmask_options(v, old_items[i] if i < len(old_items) else None, f"{path}.{i}", keep=keep, secret=secret)
            for i, v in enumerate(value)
        ]
    if value != MASK or not secret:
        return value
    _check_kept(path, "the value", stored if _hideable(stored) and not isinstance(stored, dict | list) else None, keep)
    return stored


def unmask(url: str, options: Any, stored_url: str, stored_options: Any) -> tuple[str, Any]:
    """Url and options written back: `***` keeps a stored secret only while the url's scheme,
    host and port are unchanged, so a secret never follows a connector to a new destination."""
    keep = not stored_url or same_destination(url, stored_url)
    return unmask_url(url, stored_url, keep=keep), unmask_options(options, stored_options, keep=keep)


def _check_kept(field: str, what: str, stored: Any, keep: bool) -> None:
    if stored in (None, ""):
        raise MaskError(field, f"{what} is *** but nothing is stored; give the real value or a ${{NAME}} reference")
    if not keep:
        raise MaskError(
            field,
            f"{what} is *** but the url's scheme, host or port changed, and a stored secret never follows a "
            "connector to a new destination; give the secret again",
        )


# --- urls, spliced rather than rebuilt (urlunsplit turns sqlite:////abs into sqlite://abs) ---


class _UrlParts:
    """A url cut into head (`scheme://user`), password, tail (`@host/path`), query and fragment."""

    def __init__(self, url: str) -> None:
        rest, hash_, self.fragment = url.partition("#")
        rest, question, self.query = rest.partition("?")
        self._question, self._hash = question, hash_
        self.head, self.password, self.tail = rest, "", ""
        scheme, sep, after = rest.partition("://")
        netloc_end = len(after) if "/" not in after else after.index("/")
        userinfo, at, _ = after[:netloc_end].rpartition("@")
        if sep and at and ":" in userinfo:
            user, _, self.password = userinfo.partition(":")
            self.head = f"{scheme}://{user}:"
            self.tail = after[len(userinfo) :]

    def __str__(self) -> str:
        return f"{self.head}{self.password}{self.tail}{self._question}{self.query}{self._hash}{self.fragment}"


def _query_items(query: str) -> Iterator[tuple[str, str]]:
    for item in query.split("&") if query else ():
        name, _, value = item.partition("=")
        yield unquote_plus(name), value


def _replace_query(query: str, replace: Callable[[str, str], str]) -> str:
    """Only the values of secret parameters go through `replace`; every other byte stays."""
    if not query:
        return query
    items = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if equals and value and is_secret(unquote_plus(name)):
            value = replace(unquote_plus(name), value)
        items.append(f"{name}{equals}{value}")
    return "&".join(items)


def secret_values(url: str, options: Any) -> list[str]:
    """The literal secrets of a connector (its url's password and secret query values, and
    every value under a secret key of its options), for a redactor."""
    parts = _UrlParts(url)
    found = [parts.password, *(v for k, v in _query_items(parts.query) if is_secret(k))]
    # As written in the url, and decoded: what the server receives and may echo.
    return [form for v in found if v for form in (v, unquote_plus(v))] + _option_secrets(options)


def _option_secrets(value: Any, secret: bool = False) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _option_secrets(v, secret or is_secret(k))]
    if isinstance(value, list):
        return [s for item in value for s in _option_secrets(item, secret)]
    return [str(value)] if secret and _hideable(value) else []


# --- ${NAME} references ----------------------------------------------------------------------


def references(text: str) -> list[str]:
    """The names of the `${NAME}` references in `text`."""
    return REFERENCE.findall(text)


def check_reference(name: str) -> None:
    """ValueError unless `${name}` may be resolved: a name under NOMAFLOW_SECRET_PREFIX or in
    NOMAFLOW_SECRET_ALLOWLIST, and never one of nomaflow's own settings variables."""
    if name in settings.SETTINGS_ENV_NAMES or name.startswith("DJANGO_"):
        raise ValueError(
            f"${{{name}}} is one of nomaflow's own settings and is never resolved; put the secret in a "
            f"variable whose name starts with {settings.NOMAFLOW_SECRET_PREFIX}"
        )
    if not name.startswith(settings.NOMAFLOW_SECRET_PREFIX) and name not in settings.NOMAFLOW_SECRET_ALLOWLIST:
        raise ValueError(
            f"${{{name}}} is not a secret reference; use a name starting with {settings.NOMAFLOW_SECRET_PREFIX} "
            "(or add it to NOMAFLOW_SECRET_ALLOWLIST on the web and worker hosts)"
        )


def reference_errors(value: Any, path: str) -> dict[str, list[str]]:
    """{field: [message]} for every `${NAME}` in `value` (a string, or options at any depth)
    that check_reference refuses; fields are dotted paths (`options.headers.X-Token`)."""
    if isinstance(value, dict):
        return {f: m for k, v in value.items() for f, m in reference_errors(v, f"{path}.{k}").items()}
    if isinstance(value, list):
        return {f: m for i, v in enumerate(value) for f, m in reference_errors(v, f"{path}.{i}").items()}
    errors: dict[str, list[str]] = {}
    for name in references(value) if isinstance(value, str) else ():
        try:
            check_reference(name)
        except ValueError as exc:
            errors.setdefault(path, []).append(str(exc))
    return errors


def resolve(value: Any, environ: Mapping[str, str], redactor: Redactor | None = None) -> Any:
    """`value` with every `${NAME}` replaced from `environ` (strings inside lists and objects
    too); each value substituted is added to `redactor`. ValueError for a name that may not be
    resolved, LookupError for one not set."""
    if isinstance(value, dict):
        return {k: resolve(v, environ, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, environ, redactor) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        check_reference(name)
        if name not in environ:
            raise LookupError(f"${{{name}}} is not set on this worker")
        if redactor is not None:
            redactor.add(environ[name])
        return environ[name]

    return REFERENCE.sub(substitute, value)


# --- redaction -------------------------------------------------------------------------------


class Redactor:
    """Replaces known secret values with `***` in any text, in one regex pass (a step's log
    lines all go through it: with no secrets it costs one truth test)."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets or ():
            self.add(secret)

    def add(self, secret: str) -> None:
        """Hide `secret`, and the forms a url or a JSON body would give it."""
        if len(secret) < MIN_REDACTED:
            return
        forms = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
        if forms <= self._secrets:
            return
        self._secrets |= forms
        ordered = sorted(self._secrets, key=len, reverse=True)  # the longest first: no half-masked secret
        self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

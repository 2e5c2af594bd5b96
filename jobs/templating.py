"""`{{ params.name }}` substitution in op_kwargs: plain lookup, no expressions, no code."""

from __future__ import annotations

import json
import re
from typing import Any

_REFERENCE = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class MissingParam(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def render(value: Any, params: dict[str, Any]) -> Any:
    """Substitute param references in every string inside `value` (dicts and lists too).

    A string that is exactly one reference takes the param's value with its JSON type;
    inside a longer string the value is inserted as text (JSON for non-strings).
    """
    if isinstance(value, str):
        return _render_string(value, params)
    if isinstance(value, dict):
        return {key: render(item, params) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, params) for item in value]
    return value


def references(value: Any) -> set[str]:
    """Every param name that `value` refers to."""
    if isinstance(value, str):
        return set(_REFERENCE.findall(value))
    if isinstance(value, dict):
        return set().union(*(references(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(references(item) for item in value)) if value else set()
    return set()


def _render_string(text: str, params: dict[str, Any]) -> Any:
    whole = _REFERENCE.fullmatch(text.strip())
    if whole:
        return _lookup(whole.group(1), params)
    return _REFERENCE.sub(lambda match: _as_text(_lookup(match.group(1), params)), text)


def _lookup(name: str, params: dict[str, Any]) -> Any:
    if name not in params:
        raise MissingParam(name)
    return params[name]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)

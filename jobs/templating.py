"""`{{ params.name }}` substitution in op_kwargs: plain lookup, no expressions, no code.

A step type says, per field, where a param must not go as text (`sql`: it would become
code) and where it goes escaped (an LDAP `filter`): StepType.param_rules, applied here
at job save, at trigger and again on the worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import StepConfigError

_REFERENCE = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class ParamRule:
    """How `{{ params.x }}` may appear in one op_kwargs field (render_op_kwargs applies it).

    `refuse`: any reference is an error; it gives the message for a param name (what to
    write instead). `escape`: every value is inserted as text through it, a whole-string
    reference too, so a param can only ever be data inside the field's language.
    """

    refuse: Callable[[str], str] | None = None
    escape: Callable[[str], str] | None = None


class MissingParam(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def render_op_kwargs(
    op_kwargs: dict[str, Any], params: dict[str, Any], rules: Mapping[str, ParamRule]
) -> dict[str, Any]:
    """render() each op_kwarg under its step type's rule for that field (StepType.param_rules).

    A reference in a refusing field raises StepConfigError naming the field, before any
    lookup: the answer is the same whether or not the param exists.
    """
    for field, rule in rules.items():
        names = references(op_kwargs.get(field))
        if rule.refuse and names:
            raise StepConfigError(field, rule.refuse(min(names)))
    return {key: render(value, params, _escape(rules.get(key))) for key, value in op_kwargs.items()}


def render(value: Any, params: dict[str, Any], escape: Callable[[str], str] | None = None) -> Any:
    """Substitute param references in every string inside `value` (dicts and lists too).

    A string that is exactly one reference takes the param's value with its JSON type;
    inside a longer string the value is inserted as text (JSON for non-strings). With
    `escape`, every value is inserted as escaped text, a whole-string reference too.
    """
    if isinstance(value, str):
        return _render_string(value, params, escape)
    if isinstance(value, dict):
        return {key: render(item, params, escape) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, params, escape) for item in value]
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


def _escape(rule: ParamRule | None) -> Callable[[str], str] | None:
    return rule.escape if rule else None


def _render_string(text: str, params: dict[str, Any], escape: Callable[[str], str] | None) -> Any:
    whole = _REFERENCE.fullmatch(text.strip())
    if whole and escape is None:
        return _lookup(whole.group(1), params)
    insert = escape or (lambda value: value)
    return _REFERENCE.sub(lambda match: insert(_as_text(_lookup(match.group(1), params))), text)


def _lookup(name: str, params: dict[str, Any]) -> Any:
    if name not in params:
        raise MissingParam(name)
    return params[name]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)

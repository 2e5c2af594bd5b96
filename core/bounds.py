"""Bounds on the JSON users send: size, key count, nesting depth, and what PostgreSQL can store.

One rule for every way in: the API's parser (whole bodies), the Job and Connector
serializers (the API and `manage.py load_jobs`), runs.parameters (trigger and replay,
from the API, the CLI and cron) and the admin's JSON fields. The checks return errors
keyed by the dotted path of the offending part (`params.x`, `steps.F0004.op_kwargs`), and
none of them recurses: input nested 100,000 levels deep cannot make a check itself fail.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.forms.fields import InvalidJSONInput

Errors = dict[str, list[str]]
ROOT = "body"  # the error key for a problem with a whole request body
# A body nests its fields (the deepest, a job's steps[].op_kwargs, begins 3 levels in), and
# a field one level too deep is better named by its own check (`steps.F0004.op_kwargs.x`)
# than by the body's: the body's bound only keeps json.loads from recursing without end.
BODY_DEPTH_MARGIN = 8
# PostgreSQL stores neither NUL (text and jsonb refuse it) nor unpaired surrogates (not UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The tokens that decide nesting: whole strings (so brackets inside them do not count),
# brackets, and the separators that say which member or item comes next.
TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


def body_depth() -> int:
    return settings.NOMAFLOW_MAX_JSON_DEPTH + BODY_DEPTH_MARGIN


def check_json(value: Any, field: str) -> Errors:
    """The first bound that `value`, the JSON of `field`, breaks: depth, content, key count, size."""
    problem = _first_problem(value, field, settings.NOMAFLOW_MAX_JSON_DEPTH)
    if problem:
        return problem
    keys = sum(len(node) for _, _, node in _nodes(value, field) if isinstance(node, dict))
    if keys > settings.NOMAFLOW_MAX_JSON_KEYS:
        return _error(
            field, f"has {keys} keys in all, more than {settings.NOMAFLOW_MAX_JSON_KEYS} (NOMAFLOW_MAX_JSON_KEYS)"
        )
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
    if size > settings.NOMAFLOW_MAX_JSON_BYTES:
        return _error(
            field,
            f"is {size} bytes as JSON, more than {settings.NOMAFLOW_MAX_JSON_BYTES} (NOMAFLOW_MAX_JSON_BYTES); "
            "keep large data elsewhere and pass its name or URL",
        )
    return {}


def check_body(value: Any) -> Errors:
    """What no part of a parsed request body may hold, wherever it is (the fields have their own bounds)."""
    return {path or ROOT: messages for path, messages in _first_problem(value, "", body_depth()).items()}


def too_deep(limit: int) -> str:
    """The message for JSON nested more than `limit` levels: a field's bound, or a body's."""
    if limit == settings.NOMAFLOW_MAX_JSON_DEPTH:
        bound = "NOMAFLOW_MAX_JSON_DEPTH"
    else:
        bound = f"NOMAFLOW_MAX_JSON_DEPTH + {BODY_DEPTH_MARGIN} in a whole body"
    return f"is nested more than {limit} levels deep ({bound}); flatten it"


def text_too_deep(text: str, limit: int) -> str | None:
    """The path where the JSON `text` nests more than `limit` levels deep, or None.

    Reads tokens only, never parses, so it is safe on input that would exhaust the stack of
    json.loads; the path names keys and list indices like the other checks (`params.0.0`).
    """
    if text.count("[") + text.count("{") <= limit:
        return None  # cannot be that deep: the usual case, without a scan
    open_: list[list[Any]] = []  # per open container: [bracket, current key or index]
    last_string = ""
    for match in TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            if len(open_) == limit:
                return _join_all([_key(position) for _, position in open_])
            open_.append([token, 0 if token == "[" else ""])
        elif token == "]" or token == "}":
            if open_:
                open_.pop()
        elif token == "," and open_ and open_[-1][0] == "[":
            open_[-1][1] += 1
        elif token == ":" and open_:
            open_[-1][1] = last_string
        else:
            last_string = token
    return None


class BoundedJSONFormField(forms.JSONField):
    """A JSON form field (the admin's) under the same bounds, its depth read before json.loads."""

    def to_python(self, value: Any) -> Any:
        if _too_deep_text(value):
            raise forms.ValidationError(too_deep(settings.NOMAFLOW_MAX_JSON_DEPTH))
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        # The form shown again with its error parses the text again: keep it as text.
        return InvalidJSONInput(data) if _too_deep_text(data) else super().bound_data(data, initial)

    def validate(self, value: Any) -> None:
        super().validate(value)
        errors = check_json(value, "")
        if errors:
            raise forms.ValidationError([f"{path}: {msg}" if path else msg for path, m in errors.items() for msg in m])


def _too_deep_text(value: Any) -> bool:
    return isinstance(value, str) and text_too_deep(value, settings.NOMAFLOW_MAX_JSON_DEPTH) is not None


def _first_problem(value: Any, root: str, max_depth: int) -> Errors:
    for path, depth, node in _nodes(value, root):
        if isinstance(node, (dict, list)) and depth >= max_depth:
            return _error(path, too_deep(max_depth))
        message = _unstorable(node)
        if message:
            return _error(path, message)
    return {}


def _unstorable(node: Any) -> str:
    if isinstance(node, str):
        return _bad_text(node, "contains")
    if isinstance(node, float) and not math.isfinite(node):
        return "is a number too large to store (it overflows to infinity); send it as a string"
    if isinstance(node, dict):
        return next(filter(None, (_bad_text(key, "has a key that contains") for key in node)), "")
    return ""


def _bad_text(text: Any, what: str) -> str:
    found = UNSTORABLE.search(text) if isinstance(text, str) else None
    if found is None:
        return ""
    if found.group() == "\x00":
        return f"{what} a NUL character (\\u0000), which cannot be stored; remove it"
    return f"{what} an unpaired surrogate (\\u{ord(found.group()):04x}), which is not Unicode text; send UTF-8"


def _nodes(value: Any, root: str) -> Iterator[tuple[str, int, Any]]:
    """(path, depth, node) for `value` and everything in it, in document order, without
    recursion; depth counts the containers around a node (0 for `value` itself)."""
    stack = [(root, 0, value)]
    while stack:
        path, depth, node = stack.pop()
        yield path, depth, node
        if isinstance(node, dict):
            stack.extend(reversed([(_join(path, str(k)), depth + 1, v) for k, v in node.items()]))
        elif isinstance(node, list):
            stack.extend(reversed([(_join(path, str(i)), depth + 1, v) for i, v in enumerate(node)]))


def _error(path: str, message: str) -> Errors:
    return {path: [message]}


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _join_all(keys: list[str]) -> str:
    path = ""
    for key in keys:
        path = _join(path, key)
    return path


def _key(position: Any) -> str:
    if isinstance(position, int):
        return str(position)
    try:
        return str(json.loads(position))  # the raw token of a string, quotes and escapes included
    except ValueError:
        return position.strip('"')

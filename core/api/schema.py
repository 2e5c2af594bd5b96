"""The OpenAPI document's error answers and response shapes, decided here for every operation.

Each operation lists the statuses it can return, read from facts about the operation, so
that a generated client can type every answer (README, "API additions"):

- 401 when its permissions refuse an anonymous user, 403 when they check a role;
- 404 when the path names an object, or a `cursor` names a page (DRF: an invalid cursor is 404);
- 400 when it takes a body or query parameters; 413 and 415 when it takes a body;
- 409 when its service refuses the object's state: the view declares it, `conflicts = {action: why}`
  for each action whose service raises StateConflict;
- 429 when a throttle applies;
- 503 on every operation: a full database pool answers it, with Retry-After.

Every error has the one shape core/api/errors.py gives it: the `Error` component.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from core.permissions import RolePermission

DESCRIPTIONS = {
    400: "bad input: `errors` maps each field at fault (a dotted path) to what is wrong with it",
    401: "no login or token, or a token that is not valid (see WWW-Authenticate)",
    403: "the user does not hold the role this needs (or a session request lacks its CSRF token)",
    404: "nothing at this path: no object with this id (or no page at this cursor)",
    413: "the body is larger than NOMAFLOW_MAX_BODY_BYTES",
    415: "the body is not JSON: send Content-Type: application/json",
    429: "too many requests: try again after Retry-After seconds",
    503: "the server is busy (every database connection of its pool in use): try again after Retry-After seconds",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before trying again"}}
RETRY_CODES = (429, 503)


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the API (API.md): one sentence, and the messages of each field at fault."""

    detail = serializers.CharField(help_text="one sentence a person can act on")
    # Shadows Serializer.errors on purpose: this class only describes the wire shape.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="field (a dotted path such as steps.F0004.retries) → messages; empty when no field is at fault",
    )


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema with every error answer listed, and response bodies whose
    every field is required: a serializer renders each field it has, null or not."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        for code in error_codes(operation, self.view, self.path):
            # A view's own description of an error (extend_schema) is kept.
            operation["responses"].setdefault(str(code), error_response(code, self.view, error))
        return operation

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and schema.get("properties"):
            schema["required"] = sorted(schema["properties"])
        return schema


def error_codes(operation: dict[str, Any], view: Any, path: str) -> list[int]:
    """The error statuses `operation` can answer (the rules of this module's docstring)."""
    permissions = view.get_permissions()
    has_body = "requestBody" in operation
    query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    rules = {
        400: has_body or bool(query),
        401: any(not isinstance(p, AllowAny) for p in permissions),
        403: any(isinstance(p, RolePermission) for p in permissions),
        404: "{" in path or "cursor" in query,
        409: conflict(view) is not None,
        413: has_body,
        415: has_body,
        429: bool(view.get_throttles()),
        503: True,
    }
    return [code for code, applies in rules.items() if applies]


def conflict(view: Any) -> str | None:
    """What the 409 of the view's current action says, if the view declares one (`conflicts`)."""
    conflicts: dict[str, str] = getattr(view, "conflicts", {})
    return conflicts.get(getattr(view, "action", None) or "")


def error_response(code: int, view: Any, error: dict[str, str]) -> dict[str, Any]:
    description = conflict(view) if code == 409 else DESCRIPTIONS[code]
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": error}}}
    if code in RETRY_CODES:
        response["headers"] = RETRY_AFTER
    return response

"""Every API error in one shape: {"detail": "<one sentence>", "errors": {"<field>": ["…"]}}.

DRF's nested validation errors are flattened to dotted field paths
(`steps.F0004.retries`, flatten_errors), the same keys that jobs.validation and InputError use.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import reverse
from psycopg_pool import PoolTimeout
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import InputError, StateConflict, conflict_kind

Errors = dict[str, list[str]]
NON_FIELD = "non_field_errors"  # DRF's key for the errors of a whole object
NOT_AUTHENTICATED = (
    "authentication needed: log in, or send the header Authorization: Token <key> "
    "(python manage.py issue_token <username> prints one)"
)


RETRY_AFTER_S = 1


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if busy := busy_detail(exc):
        return Response({"detail": busy, "errors": {}}, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(exc, InputError):
        return _answer(status.HTTP_400_BAD_REQUEST, exc.detail, exc.errors)
    if isinstance(exc, StateConflict):
        return _answer(status.HTTP_409_CONFLICT, exc.detail, {})
    if isinstance(exc, RequestDataTooBig):  # from our parser, or Django's own bound on request.body
        return _answer(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, too_large_detail(), {})
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return _answer(status.HTTP_404_NOT_FOUND, _not_found(exc, context), {})
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.NotAuthenticated):
        # Same exception (it carries the WWW-Authenticate header), with a detail that says how.
        exc.detail = exceptions.ErrorDetail(NOT_AUTHENTICATED, code=exc.default_code)
    response = drf_exception_handler(exc, context)  # keeps WWW-Authenticate, Retry-After
    if response is None:
        return None  # a bug: let Django answer 500 and log the traceback
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        response.data = {"detail": _first(errors) or "the request is not valid", "errors": errors}
    else:
        response.data = {"detail": _sentence(response.data), "errors": {}}
    return response


# What Django answers itself under /api/, before or after any API view (nomaflow/urls.py
# routes its error handlers here): a bad request, a refusal, a path no route matches, a crash.
DJANGO_ERRORS = {
    400: "the request is malformed (a Host this server does not serve, or a body it cannot read); fix the request",
    403: "you do not have the role this needs; ask an administrator to add you to a group",
    404: "nothing at {path}: check the path and the id in it against the API's schema at {schema}",
    500: "the server failed on this request and logged it with its traceback; try again, and report it if it persists",
}


def django_error(request: HttpRequest, code: int, exception: Exception | None = None) -> JsonResponse:
    """The API's error shape for one of Django's own error answers. A refusal's or a 404's own
    message names the thing (the args of Http404 and PermissionDenied); a Resolver404 has none."""
    given = exception.args[0] if exception is not None and exception.args else None
    if code in (403, 404) and isinstance(given, str) and given:
        detail = given
    elif code == 404:
        detail = DJANGO_ERRORS[code].format(path=request.path, schema=reverse("schema"))
    elif code == 500 and (busy := busy_detail(sys.exc_info()[1])):  # handler500 runs inside the except
        response = JsonResponse({"detail": busy, "errors": {}}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
    else:  # nothing that could fail here: a 500 answer must not raise
        detail = DJANGO_ERRORS[code]
    return JsonResponse({"detail": detail, "errors": {}}, status=code)


def busy_detail(exc: BaseException | None) -> str | None:
    """The 503's detail when `exc` says the database is busy, not broken: no pooled connection
    came free in time, or PostgreSQL kept choosing this request's transaction as the victim
    of a deadlock (runs.locking retried it). Either way, the same request may succeed in a moment."""
    if not isinstance(exc, OperationalError):
        return None
    if isinstance(exc.__cause__, PoolTimeout):
        return (
            f"every database connection of this server is busy (NOMAFLOW_DB_POOL_MAX_SIZE="
            f"{settings.NOMAFLOW_DB_POOL_MAX_SIZE}); retry after {RETRY_AFTER_S} s"
        )
    if kind := conflict_kind(exc):
        return f"the database kept refusing this change ({kind} with concurrent writes); retry after {RETRY_AFTER_S} s"
    return None


class JsonErrors:
    """For a view that renders something other than JSON (plain text, YAML): its errors are
    the API's JSON error all the same. Put it first among the view's bases."""

    def handle_exception(self, exc: Exception) -> Response:
        request = self.request  # type: ignore[attr-defined]
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)  # type: ignore[misc]


def _answer(code: int, detail: str, errors: Errors) -> Response:
    return Response({"detail": detail, "errors": errors}, status=code)


def too_large_detail() -> str:
    """The 413's detail, also answered by nomaflow/body_limit.py before Django reads a body."""
    limit = settings.NOMAFLOW_MAX_BODY_BYTES
    return f"the request body is larger than {limit} bytes (NOMAFLOW_MAX_BODY_BYTES); send less, or raise the setting"


def _first(errors: Errors) -> str:
    for field, messages in errors.items():
        if messages:
            return messages[0] if field == NON_FIELD else f"{field}: {messages[0]}"
    return ""


def _sentence(data: Any) -> str:
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    return _first(flatten_errors(data)) or "the request failed"


def _not_found(exc: Exception, context: dict[str, Any]) -> str:
    """Name the missing thing: 'job "nightly" does not exist'."""
    kwargs = context.get("kwargs") or {}
    if isinstance(exc, ObjectDoesNotExist):
        noun = type(exc).__qualname__.split(".")[0].lower()
        key = kwargs.get("id") or kwargs.get("pk") or kwargs.get("name")
    else:
        view = context.get("view")
        queryset = getattr(view, "queryset", None)
        noun = queryset.model._meta.verbose_name if queryset is not None else ""
        key = kwargs.get(getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk"))
    if noun and key:
        return f'{noun} "{key}" does not exist'
    return "not found: check the id in the URL"


def flatten_errors(detail: Any, prefix: str = "") -> Errors:
    """{"steps": {"F0004": {"retries": ["…"]}}} → {"steps.F0004.retries": ["…"]}."""
    if isinstance(detail, dict):
        errors: Errors = {}
        for key, value in detail.items():
            name = prefix if key == NON_FIELD and prefix else _join(prefix, str(key))
            for field, messages in flatten_errors(value, name).items():
                errors.setdefault(field, []).extend(messages)
        return errors
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        errors = {}
        for index, item in enumerate(detail):
            errors.update(flatten_errors(item, _join(prefix, str(index))))
        return errors
    items = detail if isinstance(detail, list) else [detail]
    return {prefix or NON_FIELD: [str(item) for item in items]} if items else {}


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key

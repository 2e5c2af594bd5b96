"""Login throttling (django-axes, settings "Security"): the name failures are counted under."""

from __future__ import annotations

from math import ceil
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def username_key(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The submitted user name, case-folded: the directory matches `uid` in any case, so
    ERIN and erin must share one failure count, or each spelling would get its own tries."""
    field = str(getattr(settings, "AXES_USERNAME_FORM_FIELD", "username"))  # axes sets it when it loads
    name = (credentials or {}).get(field) or request.POST.get(field, "")
    return str(name).strip().casefold()


def lockout_response(request: HttpRequest, *_: Any) -> HttpResponse:
    """The answer to a locked-out login, on either login page: 429, Retry-After, and a page
    that says why and for how long (axes also passes the form's response and credentials)."""
    seconds = ceil(settings.NOMAFLOW_LOGIN_COOLOFF_S)
    context = {"failure_limit": settings.NOMAFLOW_LOGIN_FAILURE_LIMIT, "minutes": ceil(seconds / 60)}
    response = render(request, "frontend/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response

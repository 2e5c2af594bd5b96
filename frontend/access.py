"""Who may see a page and what it may offer: the roles of core/roles.py, for HTML views.

Every page needs a signed-in user with the viewer role. Templates get `can_operate`
and `can_edit` so that actions a user may not take are not offered at all; the REST
API refuses them anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.roles import EDITOR, OPERATOR, VIEWER, has_role

NO_VIEWER_ROLE = "nomaflow needs the viewer role; ask an administrator to add you to a group"

View = Callable[..., HttpResponse]


def viewer_required(view: View) -> View:
    """Anonymous users go to the login page; signed-in users without the viewer role get 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not has_role(request.user, VIEWER):
            raise PermissionDenied(NO_VIEWER_ROLE)
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def role_context(user: Any) -> dict[str, bool]:
    """The flags templates use to offer (or not) the actions of each role."""
    return {
        "is_viewer": has_role(user, VIEWER),
        "can_operate": has_role(user, OPERATOR),
        "can_edit": has_role(user, EDITOR),
    }


def render_page(request: HttpRequest, template: str, context: dict[str, Any] | None = None) -> HttpResponse:
    """render() with the role flags every page's template needs."""
    return render(request, template, {**role_context(request.user), **(context or {})})

"""API permissions by role (viewer < operator < editor; superusers hold every role).

Each class names the role needed to read (safe methods) and to write. A refused
anonymous request becomes 401 (DRF does that when no authenticator succeeded); a
refused authenticated user gets 403 with a detail naming the missing role.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from .roles import EDITOR, OPERATOR, VIEWER, has_role


class RolePermission(BasePermission):
    read_role: str | None = VIEWER
    write_role: str | None = None
    message = "you do not have the role this needs; ask an administrator to add you to the right group"

    def has_permission(self, request: Request, view: Any) -> bool:
        role = self.read_role if request.method in SAFE_METHODS else self.write_role
        if role is None:
            # Let a method the view does not have through, so that DRF answers 405, not 403.
            return not hasattr(view, (request.method or "").lower())
        if has_role(request.user, role):
            return True
        self.message = f'this needs the {role} role; ask an administrator to add you to the "{role}" group'
        return False


class IsViewer(RolePermission):
    """Read-only access for viewers and above (the API's default)."""


class IsOperator(RolePermission):
    read_role = OPERATOR
    write_role = OPERATOR


class IsEditor(RolePermission):
    read_role = EDITOR
    write_role = EDITOR


class ViewerReadsOperatorWrites(RolePermission):
    """Runs: viewers see them, operators trigger them."""

    write_role = OPERATOR


class ViewerReadsEditorWrites(RolePermission):
    """Jobs and connectors: viewers see them, editors change them."""

    write_role = EDITOR

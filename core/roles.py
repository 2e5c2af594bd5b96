"""The three roles, as Django groups. Each role includes the ones before it."""

from __future__ import annotations

from typing import Any

VIEWER, OPERATOR, EDITOR = "viewer", "operator", "editor"
ROLES = (VIEWER, OPERATOR, EDITOR)


def has_role(user: Any, role: str) -> bool:
    """True if `user` holds `role` or a stronger one (superusers hold every role)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    wanted = ROLES[ROLES.index(role) :]
    cache = getattr(user, "_nomaflow_groups", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._nomaflow_groups = cache
    return bool(cache.intersection(wanted))

"""The audit trail: every action that matters is recorded here, in the same transaction."""

from __future__ import annotations

from typing import Any

from .models import AuditEvent


def audit_record(*, actor: str, action: str, obj: Any, diff: dict[str, Any] | None = None) -> AuditEvent:
    """Record that `actor` did `action` to `obj` (a model instance), named as users name it:
    by its `audit_id` if the model declares one (a connector: its name), else its pk."""
    event = audit_event(actor=actor, action=action, obj=obj, diff=diff)
    event.save()
    return event


def audit_event(*, actor: str, action: str, obj: Any, diff: dict[str, Any] | None = None) -> AuditEvent:
    """The unsaved event of `audit_record`, for a caller that inserts it with other rows."""
    return AuditEvent(
        actor=actor,
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(getattr(obj, "audit_id", obj.pk)),
        diff=diff or {},
    )


def actor_label(user: Any) -> str:
    """How a user appears in `triggered_by`, `canceled_by` and the audit trail."""
    return f"user:{user.get_username()}" if user is not None and user.is_authenticated else "system"

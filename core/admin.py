"""Admin for the audit trail: read-only, browsable by actor, action, object and date."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from .models import AuditEvent
from .secrets import mask_options, mask_url


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Browse the trail; filter by actor, action, object type and date on the right, or
    by one object from the URL (`?object_type=run&object_id=<id>`, as the run page links)."""

    list_display = ["at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type", "at", "actor"]
    search_fields = ["=object_id", "=actor"]
    date_hierarchy = "at"
    fields = ("at", "actor", "action", "object_type", "object_id", "changes")
    readonly_fields = fields

    @admin.display(description="diff")
    def changes(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(shown_diff(obj), indent=2, sort_keys=True, default=str))


def shown_diff(event: AuditEvent) -> Any:
    """A connector's diff is stored masked already; masking it again as it is shown keeps
    rows written under an older, narrower rule (before `sig` or lists were masked) hidden too."""
    if event.object_type != "connector" or not isinstance(event.diff, dict):
        return event.diff
    return {
        name: [_masked(name, v) for v in pair] if isinstance(pair, list) else pair for name, pair in event.diff.items()
    }


def _masked(field: str, value: Any) -> Any:
    return mask_url(value) if field == "url" and isinstance(value, str) else mask_options(value)


def audit_url(object_type: str, object_id: str) -> str:
    """The audit trail of one object, in the admin."""
    query = urlencode({"object_type": object_type, "object_id": object_id})
    return f"{reverse('admin:core_auditevent_changelist')}?{query}"

"""Read-only admin for what happened: runs with their steps, log lines, the audit trail.

Runs are written only by the services; here they can be looked at, never edited.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from .models import AuditEvent, LogLine, Run, StepRun


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StepRunInline(ReadOnlyMixin, admin.TabularInline):
    model = StepRun
    fields = ("position", "name", "type", "state", "reason", "attempts", "started_at", "finished_at", "worker", "error")
    readonly_fields = fields
    ordering = ["position"]
    extra = 0


@admin.register(Run)
class RunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    inlines = [StepRunInline]
    list_display = ["id", "job", "state", "triggered_by", "queued_at", "started_at", "finished_at", "duration_s"]
    list_filter = ["state", "job", "triggered_by"]
    list_select_related = ["job"]
    search_fields = ["=id"]
    show_full_result_count = False  # a second COUNT(*) over millions of runs buys nothing here
    fields = (
        "id", "job", "state", "triggered_by", "actor", "queued_at", "dispatched_at", "started_at", "finished_at",
        "log_level", "parameters", "replay_of", "scheduled_for", "canceled_by", "last_seq", "log",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="log")
    def log(self, obj: Run) -> str:
        return format_html('<a href="/api/v1/runs/{}/logs.txt">logs.txt</a> ({} lines)', obj.pk, obj.last_seq)


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("run", "seq", "ts", "level", "step", "message")
    list_filter = ["level"]
    list_select_related = ["run"]
    search_fields = ["=run__id"]
    show_full_result_count = False  # the biggest table: never count it twice
    readonly_fields = list_display


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_id"]
    list_filter = ["actor", "action", "object_type", "at"]
    search_fields = ["object_id", "actor"]
    date_hierarchy = "at"
    readonly_fields = ["at", "actor", "action", "object_type", "object_id", "diff"]

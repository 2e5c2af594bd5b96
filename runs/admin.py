"""Admin for what happened (runs with their steps, log lines: read-only), for the site
settings (one row, every change audited), and the "trigger" action of the jobs' admin.

Runs are written only by the services; here they can be looked at, never edited.
"""

from __future__ import annotations

from typing import Any

import redis
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import ReadOnlyMixin, audit_url
from core.audit import actor_label, audit_record
from core.errors import InputError
from core.roles import OPERATOR, has_role
from jobs.admin import JobAdmin
from jobs.models import Job
from jobs.services import diff, mask_webhook

from .models import LogLine, Run, SiteSettings, StepRun
from .scheduler_lock import lock_status
from .services import run_trigger


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
        "log_level", "parameters", "replay_of", "scheduled_for", "canceled_by", "last_seq", "log", "audit",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="log")
    def log(self, obj: Run) -> str:
        return format_html('<a href="/api/v1/runs/{}/logs.txt">logs.txt</a> ({} lines)', obj.pk, obj.last_seq)

    @admin.display(description="audit")
    def audit(self, obj: Run) -> str:
        return format_html('<a href="{}">audit events of this run</a>', audit_url("run", obj.pk))


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("run", "seq", "ts", "level", "step", "message")
    list_filter = ["level"]
    list_select_related = ["run"]
    search_fields = ["=run__id"]
    show_full_result_count = False  # the biggest table: never count it twice
    readonly_fields = list_display


SETTINGS_FIELDS = (
    "retention_days", "cancel_grace_s", "heartbeat_timeout_s", "notify_on", "notify_emails", "notify_webhook",
)  # fmt: skip


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    """The one settings row: no list, no add, no delete; every saved change is an audit
    event with its diff (`{field: [old, new]}`)."""

    fieldsets = (
        ("Retention", {"fields": ("retention_days",)}),
        ("Steps", {"fields": ("cancel_grace_s", "heartbeat_timeout_s")}),
        (
            "Notification defaults",
            {"fields": ("notify_on", "notify_emails", "notify_webhook"), "description": "for jobs that set none"},
        ),
        ("Scheduler leader lock", {"fields": ("scheduler_lock",)}),
        (None, {"fields": ("updated_at", "history")}),
    )
    readonly_fields = ("scheduler_lock", "updated_at", "history")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row = SiteSettings.current()
        return HttpResponseRedirect(reverse("admin:runs_sitesettings_change", args=[row.pk]))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> SiteSettings | None:
        if object_id != "1":
            return None
        return SiteSettings.objects.get_or_create(pk=1)[0]  # fresh, not the per-process cached copy

    def save_model(self, request: HttpRequest, obj: SiteSettings, form: Any, change: bool) -> None:
        before = _settings_snapshot(SiteSettings.objects.select_for_update().get_or_create(pk=1)[0])
        super().save_model(request, obj, form, change)
        changes = diff(before, _settings_snapshot(obj))
        if changes:
            audit_record(actor=actor_label(request.user), action="update", obj=obj, diff=changes)

    @admin.display(description="history")
    def history(self, obj: SiteSettings) -> str:
        return format_html('<a href="{}">changes to these settings</a>', audit_url("sitesettings", str(obj.pk)))

    @admin.display(description="held by")
    def scheduler_lock(self, obj: SiteSettings) -> str:
        try:
            status = lock_status()
        except redis.RedisError as exc:
            return f"unknown: Redis unreachable ({exc}); no scheduler can lead until it is back"
        if status is None:
            return "nobody: no scheduler is running (start one with `python manage.py scheduler`)"
        held_s = (timezone.now() - status.acquired_at).total_seconds()
        return (
            f"{status.holder} · took the lock at {status.acquired_at:%Y-%m-%d %H:%M:%S} UTC ({held_s:,.0f} s ago)"
            f" · TTL {status.ttl_s:.1f} s left, renewed on every tick"
        )


def _settings_snapshot(row: SiteSettings) -> dict[str, Any]:
    snapshot = {name: getattr(row, name) for name in SETTINGS_FIELDS}
    snapshot["notify_webhook"] = mask_webhook(row.notify_webhook)  # the audit trail never holds its secret
    return snapshot


# jobs may not import runs (it is to runs' left), so the action that starts a run is added
# here, to the jobs' own admin, which is registered again with it.
class TriggerJobAdmin(JobAdmin):
    actions = ["trigger_jobs"]

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, OPERATOR)

    @admin.action(description="Trigger selected jobs", permissions=["trigger"])
    def trigger_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                run, _ = run_trigger(job_id=job.pk, triggered_by=f"user:{request.user.username}", actor=request.user)
            except InputError as exc:
                self.message_user(request, f'job "{job.pk}" not triggered: {exc.detail}', messages.ERROR)
                continue
            link = reverse("admin:runs_run_change", args=[run.pk])
            self.message_user(request, format_html('job "{}": run <a href="{}">{}</a> queued', job.pk, link, run.pk))


admin.site.unregister(Job)
admin.site.register(Job, TriggerJobAdmin)

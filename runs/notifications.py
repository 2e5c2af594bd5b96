"""Run notifications: who is told about a run's end, what they are told, and the record
of each delivery on the run.

A job's own `notify_on`, `notify_emails` and `notify_webhook` win; each one left empty
falls back to the site default (SiteSettings, editable in the admin): a job with no
notification settings is notified on FAILED, by the site's addresses and webhook.

`_finish_run` calls `notify_run_end`, which sends one Celery task per channel by name,
after commit, on NOMAFLOW_NOTIFY_QUEUE. The worker (workers/notify.py) builds the
message here, delivers it with retries, and reports back through `notification_sent`
or `notification_failed`: a log line on the run, and an audit event for a failure. A
notification never changes the run's state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from celery import current_app as celery_app  # the project's app (nomaflow/__init__.py): no app imports nomaflow
from django.conf import settings
from django.db import transaction

from core.audit import audit_record
from jobs.models import Job
from jobs.services import safe_host

from . import logstore
from .choices import LogLevel, StepState
from .links import run_link
from .models import Run, SiteSettings

NOTIFY_TASK = "workers.notify"
EMAIL = "email"
WEBHOOK = "webhook"
CHANNELS = (EMAIL, WEBHOOK)
ERROR_MAX_CHARS = 2000  # the structured field; a step error can be a page of SQL
TEXT_ERROR_MAX_CHARS = 300  # the one-line summary a chat client shows


@dataclass(frozen=True)
class Targets:
    """Where a job's notifications go, job settings merged over the site defaults."""

    states: frozenset[str]
    emails: tuple[str, ...]
    webhook: str

    def channels_for(self, state: str) -> list[str]:
        """The channels that have somewhere to deliver a run ending in `state`."""
        if state not in self.states:
            return []
        return [channel for channel, to in ((EMAIL, self.emails), (WEBHOOK, self.webhook)) if to]


@dataclass(frozen=True)
class Notification:
    """What every channel carries about one run's end."""

    job: str
    job_name: str
    run_id: str
    state: str
    failed_step: str | None
    error: str
    url: str
    triggered_by: str
    canceled_by: str | None
    finished_at: str | None

    @property
    def text(self) -> str:
        """One line, readable as is in mail subjects, chat messages and logs."""
        head = f"nomaflow: job {self.job} run {self.run_id} {self.state}"
        if self.failed_step:
            head += f" at step {self.failed_step}"
        if self.error:
            head += f": {_shorten(' '.join(self.error.split()), TEXT_ERROR_MAX_CHARS)}"
        return f"{head}\n{self.url}"


def resolve_targets(job: Job, site: SiteSettings) -> Targets:
    """Merge a job's notification settings over the site's: an empty job field means
    "use the site default" (so a job cannot subscribe to nothing while the site does)."""
    states = job.notify_on or site.notify_on or []
    return Targets(
        states=frozenset(str(state).upper() for state in states),
        emails=tuple(_unique(job.notify_emails or site.notify_emails or [])),
        webhook=job.notify_webhook or site.notify_webhook or "",
    )


def notify_run_end(run: Run) -> None:
    """Send, after commit, one notification task per channel due for `run`'s end state.

    Called by `_finish_run` once the run is terminal. A run nobody subscribed to costs
    nothing in the broker, and no query when a step's end read the run: its job's
    notification settings come with it (StepRun.finish_and_read_run; the site settings
    are cached). If the broker cannot be reached the error is logged, and the run's end
    is recorded all the same."""
    channels = channels_due(run)
    if channels:
        run_id = run.id
        transaction.on_commit(lambda: send_notify_tasks(run_id, channels), robust=True)


def channels_due(run: Run) -> list[str]:
    """The channels to notify of `run`'s end, by its job's settings over the site's."""
    return resolve_targets(run.job, SiteSettings.current()).channels_for(run.state)


def send_notify_tasks(run_id: str, channels: list[str]) -> None:
    # Ids only: addresses and the webhook URL (a secret for Slack) are read by the worker.
    for channel in channels:
        signature = celery_app.signature(NOTIFY_TASK, args=(run_id, channel), immutable=True)
        signature.set(queue=settings.NOMAFLOW_NOTIFY_QUEUE).apply_async()


def build_notification(run: Run) -> Notification:
    """The facts about `run`'s end that notifications carry (never its parameters)."""
    failed = run.steps.filter(state=StepState.FAILED).order_by("position").first()
    return Notification(
        job=run.job_id,
        job_name=run.job.name,
        run_id=run.id,
        state=run.state,
        failed_step=failed.name if failed else None,
        error=_shorten(failed.error, ERROR_MAX_CHARS) if failed else "",
        url=run_link(run.id),
        triggered_by=run.triggered_by,
        canceled_by=run.canceled_by,
        finished_at=run.finished_at.isoformat().replace("+00:00", "Z") if run.finished_at else None,
    )


def email_subject(note: Notification) -> str:
    where = f" at {note.failed_step}" if note.failed_step else ""
    return f"[nomaflow] {note.job}: run {note.state}{where}"


def email_body(note: Notification) -> str:
    rows = [
        ("Job", f"{note.job} ({note.job_name})"),
        ("Run", note.run_id),
        ("State", note.state),
        ("Failed step", note.failed_step or "-"),
        ("Error", note.error or "-"),
        ("Triggered by", note.triggered_by),
        *([("Canceled by", note.canceled_by)] if note.canceled_by else []),
        ("Finished", note.finished_at or "-"),
        ("Link", note.url),
    ]
    return "\n".join(f"{label}: {value}" for label, value in rows) + "\n"


def webhook_payload(note: Notification) -> dict[str, Any]:
    """A Slack-compatible body: receivers that know only `text` show that; others can
    read the structured fields beside it."""
    return {"text": note.text, **asdict(note)}


def describe(channel: str, targets: Targets) -> str:
    """Where a channel delivers, as safe to show in a log line ("" for nowhere): a
    webhook URL is reduced to its host (Slack's carry their secret in the path)."""
    if channel == EMAIL:
        return ", ".join(targets.emails)
    return safe_host(targets.webhook) if targets.webhook else ""


def notification_sent(*, run_id: str, channel: str, to: str) -> None:
    """Note a delivery on the run's log: `notified by email to a@x, b@y`."""
    logstore.write(run_id, [logstore.entry(LogLevel.INFO, f"notified by {channel} {_preposition(channel)} {to}")])


@transaction.atomic
def notification_failed(*, run_id: str, channel: str, to: str, attempts: int, error: str) -> None:
    """Record a delivery that gave up: a WARNING line on the run and an audit event.
    The run's state is left as it is."""
    message = f"notification by {channel} failed after {attempts} attempts: {error}"
    logstore.write(run_id, [logstore.entry(LogLevel.WARNING, message)])
    diff = {"channel": channel, "to": to, "attempts": attempts, "error": error}
    audit_record(actor="system", action="notify_failed", obj=Run(pk=run_id), diff=diff)


def _preposition(channel: str) -> str:
    return "to" if channel == EMAIL else "at"


def _shorten(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item.strip() for item in items if isinstance(item, str) and item.strip()))

"""Notifications without a worker: who is told (job settings over site defaults), what
they are told, which tasks a run's end sends, and how a delivery that gave up is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from core.models import AuditEvent
from jobs.models import Job
from runs.models import Run, SiteSettings, StepRun
from runs.notifications import (
    EMAIL,
    WEBHOOK,
    build_notification,
    channels_due,
    describe,
    email_body,
    email_subject,
    notification_failed,
    notification_sent,
    notify_run_end,
    resolve_targets,
    webhook_payload,
)
from runs.services import run_cancel, run_trigger
from tests.factories import end_as, make_job
from tests.http_server import running_server
from tests.processes import free_port
from workers.notify import DeliveryError, post_webhook, send_email

Capture = Any  # pytest-django's django_capture_on_commit_callbacks
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # pytest-django swaps in locmem
HOOK = "https://hooks.example.com/services/T000/B000/very-secret-token"


@pytest.fixture(autouse=True)
def fresh_site_settings() -> Iterator[None]:
    SiteSettings.forget()  # the cached row may be one a rolled-back test saved
    yield
    SiteSettings.forget()


def site(**fields: Any) -> SiteSettings:
    row = SiteSettings.current()
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return SiteSettings.current()


def failed_run(job: Job, error: str = "RuntimeError: boom") -> Run:
    run, _ = run_trigger(job_id=job.id, triggered_by="user:otto", overrides={"params": {"token": "s3cr3t-param"}})
    run = end_as(run, "SUCCEEDED", "FAILED", "PENDING")
    StepRun.objects.filter(run=run, name="F0002").update(error=error)
    return run


def three_steps(**job_fields: Any) -> Job:
    noop = {"callable": "workers.builtins:noop"}
    return make_job(noop, noop, noop, params={"token": "default"}, **job_fields)


def test_a_job_without_settings_uses_the_site_defaults(db: None) -> None:
    targets = resolve_targets(three_steps(), site(notify_emails=["ops@example.com"], notify_webhook=HOOK))

    assert targets.states == {"FAILED"}
    assert targets.emails == ("ops@example.com",)
    assert targets.webhook == HOOK


def test_each_job_setting_replaces_the_site_default_on_its_own(db: None) -> None:
    job = three_steps(notify_on=["failed", "CANCELED"], notify_emails=["a@example.com", "a@example.com", " "])
    targets = resolve_targets(job, site(notify_emails=["ops@example.com"], notify_webhook=HOOK))

    assert targets.states == {"FAILED", "CANCELED"}
    assert targets.emails == ("a@example.com",)  # replaced, not added to; duplicates and blanks dropped
    assert targets.webhook == HOOK  # the job left it empty: the site's


def test_the_default_subscription_is_failed_only(db: None) -> None:
    targets = resolve_targets(three_steps(notify_emails=["a@example.com"], notify_webhook=HOOK), site())

    assert targets.channels_for("FAILED") == [EMAIL, WEBHOOK]
    assert targets.channels_for("SUCCEEDED") == []
    assert targets.channels_for("CANCELED") == []


def test_a_subscribed_state_with_nowhere_to_send_sends_nothing(db: None) -> None:
    assert resolve_targets(three_steps(notify_on=["SUCCEEDED"]), site()).channels_for("SUCCEEDED") == []


def test_the_notification_names_job_run_state_failed_step_error_and_link(db: None) -> None:
    run = failed_run(three_steps(name="Nightly sales"))

    with override_settings(NOMAFLOW_BASE_URL="https://flow.example.com/"):
        note = build_notification(run)

    link = f"https://flow.example.com/nomaflow/runs/{run.id}"
    assert (note.job, note.job_name, note.run_id, note.state) == (run.job_id, "Nightly sales", run.id, "FAILED")
    assert (note.failed_step, note.error, note.url) == ("F0002", "RuntimeError: boom", link)
    assert note.triggered_by == "user:otto"
    assert note.text == f"nomaflow: job {run.job_id} run {run.id} FAILED at step F0002: RuntimeError: boom\n{link}"
    assert email_subject(note) == f"[nomaflow] {run.job_id}: run FAILED at F0002"
    body = email_body(note)
    for line in ["State: FAILED", "Failed step: F0002", "Error: RuntimeError: boom", f"Link: {link}", f"Run: {run.id}"]:
        assert line in body


def test_the_webhook_body_is_slack_text_plus_structured_fields_and_no_parameters(db: None) -> None:
    note = build_notification(failed_run(three_steps()))

    payload = webhook_payload(note)

    assert payload["text"] == note.text
    assert {"job", "run_id", "state", "failed_step", "error", "url"} <= payload.keys()
    assert "s3cr3t-param" not in repr(payload)  # the run's parameters are never sent


def test_a_long_error_is_one_short_line_in_the_text_and_bounded_in_the_field(db: None) -> None:
    note = build_notification(failed_run(three_steps(), error="line one\nline two " + "x" * 5000))

    first_line = note.text.splitlines()[0]
    assert "line one line two" in first_line and len(first_line) < 500
    assert note.error.startswith("line one\nline two") and len(note.error) == 2000


def test_a_canceled_run_says_who_canceled_and_has_no_failed_step(db: None) -> None:
    run, _ = run_trigger(job_id=three_steps().id, triggered_by="api")
    run = run_cancel(run_id=run.id, by="user:otto")

    note = build_notification(Run.objects.get(pk=run.id))

    assert (note.state, note.failed_step, note.error, note.canceled_by) == ("CANCELED", None, "", "user:otto")
    assert "Canceled by: user:otto" in email_body(note)


def test_a_webhook_is_described_by_its_host_only() -> None:
    targets = resolve_targets(
        Job(notify_webhook=HOOK), SiteSettings(notify_on=["FAILED"], notify_emails=["ops@example.com"])
    )
    assert describe(WEBHOOK, targets) == "hooks.example.com"
    assert describe(EMAIL, targets) == "ops@example.com"


def test_a_failed_run_is_due_on_each_channel_and_registers_one_send_after_commit(
    db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    run = failed_run(three_steps(notify_emails=["a@example.com"], notify_webhook=HOOK))

    with django_capture_on_commit_callbacks() as callbacks:
        notify_run_end(run)

    assert channels_due(run) == [EMAIL, WEBHOOK]
    assert len(callbacks) == 1


def test_a_succeeded_run_with_defaults_sends_nothing(db: None, django_capture_on_commit_callbacks: Capture) -> None:
    job = three_steps(notify_emails=["a@example.com"], notify_webhook=HOOK)
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    run = end_as(run, "SUCCEEDED", "SUCCEEDED", "SUCCEEDED")

    with django_capture_on_commit_callbacks() as callbacks:
        notify_run_end(run)

    assert channels_due(run) == []
    assert callbacks == []


def test_a_delivery_that_gave_up_is_a_warning_line_and_an_audit_event_and_the_state_stays(db: None) -> None:
    run = failed_run(three_steps())
    before = run.last_seq

    notification_failed(run_id=run.id, channel=WEBHOOK, to="hooks.example.com", attempts=4, error="HTTP 500 from x")

    run.refresh_from_db()
    line = run.log_lines.get(seq=before + 1)
    assert (line.level, line.step, line.message) == (
        "WARNING",
        "",
        "notification by webhook failed after 4 attempts: HTTP 500 from x",
    )
    assert run.state == "FAILED"
    event = AuditEvent.objects.get(action="notify_failed", object_type="run", object_id=run.id)
    assert event.actor == "system"
    assert event.diff == {"channel": "webhook", "to": "hooks.example.com", "attempts": 4, "error": "HTTP 500 from x"}


def test_a_delivery_is_an_info_line_naming_the_recipients(db: None) -> None:
    run = failed_run(three_steps())

    notification_sent(run_id=run.id, channel=EMAIL, to="a@example.com, b@example.com")

    last = run.log_lines.order_by("-seq").first()
    assert last is not None
    assert (last.level, last.message) == ("INFO", "notified by email to a@example.com, b@example.com")


def test_a_webhook_error_names_the_host_and_never_the_secret_path(db: None) -> None:
    note = build_notification(failed_run(three_steps()))
    port = free_port()  # nothing listens there

    with pytest.raises(DeliveryError) as refused:
        post_webhook(note, f"http://127.0.0.1:{port}/services/T000/very-secret-token")
    with running_server() as server, pytest.raises(DeliveryError) as answered:
        post_webhook(note, f"{server.base}/api/status/500/very-secret-token")

    assert str(refused.value) == f"could not reach 127.0.0.1:{port}: [Errno 111] Connection refused"
    assert str(answered.value) == f"HTTP 500 from 127.0.0.1:{server.server_address[1]}"


def test_a_mail_server_that_refuses_is_a_delivery_error_naming_it(db: None) -> None:
    note = build_notification(failed_run(three_steps()))
    port = free_port()

    with override_settings(EMAIL_BACKEND=SMTP_BACKEND, EMAIL_HOST="127.0.0.1", EMAIL_PORT=port):
        with pytest.raises(DeliveryError) as refused:
            send_email(note, ("a@example.com",))

    assert str(refused.value) == f"mail server 127.0.0.1:{port}: [Errno 111] Connection refused"

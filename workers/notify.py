"""Delivering a run's notification on one channel: email through Django's mail settings,
or a JSON POST to a webhook. What is said, and to whom, comes from runs/notifications.py;
the task in workers/tasks.py retries a delivery that raised DeliveryError."""

from __future__ import annotations

import logging
import re
import smtplib

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import DatabaseError

from jobs.services import safe_host
from runs.models import Run, SiteSettings
from runs.notifications import (
    EMAIL,
    WEBHOOK,
    Notification,
    build_notification,
    describe,
    email_body,
    email_subject,
    notification_failed,
    notification_sent,
    resolve_targets,
    webhook_payload,
)

logger = logging.getLogger(__name__)
# A retry waits in a worker's memory, unacknowledged; Redis hands such a message to
# another worker once it is older than the visibility timeout (1 h), so stay well below.
RETRY_DELAY_MAX_S = 600.0
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")


class DeliveryError(Exception):
    """A delivery that did not go through and may on a later try. Its message names the
    cause and the host, never a secret (no webhook path, no credentials)."""


def attempt_delivery(run_id: str, channel: str, *, attempt: int, last: bool) -> bool:
    """Try once to deliver `run_id`'s notification on `channel`. Returns True if it
    failed and should be tried again; after the `last` attempt a failure is recorded on
    the run (a WARNING line and an audit event) instead."""
    try:
        return _attempt(run_id, channel, attempt=attempt, last=last)
    except DatabaseError:
        # PostgreSQL restarted or unreachable: Celery's Django fixup drops the broken
        # connection after this task, so the retry starts on a fresh one. (A failure
        # after the delivery itself means a second delivery: at least once, not at most.)
        if last:
            raise
        logger.warning("notification of run %s by %s: database error; retrying", run_id, channel, exc_info=True)
        return True


def _attempt(run_id: str, channel: str, *, attempt: int, last: bool) -> bool:
    run = Run.objects.select_related("job").filter(pk=run_id).first()
    if run is None:
        return False  # deleted (retention) before we got to it: nobody left to tell about
    targets = resolve_targets(run.job, SiteSettings.current())
    to = describe(channel, targets)
    if not to:
        return False  # the job or the site stopped notifying there since the run ended
    try:
        _deliver(channel, build_notification(run), targets.emails, targets.webhook)
    except DeliveryError as exc:
        if not last:
            return True
        notification_failed(run_id=run_id, channel=channel, to=to, attempts=attempt, error=str(exc))
        return False
    notification_sent(run_id=run_id, channel=channel, to=to)
    return False


def retry_delay(retries: int) -> float:
    """Exponential backoff after the `retries`-th retry: base, 2×base, 4×base …"""
    return float(min(settings.NOMAFLOW_NOTIFY_RETRY_BACKOFF_S * 2**retries, RETRY_DELAY_MAX_S))


def _deliver(channel: str, note: Notification, emails: tuple[str, ...], webhook: str) -> None:
    if channel == EMAIL:
        send_email(note, emails)
    elif channel == WEBHOOK:
        post_webhook(note, webhook)
    else:
        raise ValueError(f"unknown notification channel {channel!r} (known: {EMAIL}, {WEBHOOK})")


def send_email(note: Notification, recipients: tuple[str, ...]) -> None:
    """One message to every recipient, from DEFAULT_FROM_EMAIL, over EMAIL_BACKEND."""
    message = EmailMessage(email_subject(note), email_body(note), to=list(recipients))
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, unreachable, timed out
        raise DeliveryError(f"mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: {_reason(exc)}") from exc


def post_webhook(note: Notification, url: str) -> None:
    """POST the Slack-compatible JSON body; any 2xx answer is a delivery."""
    host = safe_host(url)
    timeout = settings.NOMAFLOW_NOTIFY_TIMEOUT_S
    try:
        response = requests.post(
            url, json=webhook_payload(note), timeout=timeout, allow_redirects=False,
            headers={"User-Agent": "nomaflow-notify"},
        )  # fmt: skip
    except requests.Timeout as exc:
        raise DeliveryError(f"no answer from {host} within {timeout:g} s") from exc
    except requests.RequestException as exc:
        # str(exc) would quote the URL, path included: that is where Slack keeps its secret.
        raise DeliveryError(f"could not reach {host}: {_reason(exc)}") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code} from {host}")


def _reason(exc: BaseException) -> str:
    """The cause in a few words: the OS error if there is one ("[Errno 111] Connection
    refused"), else the exception's type, plus the server's answer for SMTP errors."""
    if isinstance(exc, smtplib.SMTPResponseException):
        answer = exc.smtp_error
        return f"{exc.smtp_code} {answer.decode(errors='replace') if isinstance(answer, bytes) else answer}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"recipients refused: {', '.join(exc.recipients)}"
    found = _ERRNO.search(str(exc))
    return found.group(0).strip() if found else type(exc).__name__

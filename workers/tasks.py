"""Celery tasks. Thin: they take ids and hand over to the engine."""

from __future__ import annotations

import os

from celery import Task, shared_task
from django.conf import settings

from .engine import execute_step_run
from .metrics_server import SENT_AT_HEADER
from .notify import attempt_delivery, retry_delay


@shared_task(name="workers.execute_step", bind=True, ignore_result=True)
def execute_step(self: Task, step_run_id: int, run_id: str | None = None) -> None:
    """Execute one step of a run; the next step's task follows only if this one succeeded.
    `run_id` (sent since 2026-12; a message without it costs one more read) lets a worker
    reuse the run it read for an earlier step."""
    worker, sent_at = f"{self.request.hostname}:{os.getpid()}", self.request.get(SENT_AT_HEADER)
    if not execute_step_run(step_run_id, worker=worker, sent_at=sent_at, run_id=run_id):
        # Stop the chain here: the step failed, the run is over, or the step was not ours.
        self.request.chain = None


@shared_task(name="workers.notify", bind=True, ignore_result=True, max_retries=None)
def notify(self: Task, run_id: str, channel: str) -> None:
    """Deliver the notification of a run's end on one channel (`email` or `webhook`),
    retried NOMAFLOW_NOTIFY_RETRIES times with exponential backoff."""
    retries = self.request.retries
    last = retries >= settings.NOMAFLOW_NOTIFY_RETRIES
    if attempt_delivery(run_id, channel, attempt=retries + 1, last=last):
        raise self.retry(countdown=retry_delay(retries))

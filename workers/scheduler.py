"""The scheduler's duties, one tick at a time: fire cron runs, reap lost steps, and give
free slots to waiting runs. Several schedulers may run; the database keeps them honest:
a cron fire is unique on (job, scheduled_for), and reaping uses guarded transitions.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError
from django.utils import timezone

from jobs.errors import InputError
from jobs.models import Job
from jobs.schedule import fires_between
from runs import services

logger = logging.getLogger(__name__)


def tick(*, since: datetime, now: datetime | None = None) -> datetime:
    """Do one round of work for the period (since, now]; returns `now` for the next tick."""
    now = now or timezone.now()
    reaped = services.steps_reap_lost(now=now)
    if reaped:
        logger.warning("reaped %d step(s) whose worker was lost", reaped)
    services.runs_dispatch_waiting()
    services.runs_resume_stalled(now=now)
    for job in Job.objects.filter(enabled=True).exclude(schedule__isnull=True).exclude(schedule=""):
        for fire in fires_between(job, since, now):
            fire_cron(job, fire)
    return now


def fire_cron(job: Job, at: datetime) -> None:
    """Trigger `job` for the fire at `at`, once, however many schedulers saw it."""
    try:
        run, _ = services.run_trigger(job_id=job.id, triggered_by="cron", scheduled_for=at)
    except IntegrityError:
        return  # another scheduler fired it first
    except InputError as exc:
        logger.error("cron fire of %s at %s refused: %s", job.id, at.isoformat(), exc.detail)
        return
    delay = (timezone.now() - at).total_seconds()
    logger.info("fired %s for %s as run %s (%.3f s late)", job.id, at.isoformat(), run.id, delay)

"""The scheduler's duties: fire cron runs, reap lost steps, give free slots to waiting runs.

Any number of `manage.py scheduler` processes may run; the one holding the leader lock
(runs/scheduler_lock.py) does the work, tick after tick, and the others wait to take
over. Exactly one run per fire is the database's guarantee, not the lock's: a cron run
is unique on (job, scheduled_for). Where a job resumes is read from the database too
(its latest `scheduled_for`), so a new leader fires what fell into the handover gap,
late, and nothing twice.

Fires older than NOMAFLOW_SCHEDULER_MISFIRE_GRACE_S when the leader gets to them were
missed (the schedulers were down): the job's `catchup` decides, `skip` fires none of
them, `latest` only the most recent. Younger fires are merely late, and fire.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import metrics
from core.errors import InputError
from jobs.models import Job
from jobs.schedule import fires_between
from runs import logstore, selectors, services
from runs.choices import LogLevel
from runs.locking import retry_on_conflict
from runs.scheduler_lock import SchedulerLock

logger = logging.getLogger(__name__)

# Past this many missed fires we stop walking them one by one (a minutely job down for a
# week) and only look for the latest near the cutoff.
MAX_MISSED_WALKED = 10_000


class Scheduler:
    """One scheduler process: a follower until it holds the leader lock, then the leader."""

    def __init__(self, lock: SchedulerLock | None = None) -> None:
        self.lock = lock or SchedulerLock()
        # Per job, the time up to which this leader has dealt with fires; forgotten with
        # the lead, so that a new tenure starts from the database.
        self.done_until: dict[str, datetime] = {}

    def step(self, now: datetime | None = None) -> bool:
        """Renew or try to take the lead; if leading, do one tick. True if it led."""
        leads = self._lead()
        metrics.SCHEDULER_LEADER.set(int(leads))
        if not leads:
            return False
        tick(now=now, done_until=self.done_until)
        return True

    def stop(self) -> None:
        if self.lock.held:
            logger.warning("scheduler %s: giving up the lead (stopping)", self.lock.holder)
        self.lock.release()
        metrics.SCHEDULER_LEADER.set(0)

    def _lead(self) -> bool:
        if self.lock.held:
            if self.lock.renew():
                return True
            logger.warning("scheduler %s: lost the lead (the lock expired or Redis is unreachable)", self.lock.holder)
            return False
        if not self.lock.acquire():
            return False
        self.done_until.clear()
        logger.warning("scheduler %s: took the lead (lock TTL %g s)", self.lock.holder, self.lock.ttl_s)
        return True


def tick(*, now: datetime | None = None, done_until: dict[str, datetime] | None = None) -> None:
    """One round of the leader's work at `now`: reap lost steps, start waiting and stalled
    runs, and fire every cron fire that is due. `done_until` carries from one tick to the
    next how far each job's fires were dealt with (fires skipped by catchup leave no run)."""
    now = now or timezone.now()
    done_until = {} if done_until is None else done_until
    reaped = services.steps_reap_lost(now=now)
    if reaped:
        logger.warning("reaped %d step(s) whose worker was lost", reaped)
    services.runs_dispatch_waiting()
    services.runs_resume_stalled(now=now)
    for job in selectors.scheduled_jobs():
        done_until[job.id] = fire_due(job, after=_resume_point(job, done_until), now=now)


def _resume_point(job: Job, done_until: dict[str, datetime]) -> datetime:
    """Where `job`'s fires resume: the latest fire dealt with, by this leader or (in the
    database) by any; for a job that never fired, its creation."""
    known = [t for t in (done_until.get(job.id), job.last_fire) if t is not None]  # type: ignore[attr-defined]
    return max(known) if known else job.created_at


@dataclass
class Due:
    """The fires of a job in (after, now]: those missed (older than the grace) and those on time."""

    missed: int = 0
    latest_missed: datetime | None = None
    on_time: list[datetime] = field(default_factory=list)
    counted_all: bool = True  # False: `missed` is a lower bound (too many to walk)

    def skipped(self, count: int) -> str:
        """`3 missed fires skipped`, `1 missed fire skipped`, `9999+ missed fires skipped`."""
        return f"{count}{'' if self.counted_all else '+'} missed fire{'' if count == 1 else 's'} skipped"


def fire_due(job: Job, *, after: datetime, now: datetime) -> datetime:
    """Fire `job`'s fires in (after, now] by its catchup policy; returns `now`, up to which
    its fires are dealt with."""
    due = due_fires(job, after=after, now=now)
    note = ""
    if due.latest_missed is not None and job.catchup == Job.Catchup.LATEST:
        latest_note = f"catchup=latest, {due.skipped(due.missed - 1)}"
        logger.warning("%s: %s; firing the latest, of %s", job.id, latest_note, _iso(due.latest_missed))
        fire_cron(job, due.latest_missed, now=now, note=latest_note)
    elif due.latest_missed is not None:
        note = f"catchup=skip, {due.skipped(due.missed)}"
        logger.warning("%s: %s, the latest of %s", job.id, note, _iso(due.latest_missed))
    for at in due.on_time:
        fire_cron(job, at, now=now, note=note)
        note = ""  # told once, on the first run after the gap
    return now


def due_fires(job: Job, *, after: datetime, now: datetime) -> Due:
    """Sort `job`'s fires in (after, now] into missed ones and on-time ones."""
    cutoff = now - timedelta(seconds=settings.NOMAFLOW_SCHEDULER_MISFIRE_GRACE_S)
    due = Due()
    fires = fires_between(job, after, now)
    for at in fires:
        if at >= cutoff:
            due.on_time.append(at)
            continue
        due.missed += 1
        due.latest_missed = at
        if due.missed == MAX_MISSED_WALKED:
            # Too many to walk: jump to the last day before the cutoff and go on from there.
            fires = fires_between(job, max(at, cutoff - timedelta(days=1)), now)
            due.counted_all = False
            break
    else:
        return due
    for at in fires:
        if at >= cutoff:
            due.on_time.append(at)
        else:
            due.latest_missed = at
    return due


@retry_on_conflict
def fire_cron(job: Job, at: datetime, *, now: datetime | None = None, note: str = "") -> None:
    """Trigger `job` for the fire at `at`, once, however many schedulers saw it. The run's
    first log line says which fire it is, how late, and what catchup did (`note`)."""
    delay = ((now or timezone.now()) - at).total_seconds()
    first_line = " · ".join(filter(None, [f"cron fire for {_fire_time(job, at)}", f"{delay:.1f} s late", note]))
    try:
        # The outer transaction holds back run_trigger's on-commit dispatch until the first
        # line is stored: no worker line can come before it.
        with transaction.atomic():
            run, _ = services.run_trigger(job_id=job.id, triggered_by="cron", scheduled_for=at)
            logstore.write(run.id, [logstore.entry(LogLevel.INFO, first_line)])
            # After the commit: a retried or refused fire is not a fire.
            observe_lag = functools.partial(metrics.SCHEDULER_FIRE_LAG.labels(job.id).observe, delay)
            transaction.on_commit(observe_lag, robust=True)
    except IntegrityError:
        logger.info("%s: the fire of %s already has its run", job.id, _iso(at))
        return
    except InputError as exc:
        logger.error("%s: cron fire of %s refused: %s", job.id, _iso(at), exc.detail)
        return
    logger.info("%s: fired %s as run %s, %.3f s late", job.id, _iso(at), run.id, delay)


def _fire_time(job: Job, at: datetime) -> str:
    """`2026-11-28T02:30:00+00:00`, and the job's wall-clock time if it is not in UTC."""
    if job.timezone == "UTC":
        return at.isoformat()
    return f"{at.isoformat()} ({at.astimezone(ZoneInfo(job.timezone)):%Y-%m-%d %H:%M %Z} {job.timezone})"


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at else "?"

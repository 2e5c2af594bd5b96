"""The run lifecycle: every write that moves a run or a step happens here.

trigger → (wait for a slot) → dispatch a Celery chain → step_claim / step_finish for
each step → the run ends SUCCEEDED or FAILED → the next waiting run of the job gets
the freed slot. The worker engine (workers/engine.py) calls step_claim, step_started and
step_finish; the scheduler calls steps_reap_lost. Celery tasks are sent by name, after commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import current_app as celery_app  # the project's app (nomaflow/__init__.py): no app imports nomaflow
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, prefetch_related_objects
from django.db.models.functions import Now
from django.utils import timezone

from core.audit import audit_event, audit_record
from core.errors import InputError, StateConflict

from . import events, logstore, measures, notifications
from .cancel_signal import send_cancel_signal
from .choices import (
    REASON_DISABLED,
    REASON_UPSTREAM_FAILED,
    REASON_WORKER_LOST,
    LogLevel,
    RunState,
    StepState,
    reason_canceled_by,
)
from .job_lock import JobSlots, lock_job, lock_job_slots
from .locking import retry_on_conflict
from .models import Run, SiteSettings, StepRun
from .parameters import build_parameters, check_log_level, rerun_base
from .roundtrips import insert_together
from .transitions import RUN

EXECUTE_STEP_TASK = "workers.execute_step"


@retry_on_conflict
def run_trigger(
    *,
    job_id: str,
    overrides: dict[str, Any] | None = None,
    triggered_by: str,
    actor: Any = None,
    idempotency_key: str | None = None,
    scheduled_for: datetime | None = None,
) -> tuple[Run, bool]:
    """Create a run of `job_id` with `overrides` and start it when a slot is free.

    Returns (run, created). With an `idempotency_key` already used for this job the
    earlier run comes back with created=False; reusing the key with a different body
    is an InputError. Raises Job.DoesNotExist for an unknown job.
    """
    overrides = {} if overrides is None else overrides
    request_hash = _hash(overrides)
    try:
        with transaction.atomic():
            job = lock_job(job_id)
            if idempotency_key:
                earlier = Run.objects.filter(job_id=job_id, idempotency_key=idempotency_key).first()
                if earlier:
                    return _idempotent_replay(earlier, request_hash), False
            run = _create_run(
                job_id, slots=job, steps=job.steps, base=job.base(), overrides=overrides, log_level=job.log_level,
                audit=("trigger", {"overrides": overrides}), triggered_by=triggered_by, actor=actor,
                scheduled_for=scheduled_for, idempotency_key=idempotency_key, request_hash=request_hash,
            )  # fmt: skip
    except IntegrityError:
        # A concurrent identical request won the race for the key or the cron fire.
        earlier = Run.objects.filter(job_id=job_id, idempotency_key=idempotency_key).first()
        if idempotency_key and earlier:
            return _idempotent_replay(earlier, request_hash), False
        raise
    return run, True


@retry_on_conflict
def run_replay(*, run_id: str, overrides: dict[str, Any] | None = None, triggered_by: str, actor: Any = None) -> Run:
    """Start a new run from a finished run's snapshot, with `overrides` on top.

    `overrides` takes what a trigger takes, plus `rerun`: "failed_step" (only the step
    that failed) or "from_failed_step" (it and every enabled step after it). The new run
    links back through `replay_of`; the original is never modified. Raises
    Run.DoesNotExist, StateConflict for a run still in flight, or InputError.
    """
    if not isinstance(overrides, dict | None):
        raise InputError("the request body must be a JSON object of overrides (params, steps, log_level, rerun)")
    overrides = dict(overrides or {})
    rerun = overrides.pop("rerun", None)
    with transaction.atomic():
        original = Run.objects.select_for_update().get(pk=run_id)  # orders us with run_cancel
        if not original.is_terminal:
            raise StateConflict(
                f"run {original.id} is {original.state}; only a finished run can be replayed (wait, or cancel it first)"
            )
        slots = lock_job_slots(original.job_id)
        steps = list(original.steps.order_by("position"))
        base = rerun_base(original, steps, rerun) if rerun is not None else original.parameters
        diff = {"replay_of": original.id, "overrides": overrides, "rerun": rerun}
        run = _create_run(
            original.job_id, slots=slots, steps=steps, base=base, overrides=overrides, log_level=original.log_level,
            audit=("replay", diff), triggered_by=triggered_by, actor=actor, replay_of=original,
        )  # fmt: skip
    return run


def step_claim(*, step_run_id: int, worker: str, run_id: str | None = None) -> StepRun | None:
    """Claim a step for `worker`, reading its run (`run_id`: as the step's message says) unless
    this process has it; None if it was already claimed or the run is over."""
    step_run = StepRun(pk=step_run_id)
    if not step_run.claim(worker=worker, run=_runs_seen.pop(run_id, None) if run_id else None):
        return None
    _runs_seen[step_run.run_id] = step_run.run
    while len(_runs_seen) > 64:
        _runs_seen.popitem(last=False)
    return step_run


# The runs this process executes steps of, newest last: a run's snapshot never changes, so
# a chain's later steps need not read it again. Only immutable fields are to be trusted, and
# `state` for "has this run started" (once RUNNING, never QUEUED again).
_runs_seen: OrderedDict[str, Run] = OrderedDict()


def step_started(step_run: StepRun) -> None:
    """After the claim, the run is RUNNING and both are announced. Safe to call again, so a
    worker retries it alone when its connection dies here (the claim is committed). The
    run is the claim's (StepRun.claim): its state tells whether this step starts it."""
    run = step_run.run
    if run.state == RunState.QUEUED and run.mark_running(at=step_run.started_at):
        measures.run_started_after_commit(run)
        events.publish_run(run)
    events.publish_step(step_run)


def step_retrying(*, step_run: StepRun) -> None:
    StepRun.objects.filter(pk=step_run.pk).update(attempts=step_run.attempts + 1)
    step_run.attempts += 1


@retry_on_conflict
def step_finish(
    *, step_run: StepRun, state: StepState, reason: str = "", error: str = "", traceback: str = "",
    at: datetime | None = None, lines: Sequence[logstore.Entry] = (),
) -> bool:  # fmt: skip
    """Record a step's end (and its last `lines`, in the same transaction); on failure
    stop the run. Returns True if the chain should go on to the next step."""
    with transaction.atomic():
        end = step_run.finish_and_read_run(
            state, reason=reason, error=error, traceback=traceback, at=at
        )  # locks the run first
        if end is None:
            return False  # the step had already ended (the reaper, a cancel): nothing of ours is stored
        run = end.run
        stored = logstore.write(step_run.run_id, list(lines))
        measures.step_finished_after_commit(step_run, run.job_id, len(stored))
        events.publish_step(step_run, last_seq=stored[-1]["seq"] if stored else None)
        ending: RunState | None
        if run.canceled_by:
            ending = None  # the steps decide, read under the run's lock that end() took
        elif state != StepState.SUCCEEDED:
            ending = RunState.FAILED
        elif not end.has_pending_steps:
            ending = RunState.SUCCEEDED
        else:
            return run.state == RunState.RUNNING
        prefetch_related_objects([run], "steps")  # once for the verdict, the pending steps and the run frame
        _finish_run(run, ending or run.ending_after_cancel())
        return False


@retry_on_conflict
def run_cancel(*, run_id: str, by: str) -> Run:
    """Cancel a run for `by` (`user:<name>`). Steps that never started end CANCELED at
    once; a running step is signalled and its worker finishes the run as CANCELED. A cancel
    that stops nothing (the last step was already finishing) ends the run SUCCEEDED, with
    `canceled_by` kept (Run.ending_after_cancel).

    A second cancel of a run still winding down is accepted and changes nothing.
    Raises Run.DoesNotExist, or StateConflict if the run has already finished.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.is_terminal:
            raise StateConflict(f"run {run.id} already ended {run.state}; only QUEUED or RUNNING runs can be canceled")
        if run.canceled_by:
            return run
        Run.objects.filter(pk=run.pk).update(canceled_by=by)
        run.canceled_by = by
        audit_record(actor=by, action="cancel", obj=run, diff={"state": run.state})
        _revoke(_cancel_pending(run, reason_canceled_by(by)))
        if run.steps.filter(state=StepState.RUNNING).exists():
            transaction.on_commit(lambda: send_cancel_signal(run.id, by))
        else:
            _finish_run(run, run.ending_after_cancel())
    return run


def steps_reap_lost(*, now: datetime | None = None) -> int:
    """Fail RUNNING steps whose worker stopped heartbeating, and their runs.

    Safe with several schedulers: the guarded finish lets exactly one of them win. The
    cutoff is on the database's clock, as the heartbeats are (`now`: another instant).
    """
    timeout = SiteSettings.current().heartbeat_timeout_s
    cutoff = (now or Now()) - timedelta(seconds=timeout)
    reaped = 0
    lost = StepRun.objects.filter(state=StepState.RUNNING, heartbeat_at__lt=cutoff).select_related("run")
    for step_run in lost:
        error = f"no heartbeat from worker {step_run.worker or '?'} for more than {timeout:g} s"
        # A run being canceled whose worker died is still a cancel, not a failure.
        by = step_run.run.canceled_by
        state, reason = (StepState.CANCELED, reason_canceled_by(by)) if by else (StepState.FAILED, REASON_WORKER_LOST)
        lines = [
            logstore.entry(LogLevel.ERROR, f"step {step_run.name} · worker lost: {error}", step_run.name),
            logstore.entry(LogLevel.INFO, _end_line(step_run, state), step_run.name),
        ]
        step_finish(step_run=step_run, state=state, reason=reason, error=error, lines=lines)
        reaped += 1
    return reaped


def runs_resume_stalled(*, now: datetime | None = None) -> int:
    """Send again the steps of runs that stopped moving: active, dispatched, nothing
    running, steps pending, and no step ended for NOMAFLOW_STALL_S. That is what a lost
    message looks like (Redis down when a step ended, or restarted without persistence).
    A message that was only slow costs nothing: the claim refuses the duplicate."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.NOMAFLOW_STALL_S)
    steps = StepRun.objects.filter(run=OuterRef("pk"))
    stalled = Run.objects.filter(state__in=RUN.active, dispatched_at__lt=cutoff).filter(
        ~Exists(steps.filter(state=StepState.RUNNING)),
        ~Exists(steps.filter(finished_at__gte=cutoff)),
        Exists(steps.filter(state=StepState.PENDING)),
    )
    return sum(_resume(run, now) for run in stalled)


@retry_on_conflict
def _resume(run: Run, now: datetime) -> bool:
    """Send a stalled run's pending steps again; False if another scheduler got there first."""
    with transaction.atomic():
        if not Run.objects.filter(pk=run.pk, dispatched_at=run.dispatched_at).update(dispatched_at=now):
            return False
        pending = list(run.steps.filter(state=StepState.PENDING).order_by("position"))
        stalled_s = settings.NOMAFLOW_STALL_S
        message = f"run stalled with no step moving for {stalled_s:g} s; sending {pending[0].name} again"
        logstore.write(run.id, [logstore.entry(LogLevel.WARNING, message)])
        transaction.on_commit(functools.partial(_send_chain, pending))
    return True


def runs_dispatch_waiting() -> None:
    """Give free slots to waiting runs of every job (housekeeping safety net)."""
    waiting_jobs = Run.objects.filter(state=RunState.QUEUED, dispatched_at__isnull=True).values_list(
        "job_id", flat=True
    )
    for job_id in set(waiting_jobs):
        _dispatch_waiting_alone(job_id)


def _end_line(step_run: StepRun, state: str) -> str:
    started = step_run.started_at or timezone.now()
    return logstore.end_line(step_run.name, state, (timezone.now() - started).total_seconds())


def _create_run(
    job_id: str, *, slots: JobSlots, steps: Sequence[Any], base: dict[str, Any], overrides: dict[str, Any],
    log_level: str, audit: tuple[str, dict[str, Any]], **fields: Any,
) -> Run:  # fmt: skip
    """Create the run, its StepRuns from step definitions (a job's steps, or the StepRuns
    of a run being replayed: both carry name, type, position, queue and retry settings)
    and the `audit` event (action, diff), in one round trip. The caller holds the job's
    row lock, with its `slots` counted under it."""
    if not steps:
        raise InputError(f'job "{job_id}" has no steps; add at least one step', {"steps": ["no steps"]})
    parameters = build_parameters(
        job_id=job_id, base=base, overrides=overrides, step_types={s.name: s.type for s in steps}
    )
    log_level = check_log_level(overrides.get("log_level", log_level))
    start_now = slots.start_now
    run = Run(
        job_id=job_id, parameters=parameters, log_level=log_level, dispatched_at=timezone.now() if start_now else None,
        **fields,
    )  # fmt: skip
    step_runs = [
        StepRun(
            run=run, position=step.position, name=step.name, type=step.type, queue=step.queue,
            retries=step.retries, retry_delay_s=step.retry_delay_s, timeout_s=step.timeout_s,
            **_initial_state(parameters["steps"][step.name]["enabled"]),
        )
        for step in steps
    ]  # fmt: skip
    action, diff = audit
    insert_together([run], step_runs, [audit_event(actor=run.triggered_by, action=action, obj=run, diff=diff)])
    measures.run_created_after_commit(run)
    if start_now:
        pending = [sr for sr in step_runs if sr.state == StepState.PENDING]
        transaction.on_commit(lambda: _send_chain(pending))
    return run


def _initial_state(enabled: bool) -> dict[str, Any]:
    if enabled:
        return {"state": StepState.PENDING, "task_id": str(uuid.uuid4())}
    return {"state": StepState.CANCELED, "reason": REASON_DISABLED}


@retry_on_conflict
def _dispatch_waiting_alone(job_id: str) -> None:
    with transaction.atomic():
        _dispatch_waiting(job_id)


def _dispatch_waiting(job_id: str) -> None:
    """Start as many waiting runs as the job has free slots, under the job's row lock. A
    waiting run locked by someone else is being canceled: skipped, not waited for (the
    lock order, runs.locking), and its canceller hands the slot on when it commits."""
    slots = lock_job_slots(job_id)
    if not slots.waiting or slots.free <= 0:
        return
    waiting = Run.objects.filter(job_id=job_id, state=RunState.QUEUED, dispatched_at__isnull=True)
    for run in waiting.order_by("id").select_for_update(skip_locked=True)[: slots.free]:
        Run.objects.filter(pk=run.pk).update(dispatched_at=timezone.now())
        step_runs = list(run.steps.filter(state=StepState.PENDING).order_by("position"))
        transaction.on_commit(functools.partial(_send_chain, step_runs))


def _send_chain(step_runs: list[StepRun]) -> None:
    """Send the first step's task carrying the rest as its Celery chain: the message field
    `chain` (protocol v2, last step first) that `celery.chain` would build, without the
    canvas machinery on the trigger's path."""
    first, *rest = step_runs
    later = [
        celery_app.signature(EXECUTE_STEP_TASK, args=(sr.id,), kwargs={"run_id": sr.run_id}, immutable=True).set(
            queue=sr.queue, task_id=sr.task_id
        )
        for sr in reversed(rest)
    ]
    celery_app.send_task(
        EXECUTE_STEP_TASK, args=(first.id,), kwargs={"run_id": first.run_id}, queue=first.queue,
        task_id=first.task_id, chain=later,
    )  # fmt: skip


def _finish_run(run: Run, state: RunState) -> None:
    """End `run` as `state`; a canceled run's `state` comes from Run.ending_after_cancel."""
    if state == RunState.FAILED:
        _cancel_pending(run, REASON_UPSTREAM_FAILED)
    if run.canceled_by:
        logstore.write(run.id, [logstore.entry(LogLevel.INFO, logstore.cancel_line(run.canceled_by, state))])
    if run.finish(state):
        measures.run_finished_after_commit(run, state)
        events.publish_run(run)
        notifications.notify_run_end(run)  # after commit, only to the channels subscribed to `state`
        _dispatch_waiting(run.job_id)


def _cancel_pending(run: Run, reason: str) -> list[StepRun]:
    # run.steps.all(): at a step's end they are prefetched (step_finish), and the run frame's
    # summary, made from the same instances, shows what this cancels.
    pending = [step for step in run.steps.all() if step.state == StepState.PENDING]
    canceled = [step for step in pending if step.finish(StepState.CANCELED, reason=reason)]
    for step in canceled:
        events.publish_step(step)
    return canceled


def _revoke(step_runs: list[StepRun]) -> None:
    """Tell workers to drop these steps' queued messages (the claim would refuse them anyway)."""
    task_ids = [step.task_id for step in step_runs if step.task_id]
    if task_ids:
        transaction.on_commit(lambda: celery_app.control.revoke(task_ids))


def _idempotent_replay(run: Run, request_hash: str) -> Run:
    if run.request_hash != request_hash:
        raise InputError(
            "this Idempotency-Key was already used with a different body; use a new key for a new run",
            {"Idempotency-Key": ["already used with a different body"]},
        )
    return run


def _hash(overrides: Any) -> str:
    return hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()

"""How one step runs on a worker: claim, start line, attempts with timeout and retries,
end line, finish. The run lifecycle around it lives in runs/services.py."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

from django.conf import settings
from django.db import DatabaseError
from django.db.models.functions import Now
from django.utils import timezone

from core.logs import log_context
from jobs.models import Connector
from jobs.templating import render_op_kwargs
from runs import events, logstore, measures, services
from runs.choices import REASON_TIMED_OUT, LogLevel, StepState, reason_canceled_by
from runs.models import Run, SiteSettings, StepRun
from workers import cancellation
from workers.runtime import DbThread, StepContext, StepLogger, library_logs_to, on_live_connection
from workers.steps import get_step_type
from workers.steps.base import ConnectorConfig, StepType

logger = logging.getLogger(__name__)
TERMINATED_EXIT_CODE = 75  # distinct in the pool's log: 'exited with exitcode 75'


@dataclass
class Outcome:
    state: StepState
    reason: str = ""
    error: str = ""
    traceback: str = ""
    at: datetime | None = None
    lines: list[logstore.Entry] = field(default_factory=list)  # the last lines, stored with the end


class WouldNotStop(Exception):
    """The step ignored its cancel (or timeout) for the whole grace period."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


@dataclass
class Execution:
    """What one step execution shares between its attempts, its heartbeat and its log."""

    step_run: StepRun
    run: Run
    db: DbThread
    log: StepLogger
    cancel: asyncio.Event
    ended_elsewhere: bool = False  # the reaper failed the step while this host was cut off


def execute_step_run(step_run_id: int, *, worker: str, sent_at: float | None = None, run_id: str | None = None) -> bool:
    """Run one StepRun to its end. Returns True if the chain should go on to the next step.
    `sent_at`: when the step's message was sent (epoch seconds), for the queued-time metric;
    `run_id`: the step's run, as the message says."""
    step_run = on_live_connection(services.step_claim, step_run_id=step_run_id, worker=worker, run_id=run_id)
    if step_run is None:
        return False  # already claimed, or the run is over: do nothing at all
    # Retried on its own: retrying the claim too would find the step taken (by us) and drop it.
    on_live_connection(services.step_started, step_run)
    measures.step_claimed(step_run, step_run.run.job_id, sent_at)
    with log_context(run_id=step_run.run_id, step_run_id=step_run.pk):  # LOG_FORMAT=json's ids
        outcome = asyncio.run(_execute(step_run, step_run.run))
    return on_live_connection(_finish, step_run, outcome)


def start_line(name: str, type_name: str, summary: str) -> str:
    """The framework line that opens a step: `step F0005 · type=sql_copy · mode=overwrite`."""
    return f"step {name} · type={type_name}" + (f" · {summary}" if summary else "")


def _finish(step_run: StepRun, outcome: Outcome) -> bool:
    return services.step_finish(
        step_run=step_run, state=outcome.state, reason=outcome.reason, error=outcome.error,
        traceback=outcome.traceback, at=outcome.at, lines=outcome.lines,
    )  # fmt: skip


async def _execute(step_run: StepRun, run: Run) -> Outcome:
    db = DbThread()
    log = StepLogger(run_id=run.id, step=step_run.name, debug=run.log_level == LogLevel.DEBUG, db=db)
    execution = Execution(step_run, run, db, log, cancellation.listener().watch(run.id))
    flusher = asyncio.create_task(log.run_flusher())
    heartbeat = asyncio.create_task(_heartbeat(execution))
    started = time.monotonic()
    try:
        with library_logs_to(log):
            outcome = await _attempts(execution)
    except WouldNotStop as stuck:
        await _terminate_process(execution, stuck.outcome, flusher, time.monotonic() - started)
    finally:
        cancellation.listener().forget(run.id)
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
    outcome.at = timezone.now()
    log.info(logstore.end_line(step_run.name, outcome.state, time.monotonic() - started))
    outcome.lines = await log.close(flusher)  # stored in the same transaction as the step's end
    await db.close()
    return outcome


async def _attempts(ex: Execution) -> Outcome:
    step_run, run, log = ex.step_run, ex.run, ex.log
    try:
        step_type = get_step_type(step_run.type)
        # The step type's param rules again: a run row written around validation is refused here too.
        snapshot = run.parameters["steps"][step_run.name]["op_kwargs"]
        op_kwargs = render_op_kwargs(snapshot, run.parameters["params"], step_type.param_rules)
        log.info(start_line(step_run.name, step_run.type, step_type.summary(op_kwargs)))
    except Exception as exc:
        log.info(start_line(step_run.name, step_run.type, ""))
        return _failed(log, exc)
    for attempt in range(1, step_run.retries + 2):
        ctx = StepContext(
            run_id=run.id, step=step_run.name, params=run.parameters["params"], op_kwargs=op_kwargs,
            log=log, load_connector=functools.partial(ex.db.call, load_connector), attempt=attempt,
        )  # fmt: skip
        outcome = await _attempt(ex, step_type, ctx)
        if outcome.state == StepState.SUCCEEDED or attempt > step_run.retries or ex.cancel.is_set():
            return outcome
        log.warning(f"retry {attempt}/{step_run.retries} in {step_run.retry_delay_s:g} s: {outcome.error}")
        await ex.db(services.step_retrying, step_run=step_run)
        if await _canceled_within(ex, step_run.retry_delay_s):
            return await _canceled(ex)
    raise AssertionError("unreachable")


async def _attempt(ex: Execution, step_type: StepType, ctx: StepContext) -> Outcome:
    """One try: the step's work races its timeout and the run's cancel."""
    work = asyncio.create_task(step_type.execute(ctx))
    canceled = asyncio.create_task(ex.cancel.wait())
    timeout_s = ex.step_run.timeout_s
    await asyncio.wait({work, canceled}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    canceled.cancel()
    if work.done():
        return _result(ex.log, work)
    if ex.cancel.is_set():
        outcome = await _canceled(ex)
    else:
        ex.log.error(f"timed out after {timeout_s:g} s")
        outcome = Outcome(StepState.FAILED, reason=REASON_TIMED_OUT, error=f"timed out after {timeout_s:g} s")
    await _stop(ex, work, ctx, outcome)
    return outcome


def _result(log: StepLogger, work: asyncio.Task[None]) -> Outcome:
    try:
        work.result()
    except Exception as exc:
        return _failed(log, exc)
    return Outcome(StepState.SUCCEEDED)


async def _stop(ex: Execution, work: asyncio.Task[None], ctx: StepContext, outcome: Outcome) -> None:
    """Cancel the step's work and give it the cancel grace (SiteSettings) to wind down."""
    ctx.cancel()  # sync code in a thread stops at its next ctx.check_canceled()
    work.cancel()  # async code gets CancelledError at its next await
    grace = (await ex.db(SiteSettings.current)).cancel_grace_s
    done, _ = await asyncio.wait({work}, timeout=grace)
    if not done:
        raise WouldNotStop(outcome)


async def _canceled(ex: Execution) -> Outcome:
    if ex.ended_elsewhere:  # the recorded end stands: nothing of this stop goes to the run's log
        return Outcome(StepState.CANCELED, reason="ended elsewhere")
    by = await ex.db(_canceled_by, ex.run.id) or "unknown"
    ex.log.warning(f"step {ex.step_run.name} canceled by {by}")
    return Outcome(StepState.CANCELED, reason=reason_canceled_by(by))


async def _canceled_within(ex: Execution, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ex.cancel.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _terminate_process(ex: Execution, outcome: Outcome, flusher: asyncio.Task[None], elapsed: float) -> NoReturn:
    """Record the step's end, then end this worker process: its thread cannot be stopped
    any other way. Celery's pool starts a fresh process in its place."""
    grace = (await ex.db(SiteSettings.current)).cancel_grace_s
    ex.log.warning(f"step {ex.step_run.name} did not stop within {grace:g} s; terminating worker process {os.getpid()}")
    ex.log.info(logstore.end_line(ex.step_run.name, outcome.state, elapsed))
    outcome.lines = await ex.log.close(flusher)
    outcome.at = timezone.now()
    await ex.db(_finish, ex.step_run, outcome)
    await ex.db(events.wait_until_sent)
    os._exit(TERMINATED_EXIT_CODE)


def _failed(log: StepLogger, exc: Exception) -> Outcome:
    # The error and traceback are stored and shown as they are: hide the step's secrets first.
    error = log.redact("".join(traceback.format_exception_only(exc)).strip())
    trace = log.redact(traceback.format_exc())
    log.error(error)
    log.debug(trace)
    return Outcome(StepState.FAILED, error=error, traceback=trace)


async def _heartbeat(ex: Execution) -> None:
    """Prove this worker is alive (the reaper fails steps that stop doing so) and look
    for a cancel the Redis signal did not bring."""
    while True:
        await asyncio.sleep(settings.NOMAFLOW_HEARTBEAT_INTERVAL_S)
        try:
            running, canceled_by = await ex.db(_beat, ex.step_run.pk, ex.run.id)
        except DatabaseError as exc:  # the database is away: keep beating, it may come back in time
            logger.warning("heartbeat of step %s failed: %s", ex.step_run.name, exc)
            continue
        if not running:
            # Ended without us: the reaper failed it as `worker lost` while this host was cut
            # off. Stop the work (its outcome is refused by the guarded end) and free the slot.
            logger.warning("step %s of run %s was ended elsewhere; stopping it", ex.step_run.name, ex.run.id)
            ex.ended_elsewhere = True
            ex.cancel.set()
        elif canceled_by:
            ex.cancel.set()


def _beat(step_run_id: int, run_id: str) -> tuple[bool, str | None]:
    """Whether the step is still RUNNING (its heartbeat stored), and who canceled its run."""
    # The database's clock, which the reaper's cutoff is on too: a host's own clock may be behind.
    running = StepRun.objects.filter(pk=step_run_id, state=StepState.RUNNING).update(heartbeat_at=Now())
    return bool(running), _canceled_by(run_id)


def _canceled_by(run_id: str) -> str | None:
    return Run.objects.filter(pk=run_id).values_list("canceled_by", flat=True).first()


def load_connector(name: str) -> ConnectorConfig:
    """Read one connector (on the DB thread): only the steps that use one pay for it."""
    connector = Connector.objects.filter(name=name).first()
    if connector is None:
        known = ", ".join(Connector.objects.values_list("name", flat=True)) or "none"
        raise LookupError(f'connector "{name}" does not exist (known: {known})')
    return ConnectorConfig(connector.name, connector.kind, connector.url, connector.options)

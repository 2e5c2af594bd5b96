"""How one step runs on a worker: claim, start line, attempts with timeout and retries,
end line, finish. The run lifecycle around it lives in runs/services.py."""

from __future__ import annotations

import asyncio
import time
import traceback
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from jobs.models import Connector
from jobs.templating import render
from runs import services
from runs.choices import REASON_TIMED_OUT, LogLevel, StepState
from runs.models import Run, StepRun
from workers.runtime import DbThread, StepContext, StepLogger
from workers.steps import get_step_type
from workers.steps.base import ConnectorConfig, StepType


@dataclass
class Outcome:
    state: StepState
    reason: str = ""
    error: str = ""
    traceback: str = ""
    at: datetime | None = None


def execute_step_run(step_run_id: int, *, worker: str) -> bool:
    """Run one StepRun to its end. Returns True if the chain should go on to the next step."""
    step_run = services.step_start(step_run_id=step_run_id, worker=worker)
    if step_run is None:
        return False  # already claimed, or the run is over: do nothing at all
    outcome = asyncio.run(_execute(step_run, step_run.run))
    return services.step_finish(
        step_run=step_run, state=outcome.state, reason=outcome.reason, error=outcome.error,
        traceback=outcome.traceback, at=outcome.at,
    )  # fmt: skip


def start_line(name: str, type_name: str, summary: str) -> str:
    """The framework line that opens a step: `step F0005 · type=sql_copy · mode=overwrite`."""
    return f"step {name} · type={type_name}" + (f" · {summary}" if summary else "")


async def _execute(step_run: StepRun, run: Run) -> Outcome:
    db = DbThread()
    log = StepLogger(run_id=run.id, step=step_run.name, debug=run.log_level == LogLevel.DEBUG, db=db)
    flusher = asyncio.create_task(log.run_flusher())
    heartbeat = asyncio.create_task(_heartbeat(step_run.pk, db))
    started = time.monotonic()
    try:
        outcome = await _attempts(step_run, run, log, db)
        outcome.at = timezone.now()
        log.info(services.end_line(step_run.name, outcome.state, time.monotonic() - started))
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await log.close(flusher)  # every line is stored before the step is marked terminal
        await db.close()
    return outcome


async def _attempts(step_run: StepRun, run: Run, log: StepLogger, db: DbThread) -> Outcome:
    try:
        step_type = get_step_type(step_run.type)
        op_kwargs = render(run.parameters["steps"][step_run.name]["op_kwargs"], run.parameters["params"])
        log.info(start_line(step_run.name, step_run.type, step_type.summary(op_kwargs)))
        connectors = await db(_load_connectors)
    except Exception as exc:
        log.info(start_line(step_run.name, step_run.type, ""))
        return _failed(log, exc)
    for attempt in range(1, step_run.retries + 2):
        ctx = StepContext(
            run_id=run.id, step=step_run.name, params=run.parameters["params"], op_kwargs=op_kwargs,
            log=log, connectors=connectors, attempt=attempt,
        )  # fmt: skip
        outcome = await _attempt(step_type, ctx, step_run.timeout_s, log)
        if outcome.state == StepState.SUCCEEDED or attempt > step_run.retries:
            return outcome
        log.warning(f"retry {attempt}/{step_run.retries} in {step_run.retry_delay_s:g} s: {outcome.error}")
        await db(services.step_retrying, step_run=step_run)
        await asyncio.sleep(step_run.retry_delay_s)
    raise AssertionError("unreachable")


async def _attempt(step_type: StepType, ctx: StepContext, timeout_s: float | None, log: StepLogger) -> Outcome:
    try:
        async with asyncio.timeout(timeout_s):
            await step_type.execute(ctx)
    except TimeoutError:
        ctx.cancel()  # a sync step still running in its thread stops at ctx.check_cancelled()
        log.error(f"timed out after {timeout_s:g} s")
        return Outcome(StepState.FAILED, reason=REASON_TIMED_OUT, error=f"timed out after {timeout_s:g} s")
    except Exception as exc:
        return _failed(log, exc)
    return Outcome(StepState.SUCCEEDED)


def _failed(log: StepLogger, exc: Exception) -> Outcome:
    error = "".join(traceback.format_exception_only(exc)).strip()
    trace = traceback.format_exc()
    log.error(error)
    log.debug(trace)
    return Outcome(StepState.FAILED, error=error, traceback=trace)


async def _heartbeat(step_run_id: int, db: DbThread) -> None:
    """Prove this worker is alive; the scheduler's reaper fails steps that stop doing so."""
    while True:
        await asyncio.sleep(settings.NOMAFLOW_HEARTBEAT_INTERVAL_S)
        await db(_beat, step_run_id)


def _beat(step_run_id: int) -> None:
    StepRun.objects.filter(pk=step_run_id, state=StepState.RUNNING).update(heartbeat_at=timezone.now())


def _load_connectors() -> dict[str, ConnectorConfig]:
    return {c.name: ConnectorConfig(c.name, c.kind, c.url, c.options) for c in Connector.objects.all()}

"""Celery tasks. Thin: they take ids and hand over to the engine."""

from __future__ import annotations

import os

from celery import Task, shared_task

from .engine import execute_step_run


@shared_task(name="workers.execute_step", bind=True, ignore_result=True)
def execute_step(self: Task, step_run_id: int) -> None:
    """Execute one step of a run; the next step's task follows only if this one succeeded."""
    if not execute_step_run(step_run_id, worker=f"{self.request.hostname}:{os.getpid()}"):
        # Stop the chain here: the step failed, the run is over, or the step was not ours.
        self.request.chain = None

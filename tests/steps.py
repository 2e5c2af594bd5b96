"""Python step callables used only by the tests (allowlisted in conftest.py, marked here)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from workers.steps.base import Context
from workers.steps.python import step_callable


@step_callable
def flaky(ctx: Context, marker: str, failures: int = 1) -> None:
    """Fail the first `failures` calls for `marker` (a file path), then succeed."""
    path = Path(marker)
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count < failures:
        raise RuntimeError(f"flaky failure {count + 1}")


@step_callable
def record(ctx: Context, path: str) -> None:
    """Append 'run_id step pid' to `path`: lets a test count executions across processes."""
    with open(path, "a") as fh:
        fh.write(f"{ctx.run_id} {ctx.step} {os.getpid()}\n")


@step_callable
def show_params(ctx: Context, **op_kwargs: object) -> None:
    ctx.log.info(f"params={sorted(ctx.params.items())!r}")
    ctx.log.info(f"op_kwargs={sorted(ctx.op_kwargs.items())!r}")


@step_callable
async def record_and_sleep(ctx: Context, path: str, seconds: float) -> None:
    """Record the start (see `record`), then sleep: a step to kill a worker under."""
    import asyncio

    record(ctx, path)
    await asyncio.sleep(seconds)


@step_callable
def cooperative(ctx: Context, marker: str, seconds: float = 60) -> None:
    """A sync loop that checks for cancel; writes `stopped` to `marker` when it ends."""
    import time

    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ctx.check_cancelled()  # the earlier spelling, as existing steps call it: still works
            time.sleep(0.01)
    finally:
        Path(marker).write_text("stopped")


def unmarked_helper(ctx: Context) -> None:
    """A public function without @step_callable: a python step may not name it."""


@step_callable
def log_like_a_library(ctx: Context, message: str) -> None:
    """Log through the standard `logging` module, as a library would, at every level."""
    library = logging.getLogger("tests.library")
    library.debug("debug %s", message)
    library.info("info %s", message)
    library.warning("warning %s", message)
    try:
        raise ValueError("boom")
    except ValueError:
        library.exception("failed %s", message)
    logging.getLogger("workers.runtime").warning("the worker's own record")

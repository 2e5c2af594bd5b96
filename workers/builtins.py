"""Built-in python step callables, for demos, smoke tests and troubleshooting.

Each is marked with @step_callable: a function added here without it cannot be named.
"""

from __future__ import annotations

import asyncio
import time

from workers.steps.base import Context
from workers.steps.python import step_callable


@step_callable
def noop(ctx: Context) -> None:
    """Do nothing, successfully."""


@step_callable
async def sleep(ctx: Context, seconds: float = 1.0) -> None:
    """Wait `seconds`; cancellable at once."""
    ctx.log.info(f"sleeping {seconds} s")
    await asyncio.sleep(seconds)


@step_callable
def busy(ctx: Context, seconds: float = 1.0) -> None:
    """Spin for `seconds` without ever yielding or checking for cancel (tests hard cancel)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


@step_callable
def echo(ctx: Context, message: str = "", level: str = "INFO") -> None:
    """Log `message` at `level` (DEBUG, INFO, WARNING or ERROR)."""
    getattr(ctx.log, level.lower())(message)


@step_callable
async def emit_lines(ctx: Context, count: int = 100, size: int = 80, rate: float | None = None) -> None:
    """Log `count` lines of about `size` characters, at `rate` lines/s if given."""
    started = time.monotonic()
    for index in range(1, count + 1):
        prefix = f"line {index} "
        ctx.log.info(prefix + "x" * max(0, size - len(prefix)))
        if rate:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif index % 1000 == 0:
            await asyncio.sleep(0)  # let the flusher and cancel watcher run


@step_callable
def fail(ctx: Context, message: str = "failed on purpose", when: bool = True) -> None:
    """Raise `message` (only if `when` is true, so a param can decide)."""
    if when:
        raise RuntimeError(message)

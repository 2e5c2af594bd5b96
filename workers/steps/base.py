"""The contract every step type implements, and the `ctx` interface it may use.

Step type modules are leaves: they import drivers, this module and plain-Python modules of
core and jobs (errors, templating, guards), never models.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from core.errors import StepConfigError
from jobs.templating import ParamRule


class StepCanceled(Exception):
    """Raised by `ctx.check_canceled()` once the step has been told to stop."""


StepCancelled = StepCanceled  # the earlier spelling, which existing steps may catch


@dataclass(frozen=True)
class ConnectorConfig:
    """A connector as the worker sees it: `${ENV_VAR}` references already resolved."""

    name: str
    kind: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


class StepLog(Protocol):
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...


class Context(Protocol):
    """What a step sees as `ctx` (read-only members, so any logger that fits StepLog will do)."""

    @property
    def run_id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def op_kwargs(self) -> dict[str, Any]: ...
    @property
    def log(self) -> StepLog: ...

    def connector(self, name: str) -> ConnectorConfig: ...
    def check_canceled(self) -> None: ...

    def check_cancelled(self) -> None: ...  # the earlier spelling (DESIGN.md), kept for existing steps


class StepType:
    """Base class: subclasses set `type_name` and implement the three methods."""

    type_name: ClassVar[str]
    # op_kwargs keys that name a connector, with the connector kinds they accept.
    connector_fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    # op_kwargs keys whose `{{ params.x }}` references are refused or escaped, by field name.
    param_rules: ClassVar[dict[str, ParamRule]] = {}

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        raise NotImplementedError

    def validate_for_job(self, job_id: str, op_kwargs: dict[str, Any]) -> None:
        """Checks that depend on which job the step belongs to (after validate); none by default."""

    def summary(self, op_kwargs: dict[str, Any]) -> str:
        return ""

    async def execute(self, ctx: Context) -> None:
        raise NotImplementedError


def reject_unknown(op_kwargs: dict[str, Any], type_name: str, options: tuple[str, ...]) -> None:
    """Raise a StepConfigError naming the first key of `op_kwargs` not among `options`."""
    unknown = sorted(set(op_kwargs) - set(options))
    if unknown:
        raise StepConfigError(unknown[0], f"is not an option of {type_name} (options: {', '.join(options)})")


def require(op_kwargs: dict[str, Any], key: str, kind: type | tuple[type, ...], hint: str) -> Any:
    """Return op_kwargs[key] if present and of `kind`, else raise a StepConfigError."""
    if key not in op_kwargs:
        raise StepConfigError(key, f"is required ({hint})")
    return expect(op_kwargs, key, kind, hint)


def expect(op_kwargs: dict[str, Any], key: str, kind: type | tuple[type, ...], hint: str) -> Any:
    value = op_kwargs.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise StepConfigError(key, f"expected {hint}, got {type(value).__name__} {value!r:.60}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


async def run_in_thread(fn: Any, /, *args: Any, on_cancel: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
    """Run blocking `fn` in a daemon thread and await its result.

    When canceled, call `on_cancel` at once (to interrupt the blocking call: close a
    socket, interrupt a query), then keep waiting for the thread to return, so the step
    only counts as stopped once it has; a second cancel stops the wait. Unlike
    `asyncio.to_thread`, a thread that never returns does not hold up the event loop's
    shutdown: the worker's grace period deals with it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result, error = fn(*args, **kwargs), None
        except BaseException as exc:  # handed to the awaiting task, not swallowed
            result, error = None, exc
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=f"step-{getattr(fn, '__name__', 'sync')}", daemon=True).start()
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if on_cancel is not None:
            with contextlib.suppress(Exception):  # already finished or closed: nothing to stop
                on_cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(future)
        raise

"""`python`: call a step callable as `fn(ctx, **kwargs)`.

Only a function marked with `@step_callable`, in a module under
NOMAFLOW_PYTHON_STEP_MODULES, can be named: the module's other functions (helpers,
imports, maintenance code) stay out of a job editor's reach. `@step_callable(job=…)`
keeps a function to one job (the built-in housekeeping job's purge).

Async functions run on the step's event loop (canceled at their next `await`);
plain functions run in a thread and stop at `ctx.check_canceled()`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.conf import settings

from core.errors import StepConfigError

from .base import Context, StepType, require, run_in_thread

F = TypeVar("F", bound=Callable[..., Any])

# Every marked function → the one job that may name it, or None for any job.
_CALLABLES: dict[Callable[..., Any], str | None] = {}


@overload
def step_callable(fn: F, /) -> F: ...
@overload
def step_callable(*, job: str) -> Callable[[F], F]: ...
def step_callable(fn: F | None = None, /, *, job: str | None = None) -> F | Callable[[F], F]:
    """Mark `fn` as a function python steps may name; with `job=`, only that job's steps."""

    def mark(target: F) -> F:
        _CALLABLES[target] = job
        return target

    return mark if fn is None else mark(fn)


class PythonStep(StepType):
    type_name = "python"

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        fn = resolve_callable(require(op_kwargs, "callable", str, 'a string "module:function"'))
        try:
            inspect.signature(fn).bind(None, **_kwargs(op_kwargs))
        except TypeError as exc:
            raise StepConfigError("callable", f"{op_kwargs['callable']} cannot take these op_kwargs: {exc}") from None

    def validate_for_job(self, job_id: str, op_kwargs: dict[str, Any]) -> None:
        path = op_kwargs["callable"]
        only = _CALLABLES[resolve_callable(path)]
        if only is not None and only != job_id:
            raise StepConfigError("callable", f'{path} belongs to the built-in "{only}" job; no other job may name it')

    def summary(self, op_kwargs: dict[str, Any]) -> str:
        return f"callable={op_kwargs.get('callable', '?')}"

    async def execute(self, ctx: Context) -> None:
        fn = resolve_callable(ctx.op_kwargs["callable"])
        kwargs = _kwargs(ctx.op_kwargs)
        if inspect.iscoroutinefunction(fn):
            await fn(ctx, **kwargs)
        else:
            await run_in_thread(fn, ctx, **kwargs)


def _kwargs(op_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in op_kwargs.items() if key != "callable"}


def resolve_callable(path: str) -> Callable[..., Any]:
    """Import `module:function`: a module under NOMAFLOW_PYTHON_STEP_MODULES, a marked function."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise StepConfigError("callable", f'"{path}" is not of the form "module:function"')
    allowed = settings.NOMAFLOW_PYTHON_STEP_MODULES
    if not any(module_name == root or module_name.startswith(root + ".") for root in allowed):
        raise StepConfigError(
            "callable",
            f'module "{module_name}" is not allowed; add it to NOMAFLOW_PYTHON_STEP_MODULES '
            f"(allowed: {', '.join(allowed)})",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StepConfigError("callable", f'cannot import module "{module_name}": {exc}') from None
    fn = getattr(module, attr, None)
    if not callable(fn) or attr.startswith("_"):
        raise StepConfigError("callable", f'module "{module_name}" has no public function "{attr}"')
    # Only plain functions are keys: an instance with a custom __eq__ cannot pass for one.
    if not inspect.isfunction(fn) or fn not in _CALLABLES:
        raise StepConfigError(
            "callable", f"{path} is not a step callable; mark it with @step_callable (from workers.steps.python)"
        )
    return fn

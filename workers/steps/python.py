"""`python`: call an allowlisted function as `fn(ctx, **kwargs)`.

Async functions run on the step's event loop (cancelled at their next `await`);
plain functions run in a thread and stop at `ctx.check_cancelled()`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from django.conf import settings

from .base import Context, StepConfigError, StepType, require, run_in_thread


class PythonStep(StepType):
    type_name = "python"

    def validate(self, op_kwargs: dict[str, Any]) -> None:
        fn = resolve_callable(require(op_kwargs, "callable", str, 'a string "module:function"'))
        try:
            inspect.signature(fn).bind(None, **_kwargs(op_kwargs))
        except TypeError as exc:
            raise StepConfigError("callable", f"{op_kwargs['callable']} cannot take these op_kwargs: {exc}") from None

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
    """Import `module:function`, refusing modules outside NOMAFLOW_PYTHON_STEP_MODULES."""
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
    return fn

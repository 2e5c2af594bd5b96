"""The step type registry: one module per type, found by `type_name`.

Adding a type is one new module here and one line in `_TYPES`.
"""

from __future__ import annotations

from .base import StepType
from .python import PythonStep
from .sql_query import SqlQueryStep

_TYPES: tuple[type[StepType], ...] = (PythonStep, SqlQueryStep)
REGISTRY: dict[str, StepType] = {cls.type_name: cls() for cls in _TYPES}


def get_step_type(type_name: str) -> StepType:
    try:
        return REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f'unknown step type "{type_name}" (known: {known})') from None

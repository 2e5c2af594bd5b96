"""The step type registry: every module in this package that defines a StepType subclass
contributes it, keyed by its `type_name`. Adding a type is one new module here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from .base import StepType


def _discover() -> dict[str, StepType]:
    found: dict[str, StepType] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, StepType) and cls is not StepType and cls.__module__ == module.__name__:
                found[cls.type_name] = cls()
    return dict(sorted(found.items()))


REGISTRY: dict[str, StepType] = _discover()


def get_step_type(type_name: str) -> StepType:
    try:
        return REGISTRY[type_name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise KeyError(f'unknown step type "{type_name}" (known: {known})') from None

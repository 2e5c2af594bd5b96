"""The step types a job's steps may name, as jobs validates them.

How a step type runs is the workers app's business (workers/steps); what jobs needs of one
to check a definition is the `StepTypeRules` below. The workers app registers every type it
discovers when Django starts (workers/apps.py), so any process with the apps loaded (web,
CLI, worker, tests) validates against the same types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .templating import ParamRule


class StepTypeRules(Protocol):
    """What validation reads of a step type (workers.steps.base.StepType provides it)."""

    @property
    def type_name(self) -> str: ...
    @property
    def connector_fields(self) -> Mapping[str, tuple[str, ...]]:
        """op_kwargs keys that name a connector, with the connector kinds they accept."""

    @property
    def param_rules(self) -> Mapping[str, ParamRule]:
        """op_kwargs keys whose `{{ params.x }}` references are refused or escaped, by field name."""

    def validate(self, op_kwargs: dict[str, Any]) -> None: ...
    def validate_for_job(self, job_id: str, op_kwargs: dict[str, Any]) -> None: ...


_REGISTRY: dict[str, StepTypeRules] = {}


def register(step_type: StepTypeRules) -> None:
    """Make `step_type` known under its `type_name` (again: the newest registration wins)."""
    _REGISTRY[step_type.type_name] = step_type


def known() -> dict[str, StepTypeRules]:
    """Every registered step type, by name, sorted."""
    return dict(sorted(_REGISTRY.items()))


def get_step_type(type_name: str) -> StepTypeRules:
    """The step type named `type_name`, or KeyError with a message listing the known ones."""
    try:
        return _REGISTRY[type_name]
    except KeyError:
        names = ", ".join(known()) or "none: is the workers app in INSTALLED_APPS?"
        raise KeyError(f'unknown step type "{type_name}" (known: {names})') from None

"""Validation of job definitions and step op_kwargs, shared by the API, admin, CLI and trigger.

Every check returns errors keyed by a dotted field path, with a message that names the
thing and the fix.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

from croniter import croniter

from core.errors import StepConfigError

from .models import Connector
from .step_types import get_step_type
from .templating import MissingParam, references, render_op_kwargs

Errors = dict[str, list[str]]
STEP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def check_schedule(schedule: str | None) -> Errors:
    if schedule and not croniter.is_valid(schedule):
        return {"schedule": [f'"{schedule}" is not a valid cron expression (e.g. "30 2 * * *")']}
    return {}


def check_timezone(name: str) -> Errors:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return {"timezone": [f'unknown timezone "{name}" (use an IANA name such as "Europe/Paris")']}
    return {}


def check_step_names(names: Iterable[str]) -> Errors:
    errors: Errors = {}
    seen: set[str] = set()
    for name in names:
        if not STEP_NAME.match(name or ""):
            errors[f"steps.{name}"] = [f'step name "{name}" must be 1-100 letters, digits, "_", "." or "-"']
        elif name in seen:
            errors[f"steps.{name}"] = [f'step name "{name}" is used twice; names are unique within a job']
        seen.add(name)
    return errors


def check_step(name: str, type_name: str, op_kwargs: Any, params: dict[str, Any], *, job_id: str) -> Errors:
    """Check one step of job `job_id`: its type and op_kwargs as they will run with `params`."""
    prefix = f"steps.{name}"
    try:
        step_type = get_step_type(type_name)
    except KeyError as exc:
        return {f"{prefix}.type": [f"step {name}: {exc.args[0]}"]}
    if not isinstance(op_kwargs, dict):
        return {f"{prefix}.op_kwargs": [f"step {name}: op_kwargs must be an object"]}
    try:
        rendered = render_op_kwargs(op_kwargs, params, step_type.param_rules)
        step_type.validate(rendered)
        step_type.validate_for_job(job_id, rendered)
    except MissingParam as exc:
        return {
            f"{prefix}.op_kwargs": [
                f"step {name}: refers to {{{{ params.{exc.name} }}}} but there is no param {exc.name}; "
                "add it to the job's params or pass it with the run"
            ]
        }
    except StepConfigError as exc:
        return {f"{prefix}.op_kwargs.{exc.field}": [f"step {name}: {exc.field} {exc.message}"]}
    return _check_connectors(name, step_type.connector_fields, rendered)


def _check_connectors(step: str, fields: Mapping[str, tuple[str, ...]], op_kwargs: dict[str, Any]) -> Errors:
    if not fields:
        return {}
    kinds = dict(Connector.objects.values_list("name", "kind"))
    for field, allowed in fields.items():
        wanted = op_kwargs.get(field)
        if wanted is None:
            continue
        if wanted not in kinds:
            known = ", ".join(sorted(kinds)) or "none yet"
            return {
                f"steps.{step}.op_kwargs.{field}": [
                    f'step {step}: connector "{wanted}" does not exist (known: {known})'
                ]
            }
        if kinds[wanted] not in allowed:
            return {
                f"steps.{step}.op_kwargs.{field}": [
                    f'step {step}: connector "{wanted}" is a {kinds[wanted]} connector; '
                    f"this field needs one of: {', '.join(allowed)}"
                ]
            }
    return {}


def referenced_params(op_kwargs: Any) -> set[str]:
    return references(op_kwargs)

"""The parameters snapshot of a run: base values, merged with the caller's overrides.

Shape: {"params": {...}, "steps": {"F0004": {"op_kwargs": {...}, "enabled": true}}}.
The base is the job's definition for a trigger and the original snapshot for a replay.
"""

from __future__ import annotations

import copy
from typing import Any

from core import bounds
from core.errors import InputError
from jobs.validation import Errors, check_step

from .choices import LogLevel, StepState
from .models import Run, StepRun

OVERRIDE_KEYS = {"params", "steps", "log_level"}
RERUN_CHOICES = ("failed_step", "from_failed_step")
STEP_OVERRIDE_KEYS = {"op_kwargs", "enabled"}


def overrides_touch_op_kwargs(overrides: dict[str, Any]) -> bool:
    steps = overrides.get("steps")
    return isinstance(steps, dict) and any(isinstance(o, dict) and "op_kwargs" in o for o in steps.values())


def build_parameters(
    *, job_id: str, base: dict[str, Any], overrides: dict[str, Any], step_types: dict[str, str]
) -> dict[str, Any]:
    """Merge `overrides` into `base` and check the result as job `job_id`'s; raise InputError on any problem."""
    if not isinstance(overrides, dict):
        raise InputError("the request body must be a JSON object of overrides (params, steps, log_level)")
    errors: Errors = {}
    unknown = sorted(set(overrides) - OVERRIDE_KEYS)
    if unknown:
        errors[unknown[0]] = [f'unknown field "{unknown[0]}"; overrides take params, steps and log_level']
    params = _merge_params(base["params"], overrides.get("params", {}), errors)
    steps = _merge_steps(base["steps"], overrides.get("steps", {}), errors)
    errors.update(_bounds_errors(params, steps))
    if errors:
        raise InputError.from_errors(errors)
    if not any(step["enabled"] for step in steps.values()):
        raise InputError("every step is disabled; enable at least one step", {"steps": ["no enabled step"]})
    for name, step in steps.items():
        if step["enabled"]:
            errors.update(check_step(name, step_types[name], step["op_kwargs"], params, job_id=job_id))
    if errors:
        raise InputError.from_errors(errors)
    return {"params": params, "steps": steps}


def check_log_level(value: Any) -> str:
    if value not in (LogLevel.INFO, LogLevel.DEBUG):
        raise InputError(f"log_level must be INFO or DEBUG, not {value!r}", {"log_level": ["must be INFO or DEBUG"]})
    return str(value)


def _bounds_errors(params: dict[str, Any], steps: dict[str, Any]) -> Errors:
    # The merged values, as the run would store them: overrides within bounds could still
    # push a job's values over them.
    errors = bounds.check_json(params, "params")
    for name, step in steps.items():
        errors.update(bounds.check_json(step["op_kwargs"], f"steps.{name}.op_kwargs"))
    return errors


def _merge_params(base: dict[str, Any], given: Any, errors: Errors) -> dict[str, Any]:
    if not isinstance(given, dict):
        errors["params"] = ["must be an object of name → value"]
        return dict(base)
    merged = copy.deepcopy(base)
    for name, value in given.items():
        if name in base and not _same_json_type(base[name], value):
            errors[f"params.{name}"] = [
                f"expected {_json_type(base[name])} like the job's default {base[name]!r:.40}, got {_json_type(value)}"
            ]
        merged[name] = value
    return merged


def _merge_steps(base: dict[str, Any], given: Any, errors: Errors) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    if not isinstance(given, dict):
        errors["steps"] = ['must be an object keyed by step name, e.g. {"F0004": {"enabled": false}}']
        return merged
    known = ", ".join(base) or "none"
    for name, override in given.items():
        field = f"steps.{name}"
        if name not in merged:
            errors[field] = [f'unknown step "{name}" (steps: {known})']
        elif not isinstance(override, dict):
            errors[field] = ['must be an object such as {"enabled": false}']
        elif set(override) - STEP_OVERRIDE_KEYS:
            errors[field] = [
                f'unknown field "{sorted(set(override) - STEP_OVERRIDE_KEYS)[0]}"; use op_kwargs or enabled'
            ]
        elif "op_kwargs" in override and not isinstance(override["op_kwargs"], dict):
            errors[f"{field}.op_kwargs"] = ["must be an object"]
        elif "enabled" in override and not isinstance(override["enabled"], bool):
            errors[f"{field}.enabled"] = ["must be true or false"]
        else:
            merged[name]["op_kwargs"].update(override.get("op_kwargs", {}))
            merged[name]["enabled"] = override.get("enabled", merged[name]["enabled"])
    return merged


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same_json_type(default: Any, value: Any) -> bool:
    return default is None or _json_type(default) == _json_type(value)


def rerun_base(original: Run, steps: list[StepRun], rerun: Any) -> dict[str, Any]:
    """The original snapshot with steps enabled for a "re-run the failed step" shortcut."""
    if rerun not in RERUN_CHOICES:
        choices = " or ".join(f'"{c}"' for c in RERUN_CHOICES)
        raise InputError(f"rerun must be {choices}, not {rerun!r}", {"rerun": [f"must be {choices}"]})
    stopped = stopped_step(steps)
    if stopped is None:
        raise InputError(f"run {original.id} has no failed step to re-run", {"rerun": ["no failed step in this run"]})
    base = copy.deepcopy(original.parameters)
    for step in steps:
        config = base["steps"][step.name]
        if rerun == "failed_step":
            config["enabled"] = step.name == stopped.name
        else:
            config["enabled"] = step.position >= stopped.position and (config["enabled"] or step.name == stopped.name)
    return base


def stopped_step(steps: list[StepRun]) -> StepRun | None:
    """The step where a run stopped, which the Replay shortcuts (`rerun`) start from: the
    failed one, or the one canceled mid-work."""
    for step in steps:
        if step.state == StepState.FAILED or (step.state == StepState.CANCELED and step.started_at):
            return step
    return None

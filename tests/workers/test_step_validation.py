"""validate() of the python and sql_query step types: clear errors naming the field; and
check_step's rules that depend on the job (python callables kept to one job)."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import StepConfigError
from jobs.validation import check_step
from runs.retention import HOUSEKEEPING_JOB_ID
from workers.steps import get_step_type


@pytest.mark.parametrize(
    ("type_name", "op_kwargs", "field", "text"),
    [
        ("python", {}, "callable", "is required"),
        ("python", {"callable": 3}, "callable", "expected a string"),
        ("python", {"callable": "noop"}, "callable", 'not of the form "module:function"'),
        ("python", {"callable": "subprocess:run"}, "callable", 'module "subprocess" is not allowed'),
        ("python", {"callable": "workers.builtinsx:noop"}, "callable", "is not allowed"),
        ("python", {"callable": "workers.builtins:nothing"}, "callable", 'no public function "nothing"'),
        ("python", {"callable": "tests.steps:unmarked_helper"}, "callable", "is not a step callable"),
        ("python", {"callable": "workers.builtins:step_callable"}, "callable", "mark it with @step_callable"),
        ("python", {"callable": "workers.builtins:Context"}, "callable", "is not a step callable"),
        (
            "python",
            {"callable": "workers.builtins:sleep", "second": 1},
            "callable",
            "unexpected keyword argument 'second'",
        ),
        ("sql_query", {"sql": "select 1"}, "connector", "is required"),
        ("sql_query", {"connector": "db"}, "sql", "is required"),
        ("sql_query", {"connector": "db", "sql": ""}, "sql", "non-empty"),
        ("sql_query", {"connector": "db", "sql": ["select 1", 2]}, "sql", "non-empty SQL strings"),
        ("sql_query", {"connector": "db", "sql": "select 1", "parameters": "x"}, "parameters", "expected an object"),
        ("sql_query", {"connector": "db", "sql": "select 1", "params": {}}, "params", "not an option of sql_query"),
    ],
)
def test_bad_op_kwargs_name_the_field(type_name: str, op_kwargs: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(StepConfigError) as refused:
        get_step_type(type_name).validate(op_kwargs)
    assert refused.value.field == field
    assert text in refused.value.message


def test_good_op_kwargs_pass() -> None:
    get_step_type("python").validate({"callable": "workers.builtins:sleep", "seconds": 2})
    get_step_type("sql_query").validate({"connector": "db", "sql": ["select 1"], "parameters": {"a": 1}})


def test_an_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(
        KeyError, match='unknown step type "shell" \\(known: http, ldap_sync, python, sql_copy, sql_query\\)'
    ):
        get_step_type("shell")


def test_an_unmarked_public_function_names_the_fix() -> None:
    with pytest.raises(StepConfigError) as refused:
        get_step_type("python").validate({"callable": "tests.steps:unmarked_helper"})

    assert str(refused.value) == (
        "callable: tests.steps:unmarked_helper is not a step callable; "
        "mark it with @step_callable (from workers.steps.python)"
    )


@pytest.mark.parametrize("name", ["noop", "sleep", "busy", "echo", "emit_lines", "fail"])
def test_every_documented_builtin_is_a_step_callable(name: str) -> None:
    assert check_step("F0001", "python", {"callable": f"workers.builtins:{name}"}, {}, job_id="any") == {}


PURGE = {"callable": "workers.housekeeping:purge_expired", "retention_days": 0}


def test_the_housekeeping_purge_is_refused_in_any_other_job() -> None:
    assert check_step("F0001", "python", PURGE, {}, job_id="nightly") == {
        "steps.F0001.op_kwargs.callable": [
            'step F0001: callable workers.housekeeping:purge_expired belongs to the built-in "housekeeping" job; '
            "no other job may name it"
        ]
    }


def test_the_housekeeping_job_may_name_its_purge() -> None:
    assert check_step("purge", "python", PURGE, {}, job_id=HOUSEKEEPING_JOB_ID) == {}


def test_a_sql_reference_is_refused_by_check_step_naming_the_field() -> None:
    errors = check_step("F0001", "sql_query", {"connector": "db", "sql": "select {{ params.x }}"}, {}, job_id="j")

    assert list(errors) == ["steps.F0001.op_kwargs.sql"]
    assert errors["steps.F0001.op_kwargs.sql"][0].startswith(
        "step F0001: sql must not contain {{ params.x }}: it would be pasted into SQL; bind it instead: "
    )

"""validate() of the python and sql_query step types: clear errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from workers.steps import get_step_type
from workers.steps.base import StepConfigError


@pytest.mark.parametrize(
    ("type_name", "op_kwargs", "field", "text"),
    [
        ("python", {}, "callable", "is required"),
        ("python", {"callable": 3}, "callable", "expected a string"),
        ("python", {"callable": "noop"}, "callable", 'not of the form "module:function"'),
        ("python", {"callable": "subprocess:run"}, "callable", 'module "subprocess" is not allowed'),
        ("python", {"callable": "workers.builtinsx:noop"}, "callable", "is not allowed"),
        ("python", {"callable": "workers.builtins:nothing"}, "callable", 'no public function "nothing"'),
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

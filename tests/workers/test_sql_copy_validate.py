"""sql_copy's op_kwargs checks: what validate() and a trigger refuse, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError, StepConfigError
from runs.models import StepRun
from runs.services import run_trigger
from tests.factories import ConnectorFactory, make_job
from workers.steps import get_step_type

GOOD = {"source": "a", "target": "b", "query": "SELECT 1 AS id", "table": "t", "mode": "append"}


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"source": None}, "source", "is required"),
        ({"target": 3}, "target", "expected the name of a postgres or sqlite connector"),
        ({"query": " ; "}, "query", "non-empty SQL query"),
        ({"mode": "upsert"}, "mode", '"upsert" is not a mode; use overwrite, append or merge'),
        ({"mode": None}, "mode", "is required"),
        ({"mode": "merge"}, "key", "is required for mode merge"),
        ({"key": "id"}, "key", "is only for mode merge, not append"),
        ({"mode": "merge", "key": "id", "columns": ["a", "b"]}, "key", 'column "id" is not among columns (a, b)'),
        ({"mode": "merge", "key": ["id", "id"]}, "key", "names a column twice"),
        ({"table": "a.b.c"}, "table", "is not a table name"),
        ({"table": 'x"; drop'}, "table", "is not a table name"),
        ({"columns": ["ok", "no-no"]}, "columns", "'no-no' is not a column name"),
        ({"columns": []}, "columns", "must name at least one column"),
        ({"batch_size": 0}, "batch_size", "must be between 1 and 1000000"),
        ({"batch_size": "10"}, "batch_size", "expected a whole number of rows"),
        ({"parameters": "x"}, "parameters", "expected an object (named) or a list"),
        ({"truncate": True}, "truncate", "is not an option of sql_copy"),
    ],
)
def test_bad_op_kwargs_name_the_field(changes: dict[str, Any], field: str, text: str) -> None:
    op_kwargs = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}

    with pytest.raises(StepConfigError) as refused:
        get_step_type("sql_copy").validate(op_kwargs)

    assert refused.value.field == field
    assert text in refused.value.message


def test_good_op_kwargs_pass_and_the_summary_names_the_mode() -> None:
    step = get_step_type("sql_copy")
    step.validate({**GOOD, "mode": "merge", "key": ["id"], "columns": ["id"], "table": "s.t", "batch_size": 5})
    assert step.summary({**GOOD, "mode": "merge"}) == "mode=merge"


def test_a_connector_of_the_wrong_kind_is_refused_at_trigger(db: None) -> None:
    ConnectorFactory(name="api", kind="http", url="http://127.0.0.1:1/")
    ConnectorFactory(name="b", kind="postgres")
    job = make_job({"type": "sql_copy", "op_kwargs": {**GOOD, "source": "api"}})

    with pytest.raises(InputError, match='connector "api" is a http connector'):
        run_trigger(job_id=job.id, triggered_by="api")
    assert not StepRun.objects.exists()

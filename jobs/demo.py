"""The demo job `make run` creates: a small ETL on a SQLite file, with a switch to fail.

Its SQL binds every param through `parameters` (`:name`), as every job must: a
`{{ params.x }}` inside `sql` is refused.

Written straight through the ORM and idempotent: loading it again puts the connector,
the job and its steps back to exactly this definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import transaction

from core import sqlite_guard
from core.errors import InputError

from .models import Connector, Job, Step
from .validation import Errors, check_step

CONNECTOR = "demo_db"
JOB_ID = "demo-etl"

PARAMS: dict[str, Any] = {"region": "north", "rows": 5, "amount": 10.5, "pause_s": 1, "fail": False}

STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("F0001", "python", {
        "callable": "workers.builtins:echo", "message": "loading {{ params.rows }} rows for {{ params.region }}",
    }),
    ("F0002", "sql_query", {
        "connector": CONNECTOR,
        "sql": "CREATE TABLE IF NOT EXISTS demo_sales ("
               "id INTEGER PRIMARY KEY, region TEXT NOT NULL, amount REAL NOT NULL, "
               "loaded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    }),
    ("F0003", "sql_query", {
        "connector": CONNECTOR,
        # Values are bound by the driver (:name), never pasted into the SQL.
        "sql": "INSERT INTO demo_sales (region, amount) "
               "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
               "SELECT :region, :amount * i FROM n",
        "parameters": {"region": "{{ params.region }}", "rows": "{{ params.rows }}", "amount": "{{ params.amount }}"},
    }),
    ("F0004", "python", {"callable": "workers.builtins:sleep", "seconds": "{{ params.pause_s }}"}),
    ("F0005", "sql_query", {
        "connector": CONNECTOR,
        "sql": "SELECT region, COUNT(*), SUM(amount) FROM demo_sales WHERE region = :region GROUP BY region",
        "parameters": {"region": "{{ params.region }}"},
    }),
    ("F0006", "python", {
        "callable": "workers.builtins:fail", "message": "failing on purpose because fail=true",
        "when": "{{ params.fail }}",
    }),
    ("F0007", "python", {"callable": "workers.builtins:echo", "message": "demo-etl done for {{ params.region }}"}),
]  # fmt: skip


@transaction.atomic
def demo_load(*, var_dir: Path) -> Job:
    """Create or update the `demo_db` connector (a SQLite file in `var_dir`) and `demo-etl`."""
    url = f"sqlite:///{Path(var_dir).resolve() / 'demo.sqlite3'}"
    # A var_dir outside NOMAFLOW_SQLITE_DIR would only fail at the first run: say so now.
    problems = sqlite_guard.url_errors(url)
    if problems:
        raise InputError.from_errors({f"connectors.{CONNECTOR}.url": problems})
    Connector.objects.update_or_create(
        name=CONNECTOR, defaults={"kind": Connector.Kind.SQLITE, "url": url, "options": {}}
    )
    job, _ = Job.objects.update_or_create(id=JOB_ID, defaults=_job_fields())
    # Runs copy their steps at trigger, so replacing the definitions touches no history.
    job.steps.all().delete()
    Step.objects.bulk_create(
        Step(job=job, position=i, name=name, type=kind, op_kwargs=kwargs)
        for i, (name, kind, kwargs) in enumerate(STEPS, start=1)
    )
    _check(job)
    return job


def _job_fields() -> dict[str, Any]:
    return {
        "name": "Demo ETL",
        "description": "Creates a table in var/demo.sqlite3, inserts params.rows rows for params.region, "
        "counts them. Trigger with fail=true to see a FAILED run.",
        "enabled": True,
        "params": PARAMS,
        "schedule": None,
    }


def _check(job: Job) -> None:
    # The demo must be a valid job; a broken definition should fail here, not at trigger.
    errors: Errors = {}
    for step in job.steps.all():
        errors.update(check_step(step.name, step.type, step.op_kwargs, job.params, job_id=job.id))
    if errors:
        raise InputError.from_errors(errors)

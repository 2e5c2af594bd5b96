"""A real worker started with LOG_FORMAT=json: what it logs is JSON, one object per line, and
the records logged while it executes a step carry that step's run_id and step_run_id."""

from __future__ import annotations

import json
import re
from typing import Any

from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import start_worker, wait_for, wait_terminal

QUEUE = "json-logs"


# A record in the text formats: ours (settings.LOGGING) or Celery's own.
TEXT_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ |\[\d{4}-\d\d-\d\d )")


def _records(output: str) -> list[dict[str, Any]]:
    """Every log record, each a JSON line. The other lines are what Celery prints itself,
    bypassing logging: its start-up banner and its shutdown notice, never a record."""
    lines = output.splitlines()
    assert not [line for line in lines if TEXT_RECORD.match(line)]
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_json_worker_logs_json_lines_with_the_ids_of_the_step_it_runs(transactional_db: None) -> None:
    job = make_job({"callable": "tests.steps:log_like_a_library", "message": "hi", "queue": QUEUE})
    worker = start_worker(queues=QUEUE, concurrency=1, name="json", LOG_FORMAT="json")
    try:
        run, _ = run_trigger(job_id=job.id, triggered_by="cli")
        assert wait_terminal(run).state == "SUCCEEDED"
        wait_for(lambda: "succeeded in" in worker.output(), what="Celery's task-succeeded record")
    finally:
        worker.stop()

    records = _records(worker.output())
    step_run = run.steps.get()
    by_message = {record["message"]: record for record in records}
    warning = by_message["warning hi"]  # a library's record, from the step's own thread
    assert (warning["level"], warning["logger"]) == ("WARNING", "tests.library")
    assert (warning["run_id"], warning["step_run_id"]) == (run.id, step_run.pk)
    failed = by_message["failed hi"]
    assert failed["run_id"] == run.id and failed["exception"].endswith("ValueError: boom")
    assert any(record["message"].endswith("ready.") for record in records)  # Celery's own records too
    # Outside a step's execution no record claims a run.
    assert "run_id" not in next(record for record in records if "succeeded in" in record["message"])

"""Library logging reaches the run log (workers.runtime.LibraryLogs), on a real worker:
records a step's code or its libraries send through `logging` are run log lines at their
level, as ctx.log lines are; the worker's own records are not."""

from __future__ import annotations

from runs.models import Run
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import Process, wait_terminal


def logged() -> list[tuple[str, str]]:
    job = make_job({"callable": "tests.steps:log_like_a_library", "message": "hello"}, log_level="DEBUG")
    run: Run = wait_terminal(run_trigger(job_id=job.id, triggered_by="api")[0], timeout=60)
    assert run.state == "SUCCEEDED"
    return list(run.log_lines.filter(step="F0001").order_by("seq").values_list("level", "message"))


def test_records_sent_through_logging_are_lines_of_the_step_at_their_level(worker: Process) -> None:
    lines = logged()
    library = [(level, message) for level, message in lines if message.startswith("tests.library: ")]

    # The worker's root logger passes INFO and up (celery -l info): a DEBUG record never gets this far.
    assert [(level, message.splitlines()[0]) for level, message in library] == [
        ("INFO", "tests.library: info hello"),
        ("WARNING", "tests.library: warning hello"),
        ("ERROR", "tests.library: failed hello"),
    ]
    assert "ValueError: boom" in library[-1][1]  # the exception's traceback comes with it
    assert not any("the worker's own record" in message for _, message in lines)

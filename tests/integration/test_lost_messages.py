"""A run whose next step's message was lost (Redis down or restarted when a step ended)
is sent again by the scheduler, and still runs each step once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from nomaflow.celery import app as celery_app
from runs.services import run_trigger, runs_resume_stalled
from tests.factories import make_job
from tests.processes import start_worker, wait_terminal

QUEUE = "lossy"


def test_a_run_whose_message_was_lost_is_resumed_once_it_stalls(transactional_db: None, tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    record = {"callable": "tests.steps:record", "path": str(ran), "queue": QUEUE}
    run = run_trigger(job_id=make_job(record, record).id, triggered_by="api")[0]
    with celery_app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge(QUEUE) == 1  # the message is gone

    assert runs_resume_stalled() == 0  # not stalled long enough yet
    later = timezone.now() + timedelta(seconds=settings.NOMAFLOW_STALL_S + 1)
    assert runs_resume_stalled(now=later) == 1
    assert runs_resume_stalled(now=later) == 0  # resent once per stall period, not per tick

    worker = start_worker(queues=QUEUE, concurrency=1, name="lossy")
    try:
        run = wait_terminal(run)
    finally:
        worker.stop()
    assert run.state == "SUCCEEDED"
    assert [line.split()[1] for line in ran.read_text().splitlines()] == ["F0001", "F0002"]
    assert run.log_lines.filter(level="WARNING", message__startswith="run stalled with no step moving").count() == 1

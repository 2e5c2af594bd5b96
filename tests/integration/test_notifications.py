"""Notifications end to end: a real step worker ends the run, a real notify worker
delivers to an SMTP server and a webhook receiver started here, and retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection

from core.models import AuditEvent
from jobs.models import Job
from runs.models import Run
from runs.services import run_trigger
from tests import processes
from tests.factories import make_job
from tests.processes import Process, start_worker, wait_for, wait_terminal
from tests.smtp_sink import SmtpSink, running_smtp_sink

ALWAYS = 10**9
APP_NAME = "nomaflow-test-notifier"  # names the notify worker's database sessions
RETRIES = 3  # 4 attempts in all
FAIL = {"callable": "workers.builtins:fail", "message": "boom in the warehouse"}
NOOP = {"callable": "workers.builtins:noop"}


class Receiver(ThreadingHTTPServer):
    """A webhook receiver: POST /hook/<name> answers 500 to the first `fail_first` posts
    to that name, 200 after; it keeps every JSON body it got, per name."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.fail_first: dict[str, int] = {}
        self.lock = threading.Lock()

    def url(self, name: str, fail_first: int = 0) -> str:
        self.fail_first[name] = fail_first
        return f"http://127.0.0.1:{self.server_address[1]}/hook/{name}"

    def got(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.posts.get(name, []))


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        name = self.path.removeprefix("/hook/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            posts = self.server.posts.setdefault(name, [])
            posts.append(body)
            status = 500 if len(posts) <= self.server.fail_first.get(name, 0) else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    with running_smtp_sink() as sink_and_port:
        yield sink_and_port


@pytest.fixture(scope="module")
def notifier(django_db_setup: None, smtp: tuple[SmtpSink, int], clean_redis: None) -> Iterator[Process]:
    """A worker on the notify queue only, pointed at the sink, retrying fast."""
    process = start_worker(
        queues="notify", concurrency=1, name="notifier",
        DATABASE_URL=f"{processes.test_env()['DATABASE_URL']}?application_name={APP_NAME}",
        EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp[1]), DEFAULT_FROM_EMAIL="nomaflow@test.example",
        NOMAFLOW_NOTIFY_RETRIES=str(RETRIES), NOMAFLOW_NOTIFY_RETRY_BACKOFF_S="0.05",
        NOMAFLOW_BASE_URL="https://flow.test.example",
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def sink(smtp: tuple[SmtpSink, int], notifier: Process, worker: Process) -> SmtpSink:
    return smtp[0]


def finished_run(*steps: dict[str, Any], **job_fields: Any) -> Run:
    job: Job = make_job(*steps, **job_fields)
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    return wait_terminal(run)


def log_line(run: Run, start: str) -> Any:
    return wait_for(lambda: run.log_lines.filter(message__startswith=start).first(), what=f"a line {start!r}")


def test_a_failed_run_reaches_the_mail_server_and_the_webhook(sink: SmtpSink, receiver: Receiver) -> None:
    run = finished_run(
        NOOP, FAIL, NOOP, notify_emails=["a@example.com", "b@example.com"], notify_webhook=receiver.url("ok")
    )
    assert run.state == "FAILED"
    link = f"https://flow.test.example/nomaflow/runs/{run.id}"

    [mail] = wait_for(lambda: sink.about(run.id), what="the mail")
    assert mail.sender == "nomaflow@test.example"
    assert sorted(mail.recipients) == ["a@example.com", "b@example.com"]
    assert mail.subject == f"[nomaflow] {run.job_id}: run FAILED at F0002"
    for line in ["State: FAILED", "Failed step: F0002", "Error: RuntimeError: boom in the warehouse", f"Link: {link}"]:
        assert line in mail.body

    [post] = wait_for(lambda: receiver.got("ok"), what="the webhook post")
    assert post["text"].startswith(f"nomaflow: job {run.job_id} run {run.id} FAILED at step F0002: RuntimeError: boom")
    expected = {"job": run.job_id, "run_id": run.id, "state": "FAILED", "failed_step": "F0002", "url": link}
    assert {key: post[key] for key in expected} == expected
    assert post["error"] == "RuntimeError: boom in the warehouse"

    assert log_line(run, "notified by email").message == "notified by email to a@example.com, b@example.com"
    assert log_line(run, "notified by webhook").message.startswith("notified by webhook at 127.0.0.1:")


def test_a_webhook_failing_twice_gets_a_third_post_that_succeeds(sink: SmtpSink, receiver: Receiver) -> None:
    run = finished_run(FAIL, notify_webhook=receiver.url("flaky", fail_first=2))

    log_line(run, "notified by webhook")

    posts = receiver.got("flaky")
    assert len(posts) == 3 and all(post == posts[0] for post in posts)
    assert not run.log_lines.filter(level="WARNING").exists()
    assert not AuditEvent.objects.filter(action="notify_failed", object_id=run.id).exists()


def test_a_webhook_that_always_fails_leaves_a_warning_and_an_audit_event(sink: SmtpSink, receiver: Receiver) -> None:
    run = finished_run(FAIL, notify_emails=["a@example.com"], notify_webhook=receiver.url("down", fail_first=ALWAYS))

    line = log_line(run, "notification by webhook failed")

    host = f"127.0.0.1:{receiver.server_address[1]}"
    assert line.level == "WARNING"
    assert line.message == f"notification by webhook failed after {RETRIES + 1} attempts: HTTP 500 from {host}"
    assert len(receiver.got("down")) == RETRIES + 1
    event = AuditEvent.objects.get(action="notify_failed", object_id=run.id)
    assert (event.actor, event.diff["channel"], event.diff["attempts"]) == ("system", "webhook", RETRIES + 1)
    run.refresh_from_db()
    assert (run.state, run.steps.get().state) == ("FAILED", "FAILED")
    assert len(sink.about(run.id)) == 1  # the other channel is delivered on its own


def test_a_succeeded_run_with_default_settings_sends_nothing(sink: SmtpSink, receiver: Receiver) -> None:
    quiet = finished_run(NOOP, notify_emails=["a@example.com"], notify_webhook=receiver.url("quiet"))
    assert quiet.state == "SUCCEEDED"

    # A failed run after it goes through the same single notify process, in queue order:
    # once its mail is there, a mail about the first run would have been too.
    loud = finished_run(FAIL, notify_emails=["a@example.com"], notify_webhook=receiver.url("quiet"))
    wait_for(lambda: sink.about(loud.id), what="the failed run's mail")
    wait_for(lambda: receiver.got("quiet"), what="the failed run's post")

    assert sink.about(quiet.id) == []
    assert [post["run_id"] for post in receiver.got("quiet")] == [loud.id]
    assert not quiet.log_lines.filter(message__startswith="notif").exists()


def test_a_delivery_survives_a_database_restart_under_the_notify_worker(sink: SmtpSink, receiver: Receiver) -> None:
    first = finished_run(FAIL, notify_webhook=receiver.url("restart"))
    log_line(first, "notified by webhook")  # the notify worker now holds a database connection

    with connection.cursor() as cursor:  # what a PostgreSQL restart does to it
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME])
        assert cursor.fetchall(), "the notify worker had no database session to end"
    second = finished_run(FAIL, notify_webhook=receiver.url("restart"))

    log_line(second, "notified by webhook")
    assert [post["run_id"] for post in receiver.got("restart")] == [first.id, second.id]

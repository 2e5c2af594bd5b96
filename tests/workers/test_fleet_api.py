"""The worker fleet as Celery knows it (workers/fleet.py) and `/api/v1/workers/`: a real worker
of this module's own on queues no other test uses, what it runs, the queues' depths in Redis,
the workers lost, and draining it from a queue and giving it back, by role and with bad input."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from core.models import AuditEvent
from runs.choices import REASON_WORKER_LOST, StepState
from runs.models import StepRun
from runs.services import run_cancel, run_trigger
from tests.conftest import api_client
from tests.factories import make_job
from tests.processes import Process, start_worker, wait_for, wait_terminal
from workers import fleet, services
from workers.fleet import Worker

pytestmark = pytest.mark.integration  # a worker process of its own

QUEUES = ("fleet-a", "fleet-b")
IDLE_QUEUE = "fleet-idle"  # no worker consumes it
ASK_S = 0.3  # the tests' own looks at the fleet: a local worker answers in milliseconds


@pytest.fixture(scope="module")
def fleet_process(django_db_setup: None, django_db_blocker: object, clean_redis: None) -> Iterator[Process]:
    process = start_worker(queues=",".join(QUEUES), concurrency=1, name="fleet")
    yield process
    process.stop()


@pytest.fixture
def node(fleet_process: Process, transactional_db: None) -> Iterator[Worker]:
    """This module's worker as it answers, consuming both its queues before and after the test."""
    worker = wait_for(lambda: _find(fleet.live_workers(ASK_S)), 20, what="the fleet worker to answer")
    yield worker
    if _queues(worker.hostname) != QUEUES:  # a failed test must not leave it drained for the next one
        for queue in QUEUES:
            fleet.start_consuming(worker.hostname, queue)
        wait_for(lambda: _queues(worker.hostname) == QUEUES, 10, what="the worker to consume its queues again")


def _find(workers: list[Worker]) -> Worker | None:
    return next((w for w in workers if w.hostname.startswith("fleet-")), None)


def _queues(hostname: str) -> tuple[str, ...] | None:
    worker = next((w for w in fleet.live_workers(ASK_S) if w.hostname == hostname), None)
    return worker.queues if worker else None


def _entry(body: dict[str, Any], hostname: str) -> dict[str, Any]:
    return next(w for w in body["workers"] if w["hostname"] == hostname)


def _post(user: User | None, hostname: str, action: str, body: Any) -> Any:
    return api_client(user).post(f"/api/v1/workers/{hostname}/{action}/", body, format="json")


def _assert_error(response: Any, code: int) -> dict[str, Any]:
    assert response.status_code == code, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "errors"}
    return body


# --- what Celery says ----------------------------------------------------------------------------


def test_live_workers_gives_each_worker_as_it_answers(node: Worker, fleet_process: Process) -> None:
    assert node.pid == fleet_process.proc.pid
    assert node.queues == QUEUES
    assert node.concurrency == 1
    assert node.version.startswith("celery 5.")
    assert node.host and node.hostname.endswith(f"@{node.host}")
    assert node.started_at is not None and node.started_at <= node.last_seen <= timezone.now()
    assert fleet.served_queues([node]) >= set(QUEUES)


@pytest.mark.timeout(30)  # the broadcasts end at their own timeouts instead of waiting for the worker
def test_a_worker_that_does_not_answer_is_left_out_without_waiting_longer(
    node: Worker, fleet_process: Process, viewer: User
) -> None:
    fleet_process.kill(signal.SIGSTOP)  # alive, but answers nothing
    try:
        assert _find(fleet.live_workers(timeout_s=0.5)) is None
        fleet.forget_snapshot()
        response = api_client(viewer).get("/api/v1/workers/")
        assert response.status_code == 200
        assert node.hostname not in {w["hostname"] for w in response.json()["workers"]}
        assert fleet.stop_consuming(node.hostname, "fleet-a", timeout_s=0.3) is False
    finally:
        fleet_process.kill(signal.SIGCONT)
    # The stopped worker ran the command once woken: give the queue back.
    fleet.start_consuming(node.hostname, "fleet-a")
    fleet.forget_snapshot()


def test_queue_depths_count_messages_waiting_under_the_key_prefix(node: Worker) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(f"{settings.REDIS_PREFIX}{IDLE_QUEUE}")
    for _ in range(3):
        current_app.send_task("workers.execute_step", args=[0], queue=IDLE_QUEUE)
    try:
        assert fleet.queue_depths([IDLE_QUEUE, "fleet-never-used"]) == {IDLE_QUEUE: 3, "fleet-never-used": 0}
        assert client.llen(f"{settings.REDIS_PREFIX}{IDLE_QUEUE}") == 3  # where kombu keeps them
    finally:
        client.delete(f"{settings.REDIS_PREFIX}{IDLE_QUEUE}")


def test_fleet_snapshot_asks_once_per_max_age(node: Worker) -> None:
    fleet.forget_snapshot()
    first = fleet.fleet_snapshot(max_age_s=60)
    assert fleet.fleet_snapshot(max_age_s=60) is first
    assert _find(first) is not None


# --- GET /workers/ -------------------------------------------------------------------------------


def test_the_fleet_lists_the_worker_and_the_step_it_runs_with_its_run(node: Worker, viewer: User) -> None:
    make_job({"callable": "workers.builtins:sleep", "seconds": 30, "queue": "fleet-a"}, id="long-a")
    run, _ = run_trigger(job_id="long-a", triggered_by="api")
    step = wait_for(lambda: StepRun.objects.filter(run=run, state=StepState.RUNNING).first(), 20, what="the step")
    fleet.forget_snapshot()
    try:
        response = api_client(viewer).get("/api/v1/workers/")
        assert response.status_code == 200
        entry = _entry(response.json(), node.hostname)
        assert entry["pid"] == node.pid and entry["queues"] == list(QUEUES) and entry["concurrency"] == 1
        assert entry["drained"] == [] and entry["version"] == node.version
        assert entry["last_seen"].endswith("Z") and entry["started_at"].endswith("Z")
        [current] = entry["steps"]
        assert current["run"] == run.id and current["step"] == "F0001" and current["queue"] == "fleet-a"
        assert current["url"] == f"/nomaflow/runs/{run.id}"
        assert f"{node.hostname}:{current['process']}" == step.worker
        queues = {q["name"]: q for q in response.json()["queues"]}
        assert queues["fleet-a"]["workers"] == 1 and queues["fleet-a"]["depth"] == 0
    finally:
        run_cancel(run_id=run.id, by="user:test")
        wait_terminal(run)


def test_workers_lost_are_the_steps_reaped_worker_lost(node: Worker, viewer: User) -> None:
    make_job({"callable": "workers.builtins:noop", "queue": IDLE_QUEUE}, id="lost-one")
    run, _ = run_trigger(job_id="lost-one", triggered_by="api")
    lost_at = timezone.now()
    StepRun.objects.filter(run=run).update(
        state=StepState.FAILED, reason=REASON_WORKER_LOST, worker="celery@gone:4242", finished_at=lost_at
    )
    [lost] = api_client(viewer).get("/api/v1/workers/").json()["lost"]
    assert lost == {
        "hostname": "celery@gone", "worker": "celery@gone:4242", "lost_at": lost_at.isoformat().replace("+00:00", "Z"),
        "run": run.id, "step": "F0001", "queue": IDLE_QUEUE, "url": f"/nomaflow/runs/{run.id}", "live": False,
    }  # fmt: skip


def test_a_step_running_on_a_worker_that_does_not_answer_is_listed_apart(node: Worker, viewer: User) -> None:
    make_job({"callable": "workers.builtins:noop", "queue": IDLE_QUEUE}, id="cut-off")
    run, _ = run_trigger(job_id="cut-off", triggered_by="api")
    beat = timezone.now()
    StepRun.objects.filter(run=run).update(
        state=StepState.RUNNING, worker="celery@cut:77", started_at=beat, heartbeat_at=beat
    )
    fleet.forget_snapshot()
    body = api_client(viewer).get("/api/v1/workers/").json()
    stamp = beat.isoformat().replace("+00:00", "Z")
    assert body["unanswered"] == [
        {"hostname": "celery@cut", "worker": "celery@cut:77", "run": run.id, "step": "F0001", "queue": IDLE_QUEUE,
         "started_at": stamp, "heartbeat_at": stamp, "url": f"/nomaflow/runs/{run.id}"},
    ]  # fmt: skip
    assert _entry(body, node.hostname)["steps"] == []


def test_reading_the_fleet_needs_the_viewer_role(node: Worker, outsider: User) -> None:
    _assert_error(api_client(None).get("/api/v1/workers/"), 401)
    _assert_error(api_client(outsider).get("/api/v1/workers/"), 403)


# --- drain and give back -------------------------------------------------------------------------


def test_an_editor_drains_a_queue_its_steps_wait_and_giving_it_back_runs_them(node: Worker, editor: User) -> None:
    response = _post(editor, node.hostname, "drain", {"queue": "fleet-b"})
    assert response.status_code == 202, response.content
    assert response.json() == {"hostname": node.hostname, "queue": "fleet-b", "consuming": False}
    wait_for(lambda: _queues(node.hostname) == ("fleet-a",), 10, what="the worker to stop consuming fleet-b")
    entry = _entry(api_client(editor).get("/api/v1/workers/").json(), node.hostname)
    assert entry["queues"] == ["fleet-a"] and entry["drained"] == ["fleet-b"]

    make_job({"callable": "workers.builtins:noop", "queue": "fleet-b"}, id="on-b")
    run, _ = run_trigger(job_id="on-b", triggered_by="api")
    wait_for(lambda: fleet.queue_depths(["fleet-b"]) == {"fleet-b": 1}, 10, what="the step to wait in fleet-b")
    assert StepRun.objects.get(run=run).state == StepState.PENDING
    queues = {q["name"]: q for q in api_client(editor).get("/api/v1/workers/").json()["queues"]}
    assert queues["fleet-b"] == {"name": "fleet-b", "depth": 1, "workers": 0}

    response = _post(editor, node.hostname, "give-back", {"queue": "fleet-b"})
    assert response.status_code == 202, response.content
    assert response.json()["consuming"] is True
    assert wait_terminal(run).state == "SUCCEEDED"
    assert StepRun.objects.get(run=run).worker.startswith(f"{node.hostname}:")
    entry = _entry(api_client(editor).get("/api/v1/workers/").json(), node.hostname)
    assert entry["queues"] == list(QUEUES) and entry["drained"] == []

    events = AuditEvent.objects.filter(object_type="worker").order_by("at", "id")
    assert [(e.actor, e.action, e.object_id, e.diff) for e in events] == [
        (f"user:{editor.username}", "drain", node.hostname, {"queue": "fleet-b"}),
        (f"user:{editor.username}", "give_back", node.hostname, {"queue": "fleet-b"}),
    ]


@pytest.mark.parametrize("role", ["viewer", "operator", "outsider", None])
@pytest.mark.parametrize("action", ["drain", "give-back"])
def test_only_editors_drain_or_give_back(
    node: Worker, request: pytest.FixtureRequest, role: str | None, action: str
) -> None:
    user = request.getfixturevalue(role) if role else None
    _assert_error(_post(user, node.hostname, action, {"queue": "fleet-a"}), 403 if user else 401)
    assert _queues(node.hostname) == QUEUES
    assert not AuditEvent.objects.filter(object_type="worker").exists()


BAD_QUEUES = [
    ({"queue": "fleet-c"}, "not a queue of this worker"),  # a queue it does not consume
    ({"queue": "../fleet-a"}, "not a queue of this worker"),
    ({"queue": "fleet-a\u0000"}, "NUL character"),
    ({"queue": "fleet-a; rm -rf /"}, "not a queue of this worker"),
    ({"queue": "x" * 201}, "no more than 200"),
    ({"queue": ""}, "may not be blank"),
    ({"queue": ["fleet-a"]}, "Not a valid string"),
    ({}, "required"),
]


@pytest.mark.parametrize(("body", "message"), BAD_QUEUES, ids=lambda v: repr(v)[:30])
def test_a_drain_of_a_queue_the_worker_does_not_consume_is_400_naming_the_queue(
    node: Worker, editor: User, body: dict[str, Any], message: str
) -> None:
    error = _assert_error(_post(editor, node.hostname, "drain", body), 400)
    assert list(error["errors"]) == ["queue"] and message in error["errors"]["queue"][0], error
    assert _queues(node.hostname) == QUEUES
    assert not AuditEvent.objects.filter(object_type="worker").exists()


def test_giving_back_a_queue_never_drained_here_is_400(node: Worker, editor: User) -> None:
    consumed = _assert_error(_post(editor, node.hostname, "give-back", {"queue": "fleet-a"}), 400)
    assert "it consumes from it now" in consumed["detail"] and list(consumed["errors"]) == ["queue"]
    other = _assert_error(_post(editor, node.hostname, "give-back", {"queue": "gpu"}), 400)
    assert 'was not drained from queue "gpu"' in other["detail"]
    assert not AuditEvent.objects.filter(object_type="worker").exists()


@pytest.mark.parametrize(
    "hostname",
    ["nobody@nowhere", "celery@..", "fleet-%00@x", "<script>x<script>@y", "w" * 3000],
    ids=["unknown", "dots", "nul", "markup", "long"],
)
def test_a_worker_that_is_not_live_is_404(node: Worker, editor: User, hostname: str) -> None:
    error = _assert_error(_post(editor, hostname, "drain", {"queue": "fleet-a"}), 404)
    assert "is not live" in error["detail"] and node.hostname in error["detail"]


def test_a_hostname_holding_a_slash_matches_no_route_and_is_404_in_json(node: Worker, editor: User) -> None:
    _assert_error(_post(editor, "..%2F..%2Fjobs", "drain", {"queue": "fleet-a"}), 404)


def test_a_body_that_is_not_an_object_is_400_before_any_lookup(node: Worker, editor: User) -> None:
    _assert_error(_post(editor, "nobody@nowhere", "drain", ["fleet-a"]), 400)
    response = api_client(editor).post(f"/api/v1/workers/{node.hostname}/drain/", "queue=x", content_type="text/plain")
    _assert_error(response, 415)
    _assert_error(api_client(editor).get(f"/api/v1/workers/{node.hostname}/drain/"), 405)


def test_a_worker_that_does_not_acknowledge_is_told_and_nothing_is_audited(
    node: Worker, fleet_process: Process
) -> None:
    fleet_process.kill(signal.SIGSTOP)
    try:
        with pytest.raises(services.WorkerSilent, match="did not answer in time"):
            services.worker_drain(worker=node, queue="fleet-a", by="user:test")
    finally:
        fleet_process.kill(signal.SIGCONT)
    assert not AuditEvent.objects.filter(object_type="worker").exists()
    fleet.start_consuming(node.hostname, "fleet-a")  # woken, it ran the late command


def test_the_schema_lists_the_workers_operations_and_their_errors(viewer: User) -> None:
    paths = api_client(viewer).get("/api/v1/schema/?format=json").json()["paths"]
    assert set(paths["/api/v1/workers/"]["get"]["responses"]) >= {"200", "401", "403", "503"}
    for action in ("drain", "give-back"):
        post = paths[f"/api/v1/workers/{{hostname}}/{action}/"]["post"]
        assert set(post["responses"]) >= {"202", "400", "401", "403", "404", "413", "415", "503"}
        assert "does not acknowledge within 1 s" in post["description"]
        assert "Retry-After" in post["responses"]["503"]["headers"]

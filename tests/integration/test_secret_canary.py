"""A canary secret in connectors, looked for everywhere a run leaves a trace.

The canary is a postgres password, an http bearer token, an http header, a value in a
list option and (through a reference) a segment of an http connector's URL path, given
once through `${NOMAFLOW_SECRET_…}` (resolved only by the worker) and once literally
(stored in the database). A job using the connectors runs at DEBUG, with http steps whose
server echoes the request (path and headers) back and a step that fails. The canary must
not appear in: API answers, the admin connector pages (change, and view for a user who
may only view), the admin audit pages, log lines, step errors and tracebacks, the
parameters snapshot, AuditEvent diffs, Redis (Celery messages while the run is queued,
and after), channel-layer messages of the run's group, websocket frames, or the worker's
own output.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from accounts.tokens import issue_token
from core.models import AuditEvent
from jobs.models import Connector
from nomaflow.asgi import application
from runs.models import Run
from runs.services import run_trigger
from tests.conftest import api_client
from tests.factories import make_job
from tests.http_server import LocalServer
from tests.processes import start_worker, wait_terminal
from tests.scratch_db import query, scratch_database, server_url

CANARY = "canary-7c1f3e9b2d5a"
ENV_VAR = "NOMAFLOW_SECRET_TEST_CANARY"  # only NOMAFLOW_SECRET_* names are resolved
QUEUE = "secret-probe"


@pytest.fixture
def warehouse_db(transactional_db: None) -> Iterator[str]:
    with scratch_database("canary") as url:
        query(url, "CREATE TABLE src (id int PRIMARY KEY, note text)")
        query(url, "INSERT INTO src VALUES (1, 'a'), (2, 'b')")
        query(url, "CREATE TABLE dst (id int PRIMARY KEY, note text)")
        yield url.rsplit("/", 1)[1]


def connector_specs(secret: str, database: str, server: LocalServer) -> list[dict[str, Any]]:
    """`secret` is the canary or a reference to it. A literal secret is known as one by its key
    only (`X-Api-Key`); a reference hides its value under any key and in a URL path too."""
    host = server_url(database).removeprefix("postgresql://postgres@")
    literal = secret == CANARY
    header = {"X-Api-Key": secret} if literal else {"X-Vault-Ref": secret}
    return [
        {"name": "warehouse", "kind": "postgres", "url": f"postgresql://postgres:{secret}@{host}", "options": {}},
        {"name": "vault", "kind": "http", "url": f"{server.base}/api",
         "options": {"auth": {"type": "bearer", "token": secret}, "headers": header, "api_keys": ["k0", secret]}},
        {"name": "hook", "kind": "http", "url": f"{server.base}/api/echo/{'plain' if literal else secret}",
         "options": {"headers": header}},
    ]  # fmt: skip


def canary_job() -> Any:
    steps = [
        {"type": "sql_copy", "queue": QUEUE, "op_kwargs": {
            "source": "warehouse", "target": "warehouse", "query": "SELECT * FROM src", "table": "dst",
            "mode": "overwrite"}},
        {"type": "http", "queue": QUEUE, "op_kwargs": {"connector": "vault", "path": "echo"}},
        {"type": "http", "queue": QUEUE, "op_kwargs": {"connector": "hook"}},
        {"type": "http", "queue": QUEUE, "op_kwargs": {"connector": "vault", "path": "echo", "expect_status": 201}},
    ]  # fmt: skip
    return make_job(*steps, id="canary-job", log_level="DEBUG")


def test_an_env_var_secret_resolved_by_the_worker_never_leaks(
    warehouse_db: str, server: LocalServer, editor: User
) -> None:
    for spec in connector_specs(f"${{{ENV_VAR}}}", warehouse_db, server):
        answer = api_client(editor).post("/api/v1/connectors/", spec, format="json")
        assert answer.status_code == 201, answer.content  # a NOMAFLOW_SECRET_* reference is accepted

    run, evidence = run_canary_job(editor)
    hook = next(r for r in server.requests if r["path"].startswith("/api/echo/"))
    assert (hook["path"], hook["headers"]["X-Vault-Ref"]) == (f"/api/echo/{CANARY}", CANARY)  # sent, to its host

    assert_used_and_never_seen(run, evidence, server, editor)


def test_a_literal_secret_saved_through_the_api_never_leaks(
    warehouse_db: str, server: LocalServer, editor: User
) -> None:
    client = api_client(editor)
    for spec in connector_specs(CANARY, warehouse_db, server):
        answer = client.post("/api/v1/connectors/", spec, format="json")
        assert answer.status_code == 201, answer.content
        assert CANARY not in answer.content.decode()
    assert Connector.objects.get(name="vault").options["auth"]["token"] == CANARY  # stored for real

    run, evidence = run_canary_job(editor)

    assert_used_and_never_seen(run, evidence, server, editor)


def run_canary_job(user: User) -> tuple[Run, dict[str, Any]]:
    """Trigger while no worker consumes the queue (dump Redis), listen to the run's group,
    then start a worker that has the env var, and let the run finish."""
    run = run_trigger(job_id=canary_job().id, triggered_by="user:edna", actor=user)[0]
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"run.{run.id}", channel)
    evidence: dict[str, Any] = {"redis_queued": dump_redis()}
    assert "workers.execute_step" in evidence["redis_queued"]  # the Celery message was there to look at
    worker = start_worker(queues=QUEUE, concurrency=1, name="canary", **{ENV_VAR: CANARY})
    try:
        run = wait_terminal(run, timeout=60)
    finally:
        worker.stop()
    evidence["worker_output"] = worker.output()
    evidence["channel"] = drain(layer, channel)
    evidence["redis_after"] = dump_redis()
    evidence["websocket"] = async_to_sync(websocket_frames)(run.id, user)
    return run, evidence


def assert_used_and_never_seen(run: Run, evidence: dict[str, Any], server: LocalServer, user: User) -> None:
    # The secret was used: the copy connected with it, the server received it.
    states = list(run.steps.order_by("position").values_list("state", flat=True))
    assert states == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY}"
    assert any('"Authorization": "***"' in line for line in run.log_lines.values_list("message", flat=True))
    assert any(message.get("type") == "run.log" for message in evidence["channel"])
    assert any('"message"' in frame for frame in evidence["websocket"])
    # … and is nowhere to be seen.
    places = {
        **{f"evidence:{name}": json.dumps(value, default=str) for name, value in evidence.items()},
        **api_answers(run, user),
        **admin_pages(),
        "log lines": json.dumps(list(run.log_lines.values_list("message", flat=True))),
        "step errors": json.dumps(list(run.steps.values_list("error", "traceback"))),
        "parameters snapshot": json.dumps(Run.objects.get(pk=run.pk).parameters),
        "audit diffs": json.dumps(list(AuditEvent.objects.values_list("diff", flat=True)), default=str),
    }
    leaks = sorted(place for place, text in places.items() if CANARY in text)
    assert leaks == [], f"the canary leaked into: {leaks}"


def api_answers(run: Run, user: User) -> dict[str, str]:
    client = api_client(user)
    urls = [
        "/api/v1/connectors/", "/api/v1/connectors/warehouse/", "/api/v1/connectors/vault/",
        "/api/v1/jobs/", f"/api/v1/jobs/{run.job_id}/", f"/api/v1/jobs/{run.job_id}/runs/",
        "/api/v1/runs/", f"/api/v1/runs/{run.id}/", f"/api/v1/runs/{run.id}/logs/", f"/api/v1/runs/{run.id}/logs.txt",
    ]  # fmt: skip
    answers = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        answers[f"GET {url}"] = body.decode()
    return answers


def admin_pages() -> dict[str, str]:
    """The connector pages for a superuser (the change form) and for a staff user who may
    only view connectors and the audit trail (the read-only page), and every audit event."""
    root = User.objects.create_superuser("root", password="pw-root")
    looker = User.objects.create_user("looker", password="pw-looker", is_staff=True)
    looker.user_permissions.add(*Permission.objects.filter(codename__in=["view_connector", "view_auditevent"]))
    connectors = ["/admin/jobs/connector/"] + [
        f"/admin/jobs/connector/{pk}/change/" for pk in Connector.objects.values_list("pk", flat=True)
    ]
    audit = ["/admin/core/auditevent/"] + [
        f"/admin/core/auditevent/{pk}/change/" for pk in AuditEvent.objects.values_list("pk", flat=True)
    ]
    answers = {}
    for user in (root, looker):
        client = Client()
        client.force_login(user)
        for page in connectors + audit:
            response = client.get(page)
            assert response.status_code == 200, (user.username, page, response.status_code)
            answers[f"admin {page} as {user.username}"] = response.content.decode()
    return answers


def dump_redis() -> str:
    """Every key of this test session (its prefix) with its value, whatever the type."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    readers = {
        "string": client.get,
        "list": lambda key: client.lrange(key, 0, -1),
        "hash": client.hgetall,
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1),
    }
    dumped = {}
    for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}*", count=1000):
        kind = client.type(key).decode()
        dumped[text(key)] = text(readers[kind](key)) if kind in readers else kind
    return json.dumps(dumped)


def text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [text(item) for item in value]
    return value


def drain(layer: Any, channel: str) -> list[dict[str, Any]]:
    """The messages the run's group sent to our channel, until it stays quiet for 2 s;
    a `run.batch` (events the publisher folded into one send) counts as its messages."""

    async def receive_all() -> list[dict[str, Any]]:
        received = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), 2.0)
            except TimeoutError:
                return received
            received.extend(message["messages"] if message["type"] == "run.batch" else [message])

    return async_to_sync(receive_all)()


async def websocket_frames(run_id: str, user: User) -> list[str]:
    """Every text frame the live-log websocket sends a client for the finished run."""
    token = await database_sync_to_async(lambda: issue_token(user))()
    headers = [(b"authorization", f"Token {token}".encode())]
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after=0", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    frames = []
    while True:
        try:
            output = await communicator.receive_output(timeout=2)
        except TimeoutError:
            break
        if output["type"] == "websocket.close":
            break
        frames.append(output.get("text") or "")
    await communicator.disconnect()
    return frames

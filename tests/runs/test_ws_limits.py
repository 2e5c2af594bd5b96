"""What one client can cost the web process: frames it sends (ignored), sockets it opens
(NOMAFLOW_WS_MAX_PER_USER, counted in the real Redis), and an idle socket's database load."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test.utils import CaptureQueriesContext

from runs import logstore, ws_slots
from tests.ws import DEADLINE_S, idle_run, token_headers
from tests.ws import socket as ws_socket


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    for key in client.scan_iter(f"{settings.REDIS_PREFIX}ws:sockets:*"):
        client.delete(key)
    client.close()


def slot_key(user: User) -> str:
    return f"{settings.REDIS_PREFIX}ws:sockets:{user.pk}"


async def open_socket(run_id: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    ws = ws_socket(run_id, headers)
    assert (await ws.connect(DEADLINE_S))[0]
    return ws


async def close_code(ws: WebsocketCommunicator) -> int | None:
    """The code the server closes with, or None if it stays open for a moment."""
    if await ws.receive_nothing(0.3):
        return None
    output = await ws.receive_output(DEADLINE_S)
    assert output["type"] == "websocket.close", output
    return output.get("code")


# --- frames from the client ------------------------------------------------------------------


def test_bad_frames_are_ignored_and_the_socket_stays_open(
    transactional_db: None, viewer: User, caplog: pytest.LogCaptureFixture
) -> None:
    run = idle_run()
    headers = token_headers(viewer)
    hostile: list[dict[str, Any]] = [
        {"bytes_data": b"\x00\xff binary"},
        {"text_data": "not json {"},
        {"text_data": '{"type": "log", "lines": "nope"}'},
        {"text_data": '[1, 2, {"after": -1}]'},
        {"text_data": "x" * (2 * 1024 * 1024)},
    ]

    async def scenario() -> list[int]:
        ws = await open_socket(run.id, headers)
        for frame in hostile:
            await ws.send_to(**frame)
        assert await close_code(ws) is None
        await database_sync_to_async(logstore.write)(run.id, [logstore.entry("INFO", "still here")])
        frame = await ws.receive_json_from(DEADLINE_S)
        await ws.disconnect()
        return [line["seq"] for line in frame["lines"]]

    with caplog.at_level(logging.DEBUG):
        assert async_to_sync(scenario)() == [1]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


# --- sockets per user ------------------------------------------------------------------------


def test_the_socket_beyond_the_cap_is_closed_with_4429_and_a_closed_one_frees_its_slot(
    transactional_db: None, viewer: User, operator: User, settings: Any, redis_client: redis.Redis
) -> None:
    settings.NOMAFLOW_WS_MAX_PER_USER = 3
    run = idle_run()
    mine, theirs = token_headers(viewer), token_headers(operator)

    async def scenario() -> None:
        held = [await open_socket(run.id, mine) for _ in range(3)]
        assert [await close_code(ws) for ws in held] == [None, None, None]
        extra = ws_socket(run.id, mine)
        assert (await extra.connect(DEADLINE_S))[0]  # accepted, so the client can read why
        output = await extra.receive_output(DEADLINE_S)
        assert output == {"type": "websocket.close", "code": 4429, "reason": ws_slots.close_reason()}
        other = await open_socket(run.id, theirs)  # another user is not affected
        assert await close_code(other) is None
        await held.pop().disconnect()
        again = await open_socket(run.id, mine)
        assert await close_code(again) is None
        for ws in [*held, other, again]:
            await ws.disconnect()

    async_to_sync(scenario)()
    assert redis_client.zcard(slot_key(viewer)) == 0 and redis_client.zcard(slot_key(operator)) == 0


def test_sockets_of_another_web_process_count_until_they_go_stale(
    transactional_db: None, viewer: User, settings: Any, redis_client: redis.Redis
) -> None:
    """Another daphne's sockets are members of the same set; a crashed one's stop being
    renewed, and stop counting after ws_slots.TTL_S."""
    settings.NOMAFLOW_WS_MAX_PER_USER = 2
    run = idle_run()
    headers = token_headers(viewer)
    now = time.time()
    redis_client.zadd(slot_key(viewer), {"elsewhere-1": now, "elsewhere-2": now})

    async def new_socket() -> tuple[int | None, int]:
        """Its close code (None: open), and the set's expiry while it is open."""
        ws = await open_socket(run.id, headers)
        code, expiry = await close_code(ws), redis_client.ttl(slot_key(viewer))
        await ws.disconnect()
        return code, expiry

    assert async_to_sync(new_socket)()[0] == 4429
    stale = now - ws_slots.TTL_S - 1
    redis_client.zadd(slot_key(viewer), {"elsewhere-1": stale, "elsewhere-2": stale})
    code, expiry = async_to_sync(new_socket)()
    assert code is None
    assert 0 < expiry <= ws_slots.TTL_S  # the set itself goes when nobody renews it
    assert redis_client.zscore(slot_key(viewer), "elsewhere-1") is None  # pruned


# --- an idle socket ---------------------------------------------------------------------------


def test_an_idle_socket_on_a_running_run_queries_nothing_for_3_s(transactional_db: None, viewer: User) -> None:
    """The consumer's database calls run on this thread (database_sync_to_async is thread
    sensitive under async_to_sync), so this thread's connection logs them: the connect's
    show up. It is captured as an object: `django.db.connection` read on the event loop's
    thread would be that thread's, and see nothing."""
    run = idle_run()
    headers = token_headers(viewer)

    async def scenario(queries: CaptureQueriesContext) -> tuple[int, int]:
        ws = await open_socket(run.id, headers)
        assert await ws.receive_nothing(0.2)  # the backlog (none) is sent
        at_connect = len(queries.captured_queries)
        assert await ws.receive_nothing(3.0)
        idle = len(queries.captured_queries) - at_connect
        await ws.disconnect()
        return at_connect, idle

    with CaptureQueriesContext(connections["default"]) as queries:
        at_connect, idle = async_to_sync(scenario)(queries)
    assert at_connect > 0 and idle == 0

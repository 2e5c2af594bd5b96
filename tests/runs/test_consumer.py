"""The run log websocket through the real ASGI app (nomaflow.asgi.application), with the
real Redis channel layer and, for live runs, a real Celery worker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from runs import consumers, events, logstore
from runs.choices import RunState
from runs.models import Run, StepRun
from runs.services import run_trigger
from tests.factories import make_job
from tests.processes import wait_terminal
from tests.ws import (
    DEADLINE_S,
    Reader,
    finished_run,
    idle_run,
    read_all,
    session_headers,
    socket,
    token_headers,
)

# --- a finished run ------------------------------------------------------------------------


def test_finished_run_sends_the_backlog_in_pages_then_end_and_closes(transactional_db: None, viewer: User) -> None:
    run = finished_run(2 * consumers.PAGE + 10)
    reader = async_to_sync(read_all)(socket(run.id, session_headers(viewer)))
    assert reader.seqs == list(range(1, run.last_seq + 1))
    assert reader.kinds == ["log", "log", "log", "end"]
    assert reader.end == {"type": "end", "state": "SUCCEEDED", "last_seq": run.last_seq}
    assert reader.close_code == 1000


def test_resume_after_a_seq_sends_only_the_lines_after_it(transactional_db: None, viewer: User) -> None:
    run = finished_run(50, RunState.FAILED)
    reader = async_to_sync(read_all)(socket(run.id, token_headers(viewer), after=42))
    assert reader.seqs == list(range(43, 51))
    assert reader.end == {"type": "end", "state": "FAILED", "last_seq": 50}


def test_resume_at_the_end_sends_only_the_end(transactional_db: None, viewer: User) -> None:
    run = finished_run(5)
    reader = async_to_sync(read_all)(socket(run.id, token_headers(viewer), after=5))
    assert reader.kinds == ["end"] and reader.close_code == 1000


# --- live ------------------------------------------------------------------------------------


def test_a_dropped_batch_is_filled_from_the_database(transactional_db: None, viewer: User) -> None:
    run = idle_run()
    headers = token_headers(viewer)

    async def scenario() -> Reader:
        ws = socket(run.id, headers)
        assert (await ws.connect(DEADLINE_S))[0]
        reader = Reader()
        await database_sync_to_async(_write_with_a_lost_batch)(run.id)
        await reader.read(ws, until_seq=9)
        await ws.disconnect()
        return reader

    reader = async_to_sync(scenario)()
    assert reader.seqs == list(range(1, 10))


def _write_with_a_lost_batch(run_id: str) -> None:
    logstore.write(run_id, [logstore.entry("INFO", f"a{i}") for i in range(3)])
    logstore.persist(run_id, [logstore.entry("INFO", f"lost{i}") for i in range(3)])  # never published
    logstore.write(run_id, [logstore.entry("INFO", f"b{i}") for i in range(3)])


def frames_after_event(
    viewer: User, entries: list[logstore.Entry], event: Callable[[list[dict[str, Any]]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Connect to an idle run, store `entries` without publishing them, send the run's
    group `event(stored lines)`, and return the next two frames."""
    run = idle_run()
    headers = token_headers(viewer)

    async def scenario() -> list[dict[str, Any]]:
        ws = socket(run.id, headers)
        assert (await ws.connect(DEADLINE_S))[0]
        lines = await database_sync_to_async(logstore.persist)(run.id, entries)
        await get_channel_layer().group_send(events.group_name(run.id), event(lines))
        frames = [await ws.receive_json_from(DEADLINE_S), await ws.receive_json_from(DEADLINE_S)]
        await ws.disconnect()
        return frames

    return async_to_sync(scenario)()


def test_a_batch_of_events_is_sent_as_its_frames_in_order(transactional_db: None, viewer: User) -> None:
    def batch(lines: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "run.batch", "messages": [
            {"type": "run.log", "lines": lines},
            {"type": "run.step", "step": {"name": "F0001", "state": "SUCCEEDED"}},
        ]}  # fmt: skip

    frames = frames_after_event(viewer, [logstore.entry("INFO", "last", "F0001")], batch)
    assert [f["type"] for f in frames] == ["log", "step"]
    assert frames[0]["lines"][0]["message"] == "last" and frames[1]["step"]["state"] == "SUCCEEDED"


def test_a_step_end_sends_the_unpublished_lines_up_to_its_last_seq_first(transactional_db: None, viewer: User) -> None:
    def step_end(lines: list[dict[str, Any]]) -> dict[str, Any]:  # the lines were stored, never published
        return {"type": "run.step", "step": {"name": "F0001", "state": "SUCCEEDED"}, "last_seq": lines[-1]["seq"]}

    frames = frames_after_event(viewer, [logstore.entry("INFO", f"end {i}", "F0001") for i in range(3)], step_end)
    assert [f["type"] for f in frames] == ["log", "step"]
    assert [line["seq"] for line in frames[0]["lines"]] == [1, 2, 3]


def test_invalid_text_reaches_the_socket_safe_and_long_lines_truncated(transactional_db: None, viewer: User) -> None:
    run = idle_run()
    messages = ["bell\x07 esc\x1b[31m nul\x00", "bad \udcff utf8", "y" * (settings.NOMAFLOW_LOG_LINE_MAX_BYTES + 10)]
    logstore.write(run.id, [logstore.entry("INFO", m) for m in messages])
    run.finish(RunState.SUCCEEDED)
    got: list[str] = []
    headers = token_headers(viewer)

    async def scenario() -> None:
        ws = socket(run.id, headers)
        assert (await ws.connect(DEADLINE_S))[0]
        frame = await ws.receive_json_from(DEADLINE_S)
        got.extend(line["message"] for line in frame["lines"])
        await ws.disconnect()

    async_to_sync(scenario)()
    assert got[0] == "bell\ufffd esc\ufffd[31m nul\ufffd"
    assert got[1] == "bad ? utf8"
    assert got[2].endswith(logstore.TRUNCATED) and len(got[2].encode()) <= settings.NOMAFLOW_LOG_LINE_MAX_BYTES


def test_debug_lines_reach_the_socket_only_for_debug_runs(worker: object, viewer: User) -> None:
    job = make_job(
        {"callable": "workers.builtins:echo", "message": "dbg", "level": "DEBUG"},
        {"callable": "workers.builtins:echo", "message": "inf", "level": "INFO"},
    )
    headers = token_headers(viewer)
    levels = {}
    for log_level in ("INFO", "DEBUG"):
        run, _ = run_trigger(job_id=job.id, triggered_by="api", overrides={"log_level": log_level})
        wait_terminal(run)
        levels[log_level] = async_to_sync(_messages)(run.id, headers)
    assert "dbg" not in levels["INFO"] and "inf" in levels["INFO"]
    assert "dbg" in levels["DEBUG"] and "inf" in levels["DEBUG"]


async def _messages(run_id: str, headers: list[tuple[bytes, bytes]]) -> list[str]:
    ws = socket(run_id, headers)
    assert (await ws.connect(DEADLINE_S))[0]
    messages = []
    while (output := await ws.receive_output(DEADLINE_S))["type"] == "websocket.send":
        frame = json.loads(output["text"])
        messages += [line["message"] for line in frame.get("lines", [])]
    return messages


def test_20000_lines_at_full_speed_every_client_gets_every_seq_once(worker: object, viewer: User) -> None:
    """One client from the start, one joining mid-stream, one reconnecting three times."""
    job = make_job({"callable": "workers.builtins:emit_lines", "count": 20_000, "size": 60})
    headers = token_headers(viewer)
    run, _ = run_trigger(job_id=job.id, triggered_by="api")
    readers = async_to_sync(_three_clients)(run.id, headers)
    run = wait_terminal(run)
    assert run.state == RunState.SUCCEEDED and run.last_seq > 20_000
    for reader in readers:
        assert reader.seqs == list(range(1, run.last_seq + 1))
        assert reader.end == {"type": "end", "state": "SUCCEEDED", "last_seq": run.last_seq}
        assert reader.close_code == 1000


async def _three_clients(run_id: str, headers: list[tuple[bytes, bytes]]) -> list[Reader]:
    return list(
        await asyncio.gather(_from_start(run_id, headers), _mid_stream(run_id, headers), _reconnecting(run_id, headers))
    )


async def _from_start(run_id: str, headers: list[tuple[bytes, bytes]]) -> Reader:
    return await read_all(socket(run_id, headers))


async def _mid_stream(run_id: str, headers: list[tuple[bytes, bytes]]) -> Reader:
    await _until_stored(run_id, 5000)
    return await read_all(socket(run_id, headers))


async def _reconnecting(run_id: str, headers: list[tuple[bytes, bytes]]) -> Reader:
    reader = Reader()
    for stop in (2000, 6000, 12_000):
        ws = socket(run_id, headers, after=reader.last)
        assert (await ws.connect(DEADLINE_S))[0]
        await reader.read(ws, until_seq=stop)
        await ws.disconnect()
    ws = socket(run_id, headers, after=reader.last)
    assert (await ws.connect(DEADLINE_S))[0]
    await reader.read(ws)
    return reader


async def _until_stored(run_id: str, seq: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while await database_sync_to_async(_last_seq)(run_id) < seq:
        if time.monotonic() > deadline:  # a polling deadline, not a timing check
            raise AssertionError(f"run {run_id} did not reach seq {seq}")
        await asyncio.sleep(0.01)


def _last_seq(run_id: str) -> int:
    return Run.objects.values_list("last_seq", flat=True).get(pk=run_id)


def test_step_and_run_frames_come_after_the_lines_stored_before_them(transactional_db: None, viewer: User) -> None:
    run = idle_run()
    headers = token_headers(viewer)

    async def scenario() -> list[dict[str, Any]]:
        ws = socket(run.id, headers)
        assert (await ws.connect(DEADLINE_S))[0]
        await database_sync_to_async(_end_step_and_run)(run.id)
        frames = []
        while (output := await ws.receive_output(DEADLINE_S))["type"] == "websocket.send":
            frames.append(json.loads(output["text"]))
        return frames

    frames = async_to_sync(scenario)()
    assert [f["type"] for f in frames] == ["log", "step", "run", "end"]
    assert [line["seq"] for line in frames[0]["lines"]] == [1, 2]
    assert frames[1]["step"]["name"] == "F0001" and frames[1]["step"]["state"] == "SUCCEEDED"
    assert frames[2]["run"]["id"] == run.id and frames[2]["run"]["state"] == "SUCCEEDED"
    assert frames[3] == {"type": "end", "state": "SUCCEEDED", "last_seq": 2}


def _end_step_and_run(run_id: str) -> None:
    """As runs.services.step_finish does: the last lines, the step, the run, in one transaction."""
    with transaction.atomic():
        logstore.persist(run_id, [logstore.entry("INFO", "x"), logstore.entry("INFO", "y")])
        events.publish_step(StepRun(run_id=run_id, position=1, name="F0001", type="python", state="SUCCEEDED"))
        run = Run.objects.get(pk=run_id)
        run.finish(RunState.SUCCEEDED)
        events.publish_run(run)


def test_run_ended_without_an_event_still_ends(transactional_db: None, viewer: User, settings: Any) -> None:
    """The run ends with no event reaching the group (e.g. Redis dropped it): the
    consumer's fallback poll finds the end in the database."""
    settings.NOMAFLOW_WS_FALLBACK_POLL_S = 0.2
    run = idle_run()
    headers = token_headers(viewer)

    async def scenario() -> Reader:
        ws = socket(run.id, headers)
        assert (await ws.connect(DEADLINE_S))[0]
        await database_sync_to_async(_end_silently)(run.id)
        reader = Reader()
        await reader.read(ws)
        return reader

    reader = async_to_sync(scenario)()
    assert reader.seqs == [1, 2] and reader.end == {"type": "end", "state": "FAILED", "last_seq": 2}


def _end_silently(run_id: str) -> None:
    logstore.persist(run_id, [logstore.entry("INFO", "x"), logstore.entry("INFO", "y")])
    Run.objects.filter(pk=run_id).update(state=RunState.FAILED)


@pytest.fixture(autouse=True)
def _events_sent() -> Any:
    yield
    events.wait_until_sent()

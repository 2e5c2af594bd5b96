"""Live logs end to end: a real worker → a private Redis → daphne → websocket clients
(runs.follow.remote_frames, the CLI's resume client), with Redis and daphne restarted
mid-run. Every client must get every seq exactly once, in order, then the end frame.

The private redis-server (own port, no persistence) can be stopped without touching
the machine's shared Redis that other test sessions use.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client as DjangoClient
from websockets.asyncio.client import connect

from accounts.tokens import issue_token
from runs import logstore
from runs.follow import RemoteError, remote_frames
from runs.models import Run
from tests.factories import JobFactory, make_job
from tests.processes import Process, free_port, start_daphne, start_worker, wait_for, wait_terminal

CLIENT_DEADLINE_S = 280.0  # a client that is not done by then fails the test


def start_redis(port: int, directory: Path) -> Process:
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory)]  # fmt: skip
    process = Process(args, dict(os.environ), "redis")
    process.wait_for_output("Ready to accept connections")
    return process


class Stack:
    """A private Redis, a worker and daphne on it; restartable."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.redis_port, self.web_port = directory, free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.redis = start_redis(self.redis_port, directory)
        self.worker = start_worker(name="live", REDIS_URL=self.redis_url)
        self.daphne = start_daphne(self.web_port, REDIS_URL=self.redis_url)

    def restart_redis_when(self, down: Any, up: Any) -> None:
        """Stop Redis once `down()` holds, start it again once `up()` holds."""
        wait_for(down, 60, 0.01, "the moment to stop Redis")
        self.redis.stop()
        wait_for(up, 120, 0.05, "the moment to start Redis again")
        self.redis = start_redis(self.redis_port, self.directory)

    def restart_daphne(self) -> None:
        self.daphne.kill(signal.SIGKILL)  # a crash, not a polite shutdown
        self.daphne.stop()
        self.daphne = start_daphne(self.web_port, REDIS_URL=self.redis_url)

    def stop(self) -> None:
        for process in (self.daphne, self.worker, self.redis):
            process.stop()

    def trigger(self, job_id: str, token: str) -> Run:
        response = requests.post(
            f"{self.url}/api/v1/jobs/{job_id}/runs/", json={}, headers={"Authorization": f"Token {token}"}, timeout=30
        )
        assert response.status_code == 201, response.text
        return Run.objects.get(pk=response.json()["id"])


@pytest.fixture
def stack(transactional_db: None, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    yield stack
    stack.stop()


@pytest.fixture
def token(operator: User) -> str:
    return issue_token(operator)


class Client:
    """Collects what one websocket client receives (through remote_frames' reconnects)."""

    def __init__(self, stack: Stack, token: str, run_id: str) -> None:
        self.stack, self.token, self.run_id = stack, token, run_id
        self.seqs: list[int] = []
        self.end: dict[str, Any] | None = None

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def read(self, until_seq: int | None = None) -> Client:
        """Read (from the last seq seen) to the end, or until `until_seq`, then hang up."""
        async for frame in remote_frames(self.stack.url, self.token, self.run_id, after=self.last):
            if frame["type"] == "log":
                self.seqs.extend(line["seq"] for line in frame["lines"])
            elif frame["type"] == "end":
                self.end = frame
            if until_seq is not None and self.last >= until_seq:
                break
        return self

    def check(self, run: Run) -> None:
        assert self.seqs == list(range(1, run.last_seq + 1))
        assert self.end == {"type": "end", "state": run.state, "last_seq": run.last_seq}


def last_seq(run_id: str) -> int:
    return Run.objects.values_list("last_seq", flat=True).get(pk=run_id)


async def in_thread(fn: Any, *args: Any) -> Any:
    """Blocking test code (the ORM, process control) off the clients' loop."""

    def call() -> Any:
        try:
            return fn(*args)
        finally:
            connections.close_all()  # this thread's connections; the test database is dropped later

    return await asyncio.to_thread(call)


async def stored(run_id: str, seq: int) -> None:
    await in_thread(wait_for, lambda: last_seq(run_id) >= seq, 60, 0.01, f"seq {seq} stored")


def gather(*clients: Any) -> list[Any]:
    async def all_of() -> list[Any]:
        return list(await asyncio.wait_for(asyncio.gather(*clients), CLIENT_DEADLINE_S))

    return asyncio.run(all_of())


def test_20000_lines_at_full_speed_reach_every_client_once(stack: Stack, token: str) -> None:
    job = make_job({"callable": "workers.builtins:emit_lines", "count": 20_000, "size": 60})
    run = stack.trigger(job.id, token)

    async def from_start() -> Client:
        return await Client(stack, token, run.id).read()

    async def mid_stream() -> Client:
        await stored(run.id, 6000)
        return await Client(stack, token, run.id).read()

    async def reconnecting() -> Client:
        client = Client(stack, token, run.id)
        for stop in (1000, 5000, 11_000):
            await client.read(until_seq=stop)
        return await client.read()

    clients = gather(from_start(), mid_stream(), reconnecting())
    run = wait_terminal(run)
    assert run.state == "SUCCEEDED" and run.last_seq > 20_000
    for client in clients:
        client.check(run)


@pytest.mark.parametrize("outage_lines", [500, 30_000], ids=["restart", "30s-outage"])
def test_redis_restart_mid_run_loses_nothing_and_the_step_goes_on(stack: Stack, token: str, outage_lines: int) -> None:
    """Redis stops at seq 1000 and comes back once the worker has stored `outage_lines`
    more lines without it (at 1000 lines/s: 30,000 lines is a 30 s outage)."""
    job = make_job({"callable": "workers.builtins:emit_lines", "count": outage_lines + 3000, "size": 60, "rate": 1000})
    run = stack.trigger(job.id, token)
    clients: dict[str, Client] = {}

    async def throughout() -> Client:
        clients["throughout"] = await Client(stack, token, run.id).read()
        return clients["throughout"]

    async def during_outage() -> Client:
        await stored(run.id, 1000 + outage_lines // 2)
        return await Client(stack, token, run.id).read()

    async def outage() -> None:
        await in_thread(
            stack.restart_redis_when,
            lambda: last_seq(run.id) >= 1000,
            lambda: last_seq(run.id) >= 1000 + outage_lines,
        )

    done = gather(throughout(), during_outage(), outage())
    run = wait_terminal(run)
    assert run.state == "SUCCEEDED"
    for client in done[:2]:
        client.check(run)


def test_daphne_restart_mid_run_loses_nothing(stack: Stack, token: str) -> None:
    job = make_job({"callable": "workers.builtins:emit_lines", "count": 8000, "size": 60, "rate": 2000})
    run = stack.trigger(job.id, token)

    async def throughout() -> Client:
        return await Client(stack, token, run.id).read()

    async def late() -> Client:
        await stored(run.id, 5000)
        return await Client(stack, token, run.id).read()

    async def restart() -> None:
        await stored(run.id, 2000)
        await in_thread(stack.restart_daphne)

    done = gather(throughout(), restart(), late())
    run = wait_terminal(run)
    assert run.state == "SUCCEEDED"
    for client in (done[0], done[2]):
        client.check(run)


def test_a_step_logging_a_million_lines_works_end_to_end(stack: Stack, token: str) -> None:
    job = make_job({"callable": "workers.builtins:emit_lines", "count": 1_000_000, "size": 40})
    run = stack.trigger(job.id, token)
    (client,) = gather(Client(stack, token, run.id).read())
    run = wait_terminal(run, timeout=300)
    assert run.state == "SUCCEEDED" and run.last_seq == 1_000_002  # with the step's start and end lines
    client.check(run)


# --- the handshake's rules through daphne (runs/ws_auth.py, runs/ws_slots.py) ------------------


@pytest.fixture
def web(transactional_db: None) -> Iterator[str]:
    """daphne alone on the session's Redis, with at most 2 sockets per user; its host:port."""
    port = free_port()
    process = start_daphne(port, NOMAFLOW_WS_MAX_PER_USER="2")
    yield f"127.0.0.1:{port}"
    output = process.output()
    process.stop()
    assert "Traceback" not in output


def run_of(state: str) -> Run:
    """A run no worker touches, with one stored line."""
    run = Run.objects.create(job=JobFactory(), state="RUNNING", triggered_by="api")
    logstore.persist(run.id, [logstore.entry("INFO", "stored")])
    Run.objects.filter(pk=run.id).update(state=state)
    return run


def session_cookie(user: User) -> str:
    client = DjangoClient()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def next_frame(ws: websockets.ClientConnection) -> str | int | None:
    """The next frame's type, or the code the socket was closed with instead."""
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), 30))["type"]
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def test_daphne_refuses_an_origin_on_another_port_and_accepts_its_own(web: str, viewer: User) -> None:
    url = f"ws://{web}/ws/runs/{run_of('SUCCEEDED').id}/"
    cookie = {"Cookie": session_cookie(viewer)}
    other_port = f"http://127.0.0.1:{int(web.rsplit(':', 1)[1]) + 1}"

    async def scenario() -> tuple[int, list[str]]:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await connect(url, origin=websockets.Origin(other_port), additional_headers=cookie, open_timeout=30)
        async with connect(url, origin=websockets.Origin(f"http://{web}"), additional_headers=cookie) as ws:
            kinds = [json.loads(text)["type"] async for text in ws]
        return refused.value.response.status_code, kinds

    status, kinds = asyncio.run(scenario())
    assert status == 403 and kinds == ["log", "end"]


def test_daphne_closes_the_socket_beyond_the_cap_with_4429(web: str, viewer: User, operator: User) -> None:
    """An accepted socket of this running run gets its one stored line first."""
    url = f"ws://{web}/ws/runs/{run_of('RUNNING').id}/"
    mine = {"Authorization": f"Token {issue_token(viewer)}"}
    theirs = {"Authorization": f"Token {issue_token(operator)}"}

    async def scenario() -> list[Any]:
        held = [await connect(url, additional_headers=mine) for _ in range(2)]
        got = [await next_frame(ws) for ws in held]
        async with connect(url, additional_headers=mine) as extra:
            got.append(await next_frame(extra))
        async with connect(url, additional_headers=theirs) as other:
            got.append(await next_frame(other))  # another user is not affected
        for ws in held:
            await ws.close()
        async with connect(url, additional_headers=mine) as again:  # the slots were given back
            got.append(await next_frame(again))
        return got

    assert asyncio.run(scenario()) == ["log", "log", 4429, "log", "log"]


def test_remote_follow_beyond_the_cap_stops_with_a_message_instead_of_retrying(web: str, viewer: User) -> None:
    run, token = run_of("RUNNING"), issue_token(viewer)
    url = f"ws://{web}/ws/runs/{run.id}/"

    async def scenario() -> None:
        held = [await connect(url, additional_headers={"Authorization": f"Token {token}"}) for _ in range(2)]
        try:
            async for _ in remote_frames(f"http://{web}", token, run.id):
                pass
        finally:
            for ws in held:
                await ws.close()

    with pytest.raises(RemoteError, match="too many live logs open"):
        asyncio.run(scenario())


def test_daphne_keeps_a_socket_open_through_bad_frames(web: str, viewer: User) -> None:
    run = run_of("RUNNING")
    url = f"ws://{web}/ws/runs/{run.id}/"
    headers = {"Authorization": f"Token {issue_token(viewer)}"}

    async def scenario() -> list[Any]:
        async with connect(url, additional_headers=headers) as ws:
            got = [await next_frame(ws)]
            for frame in (b"\x00\xff", "not json {", '{"type": "end"}', "x" * 500_000):
                await ws.send(frame)
            await in_thread(logstore.write, run.id, [logstore.entry("INFO", "after the bad frames")])
            got.append(await next_frame(ws))
            return got

    assert asyncio.run(scenario()) == ["log", "log"]

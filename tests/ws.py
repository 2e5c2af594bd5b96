"""A websocket client for the run log, through the real ASGI app (nomaflow.asgi.application):
handshake headers, a frame reader and the run shapes the consumer tests share."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from accounts.tokens import issue_token
from nomaflow.asgi import application
from runs import logstore
from runs.choices import RunState
from runs.models import Run
from tests.factories import JobFactory

DEADLINE_S = 60.0  # how long a read waits before the test fails (not a timing check)
LINE_KEYS = {"seq", "ts", "level", "step", "message"}


def token_headers(user: User) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Token {issue_token(user)}".encode())]


def session_headers(
    user: User, origin: str = "http://testserver", host: str = "testserver"
) -> list[tuple[bytes, bytes]]:
    """A browser's handshake: its session cookie, the page's Origin, the Host it connects to."""
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"cookie", cookie.encode()), (b"origin", origin.encode()), (b"host", host.encode())]


def socket(run_id: str, headers: list[tuple[bytes, bytes]], after: int | str = 0) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after={after}", headers=headers)


class Reader:
    """One client's view: every seq it got, every frame type, and the end frame."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.kinds: list[str] = []
        self.end: dict[str, Any] | None = None
        self.close_code: int | None = None

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def read(self, ws: WebsocketCommunicator, *, until_seq: int | None = None) -> None:
        """Read frames until the socket closes (or, with `until_seq`, until that seq arrived)."""
        while until_seq is None or self.last < until_seq:
            output = await ws.receive_output(DEADLINE_S)
            if output["type"] == "websocket.close":
                self.close_code = output.get("code")
                return
            frame = json.loads(output["text"])
            self.kinds.append(frame["type"])
            if frame["type"] == "log":
                assert all(set(line) == LINE_KEYS for line in frame["lines"])
                self.seqs.extend(line["seq"] for line in frame["lines"])
            elif frame["type"] == "end":
                self.end = frame


def idle_run(state: RunState = RunState.RUNNING) -> Run:
    """A run no worker will touch: its lines and state are the test's to write."""
    return Run.objects.create(job=JobFactory(), state=state, triggered_by="api")


def finished_run(lines: int, state: RunState = RunState.SUCCEEDED) -> Run:
    run = idle_run(RunState.RUNNING)
    for start in range(0, lines, 5000):
        count = min(5000, lines - start)
        logstore.persist(run.id, [logstore.entry("INFO", f"stored {start + i + 1}", "F0001") for i in range(count)])
    run.refresh_from_db()
    run.finish(state)
    return run


async def refused(ws: WebsocketCommunicator) -> tuple[bool, int | None]:
    connected, code = await ws.connect(DEADLINE_S)
    assert await ws.receive_nothing(0.2)  # not a single frame
    return connected, code


async def read_all(ws: WebsocketCommunicator) -> Reader:
    connected, _ = await ws.connect(DEADLINE_S)
    assert connected
    reader = Reader()
    await reader.read(ws)
    await ws.wait()
    return reader

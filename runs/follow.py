"""Printing a run's log for the CLI (`trigger --follow`, `tail`): from the local database
by polling, or from a remote nomaflow through its API with a token.

Locally, lines are read with `seq > after`, so following costs one indexed query per
poll and never prints a line twice. Remotely, the stored log comes from
`GET /api/v1/runs/{id}/logs/` and following uses the websocket `/ws/runs/{id}/?after=`,
reconnecting with the last seq seen whenever the connection drops (API.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, Protocol

import requests
import websockets
from websockets.asyncio.client import connect

from .choices import RunState
from .links import run_link
from .logstore import text_line
from .models import LogLine, Run
from .selectors import log_lines
from .transitions import RUN
from .ws_slots import CLOSE_CODE as TOO_MANY_SOCKETS


class Writer(Protocol):
    """Where lines are printed: a text stream, or a management command's OutputWrapper."""

    def write(self, msg: str, /) -> Any: ...
    def flush(self) -> Any: ...


POLL_INTERVAL_S = 0.2
BATCH = 1000
RECONNECT_DELAYS_S = (0.1, 0.2, 0.5, 1.0, 2.0)  # then every 2 s
RECONNECT_GIVE_UP_S = 300.0  # of failed attempts in a row


def format_line(line: LogLine) -> str:
    """logstore.text_line of a stored line."""
    return text_line(line.seq, line.ts, line.level, line.step, line.message)


def format_line_dict(line: dict[str, Any]) -> str:
    """The same, for a LogLine as the API sends it."""
    return text_line(line["seq"], datetime.fromisoformat(line["ts"]), line["level"], line["step"], line["message"])


def run_url(run: Run) -> str:
    return run_link(run.id)


def exit_code(state: str) -> int:
    """The follow commands' rule: 0 for a SUCCEEDED run, 1 for any other end."""
    return 0 if state == RunState.SUCCEEDED else 1


def print_lines(run: Run, out: Writer, *, after: int = 0) -> int:
    """Print every stored line after `after`; return the last seq printed."""
    for line in _lines_after(run, after):
        out.write(format_line(line) + "\n")
        after = line.seq
    out.flush()
    return after


def follow(run: Run, out: Writer, *, after: int = 0, interval: float = POLL_INTERVAL_S) -> str:
    """Print lines as they are stored until the run is terminal; return its final state."""
    while True:
        # State first, lines second: lines stored before the run ended are then all read.
        state = Run.objects.values_list("state", flat=True).get(pk=run.pk)
        after = print_lines(run, out, after=after)
        if state in RUN.terminal:
            # One more look for a closing line written just after the state change
            # (e.g. "run cancelled by …").
            time.sleep(interval)
            print_lines(run, out, after=after)
            return state
        time.sleep(interval)


def follow_and_exit(run: Run, out: Writer, err: Writer) -> None:
    """Follow the run to its end, then exit 0 if it SUCCEEDED, 1 otherwise (raises SystemExit)."""
    finish_following(run.pk, lambda: follow(run, out), out, err)


def finish_following(run_id: str, following: Any, out: Writer, err: Writer) -> None:
    """Call `following()` (returns the run's final state), print it and exit with exit_code."""
    try:
        state = following()
    except KeyboardInterrupt:
        err.write(f"stopped following; the run goes on (python manage.py tail {run_id} --follow)\n")
        raise SystemExit(130) from None
    out.write(f"run {run_id} {state}\n")
    out.flush()
    code = exit_code(state)
    if code:
        raise SystemExit(code)


def _lines_after(run: Run, after: int) -> Iterator[LogLine]:
    while True:
        batch = list(log_lines(run_id=run.pk, after=after)[:BATCH])
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].seq


class RemoteError(Exception):
    """The remote nomaflow refused us or could not be reached; the message says why."""


def remote_print_lines(base_url: str, token: str, run_id: str, out: Writer) -> int:
    """Print every stored line of a remote run (REST pages); return the last seq."""
    after = 0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Token {token}"
        while True:
            url = f"{base_url.rstrip('/')}/api/v1/runs/{run_id}/logs/"
            response = session.get(url, params={"after": after, "limit": 10_000}, timeout=60)
            if response.status_code != 200:
                raise RemoteError(f"GET {url}: {response.status_code} {_detail(response)}")
            page = response.json()
            _write(out, page["lines"])
            after = page["last_seq"]
            if not page["more"]:
                out.flush()
                return after


def remote_follow(base_url: str, token: str, run_id: str, out: Writer) -> str:
    """Print lines of a remote run as they come until it ends; return its final state."""
    return asyncio.run(_remote_follow(base_url, token, run_id, out))


async def _remote_follow(base_url: str, token: str, run_id: str, out: Writer) -> str:
    last = 0
    async for frame in remote_frames(base_url, token, run_id):
        if frame["type"] == "log":
            lines = [line for line in frame["lines"] if line["seq"] > last]  # the server never repeats one
            _write(out, lines)
            out.flush()
            last = lines[-1]["seq"] if lines else last
        elif frame["type"] == "end":
            return frame["state"]
    raise AssertionError("unreachable: remote_frames ends with an end frame")


async def remote_frames(base_url: str, token: str, run_id: str, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
    """Every frame of the run's websocket, up to and including `end`. A dropped connection
    (daphne or Redis restarting, a network blip) is reopened with `?after=<last seq>`."""
    last, failures = after, 0
    while True:
        try:
            async with connect(
                websocket_url(base_url, run_id, last), additional_headers={"Authorization": f"Token {token}"},
                max_size=None, open_timeout=10,
            ) as ws:  # fmt: skip
                failures = 0
                async for text in ws:
                    frame = json.loads(text)
                    if frame["type"] == "log" and frame["lines"]:
                        last = frame["lines"][-1]["seq"]
                    yield frame
                    if frame["type"] == "end":
                        return
        except websockets.InvalidStatus as exc:
            if exc.response.status_code == 403:
                raise RemoteError(
                    f"{base_url}: run {run_id} does not exist, or the token's user lacks the viewer role"
                ) from None
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == TOO_MANY_SOCKETS:
                # Reconnecting would only take the slot of another of the user's sockets.
                reason = exc.rcvd.reason or "this user has too many live logs open (NOMAFLOW_WS_MAX_PER_USER)"
                raise RemoteError(f"{base_url}: {reason}; close one and retry") from None
        except (OSError, TimeoutError, websockets.WebSocketException):
            pass  # reconnect below
        failures += 1
        await asyncio.sleep(_reconnect_delay(failures, base_url))


def _write(out: Writer, lines: list[dict[str, Any]]) -> None:
    if lines:  # a management command's stdout adds a newline to an empty write
        out.write("".join(format_line_dict(line) + "\n" for line in lines))


def websocket_url(base_url: str, run_id: str, after: int) -> str:
    scheme, _, rest = base_url.rstrip("/").partition("://")
    if scheme not in ("http", "https"):
        raise RemoteError(f'--url "{base_url}" must start with http:// or https://')
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/runs/{run_id}/?after={after}"


def _reconnect_delay(failures: int, base_url: str) -> float:
    waited = sum(RECONNECT_DELAYS_S[min(i, len(RECONNECT_DELAYS_S) - 1)] for i in range(failures - 1))
    if waited > RECONNECT_GIVE_UP_S:
        raise RemoteError(f"{base_url}: no websocket connection for {waited:.0f} s; is nomaflow up?")
    return RECONNECT_DELAYS_S[min(failures - 1, len(RECONNECT_DELAYS_S) - 1)]


def _detail(response: requests.Response) -> str:
    try:
        return response.json().get("detail", "")
    except ValueError:
        return response.text[:200]

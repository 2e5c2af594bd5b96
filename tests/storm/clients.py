"""The storm's clients: one API client per thread (httpx, token auth) that times every
request, and the storm client's mix of actions. Only the API and the websocket contract
of API.md are relied on."""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

REQUEST_TIMEOUT_S = 30.0  # a request slower than this counts as a transport error
FOLLOW_TIMEOUT_S = 30.0  # a websocket follow without `end` by then is a failure
MAX_ACTIVE_PER_CLIENT = 3  # a client with this many unfinished runs polls instead of adding more
IDEMPOTENCY_REPEAT = 0.3  # share of keyed triggers that resend an earlier key
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
# Relative weights of the actions a storm client picks from.
ACTIONS = {
    "trigger": 20, "trigger_idem": 15, "cancel": 10, "replay": 10, "run": 10,
    "logs": 15, "logs_txt": 10, "ws_follow": 10,
}  # fmt: skip
ENDPOINTS = tuple(ACTIONS)


@dataclass
class EndpointStats:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


class Stats:
    """What every client saw, per endpoint, shared between threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.endpoints: dict[str, EndpointStats] = defaultdict(EndpointStats)
        self.server_errors: list[str] = []  # "<endpoint> <status>: <body>", the first few kept whole
        self.transport_errors: list[str] = []
        self.ws_violations: list[str] = []
        self.idempotency_mismatches: list[str] = []
        self.ws_outcomes: Counter[str] = Counter()
        self.ws_failures: dict[str, str] = {}  # run id → what the follow saw before it gave up

    def record(self, endpoint: str, status: int | str, seconds: float, body: str = "") -> None:
        with self.lock:
            stats = self.endpoints[endpoint]
            stats.latencies_ms.append(seconds * 1000)
            stats.statuses[str(status)] += 1
            if isinstance(status, int) and status >= 500:
                self.server_errors.append(f"{endpoint} {status}: {body[:500]}")

    def note(self, kind: str, text: str) -> None:
        with self.lock:
            getattr(self, kind).append(text)

    def summary(self, duration_s: float) -> dict[str, dict[str, Any]]:
        """{endpoint: {count, per_s, statuses, p50_ms, p99_ms}}."""
        with self.lock:
            return {name: _endpoint_summary(s, duration_s) for name, s in sorted(self.endpoints.items())}

    @property
    def requests(self) -> int:
        return sum(len(s.latencies_ms) for s in self.endpoints.values())

    @property
    def server_error_count(self) -> int:
        return sum(n for s in self.endpoints.values() for code, n in s.statuses.items() if code.startswith("5"))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


def _endpoint_summary(stats: EndpointStats, duration_s: float) -> dict[str, Any]:
    values = stats.latencies_ms
    return {
        "count": len(values),
        "per_s": round(len(values) / duration_s, 2) if duration_s else 0.0,
        "statuses": dict(sorted(stats.statuses.items())),
        "p50_ms": round(percentile(values, 50), 2),
        "p99_ms": round(percentile(values, 99), 2),
    }


class ApiClient:
    """One user's client: every call is timed into `stats` under its endpoint's name."""

    def __init__(self, base_url: str, token: str, stats: Stats) -> None:
        self.base_url, self.token, self.stats = base_url, token, stats
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v1/", headers={"Authorization": f"Token {token}"},
            timeout=REQUEST_TIMEOUT_S, trust_env=False,
        )  # fmt: skip

    def close(self) -> None:
        self.http.close()

    def call(self, endpoint: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.stats.note("transport_errors", f"{endpoint} {method} {path}: {exc!r}")
            return None
        body = response.text if response.status_code >= 500 else ""
        self.stats.record(endpoint, response.status_code, time.perf_counter() - started, body)
        return response

    def trigger(self, job_id: str, key: str | None = None, endpoint: str = "trigger") -> dict[str, Any] | None:
        headers = {"Idempotency-Key": key} if key else {}
        return _json(self.call(endpoint, "POST", f"jobs/{job_id}/runs/", json={}, headers=headers), 201)

    def cancel(self, run_id: str) -> dict[str, Any] | None:
        return _json(self.call("cancel", "POST", f"runs/{run_id}/cancel/"), 202)

    def replay(self, run_id: str, tag: str) -> dict[str, Any] | None:
        return _json(self.call("replay", "POST", f"runs/{run_id}/replay/", json={"params": {"tag": tag}}), 201)

    def run(self, run_id: str) -> dict[str, Any] | None:
        return _json(self.call("run", "GET", f"runs/{run_id}/"), 200)

    def logs(self, run_id: str) -> dict[str, Any] | None:
        return _json(self.call("logs", "GET", f"runs/{run_id}/logs/", params={"after": 0, "limit": 200}), 200)

    def logs_txt(self, run_id: str) -> str | None:
        response = self.call("logs_txt", "GET", f"runs/{run_id}/logs.txt")
        return response.text if response is not None and response.status_code == 200 else None

    def runs_in(self, state: str) -> list[dict[str, Any]]:
        """Every run in `state` (untimed: for checks after the storm)."""
        runs, url = [], f"runs/?state={state}&page_size=500"
        while url:
            page = self.http.get(url).raise_for_status().json()
            runs += page["results"]
            url = page["next"]
        return runs

    def follow(self, run_id: str) -> str:
        """Follow the run's live log to its `end` frame. The latency recorded is the
        handshake plus the first frame; the outcome (end, timeout, close code) is counted.

        With the asyncio client, as the CLI's `tail --follow` (runs/follow.py): the sync one
        drops the frames that arrive with the server's close when its close reply cannot be
        written any more (websockets' sync recv_events), which a fast `end` then close
        makes happen now and then."""
        started = time.perf_counter()
        try:
            outcome = asyncio.run(self._follow(run_id, started))
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = (exc.response.body or b"").decode(errors="replace")
            self.stats.record("ws_follow", status, time.perf_counter() - started, body)
            outcome = f"refused {status}"
        except (WebSocketException, OSError) as exc:
            self.stats.note("transport_errors", f"ws_follow {run_id}: {exc!r}")
            outcome = "error"
        with self.stats.lock:
            self.stats.ws_outcomes[outcome] += 1
        return outcome

    async def _follow(self, run_id: str, started: float) -> str:
        url = f"{self.base_url.replace('http', 'ws', 1)}/ws/runs/{run_id}/?after=0"
        async with connect(
            url, additional_headers={"Authorization": f"Token {self.token}"}, proxy=None,
            open_timeout=REQUEST_TIMEOUT_S, close_timeout=2,
        ) as ws:  # fmt: skip
            return await Follow(run_id, self.stats).read(ws, started)


class Follow:
    """Reads one websocket to its end, checking the contract: seqs in order, none twice,
    none missing, and `end.last_seq` the last seq sent."""

    def __init__(self, run_id: str, stats: Stats) -> None:
        self.run_id, self.stats, self.last = run_id, stats, 0
        self.frames: Counter[str] = Counter()
        self.run_state = ""  # from the last `run` frame

    async def read(self, ws: Any, started: float) -> str:
        opened, deadline = time.strftime("%H:%M:%S"), time.monotonic() + FOLLOW_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
            except TimeoutError:
                break
            except WebSocketException as exc:  # exc says who closed first, with which code
                self.violation(f"closed {ws.close_code} before the end frame ({self.seen()}): {exc}")
                return f"closed {ws.close_code}"
            if not self.frames:
                self.stats.record("ws_follow", 101, time.perf_counter() - started)
            if self.check(frame):
                return "end"
        failure = f"opened {opened} UTC, no end in {FOLLOW_TIMEOUT_S:g} s: {self.seen()}"
        with self.stats.lock:
            self.stats.ws_failures[self.run_id] = failure
        return "timeout"

    def seen(self) -> str:
        return f"frames {dict(self.frames)}, last seq {self.last}, last run state {self.run_state or '-'}"

    def check(self, frame: dict[str, Any]) -> bool:
        """True at the end frame."""
        self.frames[frame["type"]] += 1
        if frame["type"] == "run":
            self.run_state = frame["run"]["state"]
        elif frame["type"] == "log":
            for line in frame["lines"]:
                if line["seq"] != self.last + 1:
                    self.violation(f"seq {line['seq']} after {self.last}")
                self.last = max(self.last, line["seq"])
        elif frame["type"] == "end":
            if frame["last_seq"] != self.last:
                self.violation(f"end last_seq {frame['last_seq']} but the last line sent was {self.last}")
            return True
        return False

    def violation(self, text: str) -> None:
        self.stats.note("ws_violations", f"run {self.run_id}: {text}")


def _json(response: httpx.Response | None, expected: int) -> dict[str, Any] | None:
    return response.json() if response is not None and response.status_code == expected else None


class StormClient(threading.Thread):
    """One user hammering the API until `stop` is set: a weighted random mix of actions
    on its own runs, never more than MAX_ACTIVE_PER_CLIENT of them unfinished (so the
    backlog stays bounded and the storm measures contention, not an ever-growing queue)."""

    def __init__(self, api: ApiClient, job_ids: list[str], seed: int, stop: threading.Event, think_s: float) -> None:
        super().__init__(name=f"storm-client-{seed}", daemon=True)
        self.api, self.job_ids, self.stop, self.think_s = api, job_ids, stop, think_s
        self.rng = random.Random(seed)
        self.runs: dict[str, str] = {}  # run id → last state seen, insertion order = age
        self.keys: list[tuple[str, str, str]] = []  # (key, job, run id) of keyed triggers

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                getattr(self, f"do_{action}")()
                self.stop.wait(self.think_s)
        finally:
            self.api.close()

    def active(self) -> list[str]:
        return [run_id for run_id, state in self.runs.items() if state not in TERMINAL]

    def seen(self, run: dict[str, Any] | None) -> str | None:
        if run is None:
            return None
        self.runs[run["id"]] = run["state"]
        return run["id"]

    def room(self) -> bool:
        """Room for another run; otherwise look at the oldest unfinished one instead."""
        if len(self.active()) < MAX_ACTIVE_PER_CLIENT:
            return True
        self.do_run()
        return False

    def do_trigger(self) -> None:
        if self.room():
            self.seen(self.api.trigger(self.rng.choice(self.job_ids)))

    def do_trigger_idem(self) -> None:
        if self.keys and self.rng.random() < IDEMPOTENCY_REPEAT:
            key, job_id, run_id = self.rng.choice(self.keys)
            again = self.seen(self.api.trigger(job_id, key, endpoint="trigger_idem"))
            if again is not None and again != run_id:
                self.api.stats.note("idempotency_mismatches", f"key {key}: run {run_id}, then {again}")
        elif self.room():
            key, job_id = str(uuid.uuid4()), self.rng.choice(self.job_ids)
            created = self.seen(self.api.trigger(job_id, key, endpoint="trigger_idem"))
            if created is not None:
                self.keys.append((key, job_id, created))

    def do_cancel(self) -> None:
        """Cancel the newest unfinished run, or trigger one and cancel it at once (the race)."""
        active = self.active()
        run_id: str | None = active[-1] if active else self.seen(self.api.trigger(self.rng.choice(self.job_ids)))
        if run_id is not None:
            self.seen(self.api.cancel(run_id) or self.api.run(run_id))

    def do_replay(self) -> None:
        finished = [run_id for run_id, state in self.runs.items() if state in TERMINAL]
        if finished and self.room():
            self.seen(self.api.replay(self.rng.choice(finished), tag=f"replay-{self.rng.randrange(10**6)}"))
        elif not finished:
            self.do_trigger()

    def do_run(self) -> None:
        active = self.active()
        if active or self.runs:
            self.seen(self.api.run(active[0] if active else self.any_run()))
        else:
            self.do_trigger()

    def any_run(self) -> str:
        return self.rng.choice(list(self.runs))

    def do_logs(self) -> None:
        if self.runs:
            self.api.logs(self.any_run())

    def do_logs_txt(self) -> None:
        if self.runs:
            self.api.logs_txt(self.any_run())

    def do_ws_follow(self) -> None:
        """Follow an unfinished run when there is one (live frames), else a finished one (backlog)."""
        active = self.active()
        if active or self.runs:
            run_id = self.rng.choice(active) if active else self.any_run()
            if self.api.follow(run_id) == "end":
                self.seen(self.api.run(run_id))

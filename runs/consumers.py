"""The live log of a run over a websocket: gapless, resumable, closed at the run's end."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.roles import VIEWER, has_role

from . import events, selectors, ws_slots
from .logstore import READ_FIELDS, line_dict
from .models import Run
from .transitions import RUN

logger = logging.getLogger(__name__)

PAGE = 2000  # lines per `log` frame when sending from the database
# Renew the group membership well within CHANNEL_LAYERS' group_expiry (a Redis restart
# forgets it), and the socket's slot (ws_slots) on the same beat.
RENEW_S = ws_slots.REFRESH_S


class RunLogConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/runs/{id}/?after=<seq>` (API.md, "Websocket").

    Joins the run's group first, then sends the stored lines after `after`, then live
    batches, skipping any seq already sent and filling any gap from the database, so
    every seq goes out exactly once and in order. When the run has ended and its last
    line is sent: `{"type": "end", "state": …, "last_seq": n}`, then close (1000).
    Refused (no frame): a bad `after`, a user without the viewer role, an unknown run.
    Accepted then closed with 4429: the user already holds NOMAFLOW_WS_MAX_PER_USER
    sockets (ws_slots). Frames from the client mean nothing and are ignored.
    """

    run_id: str
    sent: int  # the last seq sent to this client
    ended = False
    last_event = 0.0
    watchdog: asyncio.Task[None] | None = None
    slot_user: int | None = None  # whose socket count this socket is in

    async def connect(self) -> None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        after = _after(self.scope.get("query_string", b""))
        user = self.scope.get("user")
        if after is None or not await _may_watch(user, self.run_id):
            await self.close()  # before accept(): the handshake is refused
            return
        if not await self.take_slot(user.pk):
            return
        self.sent, self.lock = after, asyncio.Lock()
        await self.channel_layer.group_add(events.group_name(self.run_id), self.channel_name)
        await self.accept()
        async with self.lock:
            await self.catch_up()
        self.last_event = time.monotonic()
        if not self.ended:
            self.watchdog = asyncio.create_task(self.watch())

    async def take_slot(self, user_id: int) -> bool:
        """Count this socket for its user, or tell the client it holds too many. Accepted
        first: a refused handshake reaches a browser's script as a bare 1006, like a network
        error it would retry at once, while a close code says what to do."""
        try:
            taken = await ws_slots.take(user_id, self.channel_name)
        except Exception:  # Redis down: the cap is a guard, not a reason to refuse everyone
            logger.warning("live log of run %s: could not count the socket", self.run_id, exc_info=True)
            return True
        if not taken:
            await self.accept()
            await self.close(code=ws_slots.CLOSE_CODE, reason=ws_slots.close_reason())
            return False
        self.slot_user = user_id
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """The protocol has no client frames: whatever arrives (binary, not JSON, any
        size) is dropped, and the socket stays open. The base class would raise on it."""
        size = len(text_data or "") + len(bytes_data or b"")
        logger.debug("live log of run %s: ignored a %d-byte client frame", self.run_id, size)

    async def disconnect(self, code: int) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.slot_user is not None:
            try:
                await ws_slots.release(self.slot_user, self.channel_name)
            except Exception:  # Redis gone: the slot stops counting within ws_slots.TTL_S
                pass
        if hasattr(self, "sent"):
            try:
                await self.channel_layer.group_discard(events.group_name(self.run_id), self.channel_name)
            except Exception:  # Redis gone: the membership expires on its own
                pass

    async def run_log(self, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        lines = event["lines"]
        async with self.lock:
            if self.ended or not lines or lines[-1]["seq"] <= self.sent:
                return
            if lines[0]["seq"] > self.sent + 1:  # a batch never reached us: the database has it
                await self.send_stored(upto=lines[0]["seq"] - 1)
            await self.send_lines([line for line in lines if line["seq"] > self.sent])

    async def run_batch(self, event: dict[str, Any]) -> None:
        """Several events of this run published together (runs/events.py), in order."""
        handlers = {"run.log": self.run_log, "run.step": self.run_step, "run.run": self.run_run}
        for message in event["messages"]:
            await handlers[message["type"]](message)

    async def run_step(self, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        async with self.lock:
            if not self.ended:
                # The step's last lines were stored with its end: send them first.
                upto = event.get("last_seq") or (await _position(self.run_id))[1]
                await self.send_stored(upto=upto)
                await self.send_json({"type": "step", "step": event["step"]})

    async def run_run(self, event: dict[str, Any]) -> None:
        self.last_event = time.monotonic()
        async with self.lock:
            if not self.ended:
                await self.send_stored(upto=(await _position(self.run_id))[1])
                await self.send_json({"type": "run", "run": event["run"]})
                if event["run"]["state"] in RUN.terminal:
                    await self.catch_up()

    async def catch_up(self) -> None:
        """Send every stored line not sent yet; end if the run has ended. Holds the lock."""
        state, last_seq = await _position(self.run_id)
        await self.send_stored(upto=last_seq)
        if state in RUN.terminal:  # its lines and its end are stored together
            self.ended = True
            await self.send_json({"type": "end", "state": state, "last_seq": max(last_seq, self.sent)})
            await self.close(code=1000)

    async def send_stored(self, *, upto: int) -> None:
        while self.sent < upto:
            lines = await _stored(self.run_id, self.sent, upto)
            if not lines:  # lines deleted by retention: nothing more to send below `upto`
                self.sent = upto
                return
            await self.send_lines(lines)

    async def send_lines(self, lines: list[dict[str, Any]]) -> None:
        if lines:
            await self.send_json({"type": "log", "lines": lines})
            self.sent = lines[-1]["seq"]

    async def watch(self) -> None:
        """The group's messages drive the socket; this renews the membership and the slot,
        and only when no message came for NOMAFLOW_WS_FALLBACK_POLL_S looks in the
        database, in case one was lost or the run ended unannounced."""
        poll_s = settings.NOMAFLOW_WS_FALLBACK_POLL_S
        renewed = time.monotonic()
        while not self.ended:
            # A quarter of the interval: a lost message is made up for within 1.25 × poll_s
            # of the last one (a whole interval's sleep made it up to twice that).
            await asyncio.sleep(min(poll_s, RENEW_S) / 4)
            try:
                if time.monotonic() - renewed >= RENEW_S:
                    renewed = await self.renew()
                if time.monotonic() - self.last_event >= poll_s and await self.poll():
                    renewed = await self.renew()
            except Exception:  # the database or Redis hiccuped: try again next tick
                logger.warning("live log of run %s: check failed", self.run_id, exc_info=True)

    async def poll(self) -> bool:
        """Catch up from the database; True if lines came that no message announced."""
        async with self.lock:
            before = self.sent
            if not self.ended:
                await self.catch_up()
        return self.sent > before and not self.ended

    async def renew(self) -> float:
        await self.channel_layer.group_add(events.group_name(self.run_id), self.channel_name)
        if self.slot_user is not None:
            await ws_slots.renew(self.slot_user, self.channel_name)
        return time.monotonic()


def _after(query_string: bytes) -> int | None:
    values = parse_qs(query_string.decode("latin1")).get("after", ["0"])
    try:
        after = int(values[-1] or 0)
    except ValueError:
        return None
    return after if after >= 0 else None


@database_sync_to_async
def _may_watch(user: Any, run_id: str) -> bool:
    return has_role(user, VIEWER) and Run.objects.filter(pk=run_id).exists()


@database_sync_to_async
def _position(run_id: str) -> tuple[str, int]:
    """(state, last_seq), read together: every line up to last_seq is visible."""
    return Run.objects.values_list("state", "last_seq").get(pk=run_id)


@database_sync_to_async
def _stored(run_id: str, after: int, upto: int) -> list[dict[str, Any]]:
    rows = selectors.log_lines(run_id=run_id, after=after, upto=upto).values_list(*READ_FIELDS)[:PAGE]
    return [line_dict(*row) for row in rows]

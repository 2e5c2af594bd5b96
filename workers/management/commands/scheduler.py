"""`python manage.py scheduler`: fire cron runs, reap lost steps, start waiting runs.

Run as many as you like: one leads (the Redis lock), the others wait to take over."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from prometheus_client import REGISTRY

from workers import metrics_server
from workers.scheduler import Scheduler

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the scheduler loop (cron fires, the reaper of lost steps, waiting runs); one copy leads."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="do one tick (if the lead is free) and exit")

    def handle(self, *args: Any, once: bool = False, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        scheduler = Scheduler()
        port = settings.NOMAFLOW_METRICS_PORT
        metrics = metrics_server.serve(port, REGISTRY) if port else None  # one process: its own registry
        logger.info(  # a log record, not stdout: with LOG_FORMAT=json it is a JSON line too
            "scheduler started as %s (tick %g s, lock TTL %g s)",
            scheduler.lock.holder, settings.NOMAFLOW_SCHEDULER_TICK_S, scheduler.lock.ttl_s,
        )  # fmt: skip
        try:
            while True:
                close_old_connections()
                led = False
                try:
                    led = scheduler.step()
                except Exception:  # the next tick retries what this one did not finish
                    logger.exception("scheduler tick failed")
                beat(led)
                if once or stop.wait(settings.NOMAFLOW_SCHEDULER_TICK_S):
                    break
        finally:
            scheduler.stop()  # hand the lead over now rather than after the TTL
            if metrics is not None:
                metrics.shutdown()
        logger.info("scheduler stopped")


def beat(led: bool) -> None:
    """Touch the heartbeat file that `manage.py healthcheck scheduler` reads: this loop is
    alive, whether its round led, followed or failed (a failed round is logged; restarting
    the process would not mend the database or Redis it failed on)."""
    path = settings.NOMAFLOW_SCHEDULER_HEARTBEAT_FILE
    try:
        path.write_text("leader" if led else "follower")
    except OSError as exc:  # the health check reports the missing beat; the rounds go on
        logger.warning("scheduler heartbeat %s not written: %s", path, exc)

"""`python manage.py scheduler`: fire cron runs, reap lost steps, start waiting runs."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

from workers import scheduler

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the scheduler loop (cron fires, the reaper of lost steps, waiting runs)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="do one tick and exit")

    def handle(self, *args: Any, once: bool = False, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        since = timezone.now()
        self.stdout.write(f"scheduler started (tick {settings.NOMAFLOW_SCHEDULER_TICK_S:g} s)", ending="\n")
        self.stdout.flush()
        while True:
            close_old_connections()
            try:
                since = scheduler.tick(since=since)
            except Exception:  # keep `since`: the next tick retries the same period
                logger.exception("scheduler tick failed")
            if once or stop.wait(settings.NOMAFLOW_SCHEDULER_TICK_S):
                break
        self.stdout.write("scheduler stopped")

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs.demo import demo_load


class Command(BaseCommand):
    help = "Create or update the demo job `demo-etl` and its SQLite connector `demo_db` (under NOMAFLOW_VAR_DIR)."

    def handle(self, *args: Any, **options: Any) -> None:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file of the demo lives there
        job = demo_load(var_dir=settings.VAR_DIR)
        self.stdout.write(f"demo job {job.id} ready; try: python manage.py trigger {job.id} --follow")

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from runs import follow as log_follow
from runs.models import Run


class Command(BaseCommand):
    help = "Print a run's log; with --follow keep printing until the run ends (exit 0 if it SUCCEEDED, 1 otherwise)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", help="the run id")
        parser.add_argument("--follow", action="store_true", help="keep printing new lines until the run ends")

    def handle(self, *args: Any, **options: Any) -> None:
        run = Run.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(
                f'run "{options["run"]}" does not exist; `python manage.py trigger <job>` prints the id of a new run'
            )
        if options["follow"]:
            log_follow.follow_and_exit(run, self.stdout, self.stderr)
        else:
            log_follow.print_lines(run, self.stdout)

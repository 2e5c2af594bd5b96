from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.audit import actor_label
from core.errors import StateConflict
from runs import cli
from runs.models import Run
from runs.services import run_cancel


class Command(BaseCommand):
    help = "Cancel a QUEUED or RUNNING run (canceled_by=cli, or user:<name> with --user)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", help="the run id")
        parser.add_argument("--user", metavar="NAME", help="record the cancel as by this nomaflow user")

    def handle(self, *args: Any, **options: Any) -> None:
        by = _canceled_by(options["user"])
        try:
            run = run_cancel(run_id=options["run"], by=by)
        except Run.DoesNotExist:
            raise cli.unknown_run_error(options["run"]) from None
        except StateConflict as exc:
            raise CommandError(exc.detail) from None
        if run.is_terminal:
            self.stdout.write(f"run {run.id} {run.state} (canceled by {run.canceled_by})")
        else:
            # The worker stops the running step and ends the run; say so rather than claim it is over.
            self.stdout.write(
                f"run {run.id} {run.state}, cancel requested by {run.canceled_by}: the running step is being "
                f"stopped (python manage.py tail {run.id} --follow shows the end)"
            )


def _canceled_by(username: str | None) -> str:
    if username is None:
        return "cli"
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        # The audit trail names people; a typo must not end up there.
        raise CommandError(f'user "{username}" does not exist; --user takes a nomaflow username')
    return actor_label(user)

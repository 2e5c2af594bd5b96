from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import InputError, StateConflict
from runs import cli
from runs import follow as log_follow
from runs.models import Run
from runs.services import run_replay


class Command(BaseCommand):
    help = (
        "Start a new run from a finished run's parameters (triggered_by=cli), with overrides on top; "
        "with --follow print its log until it ends."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", help="the id of the finished run to replay")
        cli.add_override_arguments(parser)
        shortcut = parser.add_mutually_exclusive_group()
        shortcut.add_argument(
            "--only-failed", dest="rerun", action="store_const", const="failed_step",
            help="run only the step where the original run stopped",
        )  # fmt: skip
        shortcut.add_argument(
            "--from-failed", dest="rerun", action="store_const", const="from_failed_step",
            help="run the step where the original run stopped and every enabled step after it",
        )  # fmt: skip
        cli.add_follow_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = cli.overrides_from_options(options)
        if options["rerun"]:
            overrides["rerun"] = options["rerun"]
        run = self._replay(options["run"], overrides)
        self.stdout.write(f"run {run.id} queued (replay of {run.replay_of_id}): {log_follow.run_url(run)}")
        if options["follow"]:
            log_follow.follow_and_exit(run, self.stdout, self.stderr)

    def _replay(self, run_id: str, overrides: dict[str, Any]) -> Run:
        try:
            return run_replay(run_id=run_id, overrides=overrides, triggered_by="cli")
        except Run.DoesNotExist:
            raise cli.unknown_run_error(run_id) from None
        except StateConflict as exc:
            raise CommandError(exc.detail) from None
        except InputError as exc:
            raise CommandError(cli.input_error_text(exc)) from None

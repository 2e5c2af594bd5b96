from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import InputError
from jobs.models import Job
from runs import cli
from runs import follow as log_follow
from runs.models import Run
from runs.services import run_trigger

KNOWN_JOBS_SHOWN = 10


class Command(BaseCommand):
    help = "Trigger a run of a job (triggered_by=cli); with --follow print its log until it ends."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("job", help="the job id, e.g. demo-etl")
        cli.add_override_arguments(parser)
        cli.add_follow_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run = self._trigger(options["job"], cli.overrides_from_options(options))
        self.stdout.write(f"run {run.id} queued: {log_follow.run_url(run)}")
        if options["follow"]:
            log_follow.follow_and_exit(run, self.stdout, self.stderr)

    def _trigger(self, job_id: str, overrides: dict[str, Any]) -> Run:
        try:
            run, _ = run_trigger(job_id=job_id, overrides=overrides, triggered_by="cli")
        except Job.DoesNotExist:
            known = list(Job.objects.values_list("id", flat=True)[:KNOWN_JOBS_SHOWN])
            raise CommandError(
                f'job "{job_id}" does not exist (known: {", ".join(known) or "none yet"}); '
                "create it with `python manage.py load_jobs <file>` or in the admin"
            ) from None
        except InputError as exc:
            raise CommandError(cli.input_error_text(exc)) from None
        return run

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.errors import InputError
from jobs.models import Job
from runs import follow as log_follow
from runs.models import Run
from runs.services import run_trigger

KNOWN_JOBS_SHOWN = 10


class Command(BaseCommand):
    help = "Trigger a run of a job (triggered_by=cli); with --follow print its log until it ends."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("job", help="the job id, e.g. demo-etl")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="override a param; VALUE is read as JSON if it parses (5, true, [1]), else as text",
        )
        parser.add_argument("--disable", action="append", default=[], metavar="STEP", help="skip this step")
        parser.add_argument("--debug", action="store_true", help="run with log level DEBUG")
        parser.add_argument("--follow", action="store_true",
                            help="print the log until the run ends; exit 0 if it SUCCEEDED, 1 otherwise")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = build_overrides(options["param"], options["disable"], options["debug"])
        run = self._trigger(options["job"], overrides)
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
            raise CommandError(input_error_text(exc)) from None
        return run


def build_overrides(params: list[str], disabled: list[str], debug: bool) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if params:
        overrides["params"] = dict(parse_param(item) for item in params)
    if disabled:
        overrides["steps"] = {name: {"enabled": False} for name in disabled}
    if debug:
        overrides["log_level"] = "DEBUG"
    return overrides


def parse_param(item: str) -> tuple[str, Any]:
    name, sep, raw = item.partition("=")
    if not sep or not name:
        raise CommandError(f'--param "{item}" must look like NAME=VALUE, e.g. --param region=north')
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw  # not JSON: plain text, so `--param region=north` needs no quotes


def input_error_text(exc: InputError) -> str:
    # The detail names the first problem; list every one when there are several.
    lines = [f"{field}: {msg}" for field, msgs in exc.errors.items() for msg in msgs]
    return "\n".join(lines) if len(lines) > 1 else exc.detail

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from runs import follow as log_follow
from runs.models import Run


class Command(BaseCommand):
    help = (
        "Print a run's log; with --follow keep printing until the run ends (exit 0 if it SUCCEEDED, 1 otherwise). "
        "With --url (or NOMAFLOW_URL) and --token (or NOMAFLOW_TOKEN), read it from a remote nomaflow's API."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("run", help="the run id")
        parser.add_argument("--follow", action="store_true", help="keep printing new lines until the run ends")
        parser.add_argument(
            "--url", default=os.environ.get("NOMAFLOW_URL", ""),
            help="a remote nomaflow, e.g. http://host:8000 (default: $NOMAFLOW_URL; none: this database)",
        )  # fmt: skip
        parser.add_argument(
            "--token", default=os.environ.get("NOMAFLOW_TOKEN", ""),
            help="an API token for --url (default: $NOMAFLOW_TOKEN; `manage.py issue_token <user>` makes one)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["url"]:
            self._remote(options["run"], options["url"], options["token"], follow=options["follow"])
            return
        run = Run.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(
                f'run "{options["run"]}" does not exist; `python manage.py trigger <job>` prints the id of a new run'
            )
        if options["follow"]:
            log_follow.follow_and_exit(run, self.stdout, self.stderr)
        else:
            log_follow.print_lines(run, self.stdout)

    def _remote(self, run_id: str, url: str, token: str, *, follow: bool) -> None:
        if not token:
            raise CommandError("--url needs --token (or NOMAFLOW_TOKEN); `manage.py issue_token <user>` prints one")
        try:
            if follow:
                following = lambda: log_follow.remote_follow(url, token, run_id, self.stdout)  # noqa: E731
                log_follow.finish_following(run_id, following, self.stdout, self.stderr)
            else:
                log_follow.remote_print_lines(url, token, run_id, self.stdout)
        except log_follow.RemoteError as exc:
            raise CommandError(str(exc)) from None

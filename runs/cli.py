"""Command-line pieces shared by the run commands (`trigger`, `replay`, `cancel`):
the override flags, turning them into an Overrides dict, and error texts."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from core.bounds import text_too_deep
from core.errors import InputError


def add_override_arguments(parser: ArgumentParser) -> None:
    """--param, --disable, --enable and --debug: the Overrides of API.md, as flags."""
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a param; VALUE is read as JSON if it parses (5, true, [1]), else as text",
    )
    parser.add_argument("--disable", action="append", default=[], metavar="STEP", help="skip this step")
    parser.add_argument("--enable", action="append", default=[], metavar="STEP", help="run this step")
    parser.add_argument("--debug", action="store_true", help="run with log level DEBUG")


def add_follow_argument(parser: ArgumentParser) -> None:
    parser.add_argument("--follow", action="store_true",
                        help="print the log until the run ends; exit 0 if it SUCCEEDED, 1 otherwise")  # fmt: skip


def overrides_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The Overrides dict for the flags added by add_override_arguments."""
    overrides: dict[str, Any] = {}
    if options["param"]:
        overrides["params"] = dict(parse_param(item) for item in options["param"])
    both = sorted(set(options["disable"]) & set(options["enable"]))
    if both:
        raise CommandError(f"step {both[0]} is given to both --disable and --enable; keep one of them")
    steps = {name: {"enabled": False} for name in options["disable"]}
    steps.update({name: {"enabled": True} for name in options["enable"]})
    if steps:
        overrides["steps"] = steps
    if options["debug"]:
        overrides["log_level"] = "DEBUG"
    return overrides


def parse_param(item: str) -> tuple[str, Any]:
    name, sep, raw = item.partition("=")
    if not sep or not name:
        raise CommandError(f'--param "{item}" must look like NAME=VALUE, e.g. --param region=north')
    too_deep = text_too_deep(raw, settings.NOMAFLOW_MAX_JSON_DEPTH)
    if too_deep is not None:  # json.loads would exhaust the stack first
        raise CommandError(
            f"--param {name}: nests deeper than {settings.NOMAFLOW_MAX_JSON_DEPTH} levels at {too_deep or 'the top'} "
            "(NOMAFLOW_MAX_JSON_DEPTH)"
        )
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw  # not JSON: plain text, so `--param region=north` needs no quotes


def input_error_text(exc: InputError) -> str:
    # The detail names the first problem; list every one when there are several.
    lines = [f"{field}: {msg}" for field, msgs in exc.errors.items() for msg in msgs]
    return "\n".join(lines) if len(lines) > 1 else exc.detail


def unknown_run_error(run_id: str) -> CommandError:
    return CommandError(
        f'run "{run_id}" does not exist; `python manage.py trigger <job>` prints the id of a new run, '
        "the Runs page lists the others"
    )

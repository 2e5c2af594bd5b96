from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.api.errors import flatten_errors
from core.errors import InputError, StateConflict
from jobs import definitions
from jobs.models import Connector, Job
from jobs.serializers import ConnectorSerializer, JobSerializer

ACTOR = "cli"


class Rollback(Exception):
    """Raised inside the transaction to undo a dry run."""


class Command(BaseCommand):
    help = (
        "Create or update jobs (and connectors) from a YAML or JSON file in the API's shape: a list of jobs, "
        'or {"jobs": [...], "connectors": [...]}. All or nothing.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="check everything, change nothing")

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        connectors, jobs = _read(file)
        try:
            with transaction.atomic():
                # Connectors first: the jobs' steps are checked against them.
                done = [_save_one(CONNECTOR, item, i) for i, item in enumerate(connectors)]
                done += [_save_one(JOB, item, i) for i, item in enumerate(jobs)]
                if dry_run:
                    raise Rollback
        except Rollback:
            self.stdout.write(f"{file}: valid ({len(connectors)} connectors, {len(jobs)} jobs); nothing changed")
            return
        for line in done:
            self.stdout.write(line)


def _read(file: Path) -> tuple[list[Any], list[Any]]:
    try:
        text = file.read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CommandError(f"{file} is not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {exc}") from None
    except RecursionError:
        raise CommandError(f"{file} nests too deep to read; the bound is NOMAFLOW_MAX_JSON_DEPTH levels") from None
    if isinstance(data, list):
        return [], data
    if isinstance(data, dict) and set(data) <= {"jobs", "connectors"}:
        connectors, jobs = data.get("connectors") or [], data.get("jobs") or []
        if isinstance(connectors, list) and isinstance(jobs, list):
            return connectors, jobs
    raise CommandError(f'{file} must hold a list of jobs, or an object {{"jobs": [...], "connectors": [...]}}')


@dataclass(frozen=True)
class Kind:
    """How one kind of definition in the file is found, checked and saved."""

    word: str
    key: str
    model: type[Job] | type[Connector]
    serializer: type[JobSerializer] | type[ConnectorSerializer]
    save: Callable[..., Any]
    instance_arg: str


JOB = Kind("job", "id", Job, JobSerializer, definitions.job_save, "job")
CONNECTOR = Kind("connector", "name", Connector, ConnectorSerializer, definitions.connector_save, "connector")


def _save_one(kind: Kind, item: Any, index: int) -> str:
    key = item.get(kind.key) if isinstance(item, dict) else None
    label = f'{kind.word} "{key}"' if key else f"{kind.word} #{index + 1}"
    existing = kind.model.objects.filter(**{kind.key: key}).first() if isinstance(key, str) else None
    serializer = kind.serializer(existing, data=item)
    _check(serializer, label)
    _save(label, lambda: kind.save(serializer.validated_data, actor=ACTOR, **{kind.instance_arg: existing}))
    return f"{label}: {'updated' if existing else 'created'}"


def _check(serializer: Any, label: str) -> None:
    if not isinstance(serializer.initial_data, dict):
        raise CommandError(f"{label}: must be an object")
    if not serializer.is_valid():
        errors = flatten_errors(serializer.errors)
        raise CommandError("\n".join(f"{label}: {field}: {msg}" for field, msgs in errors.items() for msg in msgs))


def _save(label: str, save: Any) -> None:
    try:
        save()
    except (InputError, StateConflict) as exc:
        raise CommandError(f"{label}: {exc.detail}") from None

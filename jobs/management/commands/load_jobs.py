from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from jobs.errors import InputError, StateConflict
from jobs.models import Connector, Job
from jobs.serializers import ConnectorSerializer, JobSerializer, flatten_errors
from runs import definitions

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
                done = [_save_connector(item, i) for i, item in enumerate(connectors)]
                done += [_save_job(item, i) for i, item in enumerate(jobs)]
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
    if isinstance(data, list):
        return [], data
    if isinstance(data, dict) and set(data) <= {"jobs", "connectors"}:
        connectors, jobs = data.get("connectors") or [], data.get("jobs") or []
        if isinstance(connectors, list) and isinstance(jobs, list):
            return connectors, jobs
    raise CommandError(f'{file} must hold a list of jobs, or an object {{"jobs": [...], "connectors": [...]}}')


def _save_job(item: Any, index: int) -> str:
    key = item.get("id") if isinstance(item, dict) else None
    label = f'job "{key}"' if key else f"job #{index + 1}"
    existing = Job.objects.filter(pk=key).first() if isinstance(key, str) else None
    serializer = JobSerializer(existing, data=item)
    _check(serializer, label)
    _save(label, lambda: definitions.job_save(serializer.validated_data, actor=ACTOR, job=existing))
    return f"{label}: {'updated' if existing else 'created'}"


def _save_connector(item: Any, index: int) -> str:
    key = item.get("name") if isinstance(item, dict) else None
    label = f'connector "{key}"' if key else f"connector #{index + 1}"
    existing = Connector.objects.filter(name=key).first() if isinstance(key, str) else None
    serializer = ConnectorSerializer(existing, data=item)
    _check(serializer, label)
    _save(label, lambda: definitions.connector_save(serializer.validated_data, actor=ACTOR, connector=existing))
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

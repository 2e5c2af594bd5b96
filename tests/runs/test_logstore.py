from __future__ import annotations

import pytest
from django.test import override_settings

from runs import logstore
from runs.logstore import TRUNCATED, persist, sanitize
from runs.models import LogLine
from runs.services import run_trigger
from tests.factories import make_job


def test_control_characters_are_replaced_but_newlines_and_tabs_kept() -> None:
    assert sanitize("a\x00b\x1b[31mc\td\ne") == "a\ufffdb\ufffd[31mc\td\ne"


def test_invalid_utf8_is_made_safe() -> None:
    assert sanitize("ok \udcff end") == "ok ? end"


@override_settings(NOMAFLOW_LOG_LINE_MAX_BYTES=64)
def test_long_lines_are_truncated_with_a_visible_marker_on_a_character_boundary() -> None:
    text = sanitize("é" * 100)
    assert text.endswith(TRUNCATED) and len(text.encode()) <= 64


@pytest.mark.django_db
def test_persist_numbers_lines_without_gaps_across_batches() -> None:
    from runs.logstore import entry

    run = run_trigger(job_id=make_job({"callable": "workers.builtins:noop"}).id, triggered_by="api")[0]
    first = persist(run.id, [entry("INFO", "a"), entry("INFO", "b", "F0001")])
    second = persist(run.id, [entry("ERROR", "c")])

    assert [line["seq"] for line in first + second] == [1, 2, 3]
    assert first[1]["ts"].endswith("Z") and first[1]["step"] == "F0001"
    assert list(LogLine.objects.filter(run=run).values_list("seq", "message")) == [(1, "a"), (2, "b"), (3, "c")]


def test_the_fast_insert_writes_every_column_of_a_line() -> None:
    """The one-statement INSERT and the COPY name their columns (LINE_FIELDS): a field added
    to LogLine must be added there too, or its value would never be stored."""
    assert {field.name for field in LogLine._meta.concrete_fields} - {"id"} == set(logstore.LINE_FIELDS)

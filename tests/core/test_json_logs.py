"""LOG_FORMAT=json (core/logs.py): one JSON object per record, with the run and step ids that
log_context sets, and the settings that choose it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from core.logs import JsonFormatter, log_context
from tests import processes  # its test_env(), imported by name, would be collected as a test


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Records of the `tests.json` logger, formatted by JsonFormatter into this stream."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_time_level_logger_and_message(captured: io.StringIO) -> None:
    logging.getLogger("tests.json").warning("step %s took %.1f s\nsecond line", "F0001", 1.25)

    [record] = _records(captured)
    assert set(record) == {"time", "level", "logger", "message"}
    assert (record["level"], record["logger"]) == ("WARNING", "tests.json")
    assert record["message"] == "step F0001 took 1.2 s\nsecond line"  # the newline stays inside the JSON
    assert len(captured.getvalue().splitlines()) == 1
    assert record["time"].endswith("Z") and len(record["time"]) == len("2026-03-01T13:04:05.678Z")


def test_an_exception_comes_with_its_traceback(captured: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tests.json").exception("it failed")

    [record] = _records(captured)
    assert record["message"] == "it failed"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].endswith("ValueError: boom")


def test_log_context_adds_the_run_and_step_ids_only_inside_its_block(captured: io.StringIO) -> None:
    logger = logging.getLogger("tests.json")
    with log_context(run_id="01run", step_run_id=7):
        logger.info("inside")
    logger.info("after")

    inside, after = _records(captured)
    assert (inside["run_id"], inside["step_run_id"]) == ("01run", 7)
    assert "run_id" not in after and "step_run_id" not in after


def test_the_ids_follow_into_the_asyncio_tasks_and_threads_of_the_step(captured: io.StringIO) -> None:
    def in_a_thread() -> None:
        logging.getLogger("tests.json").info("from a thread")

    async def step() -> None:
        await asyncio.create_task(asyncio.sleep(0))
        logging.getLogger("tests.json").info("from a task")
        await asyncio.to_thread(in_a_thread)
        thread = threading.Thread(target=in_a_thread)  # as a sync python step runs
        thread.start()
        thread.join()

    with log_context(run_id="01run", step_run_id=7):
        asyncio.run(step())

    assert [(r["message"], r["run_id"]) for r in _records(captured)] == [
        ("from a task", "01run"), ("from a thread", "01run"), ("from a thread", "01run"),
    ]  # fmt: skip


def test_nested_contexts_restore_the_outer_ids(captured: io.StringIO) -> None:
    with log_context(run_id="01run"):
        with log_context(step_run_id=7):
            logging.getLogger("tests.json").info("inner")
        logging.getLogger("tests.json").info("outer")

    inner, outer = _records(captured)
    assert (inner["run_id"], inner["step_run_id"]) == ("01run", 7)
    assert outer["run_id"] == "01run" and "step_run_id" not in outer


def test_a_record_may_carry_its_own_ids_and_odd_values_do_not_break_the_line(captured: io.StringIO) -> None:
    logging.getLogger("tests.json").info("fired %s", object, extra={"run_id": object()})

    [record] = _records(captured)
    assert record["run_id"].startswith("<object object at ")


def _log_one_record(log_format: str) -> subprocess.CompletedProcess[str]:
    """A fresh Django process that logs one warning the way web and scheduler do."""
    code = "import django, logging; django.setup(); logging.getLogger('nomaflow.test').warning('hello')"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=processes.ROOT, env=processes.test_env(LOG_FORMAT=log_format),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_settings_log_json_when_asked_and_text_by_default() -> None:
    as_json = _log_one_record("json")
    assert as_json.returncode == 0, as_json.stderr
    [line] = as_json.stderr.splitlines()
    assert json.loads(line) | {"time": "t"} == {
        "time": "t", "level": "WARNING", "logger": "nomaflow.test", "message": "hello",
    }  # fmt: skip

    as_text = _log_one_record("text")
    assert as_text.stderr.rstrip().endswith("WARNING nomaflow.test: hello")


def test_an_unknown_log_format_stops_the_process_with_the_choices() -> None:
    result = _log_one_record("yaml")
    assert result.returncode != 0
    assert "LOG_FORMAT='yaml': use text or json" in result.stderr

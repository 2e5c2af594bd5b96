"""nomaflow/body_limit.py through a real daphne: an oversized body is refused before Django
reads it (an anonymous client cannot fill the web host's disk), and answers JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.processes import free_port, start_daphne

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    port = free_port()
    process = start_daphne(port, NOMAFLOW_MAX_BODY_BYTES=str(LIMIT))
    yield f"http://127.0.0.1:{port}"
    process.stop()


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


def assert_413(response: requests.Response) -> None:
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert "NOMAFLOW_MAX_BODY_BYTES" in response.json()["detail"]


def test_a_declared_length_over_the_bound_is_413_unread(web: str) -> None:
    assert_413(requests.post(f"{web}/api/v1/jobs/", data=b"{" + b" " * LIMIT + b"}", timeout=30))


def test_a_chunked_body_is_stopped_once_it_passes_the_bound(web: str) -> None:
    """No Content-Length: the body is counted as it arrives; 100 MB are never all read."""
    assert_413(requests.post(f"{web}/api/v1/jobs/", data=chunks(100 * 1024 * 1024), timeout=60))


def test_a_body_under_the_bound_reaches_the_api(web: str) -> None:
    response = requests.post(f"{web}/api/v1/jobs/", json={"id": "x"}, timeout=30)
    assert response.status_code == 401  # read, parsed, and refused for want of a login

"""Who the run log websocket refuses, and that a refusal carries not a single frame."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from tests.ws import finished_run, refused, session_headers, socket, token_headers


def test_anonymous_is_refused_without_a_frame(transactional_db: None) -> None:
    run = finished_run(3)
    assert async_to_sync(refused)(socket(run.id, []))[0] is False
    browser = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    assert async_to_sync(refused)(socket(run.id, browser))[0] is False


def test_outsider_is_refused_without_a_frame(transactional_db: None, outsider: User) -> None:
    run = finished_run(3)
    assert async_to_sync(refused)(socket(run.id, token_headers(outsider)))[0] is False
    assert async_to_sync(refused)(socket(run.id, session_headers(outsider)))[0] is False


def test_a_bad_token_is_refused_without_a_frame(transactional_db: None, viewer: User) -> None:
    run = finished_run(3)
    assert async_to_sync(refused)(socket(run.id, [(b"authorization", b"Token nope")]))[0] is False


def test_foreign_origin_is_refused_even_with_a_valid_session(transactional_db: None, viewer: User) -> None:
    run = finished_run(3)
    headers = session_headers(viewer, origin="http://evil.example")
    assert async_to_sync(refused)(socket(run.id, headers))[0] is False


def test_session_cookie_without_origin_does_not_authenticate(transactional_db: None, viewer: User) -> None:
    run = finished_run(3)
    cookie_only = [h for h in session_headers(viewer) if h[0] != b"origin"]
    assert async_to_sync(refused)(socket(run.id, cookie_only))[0] is False


def test_nonexistent_run_is_refused_without_a_frame(transactional_db: None, viewer: User) -> None:
    assert async_to_sync(refused)(socket("0" * 26, token_headers(viewer)))[0] is False


def test_bad_after_is_refused_without_a_frame(transactional_db: None, viewer: User) -> None:
    run = finished_run(3)
    assert async_to_sync(refused)(socket(run.id, token_headers(viewer), after="-1"))[0] is False
    assert async_to_sync(refused)(socket(run.id, token_headers(viewer), after="x"))[0] is False

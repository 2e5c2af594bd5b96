"""The websocket's Origin rule (runs/ws_auth.py): a browser's handshake must come from the
handshake's own scheme, host and port, or exactly from a CSRF_TRUSTED_ORIGINS entry."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from tests.ws import DEADLINE_S, finished_run, refused, session_headers, socket, token_headers


def opens(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the handshake is accepted (for a finished run: it then sends the end)."""
    run = finished_run(1)

    async def connect() -> bool:
        ws = socket(run.id, headers)
        connected, _ = await ws.connect(DEADLINE_S)
        if connected:
            assert (await ws.receive_json_from(DEADLINE_S))["type"] == "log"
        await ws.disconnect()
        return connected

    return async_to_sync(connect)()


def is_refused(headers: list[tuple[bytes, bytes]]) -> bool:
    return async_to_sync(refused)(socket(finished_run(1).id, headers))[0] is False


def test_same_origin_is_accepted(transactional_db: None, viewer: User) -> None:
    assert opens(session_headers(viewer, origin="http://testserver", host="testserver"))
    assert opens(session_headers(viewer, origin="http://127.0.0.1:8000", host="127.0.0.1:8000"))


def test_origin_on_another_port_of_the_same_host_is_refused(transactional_db: None, viewer: User) -> None:
    assert is_refused(session_headers(viewer, origin="http://testserver:8080", host="testserver"))
    assert is_refused(session_headers(viewer, origin="http://127.0.0.1:8888", host="127.0.0.1:8000"))


def test_origin_with_another_scheme_is_refused(transactional_db: None, viewer: User) -> None:
    assert is_refused(session_headers(viewer, origin="https://testserver", host="testserver"))
    assert is_refused(session_headers(viewer, origin="ftp://testserver", host="testserver"))


def test_a_null_or_malformed_origin_is_refused(transactional_db: None, viewer: User) -> None:
    for origin in ("null", "", "http://testserver:port", "testserver"):
        assert is_refused(session_headers(viewer, origin=origin, host="testserver")), origin


def test_a_host_outside_allowed_hosts_is_refused_even_as_its_own_origin(transactional_db: None, viewer: User) -> None:
    assert is_refused(session_headers(viewer, origin="http://evil.example", host="evil.example"))
    no_host = [h for h in session_headers(viewer) if h[0] != b"host"]
    assert is_refused(no_host)


def test_a_csrf_trusted_origin_is_accepted_exactly(transactional_db: None, viewer: User, settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://ui.example.com"]
    assert opens(session_headers(viewer, origin="https://ui.example.com", host="testserver"))
    assert opens(session_headers(viewer, origin="https://ui.example.com:443", host="testserver"))
    assert is_refused(session_headers(viewer, origin="https://ui.example.com:8443", host="testserver"))
    assert is_refused(session_headers(viewer, origin="http://ui.example.com", host="testserver"))
    assert is_refused(session_headers(viewer, origin="https://sub.ui.example.com", host="testserver"))


def test_behind_a_proxy_the_scheme_is_the_one_it_reports(transactional_db: None, viewer: User, settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    https = [(b"x-forwarded-proto", b"https")]
    assert opens(session_headers(viewer, origin="https://testserver", host="testserver") + https)
    assert is_refused(session_headers(viewer, origin="http://testserver", host="testserver") + https)
    plain = [(b"x-forwarded-proto", b"http")]
    assert opens(session_headers(viewer, origin="http://testserver", host="testserver") + plain)


def test_without_the_proxy_setting_its_header_is_not_believed(transactional_db: None, viewer: User) -> None:
    forged = [(b"x-forwarded-proto", b"https")]
    assert is_refused(session_headers(viewer, origin="https://testserver", host="testserver") + forged)


def test_a_token_client_without_origin_still_connects(transactional_db: None, viewer: User) -> None:
    assert opens(token_headers(viewer))


def test_a_token_does_not_excuse_a_foreign_origin(transactional_db: None, viewer: User) -> None:
    assert is_refused([*token_headers(viewer), (b"origin", b"http://testserver:8080"), (b"host", b"testserver")])

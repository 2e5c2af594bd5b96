"""core.destinations: the destination a secret belongs to, and nomaflow's own database."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from core.destinations import is_own_database, same_destination


@pytest.fixture
def own(db: None) -> dict[str, Any]:
    return dict(settings.DATABASES["default"])


def test_the_own_database_is_recognised_under_every_spelling_of_this_host(own: dict[str, Any]) -> None:
    name, port = own["NAME"], own["PORT"] or "5432"
    for url in [
        f"postgresql://postgres@{own['HOST']}:{port}/{name}",
        f"postgres://anyone:pw@localhost:{port}/{name}",
        f"postgresql://x@127.0.0.2:{port}/{name}",
        f"postgresql://x@[::1]:{port}/{name}",
        f"postgresql://x@0.0.0.0/{name}",
        f"postgresql://x@[::ffff:127.0.0.1]/{name}",
        f"postgresql://x@elsewhere.example/other?host=127.0.0.1&dbname={name}",
        f"postgresql:///{name}?host=/var/run/postgresql",
        f"postgresql://x@db.example:1,127.0.0.1:{port}/{name}",
    ]:
        assert is_own_database(url), url


def test_another_database_or_port_on_the_same_server_is_not_the_own_database(own: dict[str, Any]) -> None:
    assert not is_own_database(f"postgresql://postgres@127.0.0.1:5432/{own['NAME']}_scratch")
    assert not is_own_database(f"postgresql://postgres@127.0.0.1:6543/{own['NAME']}")
    assert not is_own_database(f"postgresql://postgres@db.example:5432/{own['NAME']}")
    assert not is_own_database(f"sqlite:///{own['NAME']}")


@pytest.mark.parametrize("host", ["127.1", "2130706433"])
def test_a_host_name_is_looked_up_when_asked(own: dict[str, Any], host: str) -> None:
    """Spellings that are no IP literal to Python but that libpq's getaddrinfo turns into
    127.0.0.1: only a lookup, which the worker does before it connects, tells them apart."""
    url = f"postgresql://x@{host}:{own['PORT'] or 5432}/{own['NAME']}"
    assert not is_own_database(url)
    assert is_own_database(url, resolve_names=True)


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("postgresql://u:p@db/dw", "postgres://x@DB:5432/other", True),
        ("https://h/a", "https://h:443/b?x=1", True),
        ("https://h/a", "http://h/a", False),
        ("https://h/a", "https://h:8443/a", False),
        ("https://h/a", "https://g/a", False),
        ("postgresql://u:p@db/dw", "postgresql://u:p@db/dw?host=evil", False),
    ],
)
def test_same_destination_compares_scheme_host_and_port(url: str, other: str, same: bool) -> None:
    assert same_destination(url, other) is same

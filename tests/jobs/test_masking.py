"""Secrets in connector urls and options are masked on read and kept when written back
(the rule is core.secrets, tested in tests/core; here, as jobs.services applies it)."""

from __future__ import annotations

import pytest

from core.errors import InputError
from jobs.models import Connector
from jobs.services import connector_unmask, mask_options, mask_url

URL = "postgresql://etl:pw@db:5432/dw?sslmode=require&password=abc&api_key=${NOMAFLOW_SECRET_DW_KEY}"


def test_the_url_password_and_secret_query_values_are_masked() -> None:
    assert mask_url(URL) == "postgresql://etl:***@db:5432/dw?sslmode=require&password=***&api_key=***"


def test_a_masked_url_written_back_keeps_every_stored_secret() -> None:
    stored = Connector(name="dw", kind="postgres", url=URL, options={})
    assert connector_unmask(mask_url(URL), {}, stored) == (URL, {})


def test_a_masked_query_value_with_nothing_stored_is_a_400_naming_the_field() -> None:
    stored = Connector(name="dw", kind="postgres", url="postgresql://db/dw", options={})
    with pytest.raises(InputError, match=r"url: password=\*\*\* is \*\*\* but nothing is stored") as error:
        connector_unmask("postgresql://db/dw?password=***", {}, stored)
    assert list(error.value.errors) == ["url"]


def test_auth_headers_and_api_keys_in_options_are_masked_and_kept() -> None:
    options = {"headers": {"Authorization": "Bearer t0k", "X-Api-Key": "k3y", "Accept": "application/json"}}
    stored = Connector(name="api", kind="http", url="https://api.example", options=options)

    masked = mask_options(options)

    assert masked == {"headers": {"Authorization": "***", "X-Api-Key": "***", "Accept": "application/json"}}
    assert connector_unmask("https://api.example", masked, stored) == ("https://api.example", options)


def test_a_masked_header_towards_another_host_is_a_400_asking_for_the_secret() -> None:
    stored = Connector(name="api", kind="http", url="https://api.example", options={"headers": {"Authorization": "t"}})
    with pytest.raises(InputError, match="give the secret again") as error:
        connector_unmask("https://evil.example", {"headers": {"Authorization": "***"}}, stored)
    assert list(error.value.errors) == ["options.headers.Authorization"]

"""Secrets in connector urls and options are masked on read and kept when written back."""

from __future__ import annotations

import pytest

from jobs.errors import InputError
from jobs.services import mask_options, mask_url, unmask_options, unmask_url

URL = "postgresql://etl:pw@db:5432/dw?sslmode=require&password=abc&api_key=${DW_KEY}"


def test_the_url_password_and_secret_query_values_are_masked() -> None:
    assert mask_url(URL) == "postgresql://etl:***@db:5432/dw?sslmode=require&password=***&api_key=***"


def test_a_masked_url_written_back_keeps_every_stored_secret() -> None:
    assert unmask_url(mask_url(URL), URL) == URL


def test_a_masked_query_value_with_nothing_stored_is_refused() -> None:
    with pytest.raises(InputError, match="password=\\*\\*\\* but no value is stored"):
        unmask_url("postgresql://db/dw?password=***", "postgresql://db/dw")


def test_auth_headers_and_api_keys_in_options_are_masked_and_kept() -> None:
    options = {"headers": {"Authorization": "Bearer t0k", "X-Api-Key": "k3y", "Accept": "application/json"}}

    masked = mask_options(options)

    assert masked == {"headers": {"Authorization": "***", "X-Api-Key": "***", "Accept": "application/json"}}
    assert unmask_options(masked, options) == options

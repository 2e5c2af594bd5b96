"""`manage.py issue_token <username>`: prints a new API token, replacing the old one."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.tokens import digest


def issue(username: str) -> str:
    out = StringIO()
    call_command("issue_token", username, stdout=out)
    return out.getvalue().strip()


def test_prints_a_token_that_authenticates(viewer: User) -> None:
    key = issue("vera")
    assert ApiToken.objects.get(user=viewer).digest == digest(key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_a_new_token_replaces_the_old_one(viewer: User) -> None:
    old = issue("vera")
    new = issue("vera")
    assert new != old
    assert list(ApiToken.objects.values_list("digest", flat=True)) == [digest(new)]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get("/api/v1/jobs/").status_code == 401


def test_unknown_user_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match='user "ghost" does not exist'):
        issue("ghost")
    assert not ApiToken.objects.exists()

"""`manage.py issue_token <username>`: prints a new API token, replacing the old one."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def issue(username: str) -> str:
    out = StringIO()
    call_command("issue_token", username, stdout=out)
    return out.getvalue().strip()


def test_prints_a_token_that_authenticates(viewer: User) -> None:
    key = issue("vera")
    assert Token.objects.get(user=viewer).key == key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_a_new_token_replaces_the_old_one(viewer: User) -> None:
    old = issue("vera")
    new = issue("vera")
    assert new != old
    assert list(Token.objects.values_list("key", flat=True)) == [new]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get("/api/v1/jobs/").status_code == 401


def test_unknown_user_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match='user "ghost" does not exist'):
        issue("ghost")
    assert not Token.objects.exists()

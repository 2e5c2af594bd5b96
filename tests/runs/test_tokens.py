"""API tokens stored hashed (issue 12, item 9): `Authorization: Token <key>` works as before
on the API and the websocket, the database holds only a digest, the old plaintext tokens
are moved by a migration, and the admin never shows a key."""

from __future__ import annotations

import hashlib

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core import serializers
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from accounts.models import ApiToken
from accounts.tokens import issue_token, revoke_tokens, user_for_key
from runs.ws_auth import _token_user
from tests.conftest import api_client

BEFORE = [("accounts", "0001_initial")]
AFTER = [("accounts", "0002_hash_authtoken_tokens")]
AUTHTOKEN = ("authtoken", "0004_alter_tokenproxy_options")


def with_key(key: str) -> Client:
    return Client(headers={"Authorization": f"Token {key}"})


def test_the_database_holds_a_digest_and_a_prefix_never_the_key(viewer: User) -> None:
    key = issue_token(viewer)

    token = ApiToken.objects.get(user=viewer)
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8] and len(key) == 40
    assert key not in serializers.serialize("json", ApiToken.objects.all())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)  # nothing written to DRF's plaintext table


def test_the_api_accepts_the_key_and_refuses_a_wrong_or_disabled_one(viewer: User) -> None:
    key = issue_token(viewer)
    assert with_key(key).get("/api/v1/jobs/").status_code == 200
    assert with_key(key[:-1] + ("0" if key[-1] != "0" else "1")).get("/api/v1/jobs/").status_code == 401
    assert with_key(ApiToken.objects.get().digest).get("/api/v1/jobs/").status_code == 401  # a leaked digest is no key

    User.objects.filter(pk=viewer.pk).update(is_active=False)
    assert with_key(key).get("/api/v1/jobs/").status_code == 401
    assert user_for_key(key) is None


def test_revoking_ends_every_token_of_the_user(viewer: User) -> None:
    keys = [issue_token(viewer), issue_token(viewer)]
    assert revoke_tokens(viewer) == 2
    assert [with_key(key).get("/api/v1/jobs/").status_code for key in keys] == [401, 401]


def test_the_websocket_accepts_the_same_key(transactional_db: None, viewer: User) -> None:
    key = issue_token(viewer)
    assert async_to_sync(_token_user)(f"Token {key}") == viewer
    assert not async_to_sync(_token_user)("Token nope").is_authenticated
    assert not async_to_sync(_token_user)(f"Bearer {key}").is_authenticated


def test_the_migration_hashes_existing_plaintext_tokens_and_deletes_them(transactional_db: None, viewer: User) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state([*BEFORE, AUTHTOKEN]).apps.get_model("authtoken", "Token")
    key = "0123456789abcdef0123456789abcdef01234567"
    old.objects.create(key=key, user_id=viewer.pk)
    try:
        executor.loader.build_graph()
        executor.migrate(AFTER)
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert not old.objects.exists()
    token = ApiToken.objects.get()
    assert (token.user_id, token.prefix) == (viewer.pk, "01234567")
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert with_key(key).get("/api/v1/jobs/").status_code == 200  # the client keeps its key


def test_the_admin_lists_tokens_without_a_key_and_cannot_make_one(db: None, viewer: User) -> None:
    key = issue_token(viewer)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="pw-root"))

    listing = admin.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert key[:8] in body and "vera" in body
    assert key not in body and ApiToken.objects.get().digest not in body
    assert admin.get("/admin/accounts/apitoken/add/").status_code == 403
    assert admin.get("/admin/authtoken/tokenproxy/").status_code == 404  # DRF's plaintext admin is gone


def test_api_client_fixture_uses_hashed_tokens(viewer: User) -> None:
    assert api_client(viewer).get("/api/v1/jobs/").status_code == 200
    assert ApiToken.objects.filter(user=viewer).count() == 1

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.tokens import issue_token, revoke_tokens


class Command(BaseCommand):
    help = (
        "Print a new API token for <username>, replacing any token the user had. "
        "The key is shown only this once: nomaflow stores its digest, not the key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(
                f'user "{username}" does not exist; create it first (python manage.py createsuperuser, or the admin)'
            ) from None
        with transaction.atomic():
            # One token per user from this command: a new one revokes the old, so a leaked token can be replaced.
            revoke_tokens(user)
            key = issue_token(user)
        self.stdout.write(key)

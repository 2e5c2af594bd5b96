"""API tokens, stored as a sha256 digest: a copy of the database (a backup, a DEBUG log of
a query, a step that reads its own installation) holds no usable key."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """One `Authorization: Token <key>` credential. The key itself is shown once, by
    `manage.py issue_token`, and never stored; `prefix` tells tokens apart in the admin."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    # sha256 is enough here (no salt, no stretching): the keys are 160 random bits, not
    # passwords a dictionary could guess, and the lookup must be one indexed equality.
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=8, editable=False, help_text="The key's first characters, for telling tokens apart."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

"""Tokens in the admin: who holds one and since when, never a key (it is not stored).
New tokens come from `manage.py issue_token <username>`, which prints the key once."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from rest_framework.authtoken.models import TokenProxy

from .models import ApiToken

# DRF's own token admin would offer to create plaintext tokens that nothing accepts.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["user__username", "prefix"]
    readonly_fields = fields = ("prefix", "user", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key can only be shown once, at issue: manage.py issue_token

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoke (delete) and issue anew instead

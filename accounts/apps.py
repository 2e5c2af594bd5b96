from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who may sign in and how: API tokens (stored hashed) and login throttling."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

"""What to run: connectors, jobs and their ordered steps. Imports no other app."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models


class Connector(models.Model):
    """A named connection (database, HTTP base URL, LDAP server) that steps refer to.

    `url` and `options` may hold `${NAME}` references; they are resolved only in the
    worker, so the secret itself need never be stored here. Only names under
    NOMAFLOW_SECRET_PREFIX or in NOMAFLOW_SECRET_ALLOWLIST resolve, never nomaflow's own
    settings variables (core/secrets.py, checked at save and on the worker).
    """

    class Kind(models.TextChoices):
        POSTGRES = "postgres"
        SQLITE = "sqlite"
        HTTP = "http"
        LDAP = "ldap"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    url = models.CharField(max_length=1000)
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_id(self) -> str:
        """How the audit trail names a connector: by its name, as users do (core.audit)."""
        return self.name


class Job(models.Model):
    class Catchup(models.TextChoices):
        SKIP = "skip"
        LATEST = "latest"

    class LogLevel(models.TextChoices):
        INFO = "INFO"
        DEBUG = "DEBUG"

    id = models.SlugField(max_length=100, primary_key=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    params = models.JSONField(default=dict, blank=True)
    schedule = models.CharField(max_length=100, null=True, blank=True, help_text="cron, e.g. 30 2 * * *")
    timezone = models.CharField(max_length=64, default="UTC")
    catchup = models.CharField(max_length=10, choices=Catchup.choices, default=Catchup.SKIP)
    max_concurrent_runs = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    log_level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    notify_on = models.JSONField(default=list, blank=True, help_text='e.g. ["FAILED"]')
    notify_emails = models.JSONField(default=list, blank=True)
    notify_webhook = models.URLField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class Step(models.Model):
    job = models.ForeignKey(Job, related_name="steps", on_delete=models.CASCADE)
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=30)
    op_kwargs = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    retries = models.PositiveIntegerField(default=0)
    retry_delay_s = models.FloatField(default=0, validators=[MinValueValidator(0)])
    timeout_s = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.001)])
    queue = models.CharField(max_length=100, default="default")

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "name"], name="step_name_unique_in_job"),
            models.UniqueConstraint(fields=["job", "position"], name="step_position_unique_in_job"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.name}"

"""States and reasons of runs and steps: one place for the vocabulary."""

from django.db import models


class RunState(models.TextChoices):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class StepState(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


LEVEL_ORDER = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARNING: 30, LogLevel.ERROR: 40}

REASON_DISABLED = "skipped: disabled"
REASON_UPSTREAM_FAILED = "upstream failed"
REASON_WORKER_LOST = "worker lost"
REASON_TIMED_OUT = "timed out"


def reason_canceled_by(who: str) -> str:
    return f"canceled by {who}"

"""settings.LOGGING: how web, workers and the scheduler write their own logs (not a run's)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

LOG_FORMATS = ("text", "json")


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """LOG_FORMAT=text, or json: one JSON object per line (core/logs.py), with run_id /
    step_run_id on a worker's records while it executes a step."""
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT={log_format!r}: use text or json")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"()": "core.logs.JsonFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        # In JSON every record leaves through the one JSON handler: Celery gives its task
        # loggers and its pool's (billiard's "multiprocessing") a text handler of their own
        # unless they have one, and Django's defaults print django.* in plain text when
        # DEBUG is on.
        "loggers": {
            "celery.task": {"handlers": ["console"], "propagate": False},
            "multiprocessing": {"handlers": ["console"], "propagate": False},
            "django": {"handlers": [], "propagate": True},
        }
        if log_format == "json"
        else {},
    }

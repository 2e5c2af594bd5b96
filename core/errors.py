"""Errors that carry a message a person can act on, and the fields it concerns, shared by
every app: the API (core/api/errors.py) turns each into its one error shape."""

from __future__ import annotations

from django.db import OperationalError


class InputError(Exception):
    """Bad input from a user: the API answers 400, the CLI prints it, nothing is written.

    `errors` maps a dotted field path (``steps.F0004.op_kwargs.sql``) to messages.
    """

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}

    @classmethod
    def from_errors(cls, errors: dict[str, list[str]]) -> InputError:
        field, messages = next(iter(errors.items()))
        return cls(f"{field}: {messages[0]}", errors)


class StateConflict(Exception):
    """The object is not in a state that allows the action (API: 409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StepConfigError(ValueError):
    """Bad op_kwargs for a step type (or a connector a step cannot use); `field` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# SQLSTATEs of a transaction PostgreSQL rolled back to break a cycle or a conflict.
DB_CONFLICTS = {"40P01": "deadlock", "40001": "serialization failure"}


def conflict_kind(exc: BaseException) -> str | None:
    """'deadlock' or 'serialization failure' for a database error that is one, else None
    (runs.locking retries those; the API answers 503 once it gave up)."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) else None
    return DB_CONFLICTS.get(getattr(cause, "sqlstate", None) or "")

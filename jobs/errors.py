"""Errors that carry a message a person can act on, and the fields it concerns."""

from __future__ import annotations


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

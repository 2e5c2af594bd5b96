"""A real SMTP server of the tests' own (aiosmtpd on a free port) that keeps every message."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from .processes import free_port


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else ""


class SmtpSink:
    """The aiosmtpd handler: accepts everything and keeps it."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def about(self, text: str) -> list[Mail]:
        """The mails whose subject or body mention `text` (a run id, say)."""
        with self._lock:
            return [mail for mail in self.mails if text in mail.subject or text in mail.body]


@contextmanager
def running_smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    """An SMTP server on 127.0.0.1; yields (sink, port)."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()

"""A local HTTP server of the tests' own (slow, failing, redirecting, huge, echoing), and a
bare listening socket that records every connection made to it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHUNK = b"x" * 65536


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.huge_bytes_sent = 0
        self.huge_disconnected = threading.Event()
        self.release = threading.Event()  # set at teardown: ends every slow response

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    """GET/POST/… /api/<what>: ok, echo, status/<n>, slow, redirect?to=&code=, loop/<n>, big/<n>, huge."""

    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        route = parts.path.removeprefix("/api/").split("/")
        handler = getattr(self, f"route_{route[0]}", None)
        if handler is None:
            self.reply(404, b"no such route")
        else:
            handler(route[1:], parse_qs(parts.query))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def route_ok(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.reply(200, b'{"ok": true}', {"Content-Type": "application/json"})

    def route_echo(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.reply(200, json.dumps(self.server.requests[-1]).encode(), {"Content-Type": "application/json"})

    def route_status(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.reply(int(args[0]), f"status {args[0]}".encode())

    def route_slow(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.server.release.wait(60)
        self.reply(200, b"finally")

    def route_redirect(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.reply(int(query.get("code", ["302"])[0]), b"", {"Location": query["to"][0]})

    def route_loop(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.reply(302, b"", {"Location": f"/api/loop/{int(args[0]) + 1}"})

    def route_big(self, args: list[str], query: dict[str, list[str]]) -> None:
        self.reply(200, b"y" * int(args[0]))

    def route_huge(self, args: list[str], query: dict[str, list[str]]) -> None:
        """An endless body (no Content-Length, HTTP/1.0: it ends when the connection does)."""
        self.send_response(200)
        self.end_headers()
        try:
            while not self.server.release.is_set():
                self.wfile.write(CHUNK)
                self.server.huge_bytes_sent += len(CHUNK)
        except OSError:  # the client went away
            self.server.huge_disconnected.set()


@contextmanager
def running_server() -> Iterator[LocalServer]:
    server = LocalServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


class Recorder:
    """A listening socket that counts the connections made to it (and closes them)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

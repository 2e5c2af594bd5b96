"""Starting and stopping real nomaflow processes (celery worker, scheduler, daphne) in tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: same Redis, and the *test* database."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Process:
    """A child process whose combined output goes to a temp file we can poll."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"nomaflow-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            return text in self.output()

        wait_for(seen, timeout, 0.1, f"{self.name} to print {text!r}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a celery worker's pool children too)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def start_worker(
    queues: str = "default", concurrency: int = 2, name: str = "worker", prefix: Sequence[str] = (), **env: str
) -> Process:
    """A celery worker on `queues`; `prefix` is a command to run it under (tests/netns.py:
    `ip netns exec <ns>`, a worker on a host of its own)."""
    args = [
        *prefix, sys.executable, "-m", "celery", "-A", "nomaflow", "worker", "-Q", queues, "-c", str(concurrency),
        "-n", f"{name}-{os.getpid()}@%h", "--without-mingle", "--without-gossip", "-l", "info",
    ]  # fmt: skip
    worker = Process(args, test_env(**env), name)
    worker.wait_for_output("ready.")
    return worker


def start_daphne(port: int, **env: str) -> Process:
    """The web process (HTTP and websockets) on 127.0.0.1:`port`."""
    args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nomaflow.asgi:application"]
    process = Process(args, test_env(**env), "daphne")
    process.wait_for_output("Listening on TCP address")
    return process


def start_scheduler(**env: str) -> Process:
    scheduler = Process([sys.executable, "manage.py", "scheduler"], test_env(**env), "scheduler")
    scheduler.wait_for_output("scheduler started")
    return scheduler


def wait_terminal(run: Any, timeout: float = 30.0) -> Any:
    """Wait until `run` (a Run) is SUCCEEDED, FAILED or CANCELED; returns it refreshed."""

    def done() -> bool:
        run.refresh_from_db()
        return run.is_terminal

    wait_for(done, timeout, 0.05, f"run {run.id} to finish")
    return run

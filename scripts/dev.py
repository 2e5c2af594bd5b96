"""`make run`: all of nomaflow on one machine (web, one worker, the scheduler) with a demo job.

From a fresh clone: makes var/, keeps a generated SECRET_KEY in var/secret-key (unless
SECRET_KEY is set; settings.py reads that file, so sessions survive restarts), migrates
(embedded SQLite unless DATABASE_URL is set), collects static files, loads the demo, sets
up the `admin` user, finds Redis (or starts a private one), then runs the three processes
with prefixed output. Ctrl+C stops them all; if one of them dies, the others are stopped
too and the exit code is 1.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

import django  # noqa: E402
import redis  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402  (lazy: settings are read at django.setup())
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # the same dev default as nomaflow/settings.py
PREFIXES = {"web": "web  | ", "worker": "worker | ", "sched": "sched | "}
POLL_S = 0.2
STOP_TIMEOUT_S = 10.0
OUTPUT_LOCK = threading.Lock()


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    pump: threading.Thread


def say(text: str, prefix: str = "") -> None:
    with OUTPUT_LOCK:
        sys.stdout.write(prefix + text.rstrip("\n") + "\n")
        sys.stdout.flush()


def main() -> int:
    var_dir = Path(os.environ.get("NOMAFLOW_VAR_DIR", ROOT / "var")).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("PORT", "8000"))
    # Children inherit os.environ: they must agree on var/, Redis and the public URL.
    os.environ["NOMAFLOW_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("NOMAFLOW_SERVE_STATIC", "true")
    os.environ.setdefault("NOMAFLOW_BASE_URL", f"http://127.0.0.1:{port}")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # children's lines reach us as they are printed
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomaflow.settings")
    ensure_secret_key(var_dir)  # before django.setup(): settings.py refuses to start without one
    private_redis = ensure_redis(var_dir)
    try:
        prepare(var_dir)
        return supervise(port)
    finally:
        if private_redis is not None:
            stop_process(private_redis)


# --- Redis ----------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def ensure_redis(var_dir: Path) -> subprocess.Popen[bytes] | None:
    """Use REDIS_URL if it answers; else start a private redis-server; else say what to install."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if redis_answers(url):
        say(f"redis: {url}")
        return None
    server = shutil.which("redis-server")
    if server is None:
        say(
            f"redis: nothing answers at {url} and redis-server is not installed.\n"
            "Install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)\n"
            "or set REDIS_URL to a Redis that is running, then run `make run` again."
        )
        raise SystemExit(1)
    return start_private_redis(server, var_dir, url)


def start_private_redis(server: str, var_dir: Path, tried: str) -> subprocess.Popen[bytes]:
    port, data = free_port(), var_dir / "redis"
    data.mkdir(exist_ok=True)
    args = [
        server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(data), "--logfile", str(data / "redis.log"), "--daemonize", "no",
    ]  # fmt: skip
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            say(f"redis: could not start {server}; see {data / 'redis.log'}")
            raise SystemExit(1)
        time.sleep(0.05)
    os.environ["REDIS_URL"] = url
    say(f"redis: nothing answers at {tried}; started a private redis-server at {url} (no persistence)")
    return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Secrets kept under var/ --------------------------------------------------------------


def kept_secret(path: Path, nbytes: int) -> str:
    """A random secret generated the first time and read back ever after, readable only by
    us: created with mode 0600 in one step (O_EXCL), so it is never world-readable, not even
    for a moment, and two `make run`s starting together do not write different ones."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def ensure_secret_key(var_dir: Path) -> None:
    """SECRET_KEY from the environment, else var/secret-key (what settings.py reads, in the
    children too): generated once, so sessions and signed links survive a restart."""
    if os.environ.get("SECRET_KEY"):
        say("secret key: from SECRET_KEY")
        return
    path = var_dir / "secret-key"
    kept_secret(path, 50)
    say(f"secret key: generated once, kept in {path}")


# --- Database, demo, admin --------------------------------------------------------------


def prepare(var_dir: Path) -> None:
    """Migrate, collect static files, load the demo and set up `admin`, in this process."""
    embedded = var_dir / "nomaflow.sqlite3"
    say(f"database: {'DATABASE_URL' if os.environ.get('DATABASE_URL') else f'embedded SQLite at {embedded}'}")
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("load_demo")
    ensure_admin(var_dir)
    connections.close_all()  # hand the (SQLite) database over to the children


def ensure_admin(var_dir: Path) -> None:
    password, origin = admin_password(var_dir)
    user, _ = get_user_model().objects.get_or_create(username="admin")
    user.is_staff = user.is_superuser = user.is_active = True
    if not user.check_password(password):
        user.set_password(password)  # only on change: a new hash would log the browser out
    user.save()
    say(f"admin login: user admin, {origin}")


def admin_password(var_dir: Path) -> tuple[str, str]:
    """NOMAFLOW_ADMIN_PASSWORD, else one generated once and kept in var/admin-password."""
    if os.environ.get("NOMAFLOW_ADMIN_PASSWORD"):
        return os.environ["NOMAFLOW_ADMIN_PASSWORD"], "password from NOMAFLOW_ADMIN_PASSWORD"
    saved = var_dir / "admin-password"
    password = kept_secret(saved, 12)
    return password, f"password {password}   (generated, kept in {saved}; set NOMAFLOW_ADMIN_PASSWORD to choose)"


# --- The three processes ----------------------------------------------------------------


def commands(port: int) -> list[tuple[str, list[str]]]:
    python = sys.executable
    return [
        ("web", [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nomaflow.asgi:application"]),
        ("worker", [python, "-m", "celery", "-A", "nomaflow", "worker", "-Q", "default,notify", "-c", "2"]),
        ("sched", [python, "manage.py", "scheduler"]),
    ]


def supervise(port: int) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    children = [start_child(name, args) for name, args in commands(port)]
    announced, code = False, 0
    try:
        while not stop.wait(POLL_S):
            dead = next((child for child in children if child.proc.poll() is not None), None)
            if dead is not None:
                say(f"{dead.name} exited with code {dead.proc.returncode}; stopping everything")
                code = 1
                break
            if not announced and web_answers(port):
                say(f"nomaflow is running at http://127.0.0.1:{port}/nomaflow/")
                announced = True
    finally:
        say("stopping web, worker and scheduler")
        stop_children(children)
    return code


def start_child(name: str, args: list[str]) -> Child:
    # Own session: a Ctrl+C reaches only us, and we stop the children in our own way.
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        text=True, errors="replace", bufsize=1,
    )  # fmt: skip
    pump = threading.Thread(target=copy_lines, args=(proc.stdout, PREFIXES[name]), daemon=True)
    pump.start()
    return Child(name, proc, pump)


def copy_lines(stream: IO[str], prefix: str) -> None:
    for line in stream:
        say(line, prefix)


def web_answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/nomaflow/")
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()


def stop_children(children: list[Child]) -> None:
    for child in children:
        signal_group(child.proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        wait_or_kill(child.proc, deadline)
        child.pump.join(timeout=2)  # print the child's last lines before we go


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    signal_group(proc, signal.SIGTERM)
    wait_or_kill(proc, time.monotonic() + STOP_TIMEOUT_S)


def wait_or_kill(proc: subprocess.Popen, deadline: float) -> None:
    with suppress(subprocess.TimeoutExpired):
        proc.wait(max(0.0, deadline - time.monotonic()))
    # Also reaps what the leader left behind (a celery worker's pool processes).
    signal_group(proc, signal.SIGKILL)
    proc.wait()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


if __name__ == "__main__":
    sys.exit(main())

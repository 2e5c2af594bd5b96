"""The `make run` path: scripts/dev.py from an empty var/ to a demo run, then Ctrl+C.

SQLite (DATABASE_URL unset) in a temp NOMAFLOW_VAR_DIR, Redis database 14, a free port, and
no SECRET_KEY (with DEBUG off, as on a laptop): dev.py generates one into var/secret-key.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.processes import ROOT, Process, free_port, wait_for

REDIS_URL = "redis://127.0.0.1:6379/14"
PASSWORD = "make-run-test-pw"


def dev_env(var_dir: Path, port: int) -> dict[str, str]:
    # SQLite, dev.py's own defaults, and the key it generates.
    dropped = {"DATABASE_URL", "NOMAFLOW_BASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(NOMAFLOW_VAR_DIR=str(var_dir), REDIS_URL=REDIS_URL, PORT=str(port), NOMAFLOW_ADMIN_PASSWORD=PASSWORD,
               PYTHONUNBUFFERED="1")  # fmt: skip
    return env


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[Process, dict[str, str], int]]:
    redis.Redis.from_url(REDIS_URL).flushdb()  # no messages left over from an earlier session
    port = free_port()
    env = dev_env(tmp_path / "var", port)
    process = Process([sys.executable, "scripts/dev.py"], env, "dev")
    yield process, env, port
    process.stop()  # a no-op when the test already stopped it


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def child_pids(process: Process) -> list[int]:
    """Everything in dev.py's tree, from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [process.proc.pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_make_run_serves_the_demo_and_stops_cleanly_on_ctrl_c(dev: tuple[Process, dict[str, str], int]) -> None:
    process, env, port = dev
    base = f"http://127.0.0.1:{port}"
    process.wait_for_output(f"nomaflow is running at {base}/nomaflow/", timeout=120)
    prefixes = ("web  | ", "worker | ", "sched | ")
    wait_for(lambda: all(re.search(f"^{re.escape(p)}", process.output(), re.M) for p in prefixes),
             timeout=60, what="output of web, worker and scheduler")  # fmt: skip
    assert (Path(env["NOMAFLOW_VAR_DIR"]) / "nomaflow.sqlite3").exists()
    key_file = Path(env["NOMAFLOW_VAR_DIR"]) / "secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text()) >= 50

    session = requests.Session()
    login = session.get(f"{base}/admin/login/")
    response = session.post(
        f"{base}/admin/login/?next=/nomaflow/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": login.url},
    )
    assert response.url == f"{base}/nomaflow/" and "demo-etl" in response.text
    # Static files come from the ASGI app itself: the admin and the API docs render.
    assert session.get(f"{base}/static/admin/css/base.css").status_code == 200
    docs = session.get(f"{base}/api/v1/docs/")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert session.get(f"{base}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css").status_code == 200

    ok = manage(env, "trigger", "demo-etl", "--follow")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"\[F0007\] step F0007 · SUCCEEDED · ", ok.stdout), ok.stdout
    assert ok.stdout.splitlines()[-1].endswith(" SUCCEEDED")

    failed = manage(env, "trigger", "demo-etl", "--param", "fail=true", "--follow")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"\[F0006\] step F0006 · FAILED · ", failed.stdout), failed.stdout

    pids = child_pids(process)
    assert len(pids) >= 3, pids  # web, worker (and its pool), scheduler
    process.proc.send_signal(signal.SIGINT)
    assert process.proc.wait(60) == 0, process.output()[-3000:]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10, what="every child of dev.py to exit")

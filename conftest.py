"""Test environment: real PostgreSQL and Redis, chosen before Django reads its settings.

Each test session gets its own database (test_nomaflow_<pid>) and its own Redis key
prefix, so sessions running side by side, or a `make run` on the same machine, never
see each other's rows or Celery messages.
"""

import getpass
import os
import secrets
import tempfile

_session = f"{os.getpid()}"
os.environ.setdefault("DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/nomaflow_{_session}")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("NOMAFLOW_REDIS_PREFIX", f"test{_session}:")
os.environ.setdefault("NOMAFLOW_HEARTBEAT_INTERVAL_S", "0.5")
os.environ.setdefault("NOMAFLOW_HEARTBEAT_TIMEOUT_S", "3")
os.environ.setdefault("NOMAFLOW_CANCEL_GRACE_S", "1.5")
os.environ.setdefault("NOMAFLOW_PYTHON_STEP_MODULES", "workers.builtins,tests.steps")
# Tests keep their sqlite connectors' files in pytest's tmp_path, which lies under this directory.
os.environ.setdefault("NOMAFLOW_SQLITE_DIR", os.path.join(tempfile.gettempdir(), f"pytest-of-{getpass.getuser()}"))
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # DEBUG is off: no dev key
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomaflow.settings")

# Load the settings now, with the values above (DJANGO_SETTINGS_MODULE is deliberately
# not in pyproject.toml: pytest-django would read the settings before this file runs).
import django  # noqa: E402

django.setup()

"""Health endpoints of the web process, for load balancers and container probes.

`/livez`: the process answers; it touches nothing else, so a database or Redis outage
never gets a healthy web process restarted. `/readyz`: the process can serve, i.e. the
database answers, Redis answers and every migration is applied; 503 naming what fails.

They live outside /api/ (no authentication: a probe has no token) and are plain Django
views, so they are not in the OpenAPI schema. A failure's reason in the body is the
error's class and, at most, the operating system's words for it ("Connection refused"):
never a URL, host or user, since anyone who reaches the port may read it. The full error
goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

OK = "ok"
REDIS_TIMEOUT_S = 1.0  # a probe's own timeout is typically 1-5 s: answer within it

# Once every migration is applied it stays so for this process's code (a new migration
# comes with a new release, hence a new process), so later probes skip the migration
# graph, which is read from disk on every check.
_all_migrations_applied = False


@never_cache
@require_safe
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": OK})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "redis": check_redis()}
    checks["migrations"] = check_migrations() if checks["database"] == OK else "not checked: no database"
    healthy = all(result == OK for result in checks.values())
    return JsonResponse({"status": OK if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503)


def check_database() -> str:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return _failure("database", exc)
    return OK


def check_redis() -> str:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        client.ping()
    except Exception as exc:
        return _failure("redis", exc)
    finally:
        client.close()
    return OK


def check_migrations() -> str:
    global _all_migrations_applied
    if _all_migrations_applied:
        return OK
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return _failure("migrations", exc, "unknown")
    if plan:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _backwards in plan[:3])
        return f"unapplied: {len(plan)} ({names}{', …' if len(plan) > 3 else ''}); run manage.py migrate"
    _all_migrations_applied = True
    return OK


def _failure(part: str, exc: Exception, word: str = "unreachable") -> str:
    logger.warning("readyz: %s %s: %s", part, word, exc)
    return f"{word}: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """`ConnectionError (Connection refused)`, `OperationalError (PoolTimeout)`: the class of
    `exc`, and the strerror of an OSError behind it or else the class of its first cause.
    Messages themselves are left out: they name hosts, users, URLs."""
    name, causes = type(exc).__name__, list(_causes(exc))
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return f"{name} ({cause.strerror})"
    inner = type(causes[0]).__name__ if causes else name
    return name if inner == name else f"{name} ({inner})"


def _causes(exc: BaseException, depth: int = 8) -> Iterator[BaseException]:
    """What `exc` was raised from or while handling, innermost last (a bounded walk: the
    chain can be made cyclic by hand)."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and depth > 0:
        yield cause
        cause, depth = cause.__cause__ or cause.__context__, depth - 1

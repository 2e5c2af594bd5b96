"""nomaflow settings: everything comes from the environment, read once, here.

The helpers of nomaflow/env.py raise ImproperlyConfigured on a value they cannot parse,
so a typo in a deployment fails at start-up instead of at 3 a.m. Defaults marked "dev
default" are for `make run` on a laptop; production sets the variable.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# SETTINGS_ENV_NAMES: every environment variable read here, filled as the helpers read
# them (a connector's `${NAME}` never resolves one: core/secrets.py).
from nomaflow.env import SETTINGS_ENV_NAMES as SETTINGS_ENV_NAMES
from nomaflow.env import env_bool, env_list, env_networks, env_number, env_secret_key, env_str, proxy_ssl_header
from nomaflow.logging_config import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("NOMAFLOW_VAR_DIR", str(BASE_DIR / "var")))


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret_key(VAR_DIR / "secret-key", DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")  # dev default
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",  # must precede staticfiles so runserver is the ASGI one
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only for accounts' migration that hashed its tokens; its table stays empty
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "core",
    "jobs",
    "runs",
    "workers",
    "frontend",
    "accounts",  # after rest_framework.authtoken: its admin unregisters DRF's token admin
    "axes",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the 429 page
]

ROOT_URLCONF = "nomaflow.urls"
ASGI_APPLICATION = "nomaflow.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Embedded SQLite is the dev default; PostgreSQL in every real deployment and in tests.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'nomaflow.sqlite3'}"),
        conn_max_age=int(env_number("DATABASE_CONN_MAX_AGE", 60, int)),
    )
}
# The web process serves each request on a thread of its own (ASGI), however many arrive,
# so its PostgreSQL connections come from a pool: at most NOMAFLOW_DB_POOL_MAX_SIZE, a request
# waits up to NOMAFLOW_DB_POOL_TIMEOUT_S for one, then answers 503 (core/api/errors.py).
# nomaflow/asgi.py turns it on. Workers and the scheduler have a fixed number of threads and
# keep one connection per thread (README, "Database connections"); a pool in a Celery
# process would not survive its fork.
NOMAFLOW_DB_POOL = env_bool("NOMAFLOW_DB_POOL", False)
NOMAFLOW_DB_POOL_MIN_SIZE = int(env_number("NOMAFLOW_DB_POOL_MIN_SIZE", 2, int))
NOMAFLOW_DB_POOL_MAX_SIZE = int(env_number("NOMAFLOW_DB_POOL_MAX_SIZE", 10, int, minimum=1))
NOMAFLOW_DB_POOL_TIMEOUT_S = env_number("NOMAFLOW_DB_POOL_TIMEOUT_S", 5.0)
if NOMAFLOW_DB_POOL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # a connection goes back to the pool after each request
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(NOMAFLOW_DB_POOL_MIN_SIZE, NOMAFLOW_DB_POOL_MAX_SIZE),
        "max_size": NOMAFLOW_DB_POOL_MAX_SIZE,
        "timeout": NOMAFLOW_DB_POOL_TIMEOUT_S,
    }
# A session that goes quiet inside a transaction (its host cut off mid-write) would hold its
# row locks until TCP gives up, hours later, and block the reaper that is to fail its step:
# PostgreSQL ends such a session after this long. Keep it under the heartbeat timeout; 0: never.
NOMAFLOW_DB_IDLE_IN_TRANSACTION_S = env_number("NOMAFLOW_DB_IDLE_IN_TRANSACTION_S", 10.0)
if NOMAFLOW_DB_IDLE_IN_TRANSACTION_S and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    timeout_ms = int(NOMAFLOW_DB_IDLE_IN_TRANSACTION_S * 1000)
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c idle_in_transaction_session_timeout={timeout_ms}".strip()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and scheduler write concurrently: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# daphne serves no files: let the ASGI app serve /static/ itself (`make run`, docker compose).
NOMAFLOW_SERVE_STATIC = env_bool("NOMAFLOW_SERVE_STATIC", False)
LOGIN_URL = "/nomaflow/login/"  # the admin keeps its own /admin/login/

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")  # dev default
# Prefix for every Redis key nomaflow uses, so several installations (or test sessions)
# can share one Redis server without seeing each other's messages.
REDIS_PREFIX = env_str("NOMAFLOW_REDIS_PREFIX", "")

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # state lives in PostgreSQL, not in a result backend
# At-most-once execution of a step attempt (see README, "Worker loss"):
CELERY_TASK_ACKS_LATE = False  # ack before running: a killed worker's task is not redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # never requeue a task whose worker died
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # hold at most one unstarted message per process
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's monitoring events stay off: Flower (README, "Flower") turns the workers' on itself
# (its enable_events broadcast) while it watches. Always on, they cost every step a few Redis
# publishes nobody may read: a fifth of a worker's steps/s in bench/fleet.py.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Only never-started (prefetched) messages can be restored; the claim in the
    # database makes a second delivery of those a no-op anyway.
    "visibility_timeout": int(env_number("NOMAFLOW_VISIBILITY_TIMEOUT_S", 3600, int, 1)),
    **({"global_keyprefix": REDIS_PREFIX} if REDIS_PREFIX else {}),
}

# --- Channels -------------------------------------------------------------------------
# Only run groups use the layer, one message per log batch (≤ 50 ms or 500 lines) or
# state change. A lost message costs a database read, never a line (runs/consumers.py
# fills seq gaps from the database), so the limits bound Redis memory, not correctness:
# - capacity 100: a consumer busy or stalled for ~5 s of the busiest run (20 batches/s)
#   holds at most 100 batches (~10 MB) in Redis; beyond that, messages to it are dropped.
# - expiry 10 s: a message nobody took within 10 s (a dead or stuck consumer) is stale.
# - group_expiry 60 s: a crashed daphne's channels leave the groups within a minute
#   (the default is a day of sends to nobody); live consumers re-join every 20 s.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": f"{REDIS_PREFIX}asgi",
            # Messages waiting for one process (every socket of a daphne shares one Redis key
            # for them): a busy web process must not drop a run's last events, which would
            # leave its followers waiting for the fallback poll.
            "capacity": 1000,
            "expiry": 30,
            "group_expiry": 60,
        },
    }
}

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so anonymous requests get 401 with WWW-Authenticate rather than 403.
        "accounts.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.IsViewer"],
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.AutoSchema",  # every error status listed, in one shape
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    # JSON only (no endpoint takes a form or a file), bounded before it is parsed.
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "nomaflow API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A request body has its own component (JobRequest), without the read-only fields of the
    # answer (last_run, next_fire_at): a generated client never has to fill those to send.
    "COMPONENT_SPLIT_REQUEST": True,
    # Run and StepRun both have a `state`: name the two enums apart.
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "runs.choices.RunState",
        "StepStateEnum": "runs.choices.StepState",
        # A job's log_level, and a trigger's or replay's override of it (plain values, so another
        # choice set): both named, or `check --deploy` warns about the collision.
        "JobLogLevelEnum": "jobs.models.Job.LogLevel",
        "LogLevelOverrideEnum": ["INFO", "DEBUG"],
    },
}

# --- LDAP login (nomaflow/ldap_auth.py) ----------------------------------------------
# Empty: directory login off, only local accounts (ModelBackend). e.g. ldaps://ldap.corp:636
LDAP_SERVER_URI = env_str("LDAP_SERVER_URI", "")
LDAP_BIND_DN = env_str("LDAP_BIND_DN", "")  # the service account that finds users; empty = anonymous
LDAP_BIND_PASSWORD = env_str("LDAP_BIND_PASSWORD", "")
LDAP_START_TLS = env_bool("LDAP_START_TLS", False)  # StartTLS on an ldap:// URI; certificates are verified
LDAP_CA_FILE = env_str("LDAP_CA_FILE", "")  # CA bundle for ldaps:// or StartTLS; empty = the system's
LDAP_USER_BASE_DN = env_str("LDAP_USER_BASE_DN", "")
LDAP_USER_ATTR = env_str("LDAP_USER_ATTR", "uid")  # the attribute users sign in with (uid, sAMAccountName)
# Where the role groups live; empty = roles are not synced from the directory (set in the admin).
LDAP_GROUP_BASE_DN = env_str("LDAP_GROUP_BASE_DN", "")
# DNs of the directory groups (groupOfNames / groupOfUniqueNames) that grant each role.
LDAP_GROUP_VIEWER = env_str("LDAP_GROUP_VIEWER", "")
LDAP_GROUP_OPERATOR = env_str("LDAP_GROUP_OPERATOR", "")
LDAP_GROUP_EDITOR = env_str("LDAP_GROUP_EDITOR", "")
if LDAP_SERVER_URI and not LDAP_SERVER_URI.startswith(("ldap://", "ldaps://")):
    raise ImproperlyConfigured(f"LDAP_SERVER_URI={LDAP_SERVER_URI!r}: use ldap://host:port or ldaps://host:port")
if LDAP_SERVER_URI and not LDAP_USER_BASE_DN:
    raise ImproperlyConfigured("LDAP_SERVER_URI is set but LDAP_USER_BASE_DN is not: where are the users?")
# Axes first (a locked-out name+address is refused before any password is tried, the directory's
# too), then local accounts (a local admin still signs in when the directory is down), then LDAP.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
if LDAP_SERVER_URI:
    AUTHENTICATION_BACKENDS.append("nomaflow.ldap_auth.LDAPBackend")

# --- nomaflow -------------------------------------------------------------------------
# Python steps may only call functions in these modules (and their submodules).
# workers.housekeeping (the built-in retention job's step) is always allowed.
NOMAFLOW_PYTHON_STEP_MODULES = list(
    dict.fromkeys([*env_list("NOMAFLOW_PYTHON_STEP_MODULES", "workers.builtins"), "workers.housekeeping"])
)
# http steps may only call URLs under an http connector's base URL unless this is true
# (so an edited replay cannot aim a worker at internal hosts); never other schemes.
NOMAFLOW_HTTP_ALLOW_ANY_URL = env_bool("NOMAFLOW_HTTP_ALLOW_ANY_URL", False)
NOMAFLOW_HEARTBEAT_INTERVAL_S = env_number("NOMAFLOW_HEARTBEAT_INTERVAL_S", 5)
# A RUNNING step whose heartbeat is older than this is reaped as `worker lost`.
NOMAFLOW_HEARTBEAT_TIMEOUT_S = env_number("NOMAFLOW_HEARTBEAT_TIMEOUT_S", 60)
NOMAFLOW_CANCEL_GRACE_S = env_number("NOMAFLOW_CANCEL_GRACE_S", 10)
# An active run with no step running or ending for this long has lost a message: resend it.
NOMAFLOW_STALL_S = env_number("NOMAFLOW_STALL_S", 300, float, 1)
NOMAFLOW_LOG_FLUSH_INTERVAL_S = env_number("NOMAFLOW_LOG_FLUSH_INTERVAL_S", 0.05)
NOMAFLOW_LOG_FLUSH_LINES = int(env_number("NOMAFLOW_LOG_FLUSH_LINES", 500, int, 1))
NOMAFLOW_LOG_LINE_MAX_BYTES = int(env_number("NOMAFLOW_LOG_LINE_MAX_BYTES", 16384, int, 64))
NOMAFLOW_SCHEDULER_TICK_S = env_number("NOMAFLOW_SCHEDULER_TICK_S", 1)
# The scheduler leader lock expires this long after its holder stops renewing it (a dead
# leader is replaced within about this time).
NOMAFLOW_SCHEDULER_LOCK_TTL_S = env_number("NOMAFLOW_SCHEDULER_LOCK_TTL_S", 30, float, 1)
# A cron fire older than this when the scheduler gets to it was missed (downtime): the job's
# `catchup` decides. Younger ones are merely late and fire. Longer than a leader handover.
NOMAFLOW_SCHEDULER_MISFIRE_GRACE_S = env_number("NOMAFLOW_SCHEDULER_MISFIRE_GRACE_S", 60, float, 1)
if NOMAFLOW_SCHEDULER_MISFIRE_GRACE_S < NOMAFLOW_SCHEDULER_LOCK_TTL_S + NOMAFLOW_SCHEDULER_TICK_S:
    raise ImproperlyConfigured(
        "NOMAFLOW_SCHEDULER_MISFIRE_GRACE_S must be at least NOMAFLOW_SCHEDULER_LOCK_TTL_S + "
        "NOMAFLOW_SCHEDULER_TICK_S, or a fire during a leader handover would count as missed"
    )
# Every scheduler round (leader or follower) touches it; `healthcheck scheduler` fails once
# it is older than MAX_AGE. In the container's own temp dir: var/ is shared in compose.
NOMAFLOW_SCHEDULER_HEARTBEAT_FILE = Path(
    env_str("NOMAFLOW_SCHEDULER_HEARTBEAT_FILE", str(Path(tempfile.gettempdir()) / "nomaflow-scheduler.heartbeat"))
)
NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S = env_number("NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S", 60, float, 0.1)
if NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S <= NOMAFLOW_SCHEDULER_TICK_S:
    raise ImproperlyConfigured(
        "NOMAFLOW_SCHEDULER_HEARTBEAT_MAX_AGE_S must be longer than NOMAFLOW_SCHEDULER_TICK_S (a few ticks), "
        "or a healthy scheduler would look dead between two rounds"
    )
NOMAFLOW_BASE_URL = env_str("NOMAFLOW_BASE_URL", "http://127.0.0.1:8000")  # dev default

# --- Metrics (README, "Metrics"; core/metrics_access.py) ------------------------------
# Who may read /metrics (web) and a worker's or scheduler's metrics port: a request with
# `Authorization: Bearer <token>`, or one from these networks (dev default: this host only).
NOMAFLOW_METRICS_TOKEN = env_str("NOMAFLOW_METRICS_TOKEN", "")

NOMAFLOW_METRICS_ALLOW = env_networks("NOMAFLOW_METRICS_ALLOW", "127.0.0.0/8,::1/128")
# The port a worker's main process or a scheduler serves its metrics on (0: none). Each worker
# instance on a host needs its own port and its own empty PROMETHEUS_MULTIPROC_DIR.
NOMAFLOW_METRICS_PORT = int(env_number("NOMAFLOW_METRICS_PORT", 0, int))

# LOG_FORMAT=json: one JSON object per line (core/logs.py), with run_id / step_run_id on a
# worker's records while it executes a step; web, worker and scheduler all read this LOGGING.
LOG_FORMAT = env_str("LOG_FORMAT", "text")
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))

# --- Notifications (runs/notifications.py, workers/notify.py) -------------------------
# Outgoing mail, with Django's own setting names. The dev default is a mail server on
# this machine; production sets at least EMAIL_HOST and DEFAULT_FROM_EMAIL.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")  # dev default
EMAIL_PORT = int(env_number("EMAIL_PORT", 25, int, 1))
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)  # STARTTLS, usually on port 587
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # TLS from the first byte, usually on port 465
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are both true: set only one (587: TLS, 465: SSL)")
EMAIL_TIMEOUT = env_number("EMAIL_TIMEOUT", 10, float, 0.1)  # a hung mail server must not hold a worker
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "nomaflow@localhost")  # dev default
# Notifications have a queue of their own, so they are not stuck behind a backlog of
# steps on `default`; every worker command line consumes it (`-Q default,notify`).
NOMAFLOW_NOTIFY_QUEUE = env_str("NOMAFLOW_NOTIFY_QUEUE", "notify")
# A failed delivery is tried this many more times, after BACKOFF, 2×BACKOFF, 4×BACKOFF … s.
NOMAFLOW_NOTIFY_RETRIES = int(env_number("NOMAFLOW_NOTIFY_RETRIES", 3, int))
NOMAFLOW_NOTIFY_RETRY_BACKOFF_S = env_number("NOMAFLOW_NOTIFY_RETRY_BACKOFF_S", 10)
NOMAFLOW_NOTIFY_TIMEOUT_S = env_number("NOMAFLOW_NOTIFY_TIMEOUT_S", 10, float, 0.1)  # one webhook POST

# --- Security (README, "Security model") ----------------------------------------------
# A connector's `${NAME}` resolves only names with this prefix or in the allowlist, and
# never one of SETTINGS_ENV_NAMES (core/secrets.py; checked at save and on the worker).
NOMAFLOW_SECRET_PREFIX = env_str("NOMAFLOW_SECRET_PREFIX", "NOMAFLOW_SECRET_")
NOMAFLOW_SECRET_ALLOWLIST = env_list("NOMAFLOW_SECRET_ALLOWLIST", "")
# sqlite connectors may only name files under this directory (dev default: var/).
NOMAFLOW_SQLITE_DIR = Path(env_str("NOMAFLOW_SQLITE_DIR", str(VAR_DIR))).resolve()
# Input bounds: a request body (413 beyond it), and the params / op_kwargs JSON of a job,
# a trigger or a replay (400 naming the field beyond them).
NOMAFLOW_MAX_BODY_BYTES = int(env_number("NOMAFLOW_MAX_BODY_BYTES", 1024 * 1024, int, 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = NOMAFLOW_MAX_BODY_BYTES  # the admin's forms, the same bound
NOMAFLOW_MAX_JSON_BYTES = int(env_number("NOMAFLOW_MAX_JSON_BYTES", 64 * 1024, int, 256))
NOMAFLOW_MAX_JSON_DEPTH = int(env_number("NOMAFLOW_MAX_JSON_DEPTH", 16, int, 2))
NOMAFLOW_MAX_JSON_KEYS = int(env_number("NOMAFLOW_MAX_JSON_KEYS", 1000, int, 1))
# Websockets one user may hold open at once, across every web process (close code 4429 beyond).
NOMAFLOW_WS_MAX_PER_USER = int(env_number("NOMAFLOW_WS_MAX_PER_USER", 20, int, 1))
# The channel layer wakes live-log sockets; an idle one looks in the database only this often
# (a lost message: Redis restarted, a full channel).
NOMAFLOW_WS_FALLBACK_POLL_S = env_number("NOMAFLOW_WS_FALLBACK_POLL_S", 20, float, 0.1)
# Deployment behind HTTPS: Django's own names, off by default for `make run` on http://.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes call the process itself over plain HTTP (no proxy, no X-Forwarded-Proto): a redirect
# to https:// would fail them. The health answers carry nothing to protect (nomaflow/health.py).
# Scrapers too (their access is the token or the network, NOMAFLOW_METRICS_*).
SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(env_number("SECURE_HSTS_SECONDS", 0, int))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts and styles only from our own files, so an
# injected <script>, on*= handler, style= or javascript: URL does nothing. 'self' in
# connect-src also matches ws:// and wss:// of this host (CSP 3): the live log socket.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # the admin's and Swagger UI's inline SVG icons
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Login throttling (django-axes), both login pages and every backend (local and LDAP): this
# many failures for one user name from one address lock that pair out (429) for COOLOFF_S.
NOMAFLOW_LOGIN_FAILURE_LIMIT = int(env_number("NOMAFLOW_LOGIN_FAILURE_LIMIT", 5, int, 1))
NOMAFLOW_LOGIN_COOLOFF_S = env_number("NOMAFLOW_LOGIN_COOLOFF_S", 900, float, 1)
AXES_FAILURE_LIMIT = NOMAFLOW_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=NOMAFLOW_LOGIN_COOLOFF_S)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # a guesser cannot lock a user out everywhere
AXES_USERNAME_CALLABLE = "accounts.throttle.username_key"
AXES_RESET_ON_SUCCESS = True  # a good password clears the count: typos do not add up over a day
AXES_LOCKOUT_CALLABLE = "accounts.throttle.lockout_response"  # the 429 page, with Retry-After
AXES_VERBOSE = False  # no banner from every process and command at start; lockouts are still logged


SECURE_PROXY_SSL_HEADER = proxy_ssl_header()

"""Django settings, read from the environment (12-factor).

Every setting that differs between a laptop, CI and production comes from an environment
variable documented in `.env.example`. With `DATABASE_URL` and `REDIS_URL` unset the platform
uses embedded stores under `var/` (or `STRATBOX_VAR_DIR`): a private PostgreSQL server and a
private Redis server, each on a unix socket (started by `make run`). Tests refuse the embedded defaults: see `tests/conftest.py`.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STRATBOX_VAR_DIR") or BASE_DIR / "var")

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The fallback key only exists so that `make run` works on a fresh clone; production must set one.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
# `make run` without DATABASE_URL: a private PostgreSQL (the `pgserver` wheel) on a unix socket in
# var/postgres, started by the launcher. The engine's hot paths are PostgreSQL SQL, and its
# guarantees (row locks under concurrent ticks) are PostgreSQL's.
EMBEDDED_POSTGRES_DIR = VAR_DIR / "postgres"
EMBEDDED_DATABASE = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "stratbox",
    "USER": "postgres",
    "HOST": str(EMBEDDED_POSTGRES_DIR),  # the socket's directory
}
REDIS_URL = env("REDIS_URL", default=f"unix://{EMBEDDED_REDIS_SOCKET}")
USING_EMBEDDED_REDIS = "REDIS_URL" not in env
USING_EMBEDDED_DATABASE = "DATABASE_URL" not in env

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_celery_beat",
    "django_htmx",
    "channels",
    "tenants",
    "strategies_store",
    "stratbox.markets",
    "stratbox.instances",
    "stratbox.trading",
    "stratbox.notifications",
    "stratbox.plugins",
    "stratbox.engine",
    "stratbox.backtests",
    "stratbox.governance",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "stratbox.request_limits.RequestLimitsMiddleware",  # 413/400 for oversized or too-deep bodies
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "stratbox.urls"
WSGI_APPLICATION = "stratbox.wsgi.application"
ASGI_APPLICATION = "stratbox.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # First, so the web UI's overrides of allauth's templates (account/*.html) win over allauth's own.
        "DIRS": [BASE_DIR / "frontend" / "templates"],
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

# --- stores -------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL") if "DATABASE_URL" in env else dict(EMBEDDED_DATABASE)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Server-side parameter binding, and statements prepared after their 5th use on a connection: the
# engine runs the same few statements thousands of times a second, and client-side binding made
# PostgreSQL parse and plan every one of them (and psycopg quote every parameter in Python). Off
# (DATABASE_PREPARED_STATEMENTS=0) behind a transaction-mode connection pooler such as PgBouncer
# before 1.21, which cannot keep a connection's prepared statements.
if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 5}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="stratbox"),
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": env("CHANNELS_PREFIX", default="stratbox-ch"),
            # A slow browser must never slow a worker: bounded per-channel queues, short expiry.
            "capacity": 500,
            "expiry": 30,
        },
    }
}


def _celery_url(url: str) -> str:
    """Celery spells a Redis unix socket `redis+socket://`; redis-py spells it `unix://`."""
    return "redis+socket://" + url.removeprefix("unix://") if url.startswith("unix://") else url


CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = _celery_url(REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker process keeps its next batch reserved, so it starts it without a broker round trip
# (the hand-off was ~8 ms per batch). A worker killed outright takes its reserved batches with it:
# the dispatcher queues those instances again after ENGINE_QUEUED_STALE_SECONDS.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=2)
# Celery's Django fix-up closes every database connection around every task unless it is told to
# reuse them; a new PostgreSQL backend per tick batch cost more CPU than the batch. Connections are
# kept for CONN_MAX_AGE and health-checked instead (stratbox/celery.py), as Django does per request.
CELERY_DB_REUSE_MAX = 2**31
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="stratbox")
# Backtests and other long work: the queue `<CELERY_QUEUE>.long`, served by its own worker pool.
CELERY_TASK_ROUTES = ("stratbox.celery.route_task",)

# --- auth -------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env.bool("STRATBOX_FAST_PASSWORD_HASHER", default=False):
    # Test runs only: the default hasher's deliberate slowness dominates fixture set-up.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# "mandatory" in production; "none" on a laptop, where there is no mail server.
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="none")
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_ADAPTER = "stratbox.trading.adapters.TradingAccountAdapter"
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="stratbox@localhost")

# --- API --------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "tenants.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_standardized_errors.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Scoped throttles (per user): an upload compiles in a fresh sandbox host process and a token is a
    # credential, so both are rate-limited; 429 answers the standard error body.
    "DEFAULT_THROTTLE_RATES": {
        "anon": "60/min",
        "user": "1200/min",
        "uploads": env("STRATBOX_THROTTLE_UPLOADS", default="30/min"),
        "token_create": env("STRATBOX_THROTTLE_TOKEN_CREATE", default="10/min"),
        "backtests": env("STRATBOX_THROTTLE_BACKTESTS", default="20/min"),
        "diffs": env("STRATBOX_THROTTLE_DIFFS", default="30/min"),
    },
}
DRF_STANDARDIZED_ERRORS = {
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
    # Services raise tenants.errors.ApplicationError, and oversized / too-deep bodies are 413 / 400
    # (stratbox/request_limits.py): this handler class gives both the standard body.
    "EXCEPTION_HANDLER_CLASS": "tenants.api_errors.ApplicationExceptionHandler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stratbox API",
    "DESCRIPTION": "Multi-tenant strategy hosting: strategies, versions, instances, accounts, tokens, audit.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "stratbox.engine.models.RunStatus.choices",
        "RunTriggerEnum": "stratbox.engine.models.RunTrigger.choices",
        "TickTriggerEnum": "stratbox.instances.models.TickTrigger.choices",
        "ValidationErrorEnum": "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices",
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
        "ErrorCode401Enum": "drf_standardized_errors.openapi_serializers.ErrorCode401Enum.choices",
        "ErrorCode403Enum": "drf_standardized_errors.openapi_serializers.ErrorCode403Enum.choices",
        "ErrorCode404Enum": "drf_standardized_errors.openapi_serializers.ErrorCode404Enum.choices",
        "ErrorCode405Enum": "drf_standardized_errors.openapi_serializers.ErrorCode405Enum.choices",
        "ErrorCode406Enum": "drf_standardized_errors.openapi_serializers.ErrorCode406Enum.choices",
        "ErrorCode415Enum": "drf_standardized_errors.openapi_serializers.ErrorCode415Enum.choices",
        "ErrorCode429Enum": "drf_standardized_errors.openapi_serializers.ErrorCode429Enum.choices",
        "ErrorCode500Enum": "drf_standardized_errors.openapi_serializers.ErrorCode500Enum.choices",
        # Stable, collision-free names for the finished apps' choice sets ("status", "kind", "mode",
        # "side" recur across apps; without these a generated client gets hash-suffixed names).
        "AccountKindEnum": "stratbox.trading.models.AccountKind",
        "OrderSideEnum": "stratbox.trading.models.OrderSide",
        "OrderTypeEnum": "stratbox.trading.models.OrderType",
        "OrderStatusEnum": "stratbox.trading.models.OrderStatus",
        "InstanceModeEnum": "stratbox.instances.models.Mode",
        "SizingMethodEnum": "stratbox.instances.models.SizingMethod",
        "StrategyStyleEnum": "strategies_store.models.StrategyStyle",
        "MembershipRoleEnum": "tenants.models.Role",
        "MarketFeedEnum": "stratbox.markets.models.FeedSource",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
        "tenants.schema.relax_validation_error_items",
    ],
}

# --- HTTPS and browser security ---------------------------------------------------------
# Production defaults: HTTPS only (secure cookies, HSTS, redirect to https), behind a TLS proxy that
# sets X-Forwarded-Proto. `make run` and the test suite serve plain http on loopback and set
# STRATBOX_HTTPS=0; every setting can also be set on its own from the environment.
HTTPS = env.bool("STRATBOX_HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=HTTPS)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container's own health check speaks http on loopback
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=HTTPS)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts only from our own origin. Inline `style=""`
# attributes are allowed (the templates use a few); no inline scripts, no frames, no plugins. The
# API docs (Swagger UI / ReDoc start with an inline script) are excluded.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/docs/", "/api/redoc/", "/admin/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- static, i18n -------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Multipart bodies (a backtest's CSV may be 100 MiB); larger ones are refused with a 413.
STRATBOX_MAX_UPLOAD_BYTES = env.int("STRATBOX_MAX_UPLOAD_BYTES", default=105 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- platform -------------------------------------------------------------------------------

# Upload limits; the sandbox re-checks them inside its host.
STRATBOX_MAX_SOURCE_BYTES = env.int("STRATBOX_MAX_SOURCE_BYTES", default=256 * 1024)
# Fernet key(s) for credentials at rest (live accounts); comma-separated for rotation.
STRATBOX_CREDENTIALS_KEYS = env.list("STRATBOX_CREDENTIALS_KEYS", default=[])
# Extra or overridden venues, JSON: {"alpaca:sim": {"adapter": "alpaca", "simulated": true,
# "trading_url": ..., "data_url": ..., "stream_url": ...}} (stratbox/venues/registry.py).
STRATBOX_VENUES = env.json("STRATBOX_VENUES", default={})
# The local demo's simulated venue (`make run` sets 8790): a loopback Alpaca (venuesim) on this
# port, known as broker "alpaca:sim", its markets as venue ALPACA-SIM; 0 = none.
STRATBOX_SIM_VENUE_PORT = env.int("STRATBOX_SIM_VENUE_PORT", default=0)
if STRATBOX_SIM_VENUE_PORT and "alpaca:sim" not in STRATBOX_VENUES:
    STRATBOX_VENUES["alpaca:sim"] = {
        "adapter": "alpaca",
        "simulated": True,
        "label": "Alpaca (simulated venue)",
        "venue": "ALPACA-SIM",
        "trading_url": f"http://127.0.0.1:{STRATBOX_SIM_VENUE_PORT}",
        "data_url": f"http://127.0.0.1:{STRATBOX_SIM_VENUE_PORT}",
        "stream_url": f"ws://127.0.0.1:{STRATBOX_SIM_VENUE_PORT}/v2/iex",
        # The simulator trades around the clock, so the demo's live path works at any hour (a real
        # Alpaca's US equities keep their 09:30-16:00 New York session).
        "hours": {},
        # The simulator's demo account keys (made once by the launcher; not a real venue's).
        "demo_credentials_file": str(VAR_DIR / "sim-venue.json"),
    }
# Check a live account's credentials with one read-only venue call before storing them.
STRATBOX_VENUE_CREDENTIALS_CHECK = env.bool("STRATBOX_VENUE_CREDENTIALS_CHECK", default=True)
# Live orders (stratbox/trading/services/live.py): a journaled order the venue still does not know
# this many seconds after it was journaled (longer than any send can take) is settled rejected,
# never resent. The failpoint (tests only) pauses a worker between the journal's commit and the send.
STRATBOX_LIVE_UNKNOWN_GRACE_SECONDS = env.float("STRATBOX_LIVE_UNKNOWN_GRACE_SECONDS", default=60.0)
STRATBOX_LIVE_FAILPOINT_SLEEP_BEFORE_SEND = env.float(
    "STRATBOX_LIVE_FAILPOINT_SLEEP_BEFORE_SEND", default=0.0
)

# --- AI assistants: the MCP server (stratbox/mcp, mounted at /mcp by stratbox/asgi.py) -------

# The URL MCP clients use: the resource identifier in the protected-resource metadata and in the
# settings page's client snippet. Behind a proxy: https://<your host>/mcp.
STRATBOX_MCP_URL = env("STRATBOX_MCP_URL", default="http://127.0.0.1:8000/mcp")
# Host / Origin headers the MCP endpoint accepts (DNS-rebinding protection); `host:*` = any port.
STRATBOX_MCP_ALLOWED_HOSTS = env.list(
    "STRATBOX_MCP_ALLOWED_HOSTS",
    default=[
        f"{h}{port}" for h in ALLOWED_HOSTS if h != "*" and not h.startswith(".") for port in ("", ":*")
    ],
)
STRATBOX_MCP_ALLOWED_ORIGINS = env.list(
    "STRATBOX_MCP_ALLOWED_ORIGINS",
    default=[*CSRF_TRUSTED_ORIGINS, "http://127.0.0.1:*", "http://localhost:*"],
)
# Backtests an assistant may start per tenant and UTC day (then a structured "limit reached").
STRATBOX_MCP_BACKTESTS_PER_DAY = env.int("STRATBOX_MCP_BACKTESTS_PER_DAY", default=50)
# CPU priority (nice, 0..19) of a worker that consumes only long-work queues, inherited by its pool
# processes and their sandbox hosts: a busy core runs ticks first and backtests with what is left.
STRATBOX_LONG_WORKER_NICE = env.int("STRATBOX_LONG_WORKER_NICE", default=19)
# ... and the SCHED_IDLE scheduling policy on top (CFS weight 3, nice 19's is 15): backtests get
# only the CPU time nothing else wants. Where the kernel refuses it, the nice value alone applies.
STRATBOX_LONG_WORKER_IDLE = env.bool("STRATBOX_LONG_WORKER_IDLE", default=True)
# `/healthz` shows its parts (database, Redis, workers) to staff and to `Bearer <this token>`.
STRATBOX_HEALTH_TOKEN = env("STRATBOX_HEALTH_TOKEN", default="")
# Per-plan quotas (tenants.plans): instance count and shortest frequency, backtests running at once
# per tenant (the rest wait in order) and backtests queued at once (one more is a 429).
STRATBOX_PLANS = env.json(
    "STRATBOX_PLANS",
    default={
        "standard": {
            "max_instances": 50,
            "min_frequency_seconds": 1,
            "backtests_running": 1,
            "backtests_queued": 5,
        },
        "pro": {
            "max_instances": 500,
            "min_frequency_seconds": 1,
            "backtests_running": 2,
            "backtests_queued": 20,
        },
    },
)
# Notifications: a self-hosted Telegram Bot API server for tgram:// channels (empty: api.telegram.org).
STRATBOX_TELEGRAM_API_URL = env.str("STRATBOX_TELEGRAM_API_URL", default="")
# make run: the port of the demo's local mail catcher (the launcher's `mail` process).
STRATBOX_MAIL_PORT = env.int("STRATBOX_MAIL_PORT", default=1025)

"""Django settings, read from the environment in this one place.

See ``.env.example`` for every variable and ``deploy/production.env.example`` for a
production host.  A ``.env`` file at the project root (or the file ``ENV_FILE`` names) is
read first; variables already set in the real environment win over it.  Pipeline variables
(``STREAM_*``, ``OPENAI_*``) are validated by :class:`streaming.config.StreamConfig`; a bad
value stops start-up with the variable's name, value and allowed range.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from streaming.config import ConfigError, StreamConfig

BASE_DIR = Path(__file__).resolve().parent.parent

# The file only fills in what the process environment lacks (override=False), so a variable set by
# systemd, the shell or `make run` always wins. A file named by ENV_FILE must exist; .env need not.
_env_file = os.environ.get("ENV_FILE", "").strip()
if _env_file and not Path(_env_file).is_file():
    raise ImproperlyConfigured(f"ENV_FILE={_env_file!r} is invalid: no such file")
load_dotenv(_env_file or BASE_DIR / ".env", override=False)


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is invalid: allowed 1/0, true/false, yes/no, on/off")


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _env_number(name: str, default: float, low: float, high: float, *, integer: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        allowed = f"{low}..{high}" if integer else f"{low:g}..{high:g}"
        raise ImproperlyConfigured(f"{name}={raw!r} is invalid: allowed {allowed}")
    return value


DEBUG = _env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set: set it, or set DEBUG=1 for development.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Also the origins, beyond the page's own host, whose pages may open a WebSocket (streaming/web/auth.py).
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

# Behind a TLS-terminating proxy Django sees plain HTTP and learns the scheme from X-Forwarded-Proto.
# Opt-in: without a proxy that sets (and so overwrites) that header, any client could claim https.
if _env_bool("TRUST_PROXY_HEADERS"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT")
# Monitors read these over plain HTTP on loopback, where a redirect to https would fail them.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
# Cookies only over HTTPS unless in development; SECURE_COOKIES=0 for a site served over plain HTTP.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _env_bool("SECURE_COOKIES", default=not DEBUG)
# HSTS is opt-in: once a browser has seen it, it refuses plain HTTP to this host for that many seconds,
# so a broken certificate locks every user out. Turn it on once TLS works; raise it step by step.
SECURE_HSTS_SECONDS = int(_env_number("SECURE_HSTS_SECONDS", 0, 0, 63_072_000, integer=True))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD")

# Open sign-up suits a personal or development server; a shared one sets ALLOW_SIGNUP=0 and admins
# create the accounts.
ALLOW_SIGNUP = _env_bool("ALLOW_SIGNUP", default=True)
# The longest an API token may live, in days, for tokens created from now on; 0: no limit.
API_TOKEN_MAX_DAYS = int(_env_number("API_TOKEN_MAX_DAYS", 0, 0, 3650, integer=True))

try:
    STREAM_CONFIG = StreamConfig.from_env(os.environ)
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "conversations",
    "streaming.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "voicesite.urls"
ASGI_APPLICATION = "voicesite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "conversations.context_processors.accounts",
            ],
        },
    },
]


DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # However SQLite is configured (SQLITE_PATH or DATABASE_URL=sqlite:///...): WAL lets history
    # pages read while a session writes; the busy timeout makes a writer wait for the lock instead
    # of failing at once; IMMEDIATE takes the write lock when a transaction begins, so a waiting
    # writer is queued by the busy timeout rather than failing on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": _env_number("SQLITE_BUSY_TIMEOUT_S", 20.0, 0.0, 600.0),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }

# Writes the database could not take yet wait here, one directory per database (see
# conversations/journal.py). Keep it on a local disk that survives restarts.
CONVERSATION_JOURNAL_DIR = Path(
    os.environ.get("CONVERSATION_JOURNAL_DIR", "").strip() or BASE_DIR / "journal"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streaming.web.redis_layer.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed log-ins are counted per account and per client address, in the database every worker
# shares; either reaching the limit pauses log-ins for it. Behind nginx daphne runs with
# --proxy-headers, so REMOTE_ADDR (which django-axes reads) is already the client's address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = int(_env_number("LOGIN_FAILURE_LIMIT", 5, 1, 1000, integer=True))
AXES_COOLOFF_TIME = timedelta(minutes=_env_number("LOGIN_LOCKOUT_MINUTES", 15, 1, 10080, integer=True))
# A success does not clear the failures: it would clear its address's too, so a guesser with an account
# of their own could reset the count between guesses. Failures expire after the lock-out time instead.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "conversations.views.accounts.locked_out"
# Successful log-ins are not recorded: nothing reads them and the table would only grow.
AXES_DISABLE_ACCESS_LOG = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "streaming.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes logs every successful log-in at INFO; its failures and lock-outs are warnings.
    "loggers": {"django.channels.server": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Prometheus /metrics (docs/metrics.md): loopback reads it freely, any other address only with
# "Authorization: Bearer <METRICS_TOKEN>"; without a token it is loopback only.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
# Several workers on one host share their metrics through files in this directory (prometheus_client's
# multiprocess mode, which reads the variable itself: set but empty would put the files in the working
# directory). Unset: each process serves its own.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR is not None and not (
    PROMETHEUS_MULTIPROC_DIR.strip() and Path(PROMETHEUS_MULTIPROC_DIR).is_dir()
):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is invalid: it must name an existing "
        "directory (unset it for a single process)"
    )

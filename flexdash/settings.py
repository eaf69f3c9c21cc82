"""FlexDash settings. Everything deployment-specific comes from the environment
(see README.md, "Configuration"); the defaults run on a laptop with no set-up."""

from __future__ import annotations

import importlib.util
import math
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from flexdash.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_prefixed,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FLEXDASH_VAR_DIR", str(BASE_DIR / "var")))
# Holds the default SQLite database and the file cache: it must exist.
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "flexdash-insecure-development-key-change-me")
if not DEBUG and SECRET_KEY.startswith("flexdash-insecure"):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")


def _origins(name: str) -> list[str]:
    origins = env_list(name)
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ImproperlyConfigured(
                f"{name} entries must start with https:// (or http://), got {origin!r}"
            )
    return origins


# Behind an HTTPS proxy the browser's Origin is https://..., while Django may
# see plain HTTP: the public origins must be trusted for forms to post.
CSRF_TRUSTED_ORIGINS = _origins("DJANGO_CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
# Only behind a proxy that sets X-Forwarded-Proto itself: trusted from anyone
# else, the header would let a client claim HTTPS.
_BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
if _BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Hardening (README, "Security"): HTTPS, HSTS, the Content-Security-Policy
# and what the error page may show.
# Behind the HTTPS proxy, plain HTTP is redirected to HTTPS, except /healthz:
# load balancers probe it over plain HTTP and need its answer, not a 301.
# Never under DEBUG: a laptop has no HTTPS to be sent to.
SECURE_SSL_REDIRECT = _BEHIND_PROXY and not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# HSTS tells browsers to refuse plain HTTP to this host until max-age runs
# out, and cannot be taken back before: off (0) until the operator opts in.
# Django sends it on HTTPS responses only.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if (SECURE_HSTS_INCLUDE_SUBDOMAINS or SECURE_HSTS_PRELOAD) and not SECURE_HSTS_SECONDS:
    raise ImproperlyConfigured(
        "DJANGO_HSTS_INCLUDE_SUBDOMAINS and DJANGO_HSTS_PRELOAD need DJANGO_HSTS_SECONDS"
    )
if SECURE_HSTS_PRELOAD and not (
    SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_SECONDS >= 31_536_000
):
    # What the browsers' preload list (hstspreload.org) accepts.
    raise ImproperlyConfigured(
        "DJANGO_HSTS_PRELOAD needs DJANGO_HSTS_INCLUDE_SUBDOMAINS and "
        "DJANGO_HSTS_SECONDS of at least 31536000 (a year)"
    )
# Sent by ContentSecurityPolicyMiddleware (MIDDLEWARE), under DEBUG too, so
# `make run` and the tests see what production sends; Django's own debug pages
# exempt themselves. Pages load only this site's scripts, styles and images:
# no inline <script>, no on*="" or style="" attributes, and no eval (htmx's
# hx-on and js: values stay unused; base.html turns htmx's eval off).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    # A nonce for what Django's own templates mark with one (the CSRF failure
    # page's <style>, the admin's stylesheet links); named only where used.
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# DEBUG's error page lists every setting and, under runserver, the process's
# environment: this filter also hides DATABASE_URL and the password in any URL.
DEFAULT_EXCEPTION_REPORTER_FILTER = "flexdash.error_reports.SecretHidingFilter"
# --- end of hardening

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Before django_q: its `manage.py qcluster` is jobs/management/commands/qcluster.py,
    # django-q2's cluster with a stop that hands the dispatcher's work on.
    "jobs",
    "django_q",
]

MIDDLEWARE = [
    # First, so it sees every request Django answers (jobs/web/server_log.py).
    "jobs.web.server_log.MarkHtmxPollMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "flexdash.urls"
WSGI_APPLICATION = "flexdash.wsgi.application"
ASGI_APPLICATION = "flexdash.asgi.application"

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
                # The CSP nonce ({% csp_nonce_attr %}, used by the admin's templates).
                "django.template.context_processors.csp",
            ],
        },
    },
]


def _database(url: str) -> dict:
    try:
        config = dj_database_url.parse(url, conn_max_age=0)
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web server read while the dispatcher writes; IMMEDIATE
        # takes the write lock at BEGIN, so a claim's read-then-update is one
        # serialised step across processes instead of a deadlock-prone upgrade.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        # A file, not memory: tests start real qcluster and simulator
        # processes that must see the same test database.
        config["TEST"] = {"NAME": str(VAR_DIR / "test-flexdash.sqlite3")}
    return config


DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'flexdash.sqlite3'}")
DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- The web's statement timeout (jobs/web/statement_timeout.py) -------------
# On PostgreSQL each statement of a GET or HEAD request is cut off after this
# many milliseconds, answering 503 with the reason; 0 turns it off. Set per
# request, so the qcluster, migrations and commands never meet it; POSTs
# (uploads of a whole run) are not limited. Right after WhiteNoise: static
# files need no database, everything else runs under the limit.
FLEX_WEB_STATEMENT_TIMEOUT_MS = env_int("FLEX_WEB_STATEMENT_TIMEOUT_MS", 5000, minimum=0)
MIDDLEWARE.insert(
    MIDDLEWARE.index("whitenoise.middleware.WhiteNoiseMiddleware") + 1,
    "jobs.web.statement_timeout.StatementTimeoutMiddleware",
)


def _cache(url: str) -> dict:
    if not url:
        return {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    if importlib.util.find_spec("redis") is None:
        raise ImproperlyConfigured(
            "FLEX_CACHE_URL is a Redis URL, but the redis package is not installed "
            "(pip install redis)"
        )
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}


# django-q2's cluster statistics live in the cache, so every process that
# reads them (/healthz; django-q2's qinfo and qmonitor) must see the same one:
# a file cache on one machine by default, a shared Redis (FLEX_CACHE_URL) for
# several machines.
FLEX_CACHE_URL = env_url("FLEX_CACHE_URL", ("redis", "rediss", "unix"))
CACHES = {"default": _cache(FLEX_CACHE_URL)}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Log-in throttle (django-axes; the hooks are in jobs/web/signin.py) -----
# Both login forms (/accounts/login/ and /admin/login/) count failed log-ins
# per username and per address. At FLEX_LOGIN_FAILURE_LIMIT either is locked:
# every log-in with that username or from that address is refused, even with
# the right password, for up to FLEX_LOGIN_LOCKOUT_MINUTES (older failures stop
# counting), or until an operator unlocks it in the admin (Axes > Access
# attempts). A successful log-in forgets that username's failures. The lock is
# the slowing down: a few guesses per cool-off. Making each failure wait would
# instead hold a web worker per guess, handing a guesser the whole site.
FLEX_LOGIN_FAILURE_LIMIT = env_int("FLEX_LOGIN_FAILURE_LIMIT", 5, minimum=1)
FLEX_LOGIN_LOCKOUT_MINUTES = env_int("FLEX_LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
INSTALLED_APPS += ["axes"]
# Last, so the page it puts in place of a refused log-in passes through all the others.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
# The throttle first: a lock must stop the right password too.
AUTHENTICATION_BACKENDS = [
    "jobs.web.signin.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "jobs.web.signin.Attempts"
AXES_FAILURE_LIMIT = FLEX_LOGIN_FAILURE_LIMIT
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = timedelta(minutes=FLEX_LOGIN_LOCKOUT_MINUTES)
# Guesses during a lock are refused without being counted: if they restarted
# the clock, someone guessing every few minutes could lock a researcher out
# for good.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "jobs.web.signin.client_address"
AXES_LOCKOUT_CALLABLE = "jobs.web.signin.locked_out"
AXES_COOLOFF_MESSAGE = (
    "Too many failed log-ins for this username or from this address: locked for up to "
    f"{FLEX_LOGIN_LOCKOUT_MINUTES} minute{'' if FLEX_LOGIN_LOCKOUT_MINUTES == 1 else 's'}. "
    "An operator can unlock it sooner."
)
# Only failures are kept; axes' log of every successful log-in would only grow.
AXES_DISABLE_ACCESS_LOG = True
# jobs/admin/signin_admin.py registers the one table an operator needs.
AXES_ENABLE_ADMIN = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# With DEBUG off, WhiteNoise serves what collectstatic gathered, under hashed
# names with compressed copies; under DEBUG it serves static/ as it is, so
# tests and `make run` need no collectstatic. Fixed here from the environment
# because pytest-django turns DEBUG off while the tests run.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        # runserver's own request lines, as Django writes them.
        "server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    # On the handler, not a logger, so it sees every record that reaches it
    # (the SDK's, django-q2's, Django's): none writes the Gemini key.
    "filters": {
        "redact_api_key": {"()": "jobs.redaction.RedactApiKeyFilter"},
        "htmx_polls_to_debug": {"()": "jobs.web.server_log.HtmxPollsToDebugFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_api_key"],
        },
        "server": {
            "class": "logging.StreamHandler",
            "formatter": "server",
            "filters": ["redact_api_key"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Django's own console handler is replaced so lines are not printed twice.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # runserver's request log: what a person did; htmx polls only at DEBUG.
        "django.server": {
            "handlers": ["server"],
            "level": "INFO",
            "filters": ["htmx_polls_to_debug"],
            "propagate": False,
        },
        "jobs": {"level": env_str("FLEX_LOG_LEVEL", "INFO")},
        "django_q": {"level": "WARNING"},
    },
}

# --- Gemini -----------------------------------------------------------------
GEMINI_API_KEY = env_str("GEMINI_API_KEY")
GEMINI_BASE_URL = env_str("GEMINI_BASE_URL")  # empty: Google's own endpoint
GEMINI_API_VERSION = env_choice("GEMINI_API_VERSION", "v1beta", ("v1", "v1beta", "v1alpha"))
GEMINI_API = env_choice("GEMINI_API", "interactions", ("interactions", "generate_content"))

# --- The flex engine --------------------------------------------------------
FLEX_REQUEST_TIMEOUT = env_float("FLEX_REQUEST_TIMEOUT", 900.0, minimum=1.0)
FLEX_BACKOFF_BASE = env_float("FLEX_BACKOFF_BASE", 5.0, minimum=0.0)
FLEX_BACKOFF_CAP = env_float("FLEX_BACKOFF_CAP", 600.0, minimum=0.0)
if FLEX_BACKOFF_CAP < FLEX_BACKOFF_BASE:
    raise ImproperlyConfigured("FLEX_BACKOFF_CAP must not be smaller than FLEX_BACKOFF_BASE")
FLEX_MAX_ATTEMPTS = env_int("FLEX_MAX_ATTEMPTS", 8, minimum=1)
FLEX_MAX_IN_FLIGHT = env_int("FLEX_MAX_IN_FLIGHT", 5000, minimum=1)
FLEX_LEASE_SECONDS = env_int("FLEX_LEASE_SECONDS", 60, minimum=5)
# Launches per second per dispatcher: a burst of thousands freezes the event
# loop while every request is encoded (DESIGN.md); pacing keeps it responsive.
FLEX_LAUNCH_RATE = env_float("FLEX_LAUNCH_RATE", 50.0, minimum=1.0)
FLEX_DISPATCHERS = env_int("FLEX_DISPATCHERS", 1, minimum=1)
# Each model's quota, unless its row in the admin (Model limits) says otherwise;
# 0 = no limit. Flex counts against the project's normal limits.
FLEX_RPM_LIMIT = env_int("FLEX_RPM_LIMIT", 0, minimum=0)
FLEX_TPM_LIMIT = env_int("FLEX_TPM_LIMIT", 0, minimum=0)
FLEX_RPD_LIMIT = env_int("FLEX_RPD_LIMIT", 0, minimum=0)
FLEX_CLIENTS = env_int("FLEX_CLIENTS", 10, minimum=1)
# Budgets reserve a try's worst case before it is sent: for a request without
# max output tokens, the model's output cap (admin, Model prices), else this.
FLEX_BUDGET_DEFAULT_OUTPUT_TOKENS = env_int("FLEX_BUDGET_DEFAULT_OUTPUT_TOKENS", 65_536, minimum=1)
FLEX_MAX_PROMPT_CHARS = env_int("FLEX_MAX_PROMPT_CHARS", 1_000_000, minimum=1)
# Room for the longest prompt plus its system instruction, JSON-escaped (up to
# 6 bytes a character), and Gemini's 20 MB of inline media as base64, so the
# limit a person meets is ours, with our message.
# A form's own fields (a run upload's settings) never need the media's room.
FORM_FIELDS_MAX_BYTES = max(2_621_440, 12 * FLEX_MAX_PROMPT_CHARS + 65_536)
INLINE_MEDIA_BASE64_BYTES = 4 * math.ceil(20 * 1024 * 1024 / 3)
DATA_UPLOAD_MAX_MEMORY_SIZE = FORM_FIELDS_MAX_BYTES + INLINE_MEDIA_BASE64_BYTES
# Uploaded run files (jobs/runs/services.py): larger ones are refused whole, naming the limit.
FLEX_RUN_MAX_BYTES = env_int("FLEX_RUN_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
FLEX_RUN_MAX_LINES = env_int("FLEX_RUN_MAX_LINES", 100_000, minimum=1)
# An uploaded file above this size is spooled to a temporary file, not held in
# memory; runs are read from that stream line by line.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# --- Limits on uploads and their previews (jobs/runs/limits.py, uploads.py) ----
# A line of a run file may be as long as a single job's request body: room
# for a prompt and a system instruction at FLEX_MAX_PROMPT_CHARS, JSON-escaped
# (up to 6 bytes a character), and 20 MB of inline media as base64. A longer
# line is refused before it is decoded.
FLEX_RUN_MAX_LINE_BYTES = env_int(
    "FLEX_RUN_MAX_LINE_BYTES",
    12 * FLEX_MAX_PROMPT_CHARS + INLINE_MEDIA_BASE64_BYTES + 65_536,
    minimum=1024,
)
# Unconfirmed previews kept per user (each is the file and a JSON record of
# what the preview found); a new upload discards the oldest to make room, and
# every preview is removed a day after its upload. The bytes hold two previews
# of the largest file allowed, so they cannot be smaller than that file.
FLEX_PREVIEW_MAX_COUNT = env_int("FLEX_PREVIEW_MAX_COUNT", 5, minimum=1)
FLEX_PREVIEW_MAX_BYTES = env_int("FLEX_PREVIEW_MAX_BYTES", 2 * FLEX_RUN_MAX_BYTES, minimum=1)
if FLEX_PREVIEW_MAX_BYTES < FLEX_RUN_MAX_BYTES:
    raise ImproperlyConfigured("FLEX_PREVIEW_MAX_BYTES must not be smaller than FLEX_RUN_MAX_BYTES")
# The limit is kept while the body streams in: RunFileLimit comes first, so it
# sees each chunk before Django keeps it in memory or writes it to a temporary file.
FILE_UPLOAD_HANDLERS = [
    "jobs.runs.limits.RunFileLimit",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Notifications (README, "Notifications"; jobs/notices/) -------------------
# Links in e-mails and webhook events point here: the address people open FlexDash at.
FLEX_SITE_URL = env_url("FLEX_SITE_URL", ("http", "https")) or "http://localhost:8000"
# Webhooks go only to public addresses; on, private and loopback ones are allowed
# too (a receiver on the operator's own network, the tests' loopback receiver).
FLEX_WEBHOOK_ALLOW_PRIVATE = env_bool("FLEX_WEBHOOK_ALLOW_PRIVATE", False)
FLEX_WEBHOOK_TIMEOUT = env_float("FLEX_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# Tries per channel (e-mail, webhook) before a notice is given up, and the waits
# between them (exponential from the base, capped; half of each wait jittered).
FLEX_NOTICE_MAX_ATTEMPTS = env_int("FLEX_NOTICE_MAX_ATTEMPTS", 8, minimum=1)
FLEX_NOTICE_BACKOFF_BASE = env_float("FLEX_NOTICE_BACKOFF_BASE", 60.0, minimum=0.0)
FLEX_NOTICE_BACKOFF_CAP = env_float("FLEX_NOTICE_BACKOFF_CAP", 6 * 3600.0, minimum=0.0)
if FLEX_NOTICE_BACKOFF_CAP < FLEX_NOTICE_BACKOFF_BASE:
    raise ImproperlyConfigured(
        "FLEX_NOTICE_BACKOFF_CAP must not be smaller than FLEX_NOTICE_BACKOFF_BASE"
    )

# E-mail (Django's MAILERS): printed to the console by default; "smtp" uses
# EMAIL_HOST and the rest; a provider's name (mailgun, postmark, sendgrid,
# amazon_ses, resend, ...) sends through django-anymail, configured by ANYMAIL_*
# variables (ANYMAIL_MAILGUN_API_KEY=... becomes ANYMAIL["MAILGUN_API_KEY"]).
_email_backend = env_str("EMAIL_BACKEND", "console")
_mailer: dict = {"OPTIONS": {}}
if _email_backend == "console":
    _mailer["BACKEND"] = "django.core.mail.backends.console.EmailBackend"
elif _email_backend == "smtp":
    _mailer["BACKEND"] = "django.core.mail.backends.smtp.EmailBackend"
    _mailer["OPTIONS"] = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 0, minimum=0) or None,
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_str("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "use_ssl": env_bool("EMAIL_USE_SSL", False),
        "timeout": env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1),
    }
    if _mailer["OPTIONS"]["use_tls"] and _mailer["OPTIONS"]["use_ssl"]:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on")
elif importlib.util.find_spec(f"anymail.backends.{_email_backend}") is not None:
    _mailer["BACKEND"] = f"anymail.backends.{_email_backend}.EmailBackend"
    INSTALLED_APPS += ["anymail"]
    ANYMAIL = env_prefixed("ANYMAIL_")
else:
    raise ImproperlyConfigured(
        "EMAIL_BACKEND must be console, smtp or a django-anymail provider (mailgun, "
        f"postmark, sendgrid, amazon_ses, resend, ...); got {_email_backend!r}"
    )
MAILERS = {"default": _mailer}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "FlexDash <flexdash@localhost>")

# How long one dispatcher run keeps claiming new work before it hands its slot
# to a fresh run and only drains what it has in flight.
FLEX_DISPATCH_RUN_SECONDS = env_int("FLEX_DISPATCH_RUN_SECONDS", 900, minimum=10)
# With nothing in flight, a dispatcher stays this long for a retry about to come
# due; later work is started on time by the cluster's own watch (manage.py qcluster).
FLEX_DISPATCH_IDLE_SECONDS = env_float("FLEX_DISPATCH_IDLE_SECONDS", 30.0, minimum=0.0)

# --- django-q2 --------------------------------------------------------------
# The dispatcher task claims work for FLEX_DISPATCH_RUN_SECONDS, then drains
# requests that may each take FLEX_REQUEST_TIMEOUT: django-q2's `timeout` must
# never cut that off, and `retry` (redelivery of an unacknowledged task) must
# be longer still, as django-q2 requires. Our Job rows, leases and the
# every-minute Schedule are the record and the recovery, not django-q2's
# redelivery: a task is attempted once (max_attempts=1), failures are
# acknowledged, and a redelivered dispatcher would only find its slot taken.
_DISPATCH_TASK_SECONDS = int(FLEX_DISPATCH_RUN_SECONDS + FLEX_REQUEST_TIMEOUT + 300)
Q_CLUSTER = {
    "name": "flexdash",
    "orm": "default",
    "workers": env_int("FLEX_Q_WORKERS", 2, minimum=1),
    "recycle": 500,
    "timeout": _DISPATCH_TASK_SECONDS,
    "retry": _DISPATCH_TASK_SECONDS + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 250,
    "poll": 0.5,
    "label": "Django Q2 (cluster tasks)",
}

"""One env-driven settings module (see the README's configuration table)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_int, env_int_list, env_list, env_str
from config.paths import BASE_DIR, VAR_DIR, local_database_url, local_redis_url, local_secret_key


def database_from_url(url: str) -> dict:
    """Parse postgresql://user:pass@host:port/name?host=/socket/dir&port=N into Django's DATABASES entry."""
    parsed = urlparse(url)
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or (unquote(parsed.hostname) if parsed.hostname else "")
    port = query.pop("port", None) or (str(parsed.port) if parsed.port else "")
    # No JIT compilation: Postgres compiles a statement whose estimated cost passes jit_above_cost, and the
    # imports' batch statements (20,000 staged rows claimed and converted, estimated from temp tables without
    # statistics) pass it while running in ~100 ms: the compilation cost more than it saved (staged migration of
    # 1,000,000 rows 15.7 s -> 14.4 s without it, `make bench`). Nothing here runs long enough to gain from it.
    options: dict = {"options": "-c jit=off"}
    if "sslmode" in query:
        options["sslmode"] = query.pop("sslmode")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "airlock",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": port,
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 0, minimum=0),
        "OPTIONS": options,
        "TEST": {"NAME": env_str("AIRLOCK_TEST_DB", "") or None},
    }


DATABASE_URL = env_str("DATABASE_URL") or local_database_url()
REDIS_URL = env_str("REDIS_URL") or local_redis_url()

DEBUG = env_bool("DEBUG", False)
# No built-in key: a deployment that forgets SECRET_KEY must not run on a key anyone can read. `make run`,
# `make test` and `make bench` create a random one in var/secret-key (config/localstack.py) for local use.
SECRET_KEY = env_str("SECRET_KEY").strip() or local_secret_key()
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: set it to 50 or more random characters (for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), the same on every web and worker "
        "process. For local use, `make run` creates one in var/secret-key."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_rq",
    "simple_history",
    "import_export",
    "axes",
    "audit",
    "formats",
    "staging",
    "imports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (compressed, hashed names cached for a year) straight from gunicorn, before any
    # session or database work; unknown /static/ paths fall through to Django's 404.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "imports.api.views.TokenAuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "imports.guards.upload_limits.UploadGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "imports.web.context_processors.staging_banner",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media-not-served/"
# Uploads in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS...) by configuration alone: set
# AIRLOCK_S3_BUCKET (needs the `s3` extra: django-storages + boto3). Empty credentials use boto3's own
# chain (AWS_* variables, instance role); path-style addressing by default when an endpoint is given.
AIRLOCK_S3 = {
    "BUCKET": env_str("AIRLOCK_S3_BUCKET"),
    "ENDPOINT_URL": env_str("AIRLOCK_S3_ENDPOINT_URL"),
    # The bucket's address as browsers reach it (direct uploads), when it differs from the servers' one.
    "PUBLIC_ENDPOINT_URL": env_str("AIRLOCK_S3_PUBLIC_ENDPOINT_URL"),
    "REGION": env_str("AIRLOCK_S3_REGION", "us-east-1"),
    "ACCESS_KEY_ID": env_str("AIRLOCK_S3_ACCESS_KEY_ID"),
    "SECRET_ACCESS_KEY": env_str("AIRLOCK_S3_SECRET_ACCESS_KEY"),
    "ADDRESSING_STYLE": env_str("AIRLOCK_S3_ADDRESSING_STYLE")
    or ("path" if env_str("AIRLOCK_S3_ENDPOINT_URL") else "auto"),
    "PREFIX": env_str("AIRLOCK_S3_PREFIX"),
    "CONNECT_TIMEOUT": env_int("AIRLOCK_S3_CONNECT_TIMEOUT", 5, minimum=1),
    "READ_TIMEOUT": env_int("AIRLOCK_S3_READ_TIMEOUT", 60, minimum=1),
    "MAX_ATTEMPTS": env_int("AIRLOCK_S3_MAX_ATTEMPTS", 3, minimum=1),
}
if AIRLOCK_S3["ADDRESSING_STYLE"] not in ("path", "virtual", "auto"):
    raise ImproperlyConfigured(
        f"AIRLOCK_S3_ADDRESSING_STYLE must be path, virtual or auto, not {AIRLOCK_S3['ADDRESSING_STYLE']!r}."
    )
if AIRLOCK_S3["BUCKET"] and env_str("STORAGE_BACKEND"):
    raise ImproperlyConfigured(
        "Set AIRLOCK_S3_BUCKET or STORAGE_BACKEND, not both: both choose where uploads are stored."
    )
STORAGES = {
    # Uploaded CSVs, always under generated names: the S3 bucket when AIRLOCK_S3_BUCKET is set, else
    # MEDIA_ROOT on local disk, or any Django storage class named by STORAGE_BACKEND. On local disk every
    # upload is written durably (file and directories fsynced) before its row can commit (config/storage.py).
    "default": {
        "BACKEND": "imports.objectstore.S3UploadStorage"
        if AIRLOCK_S3["BUCKET"]
        else env_str("STORAGE_BACKEND", "config.storage.DurableFileSystemStorage")
    },
    # collectstatic writes hashed, compressed copies; WhiteNoise serves them (make run, the image, e2e tests).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Login throttling (django-axes) for every password login: /accounts/login/ and /admin/login/ both go
# through authenticate(), which AxesStandaloneBackend guards first. After AIRLOCK_LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one IP address, that pair is refused (429, even with the right
# password) for AIRLOCK_LOGIN_COOLOFF_MINUTES; a successful login resets the count. Locking the pair
# rather than the username alone keeps an attacker from locking a user out from elsewhere. Unlock early:
# `python manage.py axes_reset` (everyone) or `axes_reset_username USERNAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AIRLOCK_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AIRLOCK_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client address behind nginx / a load balancer (AIRLOCK_TRUSTED_PROXIES): without it every client
# would share the proxy's address, and anyone could lock a user out. Wrong API tokens are counted per
# address too (imports/guards/logins.py).
AXES_CLIENT_IP_CALLABLE = "imports.guards.logins.client_ip"

# Uploads: files bigger than this are streamed to a temp file by Django instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("AIRLOCK_MAX_FILES_PER_REQUEST", 500, minimum=1)

# Product settings
AIRLOCK = {
    "BATCH_SIZE": env_int("AIRLOCK_BATCH_SIZE", 1000, minimum=1),
    # Set-based migration (imports/pipeline/fastpath.py) and its rows per transaction.
    "FAST_PATH": env_bool("AIRLOCK_FAST_PATH", True),
    "FAST_BATCH_SIZE": env_int("AIRLOCK_FAST_BATCH_SIZE", 20_000, minimum=1),
    "DIRECT_IMPORT": env_bool("AIRLOCK_DIRECT_IMPORT", True),
    # Plain CSV lines of a direct import handed to Postgres's COPY parser in blocks (imports/reading/blocks.py).
    "CSV_BLOCKS": env_bool("AIRLOCK_CSV_BLOCKS", True),
    # Reconciliation (imports/services/reconciliation.py): a close candidate is linked automatically from this score.
    "RECONCILE_AUTO_SCORE": env_float("AIRLOCK_RECONCILE_AUTO_SCORE", 0.92, minimum=0.5, maximum=1.0),
    # Database sessions one big file may use at once (chunks prepared in parallel, committed in order).
    "FILE_SESSIONS": env_int("AIRLOCK_FILE_SESSIONS", 2, minimum=1),
    # A file job for an upload up to this size runs inside the worker process (config/worker.py): no fork and no
    # new database connection per small file. Bigger files, and every other job, get a work horse. 0 = never.
    "INLINE_JOB_BYTES": env_int("AIRLOCK_INLINE_JOB_BYTES", 1024 * 1024, minimum=0),
    # The small files of one upload (INLINE_JOB_BYTES in all) share a job, this many at most (imports/jobs/enqueue.py).
    # 1 = a job per file.
    "FILE_JOB_GROUP": env_int("AIRLOCK_FILE_JOB_GROUP", 8, minimum=1),
    # Database sessions a group of small files may use at once (imports/jobs/tasks.py: a file per session). 1 = the
    # files one after the other.
    "GROUP_SESSIONS": env_int("AIRLOCK_GROUP_SESSIONS", 2, minimum=1),
    "MAX_FILE_BYTES": env_int("AIRLOCK_MAX_FILE_BYTES", 100 * 1024 * 1024, minimum=1),
    # Where workers copy an upload from the bucket to read it (a bounded temporary file); empty = the system's.
    "WORK_DIR": env_str("AIRLOCK_WORK_DIR"),
    # Browser uploads straight to the bucket (presigned POST policies) when uploads are stored in S3, valid
    # for this many seconds.
    "DIRECT_UPLOADS": env_bool("AIRLOCK_DIRECT_UPLOADS", True) and bool(AIRLOCK_S3["BUCKET"]),
    "DIRECT_UPLOAD_EXPIRES": env_int("AIRLOCK_DIRECT_UPLOAD_EXPIRES", 3600, minimum=1),
    "MAX_FILES_PER_REQUEST": env_int("AIRLOCK_MAX_FILES_PER_REQUEST", 500, minimum=1),
    "MAX_REQUEST_BYTES": env_int("AIRLOCK_MAX_REQUEST_BYTES", 2 * 1024**3, minimum=1),
    "MAX_COLUMNS": env_int("AIRLOCK_MAX_COLUMNS", 500, minimum=1),
    "MAX_FIELD_CHARS": env_int("AIRLOCK_MAX_FIELD_CHARS", 10_000, minimum=1),
    # Workbooks (imports/sheets): what an .xlsx/.ods archive may unpack to (in total, and per big member
    # relative to its packed size: zip bombs), how many sheets are read, and the size of an .xls (read whole).
    "MAX_UNPACKED_BYTES": env_int("AIRLOCK_MAX_UNPACKED_BYTES", 2 * 1024**3, minimum=1),
    "MAX_COMPRESSION_RATIO": env_int("AIRLOCK_MAX_COMPRESSION_RATIO", 200, minimum=1),
    "MAX_SHEETS": env_int("AIRLOCK_MAX_SHEETS", 200, minimum=1),
    "MAX_XLS_BYTES": env_int("AIRLOCK_MAX_XLS_BYTES", 32 * 1024**2, minimum=1),
    "SAMPLE_ROWS": env_int("AIRLOCK_SAMPLE_ROWS", 20, minimum=1),
    # Rows the mapping suggestion reads (a statement's first trade can come after many deposits); the
    # format keeps SAMPLE_ROWS of them to show.
    "SUGGEST_ROWS": env_int("AIRLOCK_SUGGEST_ROWS", 200, minimum=1),
    # A file whose worker died (killed, OOM) is resumed by the next worker up to this many starts, then FAILED.
    "MAX_FILE_ATTEMPTS": env_int("AIRLOCK_MAX_FILE_ATTEMPTS", 5, minimum=1),
    "ALLOW_SELF_APPROVAL": env_bool("AIRLOCK_ALLOW_SELF_APPROVAL", False),
    "RETENTION_DAYS": env_int("AIRLOCK_RETENTION_DAYS", 30, minimum=1),
    "DEMO_ADMIN_USERNAME": env_str("AIRLOCK_DEMO_ADMIN", "admin"),
    # Faults: transient failures (database/Redis connection lost) retry after these delays (s), then FAIL;
    # the reconciler runs every RECONCILE_SECONDS and leaves work younger than RECONCILE_GRACE_SECONDS alone.
    "JOB_RETRY_INTERVALS": env_int_list("AIRLOCK_JOB_RETRY_INTERVALS", "10,60,300", minimum=1),
    "RECONCILE_SECONDS": env_int("AIRLOCK_RECONCILE_SECONDS", 60, minimum=1),
    "RECONCILE_GRACE_SECONDS": env_int("AIRLOCK_RECONCILE_GRACE_SECONDS", 60, minimum=0),
    # Absolute base URL for links in notification emails.
    "SITE_URL": env_str("AIRLOCK_SITE_URL", "http://127.0.0.1:8000"),
    # Per-user hourly limits (imports/guards/rate_limits.py; counters in Redis). A bulk request counts once.
    "UPLOADS_PER_HOUR": env_int("AIRLOCK_UPLOADS_PER_HOUR", 10, minimum=1),
    "REVIEWS_PER_HOUR": env_int("AIRLOCK_REVIEWS_PER_HOUR", 60, minimum=1),
    # New (pending) formats one user's uploads may create in 24 hours (formats/services.py); a file with yet
    # another new header fails with a message and creates nothing, so junk cannot flood the review queue.
    "MAX_PENDING_FORMATS_PER_DAY": env_int("AIRLOCK_MAX_PENDING_FORMATS_PER_DAY", 20, minimum=1),
    # GET /metrics answers only with this bearer token; unset, /metrics is off (404). See "Monitoring".
    "METRICS_TOKEN": env_str("AIRLOCK_METRICS_TOKEN").strip(),
    # Proxies in front of the web process that append to X-Forwarded-For (compose: nginx = 1); 0 = none,
    # the client is REMOTE_ADDR. Only the addresses these proxies wrote are believed (login throttling).
    "TRUSTED_PROXIES": env_int("AIRLOCK_TRUSTED_PROXIES", 0, minimum=0),
}
# Alert rules (imports/monitoring/alerts.py), evaluated by the cron scheduler (manage.py airlock_cron); see the
# README's "Monitoring". Messages go to active staff with the approve permission, linking to SITE_URL/admin/ops/.
AIRLOCK_ALERTS = {
    "EVALUATE_SECONDS": env_int("AIRLOCK_ALERT_EVALUATE_SECONDS", 60, minimum=1),
    "ERROR_RATE": env_float("AIRLOCK_ALERT_ERROR_RATE", 0.05, minimum=0),
    "ERROR_WINDOW_MINUTES": env_int("AIRLOCK_ALERT_ERROR_WINDOW_MINUTES", 60, minimum=1),
    "BACKLOG_ROWS": env_int("AIRLOCK_ALERT_BACKLOG_ROWS", 10_000, minimum=0),
    "PENDING_FORMAT_HOURS": env_float("AIRLOCK_ALERT_PENDING_FORMAT_HOURS", 24, minimum=0),
    "MIGRATION_FAILURE_WINDOW_MINUTES": env_int("AIRLOCK_ALERT_MIGRATION_FAILURE_WINDOW_MINUTES", 60, minimum=1),
    "QUEUE_LENGTH": env_int("AIRLOCK_ALERT_QUEUE_LENGTH", 100, minimum=0),
    "QUEUE_MINUTES": env_float("AIRLOCK_ALERT_QUEUE_MINUTES", 5, minimum=0),
    # While an alert keeps firing, tell again this often (0: once when it fires, once when it resolves).
    "REPEAT_MINUTES": env_int("AIRLOCK_ALERT_REPEAT_MINUTES", 0, minimum=0),
    # Also POST each message as JSON ({"text": ...}, the shape Slack's incoming webhooks take) to this URL.
    "WEBHOOK_URL": env_str("AIRLOCK_ALERT_WEBHOOK_URL"),
    "WEBHOOK_TIMEOUT": env_float("AIRLOCK_ALERT_WEBHOOK_TIMEOUT", 10, minimum=1),
}
CRON_SECRET = env_str("CRON_SECRET")
# Virus scanning of every upload (imports/guards/scanning.py): clamd's unix socket path or host:port; empty = off.
CLAMAV_URL = env_str("CLAMAV_URL")
CLAMAV_TIMEOUT = env_float("CLAMAV_TIMEOUT", 60.0, minimum=0.1)
# The first handler counts bytes and aborts an upload past the limits before more is read or stored.
FILE_UPLOAD_HANDLERS = [
    "imports.guards.upload_limits.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Queues: the worker listens in this order, so interactive uploads are not stuck behind bulk loads.
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("AIRLOCK_JOB_TIMEOUT", 3600, minimum=1)}
    for name in ("high", "default", "bulk")
}
RQ_SHOW_ADMIN_LINK = True
RQ = {"WORKER_CLASS": "config.worker.AirlockWorker"}

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "airlock@localhost")

# Security: strict in production (DEBUG off), relaxed for local http development.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# On whenever DEBUG is off: production is safe by default. `make run` (plain http on 127.0.0.1), the test
# suite and a local plain-http trial of docker-compose set AIRLOCK_SECURE=0 explicitly.
if env_bool("AIRLOCK_SECURE", not DEBUG):
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load-balancer and container probes speak plain http to the web process.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "info", LOG_LEVELS).upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

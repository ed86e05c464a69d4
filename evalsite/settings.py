"""Settings. Every value comes from an environment variable with an embedded default; the README's
configuration table documents each one. The defaults need no external service: a SQLite file, a
filesystem message broker and media under ./var."""

import importlib.util
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("EVALSITE_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def install_secret_key(path: Path) -> str:
    """This install's secret key, kept in `path` (mode 0600): made at random by the first process that
    starts, then read by every later one (web workers, Celery workers, commands). The file appears whole
    or not at all (written aside, then hard-linked into place), so concurrent starts agree on one key."""
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    import secrets
    import tempfile

    fd, draft = tempfile.mkstemp(prefix=".secret_key-", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        os.unlink(draft)
    return path.read_text(encoding="ascii").strip()


# EVALSITE_SECRET_KEY overrides; otherwise each install signs cookies with its own key under the data folder.
SECRET_KEY = os.environ.get("EVALSITE_SECRET_KEY") or install_secret_key(DATA_DIR / "secret_key")
DEBUG = env_bool("EVALSITE_DEBUG", False)
ALLOWED_HOSTS = env_list("EVALSITE_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("EVALSITE_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as the site's own static files (no CDN)
    "axes",
    "evalsite",
    "generation",
    "annotation",
    "preference",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "evalsite.query.RequestSizeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "evalsite.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "evalsite.query.QueryErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the lockout page
]

ROOT_URLCONF = "evalsite.urls"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

WSGI_APPLICATION = "evalsite.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'evalsite.sqlite3'}"),
        conn_max_age=int(os.environ.get("EVALSITE_DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that Celery workers started by the tests see the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("EVALSITE_TEST_SQLITE", str(DATA_DIR / "test.sqlite3"))
    }
    # The web server and the worker write to one SQLite file: wait for each other's locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "EVALSITE_DB_SERVER_SIDE_BINDING", True
):
    # Parameters bound by the server, and psycopg prepares a statement once the connection has run it
    # a few times (the annotator's requests are a few dozen statements, over and over): PostgreSQL then
    # skips parsing and planning them. Not behind a transaction-mode connection pooler (pgbouncer),
    # whose connections do not keep prepared statements: EVALSITE_DB_SERVER_SIDE_BINDING=0 there.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 5}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes, evalsite/login_throttle.py): after this many failed logins for one
# username from one address, that pair is locked out for the cool-off time (429, the lockout page).
AUTHENTICATION_BACKENDS = [
    "evalsite.login_throttle.WebLoginThrottleBackend",
    "evalsite.middleware.UserSettingsBackend",
    "django.contrib.auth.backends.ModelBackend",  # sessions signed in before the backend above existed
]
AXES_FAILURE_LIMIT = int(os.environ.get("EVALSITE_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("EVALSITE_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "evalsite.login_throttle.lockout_response"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
TIME_ZONE = os.environ.get("EVALSITE_TIME_ZONE", "UTC")
USE_I18N = True
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("EVALSITE_STATIC_ROOT", DATA_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start without it
# plotly.js for the result plots, served from the plotly package's own copy (no CDN): templates load
# {% static 'vendor/plotly/plotly.min.js' %}.
_plotly_spec = importlib.util.find_spec("plotly")
STATICFILES_DIRS = (
    [("vendor/plotly", str(Path(next(iter(_plotly_spec.submodule_search_locations))) / "package_data"))]
    if _plotly_spec and _plotly_spec.submodule_search_locations
    else []
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Media is never served as plain static files: generation.views._media checks who asks.
MEDIA_ROOT = Path(os.environ.get("EVALSITE_MEDIA_ROOT", DATA_DIR / "media")).resolve()
MEDIA_URL = "/media/"
# Who sends a media file's bytes once the site has checked who asks: "" (the site streams them, with byte
# ranges), "x-accel-redirect" (nginx serves EVALSITE_MEDIA_OFFLOAD_PREFIX + the path under MEDIA_ROOT from
# an `internal` location) or "x-sendfile" (Apache mod_xsendfile, lighttpd: the file's absolute path).
EVALSITE_MEDIA_OFFLOAD = os.environ.get("EVALSITE_MEDIA_OFFLOAD", "").strip().lower()
if EVALSITE_MEDIA_OFFLOAD not in {"", "x-accel-redirect", "x-sendfile"}:
    raise ImproperlyConfigured(
        f"EVALSITE_MEDIA_OFFLOAD must be empty, x-accel-redirect or x-sendfile, not {EVALSITE_MEDIA_OFFLOAD!r}"
    )
EVALSITE_MEDIA_OFFLOAD_PREFIX = "/" + os.environ.get(
    "EVALSITE_MEDIA_OFFLOAD_PREFIX", "/internal-media/"
).strip("/")
# Signed media links (evalsite.http.MediaLinks): with a secret, the annotator API adds an expiry and a
# signature to the media URLs it gives, bound to the caller's session cookie, which nginx's secure_link
# module checks to send the file without asking the site (a link that fails the check goes to the site).
# The same secret goes into nginx's secure_link_md5; empty: off.
EVALSITE_MEDIA_LINK_SECRET = os.environ.get("EVALSITE_MEDIA_LINK_SECRET", "")
if EVALSITE_MEDIA_LINK_SECRET and not re.fullmatch(r"[A-Za-z0-9_-]{32,}", EVALSITE_MEDIA_LINK_SECRET):
    raise ImproperlyConfigured(
        "EVALSITE_MEDIA_LINK_SECRET must be at least 32 letters, digits, '-' or '_' (it is written into "
        "nginx's configuration): e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )
EVALSITE_MEDIA_LINK_TTL_S = int(os.environ.get("EVALSITE_MEDIA_LINK_TTL_S", "3600"))
if EVALSITE_MEDIA_LINK_TTL_S < 60:
    raise ImproperlyConfigured("EVALSITE_MEDIA_LINK_TTL_S must be at least 60 seconds")
# Largest video file accepted by upload or import.
EVALSITE_MAX_VIDEO_BYTES = int(float(os.environ.get("EVALSITE_MAX_UPLOAD_MB", "2048")) * 1024 * 1024)
# What an uploaded or imported zip may expand to: total size, number of files, compression ratio.
EVALSITE_ARCHIVE_MAX_BYTES = int(float(os.environ.get("EVALSITE_ARCHIVE_MAX_MB", "20480")) * 1024 * 1024)
EVALSITE_ARCHIVE_MAX_MEMBERS = int(os.environ.get("EVALSITE_ARCHIVE_MAX_MEMBERS", "10000"))
EVALSITE_ARCHIVE_MAX_RATIO = float(os.environ.get("EVALSITE_ARCHIVE_MAX_RATIO", "50"))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
# Folders from which managers may import videos by path (comma-separated); uploads need no entry here.
EVALSITE_IMPORT_ROOTS = [
    Path(p).resolve() for p in env_list("EVALSITE_IMPORT_ROOTS", str(DATA_DIR / "imports"))
]
# Where `load_benchmark` and the setup command look for the upstream prompt files.
EVALSITE_BENCHMARKS_DIR = Path(
    os.environ.get("EVALSITE_BENCHMARKS_DIR", BASE_DIR.parent / "shared" / "benchmarks")
).resolve()

# Automatic video metrics (metrics app). "auto" runs them on CUDA when the worker has it, else on the CPU.
EVALSITE_METRICS_DEVICE = os.environ.get("EVALSITE_METRICS_DEVICE", "auto")
# Generation on gpu workers: device ("auto": CUDA when present), dtype ("auto": bfloat16 on CUDA, float32
# on the CPU), and extra backends as "name=module:Class,..." (a site's own model code).
EVALSITE_GENERATION_DEVICE = os.environ.get("EVALSITE_GENERATION_DEVICE", "auto")
EVALSITE_GENERATION_DTYPE = os.environ.get("EVALSITE_GENERATION_DTYPE", "auto")
EVALSITE_GENERATION_BACKENDS = env_list("EVALSITE_GENERATION_BACKENDS", "")
# The Kinetics-400 I3D of FVD (i3d_torchscript.pt, or a state dict of metrics.video.i3d.I3D); rFVD is
# reported as unavailable while no file is there.
EVALSITE_I3D_PATH = os.environ.get("EVALSITE_I3D_PATH", str(DATA_DIR / "weights" / "i3d_torchscript.pt"))
# CLIP score: an open_clip model name (or local-dir:/folder) and pretrained tag, with local weights and, for
# the multilingual XLM-RoBERTa text tower, a local tokenizer/config folder. Nothing is fetched from a hub:
# without a weights file the CLIP score is reported as unavailable.
EVALSITE_CLIP_MODEL = os.environ.get("EVALSITE_CLIP_MODEL", "xlm-roberta-base-ViT-B-32")
EVALSITE_CLIP_PRETRAINED = os.environ.get("EVALSITE_CLIP_PRETRAINED", "laion5b_s13b_b90k")
EVALSITE_CLIP_CHECKPOINT = os.environ.get(
    "EVALSITE_CLIP_CHECKPOINT", str(DATA_DIR / "weights" / "clip" / "open_clip_pytorch_model.bin")
)
EVALSITE_CLIP_TEXT_DIR = os.environ.get(
    "EVALSITE_CLIP_TEXT_DIR", str(DATA_DIR / "weights" / "xlm-roberta-base")
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "evalsite.login_throttle.ThrottledBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["evalsite.permissions.IsManager"],
    "DEFAULT_PAGINATION_CLASS": "evalsite.query.LimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": [
        "evalsite.query.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "evalsite.query.exception_handler",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "T2V evaluation platform API",
    "DESCRIPTION": "Benchmarks, prompts, video models, the video library and jobs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its Swagger UI page (/api/docs/) are for managers, like the API; Swagger UI's files come from drf-spectacular-sidecar, and its start-up script is a
    # separate file (SpectacularSwaggerSplitView) so that the page keeps to the CSP below.
    "SERVE_PERMISSIONS": ["evalsite.permissions.IsManager"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# Content-Security-Policy on every response (django-csp): only the site's own scripts, no inline or
# third-party script, nothing loaded from another origin, no framing. Styles allow inline because
# plotly.js and Swagger UI set style attributes and add <style> elements as they draw; images allow
# data: URLs for the icons both of them inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Celery. The embedded default broker is a folder on disk, so a local worker needs no Redis;
# production points CELERY_BROKER_URL at Redis (redis://host:6379/0).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Seconds before a message taken by a worker that died without acknowledging it is delivered again.
    # A running job's message stays unacknowledged; a worker that dies loses it only for this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("EVALSITE_TASK_VISIBILITY_TIMEOUT", "3600")),
        "unacked_restore_interval": int(os.environ.get("EVALSITE_TASK_RESTORE_INTERVAL", "10")),
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("EVALSITE_JOBS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = False
# A running job whose worker has not reported for this long is shown as stalled.
EVALSITE_JOB_STALL_SECONDS = int(os.environ.get("EVALSITE_JOB_STALL_SECONDS", "120"))
# Every worker looks this often for stalled jobs and queues each again (0: never); after this many starts a
# job that keeps stalling is failed instead.
EVALSITE_JOB_SWEEP_SECONDS = float(os.environ.get("EVALSITE_JOB_SWEEP_SECONDS", "30"))
EVALSITE_JOB_MAX_ATTEMPTS = int(os.environ.get("EVALSITE_JOB_MAX_ATTEMPTS", "3"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("EVALSITE_LOG_LEVEL", "INFO")},
}

"""Settings of the pgbulk sample project; the database comes from DATABASE_URL."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pgbulk.conf import DEFAULTS as PGBULK_DEFAULTS
from pgbulk.conf import RENAMED as PGBULK_RENAMED

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "pgbulk-sample-project-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")


def database_from_url(url: str) -> dict:
    """A DATABASES entry from a postgres:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a postgres:// URL, not {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "pgbulk",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "postgres:///pgbulk"))}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "pgtrigger",
    "procrastinate.contrib.django",
    "pgbulk",
    "testproject.library",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "testproject.urls"
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
            ]
        },
    }
]
WSGI_APPLICATION = "testproject.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT", str(BASE_DIR.parent / "artifacts" / "static"))
# The sample project can serve collected static files itself (docker/); a real
# deployment puts them behind a web server or CDN.
SERVE_STATIC = os.environ.get("DJANGO_SERVE_STATIC", "0") == "1"
LOGIN_URL = "/admin/login/"

# Every PGBULK knob can be set from the environment as PGBULK_<NAME> (old names too),
# as text: pgbulk reads it as the setting's type, or says what is wrong (check E005).
PGBULK = {
    name: os.environ[f"PGBULK_{name}"]
    for name in [*PGBULK_DEFAULTS, *PGBULK_RENAMED]
    if f"PGBULK_{name}" in os.environ
}
PGBULK.setdefault("ASYNC_ENABLED", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "pgbulk": {"handlers": ["console"], "level": os.environ.get("PGBULK_LOG_LEVEL", "INFO")},
        "procrastinate": {"handlers": ["console"], "level": "WARNING"},
    },
}

# Worker heartbeat (seconds); tests shorten it to detect dead workers quickly.
PROCRASTINATE_WORKER_DEFAULTS = {
    "update_heartbeat_interval": float(os.environ.get("PGBULK_HEARTBEAT_INTERVAL", "10")),
}

"""Django system checks (tag ``pgbulk``) and the async set-up probe."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connection

from pgbulk.conf import DEFAULTS, pgbulk_settings


@checks.register("pgbulk")
def check_configuration(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if connection.vendor != "postgresql":
        problems.append(checks.Error(
            "pgbulk needs PostgreSQL.", hint="Point DATABASES['default'] at PostgreSQL.",
            id="pgbulk.E001"))
    unknown = sorted(set(getattr(settings, "PGBULK", {}) or {}) - set(DEFAULTS))
    if unknown:
        problems.append(checks.Error(
            f"Unknown PGBULK setting(s): {', '.join(unknown)}.",
            hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.", id="pgbulk.E002"))
    if pgbulk_settings.ASYNC_ENABLED and not apps.is_installed("procrastinate.contrib.django"):
        problems.append(checks.Error(
            "PGBULK['ASYNC_ENABLED'] is True but Procrastinate is not installed.",
            hint="Add 'procrastinate.contrib.django' to INSTALLED_APPS.", id="pgbulk.E003"))
    return problems


def async_system_problems() -> list[str]:
    """What keeps async jobs from running right now (empty when all is well)."""
    if connection.vendor != "postgresql":
        return ["The database is not PostgreSQL."]
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT to_regclass('pgbulk_job'), to_regclass('procrastinate_jobs'), "
                "to_regproc('pgbulk_sweep')"
            )
            pgbulk_table, procrastinate_table, sweep_function = cursor.fetchone()
            if pgbulk_table is None or sweep_function is None:
                problems.append("pgbulk's migrations are not applied (run manage.py migrate).")
            if procrastinate_table is None:
                problems.append("Procrastinate's schema is missing (run manage.py migrate).")
            else:
                cursor.execute(
                    "SELECT count(*) FROM procrastinate_workers "
                    "WHERE last_heartbeat > now() - interval '1 minute'"
                )
                if cursor.fetchone()[0] == 0:
                    problems.append(
                        "No live Procrastinate worker: start "
                        f"'manage.py procrastinate worker --queues {pgbulk_settings.QUEUE}'."
                    )
    except DatabaseError as error:
        problems.append(f"The database cannot be reached: {error}")
    return problems


@checks.register("pgbulk")
def check_urls(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("pgbulk:job-list")
    except NoReverseMatch:
        return [checks.Warning(
            "pgbulk's URLs are not included: progress polling and the dashboard will 404.",
            hint='Add path("pgbulk/", include("pgbulk.urls")) to the project urlpatterns.',
            id="pgbulk.W001")]
    return []

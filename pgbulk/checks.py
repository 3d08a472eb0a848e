"""Django system checks (tag ``pgbulk``) and the async set-up probe."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connection, connections

from pgbulk.conf import DEFAULTS, pgbulk_settings
from pgbulk.sqlfiles import query


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
                cursor.execute(query("live_workers"))
                if cursor.fetchone()[0] == 0:
                    problems.append(
                        "No live Procrastinate worker: start "
                        f"'manage.py procrastinate worker --queues {pgbulk_settings.QUEUE}'."
                    )
        if pooled_connection():
            problems.append(
                "The connection goes through a transaction-pooling proxy (e.g. PgBouncer in "
                "transaction mode): session advisory locks do not stay with the session, so "
                "job liveness cannot work. Connect workers directly or in session mode.")
    except DatabaseError as error:
        problems.append(f"The database cannot be reached: {error}")
    return problems


def pooled_connection(first=None, second=None) -> bool:
    """Do two connections share a server session, or does one change sessions between
    statements? Both happen behind a transaction-pooling proxy, never on PostgreSQL."""
    from pgbulk.runtime import side_alias

    first = first or connection
    second = second or connections[side_alias(connection.alias)]
    before, other, after = (backend_pid(db) for db in (first, second, first))
    return before == other or before != after


def backend_pid(db) -> int:
    with db.cursor() as cursor:
        cursor.execute(query("backend_pid"))
        return cursor.fetchone()[0]


def lockable(model) -> bool:
    return not getattr(model._meta, "is_composite_pk", False)


@checks.register("pgbulk")
def check_bulk_models(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Bulk views and admins on models whose records pgbulk cannot reserve."""
    from pgbulk.admin import BulkEditAdminMixin

    problems: list[checks.CheckMessage] = []
    for model, owner in bulk_views(BulkEditAdminMixin):
        if model is not None and not lockable(model):
            problems.append(checks.Error(
                f"{owner} offers bulk edits of {model._meta.label}, which has a composite "
                "primary key: pgbulk reserves records by a single key and refuses it.",
                hint="Remove the bulk edit from it, or give the model a single primary key.",
                obj=owner, id="pgbulk.E004"))
    return problems


def bulk_views(admin_mixin) -> list[tuple[Any, Any]]:
    """(model, view or ModelAdmin) of every BulkEditMixin URL and BulkEditAdminMixin admin."""
    from django.contrib import admin
    from django.urls import get_resolver

    from pgbulk.views import BulkEditMixin

    found: list[tuple[Any, Any]] = [
        (model, model_admin) for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, admin_mixin)]
    for callback in url_callbacks(get_resolver().url_patterns):
        view = getattr(callback, "view_class", None)
        if isinstance(view, type) and issubclass(view, BulkEditMixin):
            queryset = getattr(view, "queryset", None)
            found.append((getattr(view, "model", None) or getattr(queryset, "model", None), view))
    return found


def url_callbacks(patterns) -> list[Any]:
    callbacks = []
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            callbacks.extend(url_callbacks(pattern.url_patterns))
        elif hasattr(pattern, "callback"):
            callbacks.append(pattern.callback)
    return callbacks


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

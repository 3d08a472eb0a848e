"""Django system checks (tag ``pgbulk``) and the async set-up probe."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, connections
from django.utils.translation import gettext as _

from pgbulk.conf import (
    DEFAULTS,
    HEARTBEAT_TIMEOUT,
    RENAMED,
    Settings,
    convert,
    pgbulk_settings,
)
from pgbulk.sqlfiles import query
from pgbulk.sweep import schedule_interval


@checks.register("pgbulk")
def check_configuration(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if connection.vendor != "postgresql":
        problems.append(checks.Error(
            _("pgbulk needs PostgreSQL."), hint=_("Point DATABASES['default'] at PostgreSQL."),
            id="pgbulk.E001"))
    problems += setting_problems() + isolation_problems()
    if any(p.id == "pgbulk.E005" for p in problems):
        return problems  # the checks below read settings that cannot be read
    if pgbulk_settings.ASYNC_ENABLED and not apps.is_installed("procrastinate.contrib.django"):
        problems.append(checks.Error(
            _("PGBULK['ASYNC_ENABLED'] is True but Procrastinate is not installed."),
            hint=_("Add 'procrastinate.contrib.django' to INSTALLED_APPS."), id="pgbulk.E003"))
    interval = pgbulk_settings.CLEANUP_SCHEDULE_INTERVAL
    if schedule_interval(interval) != interval:
        problems.append(checks.Warning(
            _("PGBULK['CLEANUP_SCHEDULE_INTERVAL'] is %(asked)s s, which no cron schedule "
              "repeats evenly: the periodic sweep runs every %(runs)s s.") % {
                "asked": f"{interval:g}", "runs": schedule_interval(interval)},
            hint=_("Pick a divisor of a minute, of an hour or of a day (e.g. 30, 60, 300, "
                   "3600)."), id="pgbulk.W003"))
    return problems


def isolation_problems() -> list[checks.CheckMessage]:
    """Databases configured above READ COMMITTED (E006): reservations need it."""
    problems: list[checks.CheckMessage] = []
    for alias, database in django_settings.DATABASES.items():
        level = (database.get("OPTIONS") or {}).get("isolation_level")
        if level is not None and str(getattr(level, "name", level)).upper().replace(
                " ", "_") not in ("1", "READ_COMMITTED"):
            problems.append(checks.Error(
                _("DATABASES['%(alias)s'] runs transactions at isolation level %(level)s: pgbulk "
                  "reserves records in READ COMMITTED transactions.") % {
                    "alias": alias, "level": getattr(level, "name", level)},
                hint=_("Remove OPTIONS['isolation_level'], or set it to READ COMMITTED."),
                id="pgbulk.E006"))
    return problems


def setting_problems() -> list[checks.CheckMessage]:
    """Unknown keys (E002), values that are not of their setting's type (E005), old
    names (W002)."""
    user = Settings.user_settings()
    problems: list[checks.CheckMessage] = []
    unknown = sorted(set(user) - set(DEFAULTS) - set(RENAMED))
    if unknown:
        problems.append(checks.Error(
            _("Unknown PGBULK setting(s): %(names)s.") % {"names": ", ".join(unknown)},
            hint=_("Known settings: %(names)s.") % {"names": ", ".join(sorted(DEFAULTS))},
            id="pgbulk.E002"))
    for old, new in RENAMED.items():
        names = {"old": old, "new": new}
        if old in user and new in user:
            problems.append(checks.Warning(
                _("PGBULK['%(old)s'] is deprecated, and ignored: '%(new)s' is set.") % names,
                hint=_("Remove '%(old)s'.") % names, id="pgbulk.W002"))
        elif old in user:
            problems.append(checks.Warning(
                _("PGBULK['%(old)s'] is deprecated.") % names,
                hint=_("Rename it to '%(new)s'.") % names, id="pgbulk.W002"))
    for key in sorted(user):
        name = RENAMED.get(key, key)
        try:
            if name in DEFAULTS:
                convert(name, user[key], key=key)
        except ImproperlyConfigured as error:
            problems.append(checks.Error(str(error), id="pgbulk.E005"))
    return problems


def async_system_problems() -> list[str]:
    """What keeps async jobs from running right now (empty when all is well)."""
    if connection.vendor != "postgresql":
        return [_("The database is not PostgreSQL.")]
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute(query("schema_present"))
            pgbulk_table, sweep_function, procrastinate_table = cursor.fetchone()
            if pgbulk_table is None or sweep_function is None:
                problems.append(_("pgbulk's migrations are not applied (run manage.py "
                                  "migrate)."))
            if procrastinate_table is None:
                problems.append(_("Procrastinate's schema is missing (run manage.py migrate)."))
            else:
                cursor.execute(query("live_workers"), {"heartbeat_timeout": HEARTBEAT_TIMEOUT})
                if cursor.fetchone()[0] == 0:
                    problems.append(_(
                        "No live Procrastinate worker: start 'manage.py procrastinate worker "
                        "--queues %(queue)s'.") % {"queue": pgbulk_settings.QUEUE})
        if pooled_connection():
            problems.append(_(
                "The connection goes through a transaction-pooling proxy (e.g. PgBouncer in "
                "transaction mode): session advisory locks do not stay with the session, so "
                "job liveness cannot work. Connect workers directly or in session mode."))
    except DatabaseError as error:
        problems.append(_("The database cannot be reached: %(error)s") % {"error": error})
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
                _("%(owner)s offers bulk edits of %(model)s, which has a composite primary "
                  "key: pgbulk reserves records by a single key and refuses it.") % {
                    "owner": owner, "model": model._meta.label},
                hint=_("Remove the bulk edit from it, or give the model a single primary "
                       "key."), obj=owner, id="pgbulk.E004"))
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
            _("pgbulk's URLs are not included: progress polling and the dashboard will 404."),
            hint=_('Add path("pgbulk/", include("pgbulk.urls")) to the project urlpatterns.'),
            id="pgbulk.W001")]
    return []

"""System checks and AsyncManager.validate_async_system()."""

from __future__ import annotations

import pytest
from django.core import checks
from django.db import connection
from django.test import override_settings

from pgbulk.checks import check_configuration, check_urls
from pgbulk.managers import AsyncManager
from pgbulk.tasks import sweep_cron


def ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_the_sample_project_passes_every_pgbulk_check():
    assert checks.run_checks(tags=["pgbulk"]) == []


def test_unknown_setting_is_an_error(settings):
    settings.PGBULK = {"CHUNK_SIZ": 5}
    (error,) = check_configuration()
    assert error.id == "pgbulk.E002" and "CHUNK_SIZ" in error.msg and error.hint


def test_async_without_procrastinate_is_an_error(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True}
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes",
                                           "django.contrib.auth", "pgbulk"]):
        assert "pgbulk.E003" in ids(check_configuration())


@override_settings(ROOT_URLCONF="tests.urls_without_pgbulk")
def test_urls_not_included_is_a_warning():
    (warning,) = check_urls()
    assert warning.id == "pgbulk.W001" and "include" in warning.hint


@pytest.mark.django_db
def test_validate_async_system_reports_no_live_worker():
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_workers "
                       "SET last_heartbeat = now() - interval '1 hour'")
    problems = AsyncManager().validate_async_system()
    assert problems == [
        "No live Procrastinate worker: start 'manage.py procrastinate worker --queues pgbulk'."]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_validate_async_system_is_happy_with_a_live_worker(worker):
    assert AsyncManager().validate_async_system() == []


def test_sweep_schedule_follows_the_interval_setting():
    assert sweep_cron(300) == "*/5 * * * *"
    assert sweep_cron(30) == "* * * * * */30"


def test_get_urlpatterns_includes_the_pgbulk_namespace():
    pattern = AsyncManager.get_urlpatterns()
    assert pattern.namespace == "pgbulk"

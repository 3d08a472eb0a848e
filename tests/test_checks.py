"""System checks and AsyncManager.validate_async_system()."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.core import checks
from django.db import connection
from django.test import override_settings

from pgbulk.checks import check_configuration, check_urls, pooled_connection
from pgbulk.managers import AsyncManager
from pgbulk.tasks import sweep_cron
from tests import conftest
from tests.factories import wait_for


def ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_the_sample_project_passes_every_pgbulk_check():
    assert checks.run_checks(tags=["pgbulk"]) == []


def test_unknown_setting_is_an_error(settings):
    settings.PGBULK = {"CHUNK_SIZ": 5}
    (error,) = check_configuration()
    assert error.id == "pgbulk.E002" and "CHUNK_SIZ" in error.msg and error.hint


def test_a_value_that_is_not_of_its_type_is_an_error(settings):
    settings.PGBULK = {"CHUNK_SIZE": "many", "ASYNC_ENABLED": "maybe"}
    errors = check_configuration()
    assert ids(errors) == {"pgbulk.E005"} and len(errors) == 2
    assert "PGBULK['CHUNK_SIZE'] must be a whole number, not 'many'" in errors[1].msg


def test_an_old_setting_name_is_a_warning(settings):
    settings.PGBULK = {"CLEANUP_GRACE_PERIOD": 60}
    (warning,) = check_configuration()
    assert warning.id == "pgbulk.W002" and "'ACTIVE_LIST_PERIOD'" in warning.hint
    settings.PGBULK = {"CLEANUP_GRACE_PERIOD": 60, "ACTIVE_LIST_PERIOD": 60}
    (warning,) = check_configuration()
    assert warning.id == "pgbulk.W002" and "ignored" in warning.msg
    settings.PGBULK = {"CLEANUP_GRACE_PERIOD": "a day"}
    warning, error = check_configuration()
    assert (warning.id, error.id) == ("pgbulk.W002", "pgbulk.E005")
    assert error.msg == "PGBULK['CLEANUP_GRACE_PERIOD'] must be a number, not 'a day'."


@pytest.mark.parametrize(("seconds", "runs"), [(90, "60"), (45, "30"), (100_000, "86400")])
def test_a_sweep_interval_no_cron_schedule_repeats_is_a_warning(settings, seconds, runs):
    settings.PGBULK = {"CLEANUP_SCHEDULE_INTERVAL": seconds}
    (warning,) = check_configuration()
    assert warning.id == "pgbulk.W003" and f"runs every {runs} s" in warning.msg
    settings.PGBULK = {"CLEANUP_SCHEDULE_INTERVAL": 120}
    assert check_configuration() == []


def test_async_without_procrastinate_is_an_error(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True}
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes",
                                           "django.contrib.auth", "pgbulk"]):
        assert "pgbulk.E003" in ids(check_configuration())


@override_settings(ROOT_URLCONF="tests.urls_without_pgbulk")
def test_urls_not_included_is_a_warning():
    (warning,) = check_urls()
    assert warning.id == "pgbulk.W001" and "include" in warning.hint


@pytest.mark.django_db(databases="__all__")
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
    (pattern,) = AsyncManager.get_urlpatterns()
    assert pattern.namespace == "pgbulk"


@pytest.fixture
def pgbouncer(django_db_setup):
    """A real PgBouncer in transaction pooling mode in front of the test database."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; ./dev test does)")
    db = connection.settings_dict
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="pgbulk-pgbouncer-"))
    folder.chmod(0o777)  # it runs as postgres when we are root (it refuses root)
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n* = host={db['HOST']} port={db['PORT']} user={db['USER']}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = any\npool_mode = transaction\nlogfile = {folder}/log\n"
        f"pidfile = {folder}/pid\n")
    command = [binary, str(ini)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    bouncer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    dsn = f"host=127.0.0.1 port={port} dbname={db['NAME']} user={db['USER']}"

    def connect():
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None, connect_timeout=2)

    try:
        wait_for(lambda: connect().close() is None if bouncer.poll() is None else 1 / 0,
                 timeout=15, interval=0.2, errors=(psycopg.OperationalError,))
        yield connect
    finally:
        bouncer.terminate()
        bouncer.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.django_db
def test_a_transaction_pooler_is_detected(pgbouncer):
    with pgbouncer() as first, pgbouncer() as second:
        assert pooled_connection(first, second) is True
    direct = conftest.test_database_url()
    with psycopg.connect(direct, autocommit=True) as first, \
            psycopg.connect(direct, autocommit=True) as second:
        assert pooled_connection(first, second) is False


@pytest.mark.django_db
def test_a_database_above_read_committed_is_refused(settings):
    from psycopg import IsolationLevel

    from pgbulk.checks import isolation_problems

    databases = {**settings.DATABASES}
    databases["default"] = {**databases["default"],
                            "OPTIONS": {"isolation_level": IsolationLevel.REPEATABLE_READ}}
    settings.DATABASES = databases
    (error,) = isolation_problems()
    assert error.id == "pgbulk.E006" and "REPEATABLE_READ" in error.msg


@pytest.mark.django_db(transaction=True)
def test_a_launch_in_a_repeatable_read_transaction_is_refused():
    from django.core.exceptions import ImproperlyConfigured
    from django.db import transaction

    import pgbulk
    from pgbulk.models import Job
    from testproject.library.models import Book
    from tests.factories import make_books

    ids = make_books(3)
    with pytest.raises(ImproperlyConfigured, match="READ COMMITTED"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="sync")
    assert not Job.objects.exists()


@pytest.mark.parametrize(("variable", "said"), [
    ("PGBULK_CHUNK_SIZE=abc", "(pgbulk.E005) PGBULK['CHUNK_SIZE'] must be a whole number, not 'abc'."),
    ("PGBULK_ASYNC_ENABLED=maybe", "(pgbulk.E005) PGBULK['ASYNC_ENABLED'] must be True or False"),
    ("PGBULK_JOB_RETENTION=0.5", "System check identified no issues"),
])
def test_the_sample_project_reads_pgbulk_settings_from_the_environment_as_pgbulk_does(
        variable, said):
    """Its settings converted the text itself: 'abc' and '0.5' crashed the settings with a
    ValueError, 'maybe' silently meant False."""
    name, value = variable.split("=")
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--tag", "pgbulk"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=60,
        env={**os.environ, name: value, "DJANGO_SETTINGS_MODULE": "testproject.settings"})
    assert said in done.stdout + done.stderr, done.stderr
    assert "Traceback" not in done.stderr

"""The foundation: schema, SQL files, packaging, sample data, worker fixture."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from pgbulk import sqlfiles
from pgbulk.conf import DEFAULTS, pgbulk_settings
from pgbulk.migration_ops import RunSQLFile
from testproject.library.models import Book

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_progress_table_is_unlogged_and_others_are_logged():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relpersistence FROM pg_class "
            "WHERE relname IN ('pgbulk_progress', 'pgbulk_job', 'pgbulk_reservation')"
        )
        persistence = dict(cursor.fetchall())
    assert persistence == {"pgbulk_progress": "u", "pgbulk_job": "p", "pgbulk_reservation": "p"}


@pytest.mark.django_db
def test_the_churning_lock_table_is_vacuumed_after_a_fixed_number_of_dead_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'pgbulk_reservation'")
        options = dict(option.split("=") for option in cursor.fetchone()[0])
    assert options["autovacuum_vacuum_scale_factor"] == "0"
    assert options["autovacuum_vacuum_threshold"] == "10000"


@pytest.mark.django_db(transaction=True)
def test_migrations_reverse_cleanly_and_reapply():
    def table_and_function_exist() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('pgbulk_job'), to_regclass('pgbulk_progress'), "
                           "to_regprocedure('pgbulk_job_lock_key(uuid)')")
            return cursor.fetchone()

    leaf = MigrationLoader(connection).graph.leaf_nodes("pgbulk")[0]
    MigrationExecutor(connection).migrate([("pgbulk", None)])
    assert table_and_function_exist() == (None, None, None)
    MigrationExecutor(connection).migrate([leaf])
    assert all(table_and_function_exist())
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'pgbulk_progress'")
        assert cursor.fetchone()[0] == "u"


def sql_file_operations() -> list[RunSQLFile]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [
        op for (app, _), migration in loader.disk_migrations.items() if app == "pgbulk"
        for op in migration.operations if isinstance(op, RunSQLFile)
    ]


def test_every_sql_file_is_applied_by_a_migration_with_its_current_content():
    operations = sql_file_operations()
    for op in operations:
        assert sqlfiles.checksum(op.file_name) == op.checksum, (
            f"sql/{op.file_name} changed after its migration was written: "
            "add a new versioned file and a migration instead"
        )
    applied = {op.file_name for op in operations}
    on_disk = {p.name for p in sqlfiles.sql_dir().glob("*.sql")} - {"queries.sql"}
    assert on_disk == applied


def test_every_sql_object_and_query_has_a_comment():
    for path in sqlfiles.sql_dir().glob("*.sql"):
        text = path.read_text()
        if path.name == "queries.sql":
            for name, body in sqlfiles.queries().items():
                block = text.split(f"-- name: {name}\n", 1)[1]
                assert block.startswith("-- "), f"query {name} has no description"
                assert body
        else:
            assert "COMMENT ON" in text, f"{path.name} creates objects without COMMENT ON"


@pytest.mark.django_db
def test_the_models_need_no_new_migration():
    call_command("makemigrations", "pgbulk", check=True, dry_run=True, verbosity=0)


def test_settings_defaults_and_overrides(settings):
    settings.PGBULK = {}
    assert pgbulk_settings.CHUNK_SIZE == DEFAULTS["CHUNK_SIZE"]
    assert pgbulk_settings.ASYNC_ENABLED is False
    settings.PGBULK = {"CHUNK_SIZE": 7}
    assert pgbulk_settings.CHUNK_SIZE == 7
    with pytest.raises(AttributeError):
        pgbulk_settings.NO_SUCH_SETTING  # noqa: B018


@pytest.mark.django_db
def test_seed_library_is_set_based_and_safe_to_run_twice():
    call_command("seed_library", books=300)
    call_command("seed_library", books=300)
    assert Book.objects.count() == 300
    assert Book.objects.filter(genres__isnull=False).distinct().count() == 300
    assert set(Book.objects.values_list("status", flat=True)) == {"draft", "published", "archived"}


@pytest.mark.django_db(transaction=True)
def test_worker_fixture_runs_a_live_worker_with_a_fresh_heartbeat(worker):
    assert worker.process.poll() is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_workers "
                       "WHERE last_heartbeat > now() - interval '30 seconds'")
        assert cursor.fetchone()[0] >= 1


@pytest.mark.slow
def test_wheel_contains_sql_templates_and_static(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("django_pgbulk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for sql in sqlfiles.sql_dir().glob("*.sql"):
        assert f"pgbulk/sql/{sql.name}" in names
    assert "pgbulk/templates/pgbulk/progress.html" in names
    assert "pgbulk/static/pgbulk/pgbulk.css" in names
    assert "pgbulk/py.typed" in names
    assert not any(name.startswith(("tests/", "testproject/")) for name in names)

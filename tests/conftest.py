"""Test fixtures: the real PostgreSQL test database and real Procrastinate worker processes.

Without DATABASE_URL only the tests that need no database run (the unit tests in
tests/unit and the static checks); every test that needs PostgreSQL is skipped and says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection, connections

from pgbulk.runtime import side_alias
from tests.factories import chunk_env

ROOT = Path(__file__).resolve().parent.parent

HAVE_DATABASE = bool(os.environ.get("DATABASE_URL"))
# Fixtures that reach the database (pytest-django's, and ours below).
DATABASE_FIXTURES = {
    "db", "transactional_db", "django_db_setup", "live_server", "admin_client", "admin_user",
    "start_worker", "worker",
}


def test_database_url() -> str:
    """The URL of the database pytest-django created (test_<name>)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class Worker:
    """A real ``manage.py procrastinate worker`` subprocess against the test database."""

    def __init__(
        self, env: dict[str, str] | None = None, concurrency: int = 2, queue: str = "pgbulk",
        args: tuple[str, ...] = (),
    ) -> None:
        self.log = tempfile.NamedTemporaryFile(
            prefix="pgbulk-worker-", suffix=".log", delete=False, mode="w+"
        )
        # Workers sweep only when a test asks (the in-band and periodic sweeps would
        # race the tests that sweep themselves).
        full_env = {**os.environ, "DATABASE_URL": test_database_url(),
                    "PGBULK_CLEANUP_SCHEDULE_INTERVAL": "3600", **(env or {})}
        full_env["PYTHONUNBUFFERED"] = "1"
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "procrastinate", "worker",
             "--queues", queue, "--concurrency", str(concurrency), *args],
            cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the worker's heartbeat row (it registers once it listens)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM procrastinate_workers "
                    "WHERE last_heartbeat >= to_timestamp(%s)", [self.started_at - 1]
                )
                if cursor.fetchone()[0]:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-whatever, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


_started: list[Worker] = []


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Declare pgbulk's side connection before the test database is set up (a mirror),
    and a "replica" that cannot see pgbulk's tables (as a physical replica cannot
    read UNLOGGED ones): a test routes reads there to prove progress is read on the primary."""
    side_alias("default")
    main = connections["default"].settings_dict
    connections.settings["replica"] = {
        **main, "OPTIONS": {**main.get("OPTIONS", {}), "options": "-c search_path=no_such_schema"},
        "TEST": {**main.get("TEST", {}), "MIRROR": "default"},
    }


@pytest.fixture(scope="session")
def start_worker(django_db_setup, django_db_blocker):
    """Factory: ``start_worker(env={...}, queue=...)`` starts a worker stopped at session end."""

    def start(env: dict[str, str] | None = None, concurrency: int = 2,
              queue: str = "pgbulk", args: tuple[str, ...] = ()) -> Worker:
        with django_db_blocker.unblock():
            worker = Worker(env, concurrency, queue, args)
        _started.append(worker)
        return worker

    yield start
    stop_started_workers()
    for worker in _started:
        Path(worker.log.name).unlink(missing_ok=True)


def stop_started_workers() -> None:
    """Stop (SIGTERM: they drain and exit, saving their coverage) every worker still running."""
    for worker in _started:
        worker.stop()


@pytest.fixture
def stop_workers():
    """``stop_workers()`` stops every worker started so far, e.g. before the database crashes."""
    return stop_started_workers


@pytest.fixture(scope="session")
def worker(start_worker) -> Worker:
    """The shared worker: chunks of 100, saves slowed by 2 ms (to observe progress, cancel)."""
    return start_worker({"LIBRARY_SAVE_DELAY": "0.002", **chunk_env(100)}, concurrency=4)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _started:
        for number, worker in enumerate(_started):
            tail = worker.output()[-6000:]
            report.sections.append((f"worker {number} output (tail)", tail))
    return report


def needs_database(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(fixtures & DATABASE_FIXTURES)


def pytest_collection_modifyitems(items):
    """Tests that crash the database server run last; without a database, skip those needing it."""
    items.sort(key=lambda item: item.get_closest_marker("crash") is not None)
    if not HAVE_DATABASE:
        skip = pytest.mark.skip(
            reason="needs PostgreSQL: DATABASE_URL is not set (./dev test sets it up)")
        for item in items:
            if needs_database(item):
                item.add_marker(skip)


@pytest.fixture
def writes():
    """``writes(ids)``: how many committed UPDATEs each book got (an audit trigger counts)."""
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE TABLE test_book_write (book_id bigint NOT NULL);
            CREATE FUNCTION test_count_book_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO test_book_write VALUES (NEW.id); RETURN NULL; END $$;
            CREATE TRIGGER test_book_write AFTER UPDATE ON library_book
            FOR EACH ROW EXECUTE FUNCTION test_count_book_write();
        """)

    def count(ids) -> dict[int, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT book_id, count(*) FROM test_book_write "
                           "WHERE book_id = ANY(%s) GROUP BY book_id", [list(ids)])
            return dict(cursor.fetchall())

    yield count
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_book_write ON library_book; "
                       "DROP FUNCTION test_count_book_write(); DROP TABLE test_book_write;")

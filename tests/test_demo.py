"""`./dev demo` against the test database: it serves, and a signal stops everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection

from tests.factories import wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def children_of(pids: set[int]) -> set[int]:
    """Every live descendant of ``pids`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def default_interrupts() -> None:
    """In the demo's shell, SIGINT and SIGQUIT as a terminal gives them. A test run started
    in the background by a non-interactive shell (``(./dev test &)``) inherits them
    ignored, and bash cannot trap a signal ignored on entry: the demo would never see INT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def processes(pids: set[int]) -> list[str]:
    """Each process's state and command line, for a failure message."""
    found = []
    for pid in sorted(pids):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found.append(f"{pid} {state} {command[:200]}")
    return found


def database_activity() -> list[tuple]:
    """What the test database's other sessions are doing (waiting for a lock?)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, state, wait_event_type, wait_event, left(query, 120) "
                       "FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return cursor.fetchall()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_stops_the_demos_web_server_and_worker(stop):
    s = connection.settings_dict
    port = free_port()
    # Its own queue: the demo's worker must not take (and, stopping, finish) a task of
    # this test session's worker, which serves the test database's "pgbulk" queue.
    env = {**os.environ, "PGBULK_DEMO_PORT": str(port), "PGBULK_DEMO_BOOKS": "30",
           "PGBULK_QUEUE": f"demo-{port}",
           "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"}
    log = tempfile.NamedTemporaryFile(prefix="pgbulk-demo-", suffix=".log", delete=False)
    demo = subprocess.Popen(["bash", str(ROOT / "dev"), "demo"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=default_interrupts)
    started: set[int] = set()
    try:
        def serving_with_a_worker() -> bool:
            assert demo.poll() is None, Path(log.name).read_text()
            commands = []
            for pid in children_of({demo.pid}):
                try:
                    commands.append(Path(f"/proc/{pid}/cmdline").read_bytes())
                except OSError:
                    continue
            return listening(port) and any(b"procrastinate\0worker" in c for c in commands)

        wait_for(serving_with_a_worker, timeout=120, interval=0.2)
        assert User.objects.filter(username__in=["demo", "reader"]).count() == 2

        started = children_of({demo.pid})  # the web server and the worker, at least
        assert len(started) >= 2
        demo.send_signal(stop)
        try:
            code = demo.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not stop within 60 s of {stop.name}; still running: "
                        f"{processes(children_of({demo.pid}) | {demo.pid})}\n"
                        f"{database_activity()}\n{Path(log.name).read_text()}")
        assert code == 0, Path(log.name).read_text()
        survivors = {pid for pid in started if alive(pid)}
        assert not survivors, f"still running after the demo stopped: {survivors}"
        assert not listening(port)
        assert "stopping" in Path(log.name).read_text()
    finally:
        for pid in {demo.pid} | started | children_of({demo.pid}):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait(10)
        log.close()
        Path(log.name).unlink(missing_ok=True)

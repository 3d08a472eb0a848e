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
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
        assert demo.wait(60) == 0, Path(log.name).read_text()
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

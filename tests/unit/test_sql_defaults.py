"""The SQL functions' defaults (for psql users, who have no Django settings) repeat pgbulk's:
a parameter named like a setting defaults to that setting's default. No database."""

from __future__ import annotations

import re

import pytest

from pgbulk import sqlfiles
from pgbulk.conf import DEFAULTS, HEARTBEAT_TIMEOUT

#: SQL parameter: its default in seconds (or as a number), from pgbulk's own.
EXPECTED = {
    "conflict_ttl": DEFAULTS["CONFLICT_TTL"],
    "progress_ttl": DEFAULTS["PROGRESS_TTL"],
    "max_task_duration": DEFAULTS["MAX_TASK_DURATION"],
    "job_retention": DEFAULTS["JOB_RETENTION"] * 86400,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "sync_start_timeout": DEFAULTS["SYNC_START_TIMEOUT"],
    "max_resumes": DEFAULTS["MAX_RESUMES"],
}
UNITS = {"second": 1, "seconds": 1, "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600,
         "day": 86400, "days": 86400}


def sql_defaults() -> list[tuple[str, str, float]]:
    """(file, parameter, default) of every parameter of EXPECTED with a default."""
    found = []
    for path in sorted(sqlfiles.sql_dir().glob("*.sql")):
        text = path.read_text()
        for name, amount, unit in re.findall(
                r"\b(\w+) interval DEFAULT interval '(\d+) (\w+)'", text):
            found.append((path.name, name, int(amount) * UNITS[unit]))
        for name, value in re.findall(r"\b(\w+) integer DEFAULT (\d+)", text):
            found.append((path.name, name, int(value)))
    return [row for row in found if row[1] in EXPECTED]


def test_the_sweep_and_the_stale_jobs_have_defaults_to_check():
    names = {name for _file, name, _default in sql_defaults()}
    assert names == set(EXPECTED)


@pytest.mark.parametrize(("file", "name", "default"), sql_defaults())
def test_every_sql_default_is_pgbulks_default(file, name, default):
    assert default == EXPECTED[name], f"sql/{file}: {name} defaults to {default}"

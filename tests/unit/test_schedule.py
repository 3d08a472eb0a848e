"""The periodic sweep's cron expression (pgbulk.tasks.sweep_cron). No database."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

import pytest
from croniter import croniter

from pgbulk.tasks import sweep_cron


def gaps(expression: str, count: int = 4) -> set[float]:
    """Seconds between the next firings of a cron expression (as Procrastinate reads it)."""
    schedule = croniter(expression, datetime(2026, 1, 1, 0, 0, 0))
    times = [schedule.get_next(float) for _ in range(count)]
    return {b - a for a, b in pairwise(times)}


@pytest.mark.parametrize("seconds", [1, 5, 10, 30, 60, 120, 300, 600, 900, 1800])
def test_the_sweep_runs_every_interval(seconds):
    assert gaps(sweep_cron(seconds)) == {seconds}


def test_minutes_use_the_minute_field_and_seconds_the_seconds_field():
    assert sweep_cron(300) == "*/5 * * * *"
    assert sweep_cron(30) == "* * * * * */30"


@pytest.mark.parametrize("seconds", [0, -5, "0"])
def test_a_non_positive_interval_means_every_second(seconds):
    assert gaps(sweep_cron(seconds)) == {1}


def test_the_interval_may_come_from_the_environment_as_text():
    assert sweep_cron("600") == sweep_cron(600)

"""The periodic sweep's schedule (pgbulk.sweep: schedule_interval, sweep_cron). No database."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from croniter import croniter

from pgbulk.conf import pgbulk_settings
from pgbulk.sweep import CRON_INTERVALS, schedule_interval
from pgbulk.tasks import sweep_cron

#: Just before midnight at a month's end: the gaps cross minute, hour, day and month.
START = datetime(2026, 1, 31, 23, 58, 0)


def gaps(expression: str) -> set[float]:
    """Seconds between the firings of a cron expression (as Procrastinate reads it): 200
    firings, or two days of them."""
    schedule = croniter(expression, START)
    times = [schedule.get_next(float)]
    while len(times) < 200 and times[-1] < (START + timedelta(days=2)).timestamp():
        times.append(schedule.get_next(float))
    return {b - a for a, b in pairwise(times)}


@pytest.mark.parametrize("seconds", CRON_INTERVALS)
def test_every_interval_a_cron_schedule_can_repeat_runs_exactly_that_often(seconds):
    assert schedule_interval(seconds) == seconds
    assert gaps(sweep_cron(seconds)) == {seconds}


@pytest.mark.parametrize(("seconds", "runs"), [
    (45, 30), (90, 60), (100, 60), (150, 120), (5400, 3600), (7000, 3600), (9000, 7200),
    (100_000, 86_400), (0.5, 1)])
def test_other_intervals_run_at_the_longest_even_interval_not_longer(seconds, runs):
    assert schedule_interval(seconds) == runs
    assert gaps(sweep_cron(seconds)) == {runs}


def test_the_even_intervals_are_the_divisors_of_a_minute_an_hour_and_a_day():
    for step in CRON_INTERVALS:
        unit = 60 if step < 60 else 3600 if step < 3600 else 86400
        assert unit % step == 0
    assert len(CRON_INTERVALS) == 11 + 11 + 8


def test_minutes_use_the_minute_field_and_seconds_the_seconds_field():
    assert sweep_cron(300) == "*/5 * * * *"
    assert sweep_cron(30) == "* * * * * */30"
    assert sweep_cron(7200) == "0 */2 * * *"


@pytest.mark.parametrize("seconds", [0, -5, 0.0])
def test_a_non_positive_interval_means_every_second(seconds):
    assert gaps(sweep_cron(seconds)) == {1}


def test_the_interval_may_come_from_the_environment_as_text(settings):
    settings.PGBULK = {"CLEANUP_SCHEDULE_INTERVAL": "600"}
    assert sweep_cron(pgbulk_settings.CLEANUP_SCHEDULE_INTERVAL) == sweep_cron(600)
    settings.PGBULK = {"CLEANUP_SCHEDULE_INTERVAL": "0"}
    assert gaps(sweep_cron(pgbulk_settings.CLEANUP_SCHEDULE_INTERVAL)) == {1}

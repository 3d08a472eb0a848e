"""Where a job stands, in words and as a bar: what the progress fragment shows.

Built from ``progress.snapshot()`` and the job row only: what a page says about a
job is what the database says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pgbulk.describe import number
from pgbulk.models import Job


@dataclass(frozen=True)
class Bar:
    """Widths (percent of total) of the changed, failed, remaining and skipped parts
    (skipped: records an undo left alone)."""

    changed: float
    failed: float
    remaining: float
    skipped: float = 0.0


@dataclass(frozen=True)
class JobStatus:
    headline: str  # "Running", "Queued: waiting for a worker", "Worker lost after ..."
    figures: str  # "Updated 2,000 of 19,945 · 3 failed · 120 rows/s · about 2 min left"
    bar: Bar
    tone: str  # CSS modifier: queued, running, succeeded, failed, cancelled, lost
    note: str  # the job's message when it says more than the figures (what the sweep did...)
    announcement: str  # for the aria-live region once the job is over


#: The message a runner writes by itself while it goes ("2000 of 19945"): the figures say it.
PLAIN_COUNT = re.compile(r"^\d+ of \d+$")


def verb(job: Job) -> str:
    if is_undo(job):
        return _("Restored")
    return {"update": _("Updated"), "delete": _("Deleted")}.get(job.kind, _("Done"))


def is_undo(job: Job) -> bool:
    """An undo job (its link survives the undone job: params keep its id)."""
    return bool(job.undo_of_id or job.params.get("undo_of"))


def at_time(moment: Any) -> str:
    """ "12:44", or "2026-11-27 12:44" when not today."""
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return date_format(local, "H:i")
    return date_format(local, "Y-m-d H:i")


def duration_text(elapsed: float | None) -> str:
    if elapsed is None:
        return ""
    if elapsed < 0.5:
        return _("< 1 s")
    seconds = round(elapsed)
    if seconds < 60:
        return ngettext("%(n)s s", "%(n)s s", seconds) % {"n": seconds}
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return _("%(m)s min %(s)s s") % {"m": minutes, "s": seconds}
    hours, minutes = divmod(minutes, 60)
    return _("%(h)s h %(m)s min") % {"h": hours, "m": minutes}


def job_status(job: Job, progress: dict[str, Any]) -> JobStatus:
    done, failed, total = progress["done"], progress["failed_count"], progress["total"]
    skipped = progress.get("skipped_count") or 0
    of = _("%(verb)s %(done)s of %(total)s") % {
        "verb": verb(job), "done": number(done), "total": number(total)}
    parts = [of]
    if failed:
        parts.append(_("%(count)s failed") % {"count": number(failed)})
    if skipped:
        parts.append((_("%(count)s already gone") if job.kind == "delete"
                      else _("%(count)s skipped")) % {"count": number(skipped)})
    tone = progress["status"]
    headline = job.get_status_display()
    if progress["status"] == "queued":
        headline = queued_text(progress.get("queue_position"), again=job.attempt > 0)
    elif progress["status"] == "running":
        headline, tone = running_text(job, progress, parts)
    elif progress["status"] == "cancelled":
        headline = cancelled_text(job, done, total)
    if job.is_terminal and progress.get("rate"):
        parts.append(_("%(rate)s records/s") % {"rate": number(round(progress["rate"]))})
    message = progress.get("message") or ""
    note = "" if PLAIN_COUNT.match(message) else message
    announcement = f"{headline}. {message}" if job.is_terminal else ""
    return JobStatus(headline, " · ".join(parts), bar(done, failed, total, skipped), tone,
                     note, announcement)


def queued_text(position: int | None, *, again: bool = False) -> str:
    """ "Queued: waiting for a worker (2 jobs ahead of it)"; "Queued again" once resumed."""
    text = _("Queued again: waiting for a worker") if again else _(
        "Queued: waiting for a worker")
    if position is None:
        return text
    if position == 0:
        return text + " " + _("(next in line)")
    return text + " " + ngettext("(%(count)s job ahead of it)", "(%(count)s jobs ahead of it)",
                                 position) % {"count": number(position)}


def running_text(job: Job, progress: dict[str, Any], parts: list[str]) -> tuple[str, str]:
    done, total = progress["done"], progress["total"]
    if progress.get("worker_lost"):
        lost = (_("The process running it was lost after %(done)s of %(total)s")
                if job.run_mode == "sync" else _("Worker lost after %(done)s of %(total)s"))
        after = lost % {"done": number(done), "total": number(total)}
        if job.cancel_requested:
            return after + "; " + _("the job will end cancelled"), "lost"
        if job.params.get("atomic", True):
            return after + "; " + _("the job will fail, nothing was changed"), "lost"
        if job.run_mode == "sync":  # nobody can resume it: its own process ran it
            return after + "; " + _("the job will fail, the rest will not be changed"), "lost"
        return after + "; " + _("the job will resume"), "lost"
    if job.cancel_requested:
        who = job.cancelled_by.get_username() if job.cancelled_by else ""
        text = (_("Cancelling (asked by %(user)s): stopping after the records in progress")
                % {"user": who} if who else
                _("Cancelling: stopping after the records in progress"))
        return text, "running"
    if not progress.get("progress_known"):
        parts.append(_("live progress unknown (rebuilding after a restart)"))
        return job.get_status_display(), "running"
    if job.params.get("atomic", True):  # the count so far is not committed
        parts.append(_("all or nothing: kept only if the job succeeds"))
    if progress.get("stalled_seconds") is not None:
        parts.append(_("no progress for %(time)s") % {
            "time": duration_text(progress["stalled_seconds"])})
    elif progress.get("rate"):
        parts.append(_("%(rate)s records/s") % {"rate": number(round(progress["rate"]))})
    if progress.get("eta_seconds") is not None and round(progress["eta_seconds"]) < 1:
        parts.append(_("almost done"))
    elif progress.get("eta_seconds") is not None:
        parts.append(_("about %(time)s left") % {"time": duration_text(progress["eta_seconds"])})
    return job.get_status_display(), "running"


def cancelled_text(job: Job, done: int, total: int) -> str:
    who = job.cancelled_by.get_username() if job.cancelled_by else ""
    when = at_time(job.cancelled_at) if job.cancelled_at else ""
    text = _("Cancelled")
    if not who and job.message.startswith("Running longer than"):  # the sweep's time limit
        text = _("Stopped: it ran longer than the time limit")
    elif who and when:
        text = _("Cancelled by %(user)s at %(time)s") % {"user": who, "time": when}
    elif when:
        text = _("Cancelled at %(time)s") % {"time": when}
    if job.params.get("atomic", True) and not done:
        return text + "; " + _("nothing was changed")
    return text + " " + _("after %(done)s of %(total)s") % {
        "done": number(done), "total": number(total)}


def bar(done: int, failed: int, total: int, skipped: int = 0) -> Bar:
    if total <= 0:
        return Bar(0.0, 0.0, 100.0)
    changed = min(100.0, round(100.0 * done / total, 1))
    failed_pct = min(100.0 - changed, round(100.0 * failed / total, 1))
    skipped_pct = min(100.0 - changed - failed_pct, round(100.0 * skipped / total, 1))
    return Bar(changed, failed_pct, round(100.0 - changed - failed_pct - skipped_pct, 1),
               skipped_pct)


def cancel_question(job: Job, summary: str) -> str:
    """What the Cancel button asks before it cancels."""
    if job.params.get("atomic", True):
        return _("Cancel “%(job)s”? It is all or nothing: every change it made is rolled "
                 "back.") % {"job": summary}
    return _("Cancel “%(job)s”? Records it changed so far stay changed, and so do those "
             "in progress when it stops.") % {"job": summary}

"""The job dashboard's data: visible jobs filtered by status, model and owner, one page of rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from pgbulk import describe, progress
from pgbulk.change_views import linked
from pgbulk.conf import pgbulk_settings
from pgbulk.job_status import JobStatus, cancel_question, duration_text, job_status
from pgbulk.models import Job, Status
from pgbulk.permissions import (
    can_cancel,
    can_view_records,
    public_progress,
    sees_others,
    visible_jobs,
)
from pgbulk.undoing import may_undo, why_not_undoable

PER_PAGE = 25
#: Seconds between two refreshes: while a job shown is active, and otherwise (to
#: notice a job that became active after the page loaded).
ACTIVE_REFRESH, IDLE_REFRESH = 2, 5


@dataclass
class Row:
    job: Job
    summary: str
    status: JobStatus
    duration: str
    can_cancel: bool
    cancel_question: str
    #: "Undo…" when "" (a record to put back), disabled with this reason, or None: not shown.
    undo_reason: str | None = None
    undoes: str = ""  # an undo's row: "Undo of: <what it undoes>"


def filtered(request: HttpRequest) -> tuple[Any, dict[str, str]]:
    user: Any = request.user
    jobs = visible_jobs(user)
    chosen = {key: request.GET.get(key, "") for key in ("status", "model", "owner")}
    if chosen["status"] in Status.values:
        jobs = jobs.filter(status=chosen["status"])
    elif chosen["status"] == "active":  # unfinished, or finished within ACTIVE_LIST_PERIOD
        recent = timezone.now() - timedelta(seconds=pgbulk_settings.ACTIVE_LIST_PERIOD)
        jobs = jobs.filter(Q(finished_at__isnull=True) | Q(finished_at__gte=recent))
    else:
        chosen["status"] = ""
    if chosen["model"] and "\x00" not in chosen["model"]:  # PostgreSQL text has no NUL
        jobs = jobs.filter(model=chosen["model"])
    else:
        chosen["model"] = ""
    if chosen["owner"] == "me":
        jobs = jobs.filter(user=user)
    elif re.fullmatch(r"[0-9]+", chosen["owner"]):  # not "²", which isdigit() accepts
        jobs = jobs.filter(user_id=int(chosen["owner"]))
    else:
        chosen["owner"] = ""
    return jobs, chosen


def row(request: HttpRequest, job: Job) -> Row:
    data = public_progress(progress.snapshot(job), job,
                           can_view_records(request.user, job.model))
    end = job.finished_at or timezone.now()
    duration = (end - job.started_at).total_seconds() if job.started_at else None
    summary = describe.summary(job)
    return Row(job, summary, job_status(job, data), duration_text(duration),
               can_cancel(request.user, job) and not job.is_terminal,
               cancel_question(job, summary), undo_reason(request.user, job),
               undoes(request.user, job))


def undoes(user: Any, job: Job) -> str:
    """What an undo undoes, in a word: the undone job's summary (its kind only if ``user``
    may not see it), or that it was deleted since; "" for other jobs."""
    if not job.params.get("undo_of"):
        return ""
    if job.undo_of is None:
        return _("Undo of a job since deleted from the history")
    return _("Undo of: %(job)s") % {"job": linked(user, job.undo_of)["text"]}


def undo_reason(user: Any, job: Job) -> str | None:
    """For a finished update job with its log that ``user`` may undo: why its undo is
    disabled ("" when enabled: a record to put back; one EXISTS, only for such rows);
    None for the other rows (no Undo shown)."""
    if (job.kind == "update" and job.is_terminal and job.change_log == "kept"
            and may_undo(user, job)):
        return why_not_undoable(job)
    return None


def page_url(request: HttpRequest, number: int) -> str:
    query = request.GET.copy()
    query["page"] = str(number)
    return "?" + query.urlencode()


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    user: Any = request.user
    jobs, chosen = filtered(request)
    page = Paginator(jobs.select_related("undo_of"), PER_PAGE).get_page(request.GET.get("page"))
    rows = [row(request, job) for job in page]
    visible = visible_jobs(user)
    owners = []
    if sees_others(user):
        owner_ids = visible.exclude(user=None).values("user_id").distinct()
        owners = list(get_user_model()._default_manager.filter(pk__in=owner_ids))
    active = any(not r.job.is_terminal for r in rows)
    return {
        "rows": rows, "page": page, "chosen": chosen,
        "statuses": [("active", _("Active and recent")), *Status.choices],
        "models": list(visible.exclude(model="").order_by("model")
                       .values_list("model", flat=True).distinct()),
        "owners": owners,
        "previous_url": page_url(request, page.previous_page_number())
        if page.has_previous() else "",
        "next_url": page_url(request, page.next_page_number()) if page.has_next() else "",
        "refresh_seconds": ACTIVE_REFRESH if active else IDLE_REFRESH,
        "next": request.get_full_path(),
    }

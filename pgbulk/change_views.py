"""The change log and undo on the job pages: the "Changes" section and its CSV, the links
between a job and its undos, and Undo (a confirmation page, then the launch).

The log and its CSV need the view or change permission of the job's model; Undo needs
``pgbulk.undoing.may_undo`` and a job ``why_not_undoable`` has nothing against. Refusals
are pages with a status and the reason: 403, 400 and 409, never a 500.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from pgbulk import changes, describe, undoing
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import BulkValidationError, ConflictEntry, ConflictError
from pgbulk.models import Job
from pgbulk.permissions import can_see, can_view_records, get_visible_job


def detail_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    """What the job page shows of the log, the undo links and the Undo button."""
    user: Any = request.user
    context: dict[str, Any] = {
        "change_log": changes.state(job), "change_spec": changes.spec(job),
        "links": job_links(user, job), "undo": undo_offer(user, job), "changes": None,
    }
    if context["change_log"] == "kept" and can_view_records(user, job.model):
        got = request.GET
        page = changes.page(job, links=user.is_staff, key=got.get("changes_key", ""),
                            after=got.get("changes_after", ""),
                            before=got.get("changes_before", ""))
        context.update(changes=page, changes_urls=pager_urls(page))
    return context


def pager_urls(page: changes.ChangePage) -> dict[str, str]:
    """Links to the previous, next and first page of the log (the key filter kept)."""
    keep = {"changes_key": page.key} if page.key else {}

    def url(**more: str) -> str:
        return "?" + urlencode({**keep, **more}) + "#changes"

    return {
        "previous": url(changes_before=page.previous_before) if page.previous_before else "",
        "next": url(changes_after=page.next_after) if page.next_after else "",
        "first": "" if page.first else url(),
    }


def linked(user: Any, job: Job) -> dict[str, Any]:
    """A job to name on another job's page: linked and summed up only if ``user`` may see it."""
    visible = can_see(user, job)
    return {"job": job, "visible": visible,
            "text": describe.summary(job) if visible else describe.kind_phrase(job)}


def job_links(user: Any, job: Job) -> dict[str, Any]:
    """The job this one undoes, the jobs that undo it (oldest first), and what the latest
    of those did (``undone``: see undone_state)."""
    undone = job.undo_of
    undos = [linked(user, undo) for undo in job.undos.select_related("user").order_by("created_at")]
    return {
        "undoes": linked(user, undone) if undone else None,
        "undoes_gone": bool(job.params.get("undo_of")) and undone is None,
        "undone_by": undos,
        "undone": undone_state(undos[-1]) if undos else "",
    }


def undone_state(latest: dict[str, Any]) -> str:
    """What a job's latest undo did to its records: "undoing" (queued or running), "undone"
    (every one put back), "partly" (some: others skipped or failed, or it was cancelled),
    "" (none: nothing to say beside the Undos row)."""
    undo: Job = latest["job"]
    if not undo.is_terminal:
        return "undoing"
    if not undo.done:
        return ""
    whole = undo.status == "succeeded" and not undo.skipped_count
    return "undone" if whole else "partly"


def undo_offer(user: Any, job: Job) -> dict[str, Any] | None:
    """The Undo button: None when not shown (not an update or delete, or the user may
    not undo it), else ``{"reason": why it is disabled, "" when enabled}``."""
    if job.kind not in ("update", "delete") or not undoing.may_undo(user, job):
        return None
    return {"reason": undoing.why_not_undoable(job)}


@never_cache
@login_required
@require_GET
def job_changes_csv(request: HttpRequest, job_id: uuid.UUID) -> StreamingHttpResponse:
    job = get_visible_job(request.user, job_id)
    if not can_view_records(request.user, job.model):
        raise PermissionDenied(_("You may not view the records of this job."))
    if changes.state(job) != "kept":
        raise Http404(_("This job has no change log."))
    key = request.GET.get("key", "")
    response = StreamingHttpResponse(changes.csv_lines(job, key),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.id}-changes.csv"'
    return response


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def job_undo(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """GET: what Undo will put back, and a button; POST: launch the undo, then its page."""
    user: Any = request.user
    job = get_visible_job(user, job_id)
    if not undoing.may_undo(user, job):
        return undo_page(request, job, 403, error=_("You may not undo this job."))
    reason = undoing.why_not_undoable(job)
    if reason:
        return undo_page(request, job, 400, error=reason)
    if request.method == "GET":
        return undo_page(request, job, 200)
    try:
        undo = undoing.undo(job, user=user)
    except PermissionDenied:
        return undo_page(request, job, 403, error=_("You may not undo this job."))
    except BulkValidationError as invalid:
        return undo_page(request, job, 400, error=" ".join(
            str(message) for messages in invalid.errors.values() for message in messages))
    except ConflictError as conflict:
        return undo_page(request, job, 409, conflicts=conflict_rows(user, conflict.conflicts))
    return redirect("pgbulk:job-detail", job_id=undo.id)


def undo_page(request: HttpRequest, job: Job, status: int, *, error: str = "",
              conflicts: list[dict[str, Any]] | None = None) -> HttpResponse:
    """The confirmation page, or why there is nothing to confirm."""
    context = {
        "job": job, "summary": describe.summary(job), "error": error,
        "conflicts": conflicts or [], "links": job_links(request.user, job),
        "fields": field_labels(job),
        "forecast": forecast_in_words(job) if status == 200 else None,
        "undo_logged": pgbulk_settings.RECORD_CHANGES,
    }
    return render(request, "pgbulk/job_undo.html", context, status=status)


def forecast_in_words(job: Job) -> undoing.Forecast:
    """``undoing.forecast(job)``, its predicted errors naming fields by verbose name."""
    forecast = undoing.forecast(job)
    forecast.failures["errors"] = describe.entries_in_words(describe.job_model(job),
                                                            forecast.failures["errors"])
    return forecast


def field_labels(job: Job) -> list[str]:
    """The verbose names of the fields an undo of ``job`` puts back."""
    model = describe.job_model(job)
    logged = changes.spec(job)
    return [describe.field_label(model, name) for name in (*logged["fields"], *logged["m2m"])]


def conflict_rows(user: Any, conflicts: list[ConflictEntry]) -> list[dict[str, Any]]:
    """Each job holding records, with what it is (``what``: its kind; ``summary``: only if
    ``user`` may see it, as the link); for the conflict pages of a launch and an undo."""
    ids = [uuid.UUID(str(c["job_id"])) for c in conflicts]
    jobs = {str(j.id): j for j in Job.objects.select_related("user").filter(pk__in=ids)}
    rows = []
    for conflict in conflicts:
        job = jobs.get(str(conflict["job_id"]))
        shown = linked(user, job) if job else {"job": None, "visible": False, "text": ""}
        rows.append({**conflict, **shown, "text": shown["text"] or _("a job"),
                     "summary": shown["text"] if shown["visible"] else "",
                     "what": describe.kind_phrase(job) if job else ""})
    return rows

"""Job endpoints: progress (HTMX fragment or JSON), cancel, dashboard, detail, errors CSV
(the change log's section, its CSV and Undo are in ``pgbulk.change_views``).

Who may see or cancel what is decided in ``pgbulk.permissions``; a job the user may
not see is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event
from django_htmx.middleware import HtmxDetails

from pgbulk import change_views, describe, progress, record_errors
from pgbulk.conf import pgbulk_settings
from pgbulk.dashboard import dashboard_context
from pgbulk.job_status import cancel_question, duration_text, job_status
from pgbulk.models import Job
from pgbulk.permissions import can_cancel, can_view_records, get_visible_job, public_progress

#: Variants of the progress fragment: in the bulk modal, on the detail page, in a banner.
VARIANTS = ("modal", "detail", "compact")
#: Errors the modal lists before linking to the rest.
MODAL_ERRORS = 5


def htmx(request: HttpRequest) -> HtmxDetails:
    """django-htmx's view of the request (set by its middleware, or read here)."""
    details = getattr(request, "htmx", None)
    return details if isinstance(details, HtmxDetails) else HtmxDetails(request)


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def progress_context(request: HttpRequest, job: Job, variant: str = "modal") -> dict[str, Any]:
    """What ``pgbulk/progress.html`` needs for one job (read once, shown as it is)."""
    user: Any = request.user
    readable = can_view_records(user, job.model)
    data = public_progress(progress.snapshot(job), job, readable)
    summary = describe.summary(job)
    context = {
        "job": job, "progress": data, "status": job_status(job, data), "variant": variant,
        "can_cancel": can_cancel(user, job) and not job.is_terminal,
        "cancel_question": cancel_question(job, summary),
        "records_readable": readable, "summary": summary,
        "errors_count": record_errors.count(job) if data["failed_count"] or job.errors else 0,
    }
    if variant == "modal" and readable and context["errors_count"]:
        context["errors"] = record_errors.first(job, MODAL_ERRORS, links=user.is_staff)
    if variant == "detail":
        context["timings"] = timings(job, data)
    return context


def timings(job: Job, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of created, started, finished, duration and rate; unknown ones left out."""
    end = job.finished_at or (timezone.now() if job.started_at else None)
    duration = (end - job.started_at).total_seconds() if job.started_at and end else None
    rate = data.get("rate")
    rows = [(_("Created"), moment(job.created_at)), (_("Started"), moment(job.started_at)),
            (_("Finished"), moment(job.finished_at)), (_("Duration"), duration_text(duration)),
            (_("Rate"), _("%(rate)s records/s") % {"rate": describe.number(round(rate))}
             if rate else "")]
    return [(label, text) for label, text in rows if text]


def moment(value: Any) -> str:
    return date_format(timezone.localtime(value), "Y-m-d H:i:s") if value else ""


def render_progress(request: HttpRequest, job: Job, variant: str) -> HttpResponse:
    """The progress fragment; for HTMX, 286 (stop polling) and ``pgbulk-done`` once over."""
    context = progress_context(request, job, variant)
    if wants_json(request):
        return JsonResponse(context["progress"])
    template = "pgbulk/bulk_started.html" if request.GET.get("open") else "pgbulk/progress.html"
    content = render_to_string(template, context, request)
    if not (job.is_terminal and htmx(request)):
        return HttpResponse(content)
    response = HttpResponseStopPolling(content)
    return done_event(response, job, context["status"].announcement)


def done_event(response: HttpResponse, job: Job, text: str) -> HttpResponse:
    """Tell the page a job is over (lists refresh, the aria-live region announces it)."""
    return trigger_client_event(response, "pgbulk-done",
                                {"job": str(job.id), "status": job.status, "text": text})


def variant_of(request: HttpRequest) -> str:
    variant = request.GET.get("view", "modal")
    return variant if variant in VARIANTS else "modal"


@never_cache
@login_required
@require_GET
def job_progress(request: HttpRequest, job_id) -> HttpResponse:
    return render_progress(request, get_visible_job(request.user, job_id), variant_of(request))


@never_cache
@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id) -> HttpResponse:
    job = get_visible_job(request.user, job_id)
    if not can_cancel(request.user, job):
        raise PermissionDenied(_("You may not cancel this job."))
    job.cancel(by=request.user)
    if wants_json(request):
        return JsonResponse(public_progress(
            progress.snapshot(job), job, can_view_records(request.user, job.model)))
    if htmx(request):
        return render_progress(request, job, variant_of(request))
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
            target, {request.get_host()}, request.is_secure()):
        return HttpResponseRedirect(target)  # a path, never a view name to reverse
    return redirect("pgbulk:job-detail", job_id=job.id)


@never_cache
@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    return render(request, "pgbulk/job_list.html", dashboard_context(request))


@never_cache
@login_required
@require_GET
def job_detail(request: HttpRequest, job_id) -> HttpResponse:
    job = get_visible_job(request.user, job_id)
    context = progress_context(request, job, "detail")
    user: Any = request.user
    readable = context["records_readable"]
    skipped = record_errors.count(job, skipped=True) if job.skipped_count else 0
    context.update({
        "operation": describe.operation(job),
        "selection": describe.selection(job),
        "errors": record_errors.page(job, request.GET.get("errors_page"), links=user.is_staff)
        if readable and context["errors_count"] else None,
        "skipped_count": skipped,
        "skipped": record_errors.page(job, request.GET.get("skipped_page"),
                                      links=user.is_staff, skipped=True)
        if readable and skipped else None,
        "retention_days": f"{pgbulk_settings.CHANGE_RETENTION:g}",
        **change_views.detail_context(request, job),
    })
    return render(request, "pgbulk/job_detail.html", context)


def render_compact(request: HttpRequest, job: Job) -> str:
    """A job's one-line progress (list banners), as HTML."""
    return render_to_string("pgbulk/progress.html", progress_context(request, job, "compact"),
                            request)


@never_cache
@login_required
@require_GET
def job_errors_csv(request: HttpRequest, job_id) -> StreamingHttpResponse:
    job = get_visible_job(request.user, job_id)
    if not can_view_records(request.user, job.model):
        raise PermissionDenied(_("You may not view the records of this job."))
    response = StreamingHttpResponse(record_errors.csv_lines(job),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.id}-errors.csv"'
    return response

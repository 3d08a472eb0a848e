"""Job endpoints: progress (HTMX fragment or JSON), cancel, dashboard list and detail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from pgbulk import progress
from pgbulk.conf import pgbulk_settings
from pgbulk.models import Job, Progress, Status

HTMX_STOP_POLLING = 286


def visible_jobs(request: HttpRequest):
    jobs = Job.objects.select_related("user")
    user: Any = request.user  # authenticated: every view here requires a login
    return jobs if user.is_staff else jobs.filter(user=user)


def get_job(request: HttpRequest, job_id) -> Job:
    job = visible_jobs(request).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    return job


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_GET
def job_progress(request: HttpRequest, job_id) -> HttpResponse:
    return render_progress(request, get_job(request, job_id))


def render_progress(request: HttpRequest, job: Job) -> HttpResponse:
    """The progress fragment (HTMX: 286 once terminal) or JSON."""
    data = progress.snapshot(job)  # the job was just read
    if wants_json(request):
        return JsonResponse(data)
    errors = Paginator(job.errors, 20).get_page(request.GET.get("errors_page"))
    response = render(request, "pgbulk/progress.html", {"job": job, "p": data, "errors": errors})
    if job.is_terminal and request.headers.get("HX-Request"):
        response.status_code = HTMX_STOP_POLLING
        response["HX-Trigger"] = "pgbulk-done"  # lists refresh themselves
    return response


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id) -> HttpResponse:
    job = get_job(request, job_id)
    job.cancel()
    if wants_json(request):
        return JsonResponse(progress.snapshot(job))
    if request.headers.get("HX-Request"):
        return render_progress(request, job)
    return redirect("pgbulk:job-detail", job_id=job.id)


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = visible_jobs(request)
    status = request.GET.get("status", "")
    if status in Status.values:
        jobs = jobs.filter(status=status)
    elif status == "active":  # unfinished, or finished within CLEANUP_GRACE_PERIOD
        recent = timezone.now() - timedelta(seconds=int(pgbulk_settings.CLEANUP_GRACE_PERIOD))
        jobs = jobs.filter(Q(finished_at__isnull=True) | Q(finished_at__gte=recent))
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))
    live = dict(Progress.objects.filter(job_id__in=[j.id for j in page]).values_list(
        "job_id", "done"))
    now = timezone.now()
    for job in page:
        job.live_done = max(job.done, live.get(job.id, 0)) if not job.is_terminal else job.done
        end = job.finished_at or now
        job.duration = (end - job.started_at).total_seconds() if job.started_at else None
    has_active = any(not job.is_terminal for job in page)
    return render(request, "pgbulk/job_list.html", {
        "page": page, "status": status, "has_active": has_active,
        "statuses": [("active", "Active and recent"), *Status.choices]})


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id) -> HttpResponse:
    job = get_job(request, job_id)
    return render(request, "pgbulk/job_detail.html", {"job": job, "p": progress.snapshot(job)})

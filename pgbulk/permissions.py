"""Who may see and cancel a job, and who may read the records a job names (invariant 11).

- A user sees and cancels their own jobs.
- Seeing other users' jobs needs ``pgbulk.view_job`` (or ``pgbulk.change_job``: as in
  Django's admin, change implies view); cancelling them needs ``pgbulk.change_job``.
- Error lists, their CSV and anything else showing record values need the view or
  change permission of the job's model.
- Superusers have every permission.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from pgbulk.models import Job


def sees_others(user: Any) -> bool:
    return user.has_perm("pgbulk.view_job") or user.has_perm("pgbulk.change_job")


def visible_jobs(user: Any) -> QuerySet[Job]:
    """The jobs ``user`` may see."""
    jobs = Job.objects.select_related("user", "cancelled_by")
    if not getattr(user, "is_authenticated", False):
        return jobs.none()
    return jobs if sees_others(user) else jobs.filter(user=user)


def get_visible_job(user: Any, job_id: Any) -> Job:
    """The job, or Http404 when it does not exist or ``user`` may not see it."""
    job = visible_jobs(user).filter(pk=job_id).first()
    if job is None:
        raise Http404(_("No such job."))
    return job


def can_see(user: Any, job: Job) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return job.user_id == user.pk or sees_others(user)


def can_cancel(user: Any, job: Job) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return job.user_id == user.pk or user.has_perm("pgbulk.change_job")


def can_view_records(user: Any, model_label: str) -> bool:
    """May ``user`` read records of ``model_label`` (view or change permission)?"""
    if not getattr(user, "is_authenticated", False):
        return False
    if not model_label:
        return True  # a job task with no records of its own names none
    try:
        opts = apps.get_model(model_label)._meta
    except (LookupError, ValueError):
        return bool(user.is_superuser)
    return user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}")


def public_progress(data: dict[str, Any], job: Job, readable: bool) -> dict[str, Any]:
    """What a user who may not view the model's records may read of a job's progress:
    no per-record errors, and no message that quotes a failing record."""
    if readable:
        return data
    return {**data, "errors": [], "message": public_message(job, data["message"], readable)}


def public_message(job: Job, message: str, readable: bool) -> str:
    """``message``, unless it may quote a record to a user who may not read the model's
    records: a failed job's may (a failing record, or the text of the error that stopped
    it, which pgbulk cannot vet). What was changed is said either way."""
    if readable or job.status != "failed":
        return message
    if job.failed_count or job.errors:
        return _("Records failed; you may not see them.")
    if not job.done:
        return _("The job failed; you may not see why. Nothing was changed.")
    counts = {"done": f"{job.done:,}", "total": f"{job.total:,}"}
    if not job.total:  # a task that counted what it did, with no records of its own
        return _("The job failed; you may not see why. %(done)s records were processed."
                 ) % counts
    if job.kind == "delete":
        return _("The job failed; you may not see why. %(done)s of %(total)s records were "
                 "deleted.") % counts
    if job.kind == "update":
        return _("The job failed; you may not see why. %(done)s of %(total)s records were "
                 "changed.") % counts
    return _("The job failed; you may not see why. %(done)s of %(total)s records were "
             "processed.") % counts

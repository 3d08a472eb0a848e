"""What a list page shows about jobs: the user's active jobs on its model, and the rows
that running jobs hold (so coming back after a refresh, the back button or in a new tab
shows what is going on)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model

from pgbulk import locks
from pgbulk.models import Job, Status
from pgbulk.permissions import can_see

ACTIVE = (Status.QUEUED, Status.RUNNING)
#: Active jobs shown in a list page's banner.
BANNER_JOBS = 5


@dataclass(frozen=True)
class Hold:
    """A row reserved by an active job."""

    job_id: str
    owner: str
    visible: bool  # may the viewer open that job?


def model_labels(model: type[Model]) -> list[str]:
    """Labels of jobs on ``model``'s records: its own, and the model owning its key."""
    return sorted({model._meta.label, locks.lock_label(model)})


def active_jobs(user: Any, model: type[Model]) -> list[Job]:
    """The user's queued or running jobs on ``model``, oldest first."""
    if not getattr(user, "is_authenticated", False):
        return []
    jobs = Job.objects.select_related("user", "cancelled_by").filter(
        user=user, model__in=model_labels(model), status__in=ACTIVE)
    return list(jobs.order_by("created_at")[:BANNER_JOBS])


def reserved_rows(user: Any, model: type[Model], keys: Iterable[Any]) -> dict[str, Hold]:
    """``{str(key): Hold}`` for the given keys that an active job holds."""
    held_by = {str(key): job_id for key, job_id in locks.holders(model, list(keys))}
    username = get_user_model().USERNAME_FIELD
    jobs = Job.objects.select_related("user").filter(pk__in=set(held_by.values()),
                                                     status__in=ACTIVE).in_bulk()
    held: dict[str, Hold] = {}
    for key, job_id in held_by.items():
        job = jobs.get(job_id)
        if job is not None:
            owner = getattr(job.user, username, "") if job.user else ""
            held[key] = Hold(str(job_id), owner or "", can_see(user, job))
    return held

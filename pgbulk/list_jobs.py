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
from pgbulk.models import Job, Reservation, Status
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
    """``{object_pk text: Hold}`` for the given keys that an active job holds."""
    texts = [str(key) for key in keys]
    if not texts:
        return {}
    username = f"job__user__{get_user_model().USERNAME_FIELD}"
    rows = (Reservation.objects.filter(model=locks.lock_label(model), object_pk__in=texts,
                                       job__status__in=ACTIVE)
            .values_list("object_pk", "job_id", "job__user_id", username))
    held: dict[str, Hold] = {}
    for object_pk, job_id, owner_id, owner in rows:
        job = Job(id=job_id, user_id=owner_id)
        held[object_pk] = Hold(str(job_id), owner or "", can_see(user, job))
    return held

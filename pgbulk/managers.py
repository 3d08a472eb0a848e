"""AsyncManager: the seam users subclass to hook lifecycle events and check the set-up."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.urls import include, path

if TYPE_CHECKING:
    from pgbulk.models import Job

logger = logging.getLogger("pgbulk")


class AsyncManager:
    """Default manager: logs lifecycle events. Subclass and override :meth:`on_event`."""

    def __init__(self, config: dict | None = None) -> None:
        self.config = config or {}

    def on_event(self, job: Job, event: str) -> None:
        """Called after commit for create, progress, complete, fail, cancel and cleanup."""
        if event != "progress":
            logger.info("pgbulk: job %s %s (%s)", job.id, event, job.status)

    def validate_async_system(self) -> list[str]:
        """Problems that keep async jobs from running; an empty list when all is well."""
        from pgbulk.checks import async_system_problems

        return async_system_problems()

    @classmethod
    def get_urlpatterns(cls):
        """The pgbulk URLs, to add once to the project's urlpatterns."""
        return path("pgbulk/", include("pgbulk.urls"))

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PgbulkConfig(AppConfig):
    name = "pgbulk"
    verbose_name = _("Bulk jobs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import logging

        from pgbulk.job_tasks import ExpectedFailures

        logging.getLogger("procrastinate.worker").addFilter(ExpectedFailures())
        from pgbulk import (
            checks,  # noqa: F401  (registers the system checks)
            tasks,  # noqa: F401  (registers the bulk job tasks and the sweep)
        )

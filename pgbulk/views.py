"""BulkEditMixin: bulk edit and bulk delete for any list view with ``get_queryset()``.

The selection is resolved through the view's own ``get_queryset()`` (a user
edits only what the view shows): explicit ``pks`` from the page, or
``select_all`` = everything matching the list's current filters, less ``exclude``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.template.response import TemplateResponse
from django.utils.module_loading import import_string

import pgbulk
from pgbulk import progress
from pgbulk.conf import pgbulk_settings
from pgbulk.forms import BulkEditForm
from pgbulk.models import Job

ACTIONS = ("form", "edit", "confirm-delete", "delete", "task")


class SelectionError(Exception):
    """The posted selection cannot be used; the message says why."""


if TYPE_CHECKING:
    from django.views.generic.list import MultipleObjectMixin as _ListViewBase
else:
    _ListViewBase = object


class BulkEditMixin(_ListViewBase):
    bulk_fields: list[str] = []
    bulk_delete: bool = False
    bulk_async: bool = True
    bulk_min_async_records: int = 20
    bulk_async_conflict_checking: bool = True
    bulk_strategy: str = "save"
    bulk_atomic: bool = True
    async_manager_class_path: str | None = None
    async_manager_config: dict | None = None
    #: Job tasks offered on the selection: {key: (button label, job task or its name)}.
    bulk_tasks: dict[str, tuple[str, Any]] = {}

    request: HttpRequest

    # --- context for the list template -------------------------------------------------

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        filters = self.request.GET.copy()
        filters.pop("page", None)
        context["bulk"] = {
            "fields": self.bulk_fields,
            "delete": self.bulk_delete and self.bulk_permission("delete"),
            "edit": bool(self.bulk_fields) and self.bulk_permission("change"),
            "url": self.request.path,
            "querystring": filters.urlencode(),
            "matching": context["paginator"].count if context.get("paginator") else None,
            "tasks": [(key, label) for key, (label, _task) in self.bulk_tasks.items()]
            if self.bulk_permission("change") else [],
        }
        return context

    # --- the bulk endpoint: POST to the list URL --------------------------------------

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        action = request.POST.get("bulk_action", "")
        if action not in ACTIONS:
            return HttpResponseBadRequest("Unknown bulk action.")
        if action == "task" and request.POST.get("bulk_task") not in self.bulk_tasks:
            return HttpResponseBadRequest("Unknown task.")
        perm = "delete" if "delete" in action else "change"
        allowed = {"delete": self.bulk_delete, "confirm-delete": self.bulk_delete,
                   "task": True}.get(action, bool(self.bulk_fields))
        if not allowed or not self.bulk_permission(perm):
            raise PermissionDenied(f"You may not {perm} these records in bulk.")
        try:
            selection = self.bulk_selection()
        except SelectionError as error:
            return self.bulk_render("pgbulk/bulk_error.html", {"message": str(error)}, 400)
        handlers = {"form": self.bulk_form, "edit": self.bulk_edit,
                    "confirm-delete": self.bulk_confirm_delete,
                    "delete": self.bulk_delete_records, "task": self.bulk_run_task}
        return handlers[action](selection)

    def bulk_form(self, selection: QuerySet) -> HttpResponse:
        form = BulkEditForm(self.bulk_model(), self.bulk_fields)
        return self.bulk_render("pgbulk/bulk_form.html", {"form": form, "count": selection.count()})

    def bulk_edit(self, selection: QuerySet) -> HttpResponse:
        form = BulkEditForm(self.bulk_model(), self.bulk_fields, data=self.request.POST)
        count = selection.count()
        if not form.is_valid():
            return self.bulk_render("pgbulk/bulk_form.html", {"form": form, "count": count}, 422)
        return self.bulk_launch(
            lambda: pgbulk.bulk_update(selection, form.values(), strategy=self.bulk_strategy,
                                       fields=self.bulk_fields, **self.bulk_options()),
            form=form, count=count,
        )

    def bulk_confirm_delete(self, selection: QuerySet) -> HttpResponse:
        return self.bulk_render("pgbulk/bulk_delete.html", {"count": selection.count()})

    def bulk_delete_records(self, selection: QuerySet) -> HttpResponse:
        return self.bulk_launch(lambda: pgbulk.bulk_delete(selection, **self.bulk_options()))

    def bulk_run_task(self, selection: QuerySet) -> HttpResponse:
        _label, task = self.bulk_tasks[self.request.POST["bulk_task"]]
        return self.bulk_launch(lambda: self.get_async_manager().launch(
            task, lock=selection, user=self.request.user,
            run="auto" if self.bulk_async else "sync"))

    def bulk_launch(self, start, form: BulkEditForm | None = None, count: int = 0) -> HttpResponse:
        try:
            job = start()
        except pgbulk.ConflictError as conflict:
            jobs = Job.objects.in_bulk([c["job_id"] for c in conflict.conflicts])
            rows = [{**c, "job": jobs.get(c["job_id"])} for c in conflict.conflicts]
            return self.bulk_render("pgbulk/conflict.html", {"conflicts": rows}, 409)
        except pgbulk.BulkValidationError as invalid:
            if form is None:
                message = str(invalid)
                return self.bulk_render("pgbulk/bulk_error.html", {"message": message}, 422)
            form.add_validation_errors(invalid.errors)
            return self.bulk_render("pgbulk/bulk_form.html", {"form": form, "count": count}, 422)
        response = self.bulk_render("pgbulk/bulk_started.html", {"job": job, "p": progress.snapshot(job)})
        if job.is_terminal:
            response["HX-Trigger"] = "pgbulk-done"
        return response

    # --- helpers ------------------------------------------------------------------------

    def bulk_model(self):
        return self.get_queryset().model

    def bulk_permission(self, action: str) -> bool:
        opts = self.bulk_model()._meta
        return self.request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")

    def bulk_options(self) -> dict[str, Any]:
        return {
            "user": self.request.user,
            "run": "auto" if self.bulk_async else "sync",
            "atomic": self.bulk_atomic,
            "conflict_checking": self.bulk_async_conflict_checking,
            "min_async_records": self.bulk_min_async_records,
            "manager": self.async_manager_class_path,
        }

    def bulk_selection(self) -> QuerySet:
        """The selected records, through ``get_queryset()`` with the list's filters."""
        post = self.request.POST
        self.request.GET = QueryDict(post.get("bulk_querystring", ""))
        queryset = self.get_queryset()
        if post.get("select_all") == "1":
            excluded = self.bulk_keys(post.getlist("exclude"))
            selection = queryset.exclude(pk__in=excluded) if excluded else queryset
            if not selection.exists():
                raise SelectionError("No records match the current filters.")
            return selection
        keys = self.bulk_keys(post.getlist("pks"))
        if not keys:
            raise SelectionError("Select at least one record.")
        found = queryset.filter(pk__in=keys).order_by().values_list("pk", flat=True).count()
        if found != len(keys):
            raise SelectionError(
                f"{len(keys) - found} of the {len(keys)} selected records are not in this "
                "list any more (changed or filtered out); nothing was changed.")
        return queryset.filter(pk__in=keys)

    def bulk_keys(self, raw: list[str]) -> set[Any]:
        to_python = self.bulk_model()._meta.pk.to_python
        try:
            return {to_python(value) for value in raw if value != ""}
        except ValidationError:
            raise SelectionError("The selection holds an invalid record key.") from None

    def bulk_render(self, template: str, context: dict, status: int = 200) -> HttpResponse:
        context = {"bulk_url": self.request.path, "view": self, **context}
        return TemplateResponse(self.request, template, context, status=status).render()

    def get_async_manager(self):
        """The AsyncManager of this view (``async_manager_class_path`` or the default)."""
        path = self.async_manager_class_path or pgbulk_settings.ASYNC_MANAGER_DEFAULT
        return import_string(path)(self.async_manager_config)

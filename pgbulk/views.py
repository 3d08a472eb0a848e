"""BulkEditMixin: bulk edit and bulk delete for any list view with ``get_queryset()``.

The selection is resolved through the view's own ``get_queryset()`` (a user
edits only what the view shows): explicit ``pks`` from the page, or
``select_all`` = everything matching the list's current filters, less ``exclude``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_htmx.http import retarget

import pgbulk
from pgbulk import list_jobs
from pgbulk.change_views import conflict_rows
from pgbulk.conf import pgbulk_settings
from pgbulk.deletion import not_deletable_by, summarize
from pgbulk.describe import number
from pgbulk.exceptions import ConflictEntry
from pgbulk.forms import BulkEditForm
from pgbulk.job_views import done_event, progress_context, render_compact
from pgbulk.permissions import can_view_records
from pgbulk.previews import preview_form

ACTIONS = ("form", "preview", "edit", "confirm-delete", "delete", "confirm-task", "task")


class SelectionError(Exception):
    """The posted selection cannot be used; the message says why."""


if TYPE_CHECKING:
    from django.views.generic.list import MultipleObjectMixin as _ListViewBase
else:
    _ListViewBase = object


class BulkEditMixin(_ListViewBase):
    bulk_fields: list[str] = []
    #: Relations of bulk_fields edited by key in a text box, not a select of every record.
    bulk_raw_id_fields: list[str] = []
    bulk_delete: bool = False
    bulk_async: bool = True
    bulk_min_async_records: int = 20
    bulk_async_conflict_checking: bool = True
    bulk_strategy: str = "save"
    bulk_validation: str = "changed"
    bulk_atomic: bool = True
    async_manager_class_path: str | None = None
    async_manager_config: dict | None = None
    #: Job tasks offered on the selection: {key: (button label, job task or its name)}.
    bulk_tasks: dict[str, tuple[str, Any]] = {}
    bulk_excluded: int = 0  # per request: the excluded records the filters matched

    request: HttpRequest

    # --- context for the list template -------------------------------------------------

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        filters = self.request.GET.copy()
        filters.pop("page", None)
        model = self.bulk_model()
        user = self.request.user
        keys = [obj.pk for obj in context.get("object_list") or []]
        context["bulk"] = {
            "fields": self.bulk_fields,
            "delete": self.bulk_delete and self.bulk_permission("delete"),
            "edit": bool(self.bulk_fields) and self.bulk_permission("change"),
            "url": self.request.path,
            "querystring": filters.urlencode(),
            "matching": context["paginator"].count if context.get("paginator") else None,
            "tasks": [(key, label) for key, (label, _task) in self.bulk_tasks.items()]
            if self.bulk_permission("change") else [],
            "active_jobs": [render_compact(self.request, job)
                            for job in list_jobs.active_jobs(user, model)],
            "reserved": list_jobs.reserved_rows(user, model, keys),
        }
        return context

    # --- the bulk endpoint: POST to the list URL --------------------------------------

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        action = request.POST.get("bulk_action", "")
        if action not in ACTIONS:
            return self.bulk_error(_("Unknown bulk action."), 400)
        if "task" in action and request.POST.get("bulk_task") not in self.bulk_tasks:
            return self.bulk_error(_("Unknown task."), 400)
        perm = "delete" if "delete" in action else "change"
        allowed = {"delete": self.bulk_delete, "confirm-delete": self.bulk_delete,
                   "task": True, "confirm-task": True}.get(action, bool(self.bulk_fields))
        if not allowed or not self.bulk_permission(perm):
            message = (_("You may not delete these records.") if perm == "delete"
                       else _("You may not change these records."))
            return self.bulk_error(message, 403)
        try:
            selection = self.bulk_selection()
        except SelectionError as error:
            return self.bulk_error(str(error), 400)
        handlers = {"form": self.bulk_form, "preview": self.bulk_preview, "edit": self.bulk_edit,
                    "confirm-delete": self.bulk_confirm_delete,
                    "delete": self.bulk_delete_records, "confirm-task": self.bulk_confirm_task,
                    "task": self.bulk_run_task}
        return handlers[action](selection)

    def bulk_edit_form(self, data: Any = None) -> BulkEditForm:
        return BulkEditForm(self.bulk_model(), self.bulk_fields, data=data,
                            raw_id_fields=self.bulk_raw_id_fields)

    def bulk_form(self, selection: QuerySet) -> HttpResponse:
        form = self.bulk_edit_form()
        return self.bulk_render("pgbulk/bulk_form.html", {"form": form, "count": selection.count()})

    def bulk_preview(self, selection: QuerySet) -> HttpResponse:
        """What Apply would do (``pgbulk.preview``), shown under the form; writes nothing.

        Invalid values answer 422 with the form, swapped in place of the whole form.
        """
        form = self.bulk_edit_form(self.request.POST)
        data = preview_form(form, selection, fields=self.bulk_fields,
                            validation=self.bulk_validation, strategy=self.bulk_strategy,
                            user=self.request.user)
        if data is not None:
            readable = can_view_records(self.request.user, self.bulk_model()._meta.label)
            held = self.bulk_conflicts(data["held"]) if self.bulk_async_conflict_checking else []
            return self.bulk_render("pgbulk/bulk_preview.html",
                                    {"preview": data, "readable": readable,
                                     "atomic": self.bulk_atomic, "held": held})
        response = self.bulk_render("pgbulk/bulk_form.html",
                                    {"form": form, "count": selection.count()}, 422)
        return retarget(response, "#pgbulk-modal-body")

    def bulk_edit(self, selection: QuerySet) -> HttpResponse:
        form = self.bulk_edit_form(self.request.POST)
        count = selection.count()
        if not form.is_valid():
            return self.bulk_render("pgbulk/bulk_form.html", {"form": form, "count": count}, 422)
        return self.bulk_launch(
            lambda: pgbulk.bulk_update(selection, form.values(), strategy=self.bulk_strategy,
                                       validation=self.bulk_validation,
                                       fields=self.bulk_fields, **self.bulk_options(count)),
            form=form, count=count,
        )

    def bulk_confirm_delete(self, selection: QuerySet) -> HttpResponse:
        if refused := self.bulk_cascade_refusal(selection):
            return refused
        return self.bulk_render("pgbulk/bulk_delete.html", {
            "deletion": summarize(selection), "atomic": self.bulk_atomic,
            "model": self.bulk_model()._meta})

    def bulk_delete_records(self, selection: QuerySet) -> HttpResponse:
        if refused := self.bulk_cascade_refusal(selection):
            return refused
        count = selection.count()
        return self.bulk_launch(lambda: pgbulk.bulk_delete(selection, **self.bulk_options(count)))

    def bulk_cascade_refusal(self, selection: QuerySet) -> HttpResponse | None:
        """403 if the delete would also remove records the user may not delete (parents
        of a multi-table child, cascades), as the admin refuses it; else None."""
        forbidden = not_deletable_by(self.request.user, selection)
        if not forbidden:
            return None
        return self.bulk_error(_("You may not delete these records: deleting them also "
                                 "deletes %(models)s, which you may not delete.")
                               % {"models": ", ".join(forbidden)}, 403)

    def bulk_confirm_task(self, selection: QuerySet) -> HttpResponse:
        key = self.request.POST["bulk_task"]
        return self.bulk_render("pgbulk/bulk_task.html", {
            "task_key": key, "label": self.bulk_tasks[key][0], "count": selection.count(),
            "model": self.bulk_model()._meta})

    def bulk_run_task(self, selection: QuerySet) -> HttpResponse:
        label, task = self.bulk_tasks[self.request.POST["bulk_task"]]
        context = {**self.bulk_origin(selection.count()), "label": str(label)}
        return self.bulk_launch(lambda: self.get_async_manager().launch(
            task, lock=selection, user=self.request.user, context=context,
            run="auto" if self.bulk_async else "sync"))

    def bulk_launch(self, start, form: BulkEditForm | None = None, count: int = 0) -> HttpResponse:
        try:
            job = start()
        except pgbulk.ConflictError as conflict:
            return self.bulk_render("pgbulk/conflict.html",
                                    {"conflicts": self.bulk_conflicts(conflict.conflicts)}, 409)
        except pgbulk.BulkValidationError as invalid:
            if form is None:
                return self.bulk_error(str(invalid), 422)
            form.add_validation_errors(invalid.errors)
            return self.bulk_render("pgbulk/bulk_form.html", {"form": form, "count": count}, 422)
        context = progress_context(self.request, job, "modal")
        response = self.bulk_render("pgbulk/bulk_started.html", context)
        if job.is_terminal:
            done_event(response, job, context["status"].announcement)
        return response

    def bulk_conflicts(self, conflicts: list[ConflictEntry]) -> list[dict[str, Any]]:
        """Each blocking job with what it is; a link only if the viewer may see it."""
        return conflict_rows(self.request.user, conflicts)

    # --- helpers ------------------------------------------------------------------------

    def bulk_model(self):
        return self.get_queryset().model

    def bulk_permission(self, action: str) -> bool:
        opts = self.bulk_model()._meta
        return self.request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")

    def bulk_options(self, count: int) -> dict[str, Any]:
        return {
            "user": self.request.user,
            "run": "auto" if self.bulk_async else "sync",
            "atomic": self.bulk_atomic,
            "conflict_checking": self.bulk_async_conflict_checking,
            "min_async_records": self.bulk_min_async_records,
            "manager": self.async_manager_class_path,
            "context": self.bulk_origin(count),
        }

    def bulk_origin(self, count: int) -> dict[str, Any]:
        """Where a job comes from, kept with it for its pages (``params["context"]``)."""
        post = self.request.POST
        select_all = post.get("select_all") == "1"
        return {"source": "list", "list_url": self.request.path,
                "filters": self.bulk_querystring(), "select_all": select_all,
                "selected": count,
                "excluded": self.bulk_excluded if select_all else 0}

    def bulk_querystring(self) -> str:
        """The list's filters: the toolbar's ``bulk_querystring``, else the query string of
        the URL posted to (a script posting to ``/?status=new`` means those records)."""
        post = self.request.POST
        if "bulk_querystring" in post:
            return post["bulk_querystring"]
        return self.request.GET.urlencode()

    def bulk_selection(self) -> QuerySet:
        """The selected records, through ``get_queryset()`` with the list's filters."""
        post = self.request.POST
        self.request.GET = QueryDict(self.bulk_querystring())
        queryset = self.get_queryset()
        if post.get("select_all") == "1":
            excluded = self.bulk_keys(post.getlist("exclude"))
            selection = queryset.exclude(pk__in=excluded) if excluded else queryset
            # the excluded records the filters did match (others were never selected)
            self.bulk_excluded = queryset.filter(pk__in=excluded).count() if excluded else 0
            if not selection.exists():
                raise SelectionError(_("No records match the current filters."))
            return selection
        keys = self.bulk_keys(post.getlist("pks"))
        if not keys:
            raise SelectionError(_("Select at least one record."))
        found = queryset.filter(pk__in=keys).order_by().values_list("pk", flat=True).count()
        if found != len(keys):
            missing = len(keys) - found
            raise SelectionError(ngettext(
                "%(missing)s of the %(selected)s selected records is not in this list any "
                "more (changed or filtered out).",
                "%(missing)s of the %(selected)s selected records are not in this list any "
                "more (changed or filtered out).", missing) % {
                    "missing": number(missing), "selected": number(len(keys))})
        return queryset.filter(pk__in=keys)

    def bulk_keys(self, raw: list[str]) -> set[Any]:
        to_python = self.bulk_model()._meta.pk.to_python
        try:
            return {to_python(value) for value in raw if value != ""}
        except ValidationError:
            raise SelectionError(_("The selection holds an invalid record key.")) from None

    def bulk_render(self, template: str, context: dict, status: int = 200) -> HttpResponse:
        context = {"bulk_url": self.request.path, "view": self, **context}
        return TemplateResponse(self.request, template, context, status=status).render()

    def bulk_error(self, message: str, status: int) -> HttpResponse:
        """A message fragment for the bulk modal (a 4xx that htmx swaps in, DEBUG or not)."""
        return self.bulk_render("pgbulk/bulk_error.html", {"message": message}, status)

    def get_async_manager(self):
        """The AsyncManager of this view (``async_manager_class_path`` or the default)."""
        path = self.async_manager_class_path or pgbulk_settings.ASYNC_MANAGER_DEFAULT
        return import_string(path)(self.async_manager_config)

"""Django admin: the Job history (read-only) and BulkEditAdminMixin, a bulk edit action."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse

import pgbulk
from pgbulk.forms import BulkEditForm
from pgbulk.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "model", "status", "done", "total", "failed_count", "user",
                    "created_at", "finished_at"]
    list_filter = ["status", "kind", "model"]
    search_fields = ["id", "model", "message"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin
else:
    _AdminBase = object


class BulkEditAdminMixin(_AdminBase):
    """Adds "Bulk edit selected ..." to a ModelAdmin's actions (async with progress)."""

    bulk_fields: list[str] = []
    bulk_async: bool = True
    bulk_min_async_records: int = 20
    bulk_async_conflict_checking: bool = True
    bulk_strategy: str = "save"
    bulk_atomic: bool = True

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        if self.bulk_fields and self.has_change_permission(request):
            action = BulkEditAdminMixin.pgbulk_bulk_edit
            actions["pgbulk_bulk_edit"] = (
                action, "pgbulk_bulk_edit",
                f"Bulk edit selected {self.model._meta.verbose_name_plural}")
        return actions

    def pgbulk_bulk_edit(self, request: HttpRequest, queryset):
        applying = "pgbulk_apply" in request.POST
        form = BulkEditForm(self.model, self.bulk_fields, data=request.POST if applying else None)
        if applying and form.is_valid():
            try:
                job = pgbulk.bulk_update(
                    queryset, form.values(), user=request.user, fields=self.bulk_fields,
                    run="auto" if self.bulk_async else "sync", strategy=self.bulk_strategy,
                    atomic=self.bulk_atomic, conflict_checking=self.bulk_async_conflict_checking,
                    min_async_records=self.bulk_min_async_records,
                )
            except pgbulk.ConflictError as conflict:
                self.message_user(request, f"Nothing was changed. {conflict}", messages.ERROR)
                return None
            except pgbulk.BulkValidationError as invalid:
                form.add_validation_errors(invalid.errors)
            else:
                if not job.is_terminal:
                    return redirect("pgbulk:job-detail", job_id=job.id)
                level = messages.SUCCESS if job.status == "succeeded" else messages.ERROR
                self.message_user(request, job.message, level)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Bulk edit {self.model._meta.verbose_name_plural}",
            "opts": self.model._meta,
            "form": form,
            "count": queryset.count(),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "pgbulk/admin/bulk_edit.html", context,
                                status=422 if applying else 200)

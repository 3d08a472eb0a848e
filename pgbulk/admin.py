"""Django admin: the Job history (read-only), BulkEditAdminMixin (a bulk edit action) and
BulkHistoryAdminMixin (a record's History lists the bulk jobs that changed it).

The action stays in the admin: its form and its progress page extend the admin's base
template, with breadcrumbs and a link back to the changelist.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

import pgbulk
from pgbulk import changes, describe, progress, record_errors
from pgbulk.change_views import conflict_rows, job_links, undo_offer
from pgbulk.conf import pgbulk_settings
from pgbulk.forms import BulkEditForm
from pgbulk.job_views import progress_context
from pgbulk.models import Job
from pgbulk.permissions import (
    can_see,
    can_view_records,
    get_visible_job,
    public_message,
    visible_jobs,
)
from pgbulk.previews import preview_form

#: Errors the admin pages list before linking to the job's page.
ADMIN_ERRORS = 20


def job_page_context(request: HttpRequest, job: Job) -> dict[str, Any]:
    """Progress, operation, selection and the first errors of a job, for admin pages."""
    context = progress_context(request, job, "detail")
    context.update({"operation": describe.operation(job), "selection": describe.selection(job)})
    if context["records_readable"] and context["errors_count"]:
        context["first_errors"] = record_errors.first(job, ADMIN_ERRORS, links=True)
    return context


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only, whatever permissions a user has; each user sees the jobs they may see."""

    list_display = ["summary", "status_text", "user", "created_at", "finished_at"]
    list_filter = ["status", "kind", "model"]
    # Every column but the raw error summary (errors show below, to those who may read them).
    # The undone job by what it did, not by Job.__str__ ("update library.Book (...)").
    readonly_fields = [f.name if f.name != "undo_of" else "undoes"
                       for f in Job._meta.fields if f.name != "errors"]
    fields = tuple(readonly_fields)
    change_form_template = "admin/pgbulk/job/change_form.html"

    class Media:
        css = {"all": ["pgbulk/pgbulk.css"]}
        js = ["django_htmx/htmx-2.min.js", "pgbulk/pgbulk.js"]

    @admin.display(description=gettext_lazy("job"))
    def summary(self, job: Job) -> str:
        return describe.summary(job)

    @admin.display(description=gettext_lazy("undo of"))
    def undoes(self, job: Job) -> str:
        undone = job.undo_of
        if undone is None:
            return "-"
        return f"{describe.summary(undone)} ({undone.get_status_display().lower()})"

    @admin.display(description=gettext_lazy("message"))
    def public_message(self, job: Job) -> str:
        return public_message(job, job.message, readable=False)

    @admin.display(description=gettext_lazy("params"))
    def public_params(self, job: Job) -> str:
        return json.dumps(describe.redacted_params(job), indent=2, ensure_ascii=False)

    def get_fields(self, request: HttpRequest, obj: Job | None = None) -> Any:
        """The message and params as the job pages show them: a failing record's values,
        and the new values of fields left out of the change log, only to a user who may
        read the job's records."""
        hide = obj is not None and not can_view_records(request.user, obj.model)
        public = {"message": "public_message", "params": "public_params"} if hide else {}
        return [public.get(name, name) for name in self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> Any:
        return self.get_fields(request, obj)

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        """No filtering by what quotes failing records or values (``?message__icontains=``)
        except for superusers: it would tell what the page hides."""
        hidden = lookup.split("__")[0] in {"message", "errors", "params"}
        if hidden and not getattr(getattr(request, "user", None), "is_superuser", False):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        """Messages quote failing records: only a superuser (who may read them all) searches
        them."""
        return ["id", "model", *(["message"] if request.user.is_superuser else [])]

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_text(self, job: Job) -> str:
        """The status, and for a running job nobody runs any more, that its worker was
        lost (as the job pages say; the sweep resumes or ends it)."""
        if job.status == "running" and progress.probe(job, progress.primary(job))[0]:
            return (_("Running: process lost") if job.run_mode == "sync"
                    else _("Running: worker lost"))
        return job.get_status_display()

    def get_queryset(self, request: HttpRequest):
        return visible_jobs(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_staff", False))

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        if not getattr(request.user, "is_staff", False):
            return False
        return obj is None or can_see(request.user, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        job = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if job is not None:
            extra.update(job_page_context(request, job))
            extra.update(links=job_links(request.user, job), change_log=changes.state(job),
                         undo=undo_offer(request.user, job),
                         title=describe.summary(job), subtitle=None)  # not "View job"
        return super().change_view(request, object_id, form_url, extra)


if TYPE_CHECKING:
    _AdminBase = admin.ModelAdmin
else:
    _AdminBase = object


class BulkHistoryAdminMixin(_AdminBase):
    """A record's History page also lists the bulk jobs whose change log names it."""

    object_history_template = "admin/pgbulk/object_history.html"

    def history_view(self, request: HttpRequest, object_id: str,
                     extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            rows = changes.record_history(self.model, obj.pk)
            extra["pgbulk_history"] = [
                {"row": row, "visible": can_see(request.user, row.job),
                 # a job of a child model (an EBook's) also logs the child's fields
                 "values": can_view_records(request.user, row.job.model),
                 "kind": describe.kind_phrase(row.job)} for row in rows]
            extra["pgbulk_history_limit"] = changes.HISTORY_LIMIT
            kept = min(pgbulk_settings.CHANGE_RETENTION, pgbulk_settings.JOB_RETENTION)
            extra["pgbulk_retention_days"] = f"{kept:g}"  # a log goes with its job at the latest
        return super().history_view(request, object_id, extra)


class BulkEditAdminMixin(BulkHistoryAdminMixin):
    """Adds "Bulk edit selected ..." to a ModelAdmin's actions (async with progress), and
    the bulk jobs that changed a record to its History (BulkHistoryAdminMixin)."""

    bulk_fields: list[str] = []
    bulk_async: bool = True
    bulk_min_async_records: int = 20
    bulk_async_conflict_checking: bool = True
    bulk_strategy: str = "save"
    bulk_validation: str = "changed"
    bulk_atomic: bool = True

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        if self.bulk_fields and self.has_change_permission(request):
            action = BulkEditAdminMixin.pgbulk_bulk_edit
            actions["pgbulk_bulk_edit"] = (
                action, "pgbulk_bulk_edit",
                _("Bulk edit selected %(name)s") % {"name": self.model._meta.verbose_name_plural})
        return actions

    def get_urls(self):
        opts = self.model._meta
        view = self.admin_site.admin_view(self.pgbulk_job_view)
        return [path("pgbulk-job/<uuid:job_id>/", view,
                     name=f"{opts.app_label}_{opts.model_name}_pgbulk_job"),
                *super().get_urls()]

    def pgbulk_changelist_url(self) -> str:
        opts = self.model._meta
        return reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")

    def pgbulk_bulk_edit(self, request: HttpRequest, queryset):
        applying = "pgbulk_apply" in request.POST
        previewing = "pgbulk_preview" in request.POST
        form = BulkEditForm(self.model, self.bulk_fields,
                            data=request.POST if applying or previewing else None,
                            raw_id_fields=[*self.raw_id_fields, *self.autocomplete_fields])
        count = queryset.count()
        preview = self.pgbulk_preview(request, queryset, form) if previewing else None
        if applying and form.is_valid():
            try:
                job = pgbulk.bulk_update(
                    queryset, form.values(), user=request.user, fields=self.bulk_fields,
                    run="auto" if self.bulk_async else "sync", strategy=self.bulk_strategy,
                    validation=self.bulk_validation,
                    atomic=self.bulk_atomic, conflict_checking=self.bulk_async_conflict_checking,
                    min_async_records=self.bulk_min_async_records,
                    context=self.pgbulk_origin(request, count),
                )
            except pgbulk.ConflictError as conflict:
                self.message_user(request, self.pgbulk_conflict_text(conflict), messages.ERROR)
                return None
            except pgbulk.BulkValidationError as invalid:
                form.add_validation_errors(invalid.errors)
            else:
                opts = self.model._meta
                job_url = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}"
                                  f"_pgbulk_job", kwargs={"job_id": job.id})
                if not job.is_terminal:
                    return redirect(job_url)
                level = messages.SUCCESS if job.status == "succeeded" else messages.ERROR
                self.message_user(request, format_html('{} <a href="{}">{}</a>', job.message,
                                                       job_url, _("See the job")), level)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Bulk edit %(name)s") % {"name": self.model._meta.verbose_name_plural},
            "opts": self.model._meta,
            "form": form,
            "count": count,
            "changelist_url": self.pgbulk_changelist_url(),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "preview": preview,
            "held": conflict_rows(request.user, preview["held"])
            if preview and self.bulk_async_conflict_checking else [],
            "atomic": self.bulk_atomic,
            "readable": can_view_records(request.user, self.model._meta.label),
        }
        refused = applying or (previewing and preview is None)
        return TemplateResponse(request, "pgbulk/admin/bulk_edit.html", context,
                                status=422 if refused else 200)

    def pgbulk_preview(self, request: HttpRequest, queryset, form: BulkEditForm):
        """What Apply would do (``pgbulk.preview``), or None (errors shown on the form)."""
        return preview_form(form, queryset, fields=self.bulk_fields,
                            validation=self.bulk_validation, strategy=self.bulk_strategy,
                            user=request.user)

    def pgbulk_origin(self, request: HttpRequest, count: int) -> dict[str, Any]:
        select_all = request.POST.get("select_across") == "1"
        return {"source": "admin", "list_url": self.pgbulk_changelist_url(),
                "filters": request.GET.urlencode(), "select_all": select_all,
                "selected": count, "excluded": 0}

    def pgbulk_conflict_text(self, conflict: pgbulk.ConflictError) -> str:
        ids = [c["job_id"] for c in conflict.conflicts]
        jobs = {str(job.id): job for job in Job.objects.filter(pk__in=ids)}
        parts = []
        for c in conflict.conflicts:
            job = jobs.get(str(c["job_id"]))
            parts.append(_("%(count)s held by %(what)s of %(user)s (%(status)s)") % {
                "count": c["count"], "what": describe.kind_phrase(job) if job else _("a job"),
                "user": c.get("user") or _("an unknown user"),
                "status": job.get_status_display().lower() if job else "?"})
        return _("Nothing was changed: records are being changed by another job: %(jobs)s.") % {
            "jobs": "; ".join(parts)}

    def pgbulk_job_view(self, request: HttpRequest, job_id) -> HttpResponse:
        """The admin's progress page of a bulk edit launched from this changelist."""
        job = get_visible_job(request.user, job_id)
        context = {
            **self.admin_site.each_context(request), **job_page_context(request, job),
            "title": describe.summary(job), "opts": self.model._meta,
            "changelist_url": self.pgbulk_changelist_url(),
        }
        return TemplateResponse(request, "pgbulk/admin/job_progress.html", context)

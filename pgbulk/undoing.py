"""Undo: a new update job that puts back the before-values an update job logged.

It goes through the same launch path as any job (conflict refusal, progress, cancel).
A record that changed since the undone job (its values now differ from what that job
left) is not overwritten: it is skipped and named. An undo logs its own changes, so an
undo of an undo redoes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.models import F, JSONField, Model, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now
from django.utils.translation import gettext as _

from pgbulk import locks
from pgbulk.changelog import ChangeLog, expired_message
from pgbulk.changes import Reader
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import BulkValidationError, ErrorEntry
from pgbulk.launch import DEFAULT_MIN_ASYNC_RECORDS, launch
from pgbulk.models import Change, Job, Status
from pgbulk.sqlfiles import query
from pgbulk.strategies import RECORD_ERRORS, UpdateOperation, name_of


def floats(value: Any) -> Any:
    """``value`` with its Decimals (JSON numbers with a fraction, as the log reads them)
    as floats, which JSONField writes back as they were."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [floats(item) for item in value]
    if isinstance(value, dict):
        return {key: floats(item) for key, item in value.items()}
    return value


def undo(job: Job, *, user: Any = None, run: str = "auto", parallel: int | None = None) -> Job:
    """Launch the job that undoes ``job`` (a finished update job with a change log).

    ``user`` must have the model's change permission and own ``job`` or have
    ``pgbulk.change_job`` (PermissionDenied); a job that cannot be undone, or whose
    records have all changed since or gone, raises BulkValidationError saying why;
    ConflictError as any launch.
    """
    if user is not None and not may_undo(user, job):
        raise PermissionDenied(_("You may not undo this job."))
    reason = why_not_undoable(job)
    if reason:
        raise BulkValidationError({"__all__": [reason]})
    if not forecast(job, sample_size=0).put_back:  # one count over the log
        raise BulkValidationError({"__all__": [_(
            "Nothing to put back: every record this job changed has changed since or no "
            "longer exists, and an undo leaves changed records as they are.")]})
    model = apps.get_model(job.model)
    params = undo_params(job)
    atomic = bool(job.params.get("atomic", True))
    return launch("update", "pgbulk.tasks.bulk_update_task", logged_records(job, model), params,
                  user=user, run=run, atomic=atomic, conflict_checking=True,
                  min_async_records=DEFAULT_MIN_ASYNC_RECORDS, parallel=parallel,
                  chunk_size=(pgbulk_settings.QUERYSET_CHUNK_SIZE
                              if params["strategy"] == "queryset" else pgbulk_settings.CHUNK_SIZE),
                  undo_of=job)


def undo_params(job: Job) -> dict[str, Any]:
    """The params of the job that undoes ``job`` (what it puts back, and how)."""
    spec = job.params.get("undo_spec") or job.params["change_log"]
    return {
        "values": {}, "undo_of": str(job.id), "undo_spec": spec,
        "redo": bool(job.params.get("undo_of")) and not job.params.get("redo"),
        "change_log": spec if pgbulk_settings.RECORD_CHANGES else None,
        "strategy": job.params.get("strategy", "save"),
        "validation": job.params.get("validation", "full"),
        "manager": job.params.get("manager"), "context": {"undo_of": str(job.id)},
    }


def logged_records(job: Job, model: type[Model]):
    """The records ``job``'s change log names (those it changed)."""
    sql = query("change_log_keys").replace("{key_type}", locks.key_type(model, job._state.db or "default"))
    return model._base_manager.using(job._state.db).filter(pk__in=RawSQL(sql, [str(job.id)]))


def may_undo(user: Any, job: Job) -> bool:
    """The model's change permission, and the job is the user's own or ``pgbulk.change_job``."""
    if not getattr(user, "is_authenticated", False) or not job.model:
        return False
    try:
        opts = apps.get_model(job.model)._meta
    except LookupError:
        return False
    own = job.user_id == user.pk or user.has_perm("pgbulk.change_job")
    return own and user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def why_not_undoable(job: Job) -> str:
    """Why ``job`` cannot be undone ("" if it can)."""
    if job.kind == "delete":
        return _("Deleted records cannot be brought back.")
    if job.kind != "update":
        return _("Only bulk updates can be undone.")
    if job.status not in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        return _("The job has not finished yet.")
    if job.change_log == "expired":
        return expired_message()
    spec = job.params.get("undo_spec") or job.params.get("change_log")
    if job.change_log != "kept" or not spec:
        if "change_log" not in job.params:
            return _("It ran before this version of pgbulk kept change logs.")
        return _("It ran without a change log (RECORD_CHANGES was off).")
    try:
        model = apps.get_model(job.model)
    except (LookupError, ValueError):
        return _("Its model %(model)s no longer exists.") % {"model": job.model}
    missing = [name for name in (*spec.get("fields", []), *spec.get("m2m", []))
               if name not in {f.attname for f in model._meta.concrete_fields}
               | {f.name for f in model._meta.many_to_many}]
    if missing:
        return _("Its model no longer has the field %(fields)s, so those values cannot be "
                 "put back.") % {"fields": ", ".join(missing)}
    if spec.get("excluded"):
        reader = Reader(model)
        return _("Its change log leaves out %(fields)s (CHANGE_LOG_EXCLUDE, or a type undo "
                 "cannot restore), so those values cannot be put back.") % {
            "fields": ", ".join(reader.label(name) for name in spec["excluded"])}
    if has_work(job):
        return ""
    log = Change.objects.using(job._state.db).filter(job=job)
    if not log.exclude(after=F("before")).exists():
        return _("Nothing to undo: the job changed no record.")
    return _("None of the records it changed exist any more.")


def has_work(job: Job) -> bool:
    """Does ``job``'s log name a record an undo could put back (changed by the job, still
    there)? One EXISTS that stops at the first such record."""
    model = apps.get_model(job.model)
    using = job._state.db or "default"
    quote = connections[using].ops.quote_name
    sql = (query("undo_has_work").replace("{table}", quote(model._meta.db_table))
           .replace("{key}", quote(model._meta.pk.column))
           .replace("{key_type}", locks.key_type(model, using)))
    with connections[using].cursor() as cursor:
        cursor.execute(sql, {"job_id": str(job.id)})
        return bool(cursor.fetchone()[0])


@dataclass
class Forecast:
    """What an undo of a job would do now: records it would put back, records it would
    skip (changed since the job), records of the log that no longer exist."""

    put_back: int
    skipped: int
    gone: int
    #: The undo's per-record validation run on a sample of the records it would put back
    #: (as a preview's: ``sampled``, ``failed``, ``errors``); nothing sampled when the
    #: undo validates no record one by one (set-based, or many-to-many fields only).
    failures: dict[str, Any] = field(default_factory=lambda: {
        "sampled": 0, "failed": 0, "errors": []})


def forecast(job: Job, sample_size: int | None = None) -> Forecast:
    """Count, as the undo's plan decides, over the whole log (one statement: about
    0.45 s for 100k records, see docs/changes.md), and predict failures on a random
    sample of ``sample_size`` records (default PREVIEW_SAMPLE_SIZE)."""
    model = apps.get_model(job.model)
    spec = job.params.get("undo_spec") or job.params["change_log"]
    using = job._state.db or "default"
    sql, params = ChangeLog(job.id, model, spec, using).sql(logged_records(job, model))
    with connections[using].cursor() as cursor:
        cursor.execute(query("undo_forecast").replace("{snapshot}", sql), (*params, str(job.id)))
        put_back, skipped = cursor.fetchone()
    logged = Change.objects.using(using).filter(job=job).count()
    size = pgbulk_settings.PREVIEW_SAMPLE_SIZE if sample_size is None else sample_size
    failures = predicted_failures(job, size) if put_back else None
    return Forecast(put_back, skipped, logged - put_back - skipped,
                    **({"failures": failures} if failures else {}))


def predicted_failures(job: Job, size: int) -> dict[str, Any]:
    """The undo's own validation, in memory, on up to ``size`` random records it would
    put back (no write, no lock)."""
    using = job._state.db or "default"
    operation = UndoOperation(Job(kind="update", model=job.model, params=undo_params(job)),
                              using)
    if operation.strategy == "queryset" or not operation.fields or not size:
        return {"sampled": 0, "failed": 0, "errors": []}
    model = operation.model
    keys = list(logged_records(job, model).order_by("?").values_list("pk", flat=True)[:size])
    plan = operation.reader.plan(job.id, model._base_manager.using(using).filter(pk__in=keys))
    records = model._base_manager.using(using).in_bulk([pk for pk, *_ in plan])
    put_back = [(records[pk], {a: operation.value(a, before[a]) for a in operation.fields})
                for pk, _key, before, _after, same, _now in plan if same and pk in records]
    failed, errors = operation.would_fail(put_back)
    return {"sampled": len(put_back), "failed": failed, "errors": errors[:5]}


class UndoOperation(UpdateOperation):
    """Puts back, record by record, the before-values the undone job logged; a record
    whose values are no longer what that job left is skipped (see ``skipped``)."""

    def __init__(self, job: Job, using: str) -> None:
        super().__init__(job, using)
        spec = job.params["undo_spec"]
        self.undone = job.params["undo_of"]
        self.reader = ChangeLog(job.id, self.model, spec, using)
        self.fields, self.m2m_names = list(spec["fields"]), list(spec["m2m"])
        names = [self.model._meta.get_field(attname).name for attname in self.fields]
        concrete = self.model._meta.concrete_fields
        self.auto_now = [f for f in concrete if getattr(f, "auto_now", False)] if names else []
        self.update_fields = names + [f.name for f in self.auto_now if f.name not in names]
        self.unchanged = [f.name for f in concrete if f.name not in names]
        self.skipped: list[ErrorEntry] = []
        self.lock_kwargs = {} if self.m2m_names else {"no_key": True}  # see lock_links()

    @property
    def links_changed(self) -> list[str]:
        return self.m2m_names

    def apply(self, rows, *, per_record):
        self.check_constraints_at_once()
        chunk = self.chunk_queryset(rows)
        if self.strategy == "queryset":
            self.locked(lambda: self.lock_keys(chunk))
            records: dict[Any, Model] = {}
        else:
            records = {r.pk: r for r in self.locked(lambda: self.lock_with_links(chunk))}
        plan = self.reader.plan(self.undone, chunk)
        errors = self.unplanned(rows, {pk for pk, *_ in plan}, chunk)
        before = {pk: values for pk, _key, values, _after, same, _now in plan if same}
        self.skipped = self.skip_entries([p for p in plan if not p[4]], records)
        if not before:
            return 0, errors
        pks = sorted(before)
        if self.log:
            self.log.record_before(self.queryset(pks))
        if self.strategy == "queryset":
            done, errs = self.restore_set_based(pks, before, per_record)
        else:
            done, errs = self.each([records[pk] for pk in pks],
                                   lambda r: self.restore_one(r, before[r.pk]), per_record)
        if self.log:
            self.log.record_after(self.queryset(pks))
            self.log.drop([entry["pk"] for entry in errs])
        return done, errors + errs

    def unplanned(self, rows, planned: set[Any], chunk: QuerySet) -> list[ErrorEntry]:
        """Errors for the chunk's records the undone job's log has no row for: gone, or
        (the record is there) its log row is (the undone job's log was deleted)."""
        errors = self.missing(rows, planned)
        if errors:
            here = {str(pk) for pk in chunk.values_list("pk", flat=True)}
            for entry in errors:
                if entry["pk"] in here:
                    entry["message"] = ("Not restored: the change log of the undone job no "
                                        "longer holds this record (was that job deleted?).")
        return errors

    def value(self, attname: str, raw: Any) -> Any:
        field: Any = self.model._meta.get_field(attname)
        if isinstance(field, JSONField):
            return floats(raw)  # the log reads numbers as Decimal; JSON holds floats
        return field.to_python(raw)

    def restore_one(self, record: Model, before: dict[str, Any]) -> None:
        for attname in self.fields:
            setattr(record, attname, self.value(attname, before[attname]))
        if self.fields:
            self.validate(record)
            record.save(update_fields=self.update_fields)
        for name in self.m2m_names:
            getattr(record, name).set(before[name])

    def restore_set_based(self, pks: list[Any], before: dict[Any, dict],
                          per_record: bool) -> tuple[int, list[ErrorEntry]]:
        """One UPDATE per distinct set of before-values; on a failure, record by record."""
        groups: dict[str, list[Any]] = defaultdict(list)
        for pk in pks:
            groups[json.dumps(before[pk], sort_keys=True, default=str)].append(pk)
        try:
            with transaction.atomic(using=self.using):
                for group in groups.values():
                    self.restore_group(group, before[group[0]])
            return len(pks), []
        except RECORD_ERRORS:
            records = list(self.queryset(pks).order_by("pk"))
            return self.each(records, lambda r: self.restore_group([r.pk], before[r.pk]),
                             per_record)

    def restore_group(self, pks: list[Any], before: dict[str, Any]) -> None:
        values: dict[str, Any] = {a: self.value(a, before[a]) for a in self.fields}
        if values:
            self.queryset(pks).update(**values, **{f.attname: Now() for f in self.auto_now})
        for name in self.m2m_names:
            self.change_m2m_set_based(name, {"set": before[name]}, pks)

    def skip_entries(self, plan: list[tuple], records: dict[Any, Model]) -> list[ErrorEntry]:
        """Name each record left alone, with its values now and what the job left, in words
        (verbose names; related records by name, by key once deleted)."""
        if not plan:
            return []
        if not records:
            records = self.queryset([p[0] for p in plan]).in_bulk()
        reader = Reader(self.model)
        for _pk, _key, _before, after, _same, now in plan:
            reader.want(after, now)
        reader.fetch()
        entries: list[ErrorEntry] = []
        for pk, key, _before, after, _same, now in plan:
            differs = "; ".join(
                _('%(field)s is "%(now)s", the job left "%(after)s"') % {
                    "field": reader.label(name), "now": reader.phrase(name, now.get(name)),
                    "after": reader.phrase(name, after.get(name))}
                for name in sorted(set(after) | set(now)) if now.get(name) != after.get(name))
            entries.append({"pk": key, "record": name_of(records.get(pk)), "field": None,
                            "message": _("Changed since the undone job (%(differs)s): left "
                                         "as it is.") % {"differs": differs}})
        return entries

"""How one chunk of records is changed: update (save or queryset strategy) and delete."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.models import Model, ProtectedError, QuerySet, RestrictedError
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from pgbulk import locks
from pgbulk import values as values_mod
from pgbulk.changelog import ChangeLog
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import ErrorEntry, PgbulkError, RecordFailed, RecordRef
from pgbulk.locks import Row
from pgbulk.sqlfiles import query
from pgbulk.values import model_field

if TYPE_CHECKING:
    from pgbulk.models import Job

# What a record's failure is caught as. Control flow (JobInterrupted: cancel,
# fencing, shutdown) is not among them and always stops the job.
RECORD_ERRORS = (ValidationError, DatabaseError, ProtectedError, RestrictedError, PgbulkError)
#: Times a chunk's row locks are taken before a deadlock fails it (see Operation.locked).
LOCK_ATTEMPTS = 5
T = TypeVar("T")


def deadlock(error: BaseException) -> bool:
    """Did PostgreSQL break a deadlock by failing this statement (SQLSTATE 40P01)?"""
    return getattr(error.__cause__, "sqlstate", None) == "40P01"


def name_of(record: Any) -> str:
    """``str(record)``, or "" if the record cannot say (its __str__ failed)."""
    try:
        return str(record)[:300] if record is not None else ""
    except Exception:
        return ""


def describe(pk: Any, error: BaseException, record: Any = None) -> list[ErrorEntry]:
    """Error entries naming the record (and the field, when Django says which)."""
    base: RecordRef = {"pk": str(pk), "record": name_of(record)}
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        return [
            {**base, "field": None if field == "__all__" else field, "message": " ".join(msgs)}
            for field, msgs in error.message_dict.items()
        ]
    if isinstance(error, ValidationError):
        return [{**base, "field": None, "message": " ".join(error.messages)}]
    text = error.args[0] if isinstance(error, ProtectedError | RestrictedError) else str(error)
    return [{**base, "field": None, "message": str(text).strip()}]


class Operation:
    """Applies a job's change to chunks of primary keys, inside the caller's transaction."""

    #: Does the job run in transactions of its own (not inside its caller's)?
    owns_transactions = False
    lock_kwargs: dict[str, Any] = {"no_key": True}

    def __init__(self, job: Job, using: str) -> None:
        self.job = job
        self.using = using
        self.model: type[Model] = apps.get_model(job.model)
        # Called with the number of records processed so far in the open chunk.
        self.tick: Callable[[int], None] = lambda processed: None
        # Records the last chunk left alone on purpose (an undo's changed records).
        self.skipped: list[ErrorEntry] = []

    @property
    def chunk_size(self) -> int:
        # Fixed at launch, so that every runner of the job cuts the same chunks.
        return int(self.job.params.get("chunk_size") or pgbulk_settings.CHUNK_SIZE)

    def queryset(self, keys: list[Any]) -> QuerySet:
        return self.model._base_manager.using(self.using).filter(pk__in=keys)

    def chunk_queryset(self, rows: list[Row]) -> QuerySet:
        """The records of a chunk, selected through the lock table (no long IN lists)."""
        name = "chunk_span_keys" if locks.integer_keyed(self.model) else "chunk_keys"
        sql = query(name).replace("{key_type}", locks.key_type(self.model, self.using))
        subquery = RawSQL(sql, [str(self.job.id), rows[0][0], rows[-1][0]])
        return self.model._base_manager.using(self.using).filter(pk__in=subquery)

    def keys_of(self, rows: list[Row]) -> list[Any]:
        return locks.keys_of(rows, self.model._meta.pk.to_python)

    def locked(self, take: Callable[[], T]) -> T:
        """``take()`` a chunk's locks in a savepoint, again if PostgreSQL broke a deadlock
        by failing it (another transaction locking the same rows in the other order, such
        as Django's ``set()`` of a many-to-many field: links, then the record): the
        savepoint's rollback released this chunk's locks, so the other one could finish."""
        for attempt in range(1, LOCK_ATTEMPTS + 1):
            try:
                with transaction.atomic(using=self.using):
                    return take()
            except OperationalError as error:
                if attempt == LOCK_ATTEMPTS or not deadlock(error):
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def apply(self, rows: list[Row], *, per_record: bool) -> tuple[int, list[ErrorEntry]]:
        """Change the records of a chunk; return (how many changed, error entries).

        With ``per_record`` a failing record is rolled back alone and reported;
        without, the first failure raises RecordFailed.
        """
        raise NotImplementedError

    def missing(self, rows: list[Row], present: set[Any],
                message: str = "The record no longer exists.") -> list[ErrorEntry]:
        if len(present) == locks.record_count(rows):
            return []
        keys = self.keys_of(rows)
        return [{"pk": str(k), "record": "", "field": None, "message": message}
                for k in keys if k not in present]

    def each(self, records, change: Callable[[Any], None], per_record: bool):
        """Run ``change`` per record; with ``per_record`` in a savepoint each."""
        done, errors = 0, []
        for record in records:
            try:
                if per_record:
                    with transaction.atomic(using=self.using):
                        change(record)
                else:
                    change(record)
                done += 1
            except RECORD_ERRORS as error:
                entries = describe(record.pk, error, record)
                if not per_record:
                    raise RecordFailed(entries) from error
                errors.extend(entries)
            self.tick(done + len(errors))
        return done, errors


def related_loading(queryset: QuerySet) -> dict[str, Any]:
    """The selection's ``select_related`` and (string) ``prefetch_related`` lookups,
    stored with the job so the save strategy loads each chunk the same way."""
    select = queryset.query.select_related
    lookups = getattr(queryset, "_prefetch_related_lookups", ())
    return {
        "select_related": select if isinstance(select, dict) else bool(select),
        "prefetch_related": [lookup for lookup in lookups if isinstance(lookup, str)],
    }


class UpdateOperation(Operation):
    def __init__(self, job: Job, using: str) -> None:
        super().__init__(job, using)
        self.simple, self.m2m = values_mod.split(self.model, job.params["values"])
        changed = [model_field(self.model, n).name for n in job.params["values"]
                   if n not in self.m2m]
        fields = self.model._meta.concrete_fields
        # auto_now fields are written whenever the record is (as save() would).
        self.auto_now = [f for f in fields if getattr(f, "auto_now", False)] if changed else []
        self.update_fields = changed + [f.name for f in self.auto_now if f.name not in changed]
        self.unchanged = [f.name for f in fields if f.name not in changed]
        self.strategy = job.params.get("strategy", "save")
        # Jobs launched before the option existed validated fully.
        self.validation = job.params.get("validation", "full")
        self.loading = job.params.get("loading") or {}
        spec = job.params.get("change_log")
        self.log = ChangeLog(job.id, self.model, spec, using) if spec else None
        if self.m2m and self.log:
            self.lock_kwargs = {}  # FOR UPDATE: see lock_links()

    @property
    def links_changed(self) -> list[str]:
        """The many-to-many fields whose links lock_links() holds: those this operation
        changes, when it logs them (without a log nothing is told or undone from them)."""
        return list(self.m2m) if self.log else []

    def lock_links(self, pks: list[Any]) -> None:
        """Keep other transactions off the many-to-many links of the records ``pks`` (rows
        locked FOR UPDATE already) until this chunk commits: their links are locked (no
        unlinking), and a new link's foreign key check (KEY SHARE on the record) waits for
        the records' FOR UPDATE (of the parent's rows too, for a parent's field). Else a
        link another transaction added or removed while the chunk ran was logged (and
        undone) as this job's change. Call it inside locked()."""
        fields = [model_field(self.model, name) for name in self.links_changed]
        owners = {f.model._meta.concrete_model for f in fields}
        for owner in owners - {self.model._meta.concrete_model}:  # parents: once each
            rows = owner._base_manager.using(self.using).filter(pk__in=pks)
            list(rows.order_by("pk").select_for_update().values_list("pk"))
        for field in fields:
            through = field.remote_field.through
            source = through._meta.get_field(field.m2m_field_name()).attname
            links = through._base_manager.using(self.using).filter(**{f"{source}__in": pks})
            list(links.order_by("pk").select_for_update().values_list("pk"))

    @property
    def chunk_size(self) -> int:
        if self.job.params.get("chunk_size"):
            return super().chunk_size
        if self.strategy == "queryset":
            return pgbulk_settings.QUERYSET_CHUNK_SIZE
        return super().chunk_size

    @property
    def assignments(self) -> dict[str, Any]:
        """What the set-based UPDATE sets: the values, and the database's time in the
        auto_now fields (one value per statement)."""
        return {**self.simple, **{f.attname: Now() for f in self.auto_now}}


    def apply(self, rows, *, per_record):
        self.check_constraints_at_once()
        chunk = self.chunk_queryset(rows)
        if self.strategy == "queryset":
            return self.apply_set_based(rows, chunk, per_record)
        records = self.locked(lambda: self.lock_with_links(chunk))
        errors = self.missing(rows, {r.pk for r in records})
        if self.log:
            self.log.record_before(chunk)
        done, errs = self.each(records, self.save_one, per_record)
        if self.log:
            self.log.record_after(chunk)
            self.log.drop([entry["pk"] for entry in errs])
        return done, errors + errs

    def check_constraints_at_once(self) -> None:
        """Check deferrable constraints (Django's foreign keys) at each statement of this
        transaction, not at its commit: a related record deleted since fails the record
        that links to it, named, in its own savepoint. At commit it failed the chunk (or
        the job) as a whole, naming no record. Only in the job's own transactions
        (``owns_transactions``): a run inside the caller's transaction leaves its
        constraints as the caller has them."""
        if self.owns_transactions:
            with connections[self.using].cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def logged(self, pks: list[Any], change: Callable[[], None]) -> None:
        """``change()`` the records ``pks``, logging their values before and after."""
        if self.log:
            self.log.record_before(self.queryset(pks))
        change()
        if self.log:
            self.log.record_after(self.queryset(pks))

    def lock_with_links(self, chunk: QuerySet) -> list[Model]:
        """The chunk's records, loaded and locked, their links locked too."""
        records = list(self.locked_with_related(chunk))
        self.lock_links([r.pk for r in records])
        return records

    def lock_keys(self, records: QuerySet) -> list[Any]:
        """The keys of ``records``, locked with their links."""
        pks = list(records.select_for_update(**self.lock_kwargs).order_by("pk")
                   .values_list("pk", flat=True))
        self.lock_links(pks)
        return pks

    def locked_with_related(self, chunk: QuerySet) -> QuerySet:
        """The chunk's records row-locked, loaded with the selection's related lookups.

        Only the records' own rows are locked, never the select_related ones
        (multi-table inheritance needs its parents locked: no select_related then).
        """
        chunk = chunk.prefetch_related(*self.loading.get("prefetch_related", []))
        select = self.loading.get("select_related")
        if not select or self.model._meta.parents:
            return chunk.select_for_update(**self.lock_kwargs).order_by("pk")
        chunk = chunk.select_related(*([] if select is True else related_paths(select)))
        return chunk.select_for_update(**self.lock_kwargs, of=("self",)).order_by("pk")

    def apply_set_based(self, rows, chunk: QuerySet, per_record: bool) -> tuple[int, list[ErrorEntry]]:
        # Plain fields: one UPDATE, which takes the rows' FOR NO KEY UPDATE locks
        # itself. With M2M changes: lock the rows in key order first.
        try:
            with transaction.atomic(using=self.using):
                concrete: Any = self.model._meta.concrete_model
                one_table = not concrete._meta.parents
                if self.m2m or not self.simple or (self.log and not one_table):
                    pks = self.locked(lambda: self.lock_keys(chunk))
                    self.logged(pks, lambda: self.set_based(self.queryset(pks), pks))
                    changed = len(pks)
                elif self.log:
                    changed = self.update_logged(chunk, rows)
                else:
                    changed = chunk.update(**self.assignments)
            if changed == locks.record_count(rows):
                return changed, []
            present = set(chunk.values_list("pk", flat=True))
            return changed, self.missing(rows, present)
        except RECORD_ERRORS:
            # Name the failing records: apply one by one (in atomic mode the first
            # failure raises and everything is rolled back).
            pks = list(chunk.order_by("pk").values_list("pk", flat=True))
            records = list(self.queryset(pks).order_by("pk"))
            done, errs = self.each(records, self.set_based_one, per_record)
            return done, self.missing(rows, set(pks)) + errs

    def set_based_one(self, record: Model) -> None:
        """One record the set-based way, its row locked first (in the record's own step:
        a lock it cannot get fails that record only), so that what is logged before the
        change is what it changes."""
        self.locked(lambda: self.lock_keys(self.queryset([record.pk])))
        self.logged([record.pk], lambda: self.set_based(self.queryset([record.pk]),
                                                        [record.pk]))

    def update_logged(self, chunk: QuerySet, rows: list[Row]) -> int:
        """Update and log the chunk in one statement; if some of its records were not
        changed (gone, or changed by another writer meanwhile), do it again the careful
        way: lock the records first, then log, update and log."""
        assert self.log is not None
        with transaction.atomic(using=self.using):
            changed = self.log.update_logged(chunk, self.assignments)
            if changed == locks.record_count(rows):
                return changed
            transaction.set_rollback(True, using=self.using)
        locked = chunk.select_for_update(**self.lock_kwargs).order_by("pk")
        pks = list(locked.values_list("pk", flat=True))
        self.logged(pks, lambda: self.set_based(self.queryset(pks), pks))
        return len(pks)

    def set_based(self, records: QuerySet, pks: list[Any]) -> None:
        if self.simple:
            records.update(**self.assignments)
        for name, change in self.m2m.items():
            self.change_m2m_set_based(name, change, pks)

    def change_m2m_set_based(self, name: str, change: dict, pks: list[Any]) -> None:
        field = model_field(self.model, name)
        through = field.remote_field.through
        source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
        (operation, raw), = change.items()
        keys = [values_mod.to_key(field.related_model, k) for k in raw]
        links = through._base_manager.using(self.using)
        if operation in ("remove", "set"):
            stale = links.filter(**{f"{source}__in": pks})
            if operation == "remove":
                stale = stale.filter(**{f"{target}__in": keys})
            else:
                stale = stale.exclude(**{f"{target}__in": keys})
            stale.delete()
        if operation in ("add", "set") and keys:
            src_att = through._meta.get_field(source).attname
            tgt_att = through._meta.get_field(target).attname
            links.bulk_create(
                [through(**{src_att: pk, tgt_att: key}) for pk in pks for key in keys],
                ignore_conflicts=True,
            )

    def save_one(self, record: Model) -> None:
        for attname, value in self.simple.items():
            setattr(record, attname, value)
        if self.simple:
            self.validate(record)
            record.save(update_fields=self.update_fields)
        for name, change in self.m2m.items():
            (operation, raw), = change.items()
            field = model_field(self.model, name)
            keys = [values_mod.to_key(field.related_model, k) for k in raw]
            manager = getattr(record, name)
            if operation == "set":
                manager.set(keys)
            else:
                getattr(manager, operation)(*keys)


    def would_fail(self, changes: Iterable[tuple[Model, dict[str, Any]]]
                   ) -> tuple[int, list[ErrorEntry]]:
        """In memory, nothing saved: give each record its new values (by attname) and run
        this job's per-record validation; (how many would fail, their error entries)."""
        failed, errors = 0, []
        for record, values in changes:
            for attname, value in values.items():
                setattr(record, attname, value)
            try:
                self.validate(record)
            except ValidationError as error:
                failed += 1
                errors.extend(describe(record.pk, error, record))
        return failed, errors

    def validate(self, record: Model) -> None:
        """Per record, what the change can affect (see docs/api.md, "Validation").

        ``"changed"``: the changed fields' own checks and the model's ``clean()``;
        the values were validated once at launch, and uniqueness and constraints
        are left to the database, whose error is caught and reported per record.
        ``"full"``: ``full_clean()``.
        """
        if self.validation == "full":
            record.full_clean()
            return
        record.clean_fields(exclude=self.unchanged)
        record.clean()


def related_paths(tree: dict[str, dict], prefix: str = "") -> list[str]:
    """``{"author": {"agent": {}}}`` -> ``["author__agent"]`` (the leaves of the tree)."""
    paths = []
    for name, below in tree.items():
        path = f"{prefix}{name}"
        paths.extend(related_paths(below, f"{path}__") if below else [path])
    return paths


ALREADY_GONE = "It was already gone: deleted meanwhile (by a cascade, or outside this job)."


class DeleteOperation(Operation):
    lock_kwargs = {}  # deletes need the full row lock

    def apply(self, rows, *, per_record):
        locked = self.chunk_queryset(rows).select_for_update().order_by("pk")
        pks = list(locked.values_list("pk", flat=True))
        # A record already gone (deleted meanwhile, or by a cascade from a record of an
        # earlier chunk) is what was asked: left alone, not failed.
        self.skipped = self.missing(rows, set(pks), ALREADY_GONE)
        try:
            with transaction.atomic(using=self.using):
                self.queryset(pks).delete()
            return len(pks), []
        except RECORD_ERRORS:
            # Name the records that cannot go: delete one by one.
            records = list(self.queryset(pks).order_by("pk"))
            return self.each(records, lambda r: r.delete(), per_record)


def operation_for(job: Job, using: str) -> Operation:
    if job.params.get("undo_of"):
        from pgbulk.undoing import UndoOperation

        return UndoOperation(job, using)
    return {"update": UpdateOperation, "delete": DeleteOperation}[job.kind](job, using)

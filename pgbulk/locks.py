"""Conflict locks: reserving records for a job in the lock table, and releasing them.

Reservations of one model are serialised by an advisory transaction lock, so
two overlapping launches never deadlock: the second waits, then is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured
from django.db import IntegrityError, connections, transaction
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable

from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import ConflictEntry, ConflictError
from pgbulk.sqlfiles import query
from pgbulk.values import model_field

UNIQUE_RECORD = "pgbulk_reservation_record_uniq"


def lock_model(model: type[Model]) -> type[Model]:
    """The model that owns ``model``'s primary key: proxies and multi-table
    children share their concrete root table's records, so they share its locks."""
    owner: Any = model._meta.concrete_model or model
    while owner._meta.pk.remote_field is not None and owner._meta.pk.remote_field.parent_link:
        owner = owner._meta.pk.remote_field.model._meta.concrete_model
    return owner


def lock_label(model: type[Model]) -> str:
    """The model label reservations of ``model``'s records are keyed on."""
    return lock_model(model)._meta.label


def check_lockable(model: type[Model]) -> None:
    """Refuse models pgbulk cannot reserve records of (a composite primary key)."""
    if getattr(model._meta, "is_composite_pk", False):
        raise ImproperlyConfigured(
            f"{model._meta.label} has a composite primary key: pgbulk reserves records "
            "by a single key and cannot run bulk jobs on it.")


def as_selection(queryset: QuerySet) -> QuerySet:
    """``queryset``, or for a slice (``qs.order_by("-price")[:100]``), a union (or other
    combination) or a ``values()`` queryset, the records it holds now as a filter on their
    keys (such querysets cannot be re-ordered, filtered or read as records)."""
    query = queryset.query
    if not (query.is_sliced or query.combinator or queryset._iterable_class is not ModelIterable):
        return queryset
    manager = queryset.model._base_manager.using(queryset.db)
    return manager.filter(pk__in=queryset.values("pk"))


def selection_sql(queryset: QuerySet) -> tuple[str, list[Any]]:
    """SQL selecting only the primary keys of ``queryset`` (no ordering, no slicing)."""
    keys = queryset.order_by().values_list("pk", flat=True)
    sql, params = keys.query.get_compiler(using=queryset.db).as_sql()
    return sql, list(params)


#: Most consecutive integer keys one reservation row holds (a "span"); the bound
#: every overlap check relies on.
MAX_SPAN = 100



INTEGER_KEYS = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField",
                "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
                "PositiveBigIntegerField", "PositiveSmallIntegerField"}

Row = tuple[int, str, int]  # (seq, first key as text, span: how many consecutive keys)


def integer_keyed(model: type[Model]) -> bool:
    """Are the model's records reserved by spans of integer keys (else one row each)?"""
    pk: Any = lock_model(model)._meta.pk
    return (pk.target_field if pk.is_relation else pk).get_internal_type() in INTEGER_KEYS


def key_type(model: type[Model], using: str) -> str:
    """The SQL type of ``model``'s primary key (a key held as text is cast to it)."""
    pk: Any = model._meta.pk
    return (pk.target_field if pk.is_relation else pk).rel_db_type(connections[using]) or "text"


#: Key types whose text in Python is PostgreSQL's too.
SAME_TEXT = INTEGER_KEYS | {"CharField", "TextField", "SlugField", "UUIDField"}


def key_texts(model: type[Model], keys: list[Any], using: str = "default") -> list[str]:
    """``keys`` (typed, or as typed in) written as the reservations and the change log
    hold them: as PostgreSQL writes the key's type as text."""
    pk: Any = model._meta.pk
    kind = (pk.target_field if pk.is_relation else pk).get_internal_type()
    if kind in SAME_TEXT or not keys:
        return [str(key) for key in keys]
    with connections[using].cursor() as cursor:
        cursor.execute(query("key_texts").replace("{key_type}", key_type(model, using)),
                       [list(keys)])
        return [text for text, in cursor.fetchall()]


def keys_of(rows: list[Row], to_python) -> list[Any]:
    """The primary keys the reservation rows of a chunk stand for."""
    keys = []
    for _seq, first, span in rows:
        if span == 1:
            keys.append(to_python(first))
        else:
            keys.extend(to_python(key) for key in range(int(first), int(first) + span))
    return keys


def record_count(rows: list[Row]) -> int:
    return sum(span for _seq, _first, span in rows)


def reserve(
    job_id: Any,
    queryset: QuerySet,
    *,
    using: str = "default",
    exclusive: bool = True,
    is_target: bool = True,
    chunk_size: int | None = None,
) -> int:
    """Reserve every record of ``queryset`` for ``job_id``; return how many.

    Integer keys are reserved as spans of up to MAX_SPAN consecutive selected keys,
    one row each, cut at every ``chunk_size`` records (chunks, cut at rows, then hold
    exactly that many); other keys one row each. Rows are
    numbered by the ordinal of their first record (``seq``). Must run inside a
    transaction. Raises ConflictError (and writes nothing) if another job holds
    any of them.
    """
    check_lockable(queryset.model)
    label = lock_label(queryset.model)
    spans = integer_keyed(queryset.model)
    try:
        sel_sql, sel_params = selection_sql(queryset)
    except EmptyResultSet:  # Django knows it selects nothing: none(), pk__in=[]
        return 0
    if not is_target:
        sel_sql, sel_params = _not_yet_held(job_id, label, sel_sql, sel_params, spans)
    with connections[using].cursor() as cursor:
        check_isolation(cursor)
        cursor.execute(query("lock_model"), {"model": label})
        cursor.execute(query("lock_job_seq"), {"job_id": str(job_id)})
        cursor.execute(query("next_seq"), {"job_id": str(job_id)})
        offset = cursor.fetchone()[0]
        head = [str(job_id), offset, label, is_target, exclusive]
        if spans:
            insert = query("reserve_spans").replace("{selection}", sel_sql)
            params = [*head, max(1, int(chunk_size or 2**62)), MAX_SPAN, *sel_params]
        else:
            insert = query("reserve_selection").replace("{selection}", sel_sql)
            params = [*head, *sel_params]
        for _attempt in range(3):
            count = insert_reservations(cursor, insert, params, spans=spans, job_id=job_id,
                                        offset=offset, exclusive=exclusive, using=using)
            if count is not None:
                return count
            conflicts = conflict_report(job_id, queryset, using=using)
            if conflicts:  # else the holder released meanwhile: try again
                raise ConflictError(conflicts)
    raise ConflictError([])


def insert_reservations(cursor, insert: str, params: list[Any], *, spans: bool, job_id: Any,
                        offset: int, exclusive: bool, using: str) -> int | None:
    """Insert a job's reservations in a savepoint: how many records they hold, or None
    (and nothing written) if they overlap another job's."""
    try:
        with transaction.atomic(using=using):
            cursor.execute(insert, params)
            if not spans:
                return cursor.rowcount
            if exclusive and overlaps(cursor, job_id, offset):
                transaction.set_rollback(True, using=using)
                return None
            cursor.execute(query("reserved_since"), {"job_id": str(job_id), "offset": offset})
            return cursor.fetchone()[0]
    except IntegrityError as error:  # one row per key: the unique index found the overlap
        if UNIQUE_RECORD not in str(error):
            raise
        return None


def check_isolation(cursor) -> None:
    """Reservations exclude each other through a lock and a look at what is reserved:
    that look must see what other launches committed while we waited for the lock."""
    cursor.execute(query("isolation_level"))
    level = cursor.fetchone()[0]
    if level != "read committed":
        raise ImproperlyConfigured(
            f"pgbulk reserves records in READ COMMITTED transactions; this one is {level} "
            "(check DATABASES[...]['OPTIONS']['isolation_level']).")


def overlaps(cursor, job_id: Any, offset: int) -> bool:
    """Do the spans just reserved overlap another job's exclusive reservations?"""
    cursor.execute(query("span_overlap"), {"job_id": str(job_id), "offset": offset,
                                           "reach": MAX_SPAN - 1})
    return bool(cursor.fetchone()[0])


def _not_yet_held(job_id, label, sel_sql, sel_params, spans: bool) -> tuple[str, list[Any]]:
    """Narrow a selection to records this job does not hold already."""
    held = query("held_by_job_span" if spans else "held_by_job_key")
    sql = query("not_yet_held").replace("{held}", held).replace("{selection}", sel_sql)
    return sql, [*sel_params, str(job_id), label, *([MAX_SPAN - 1] if spans else [])]


def conflict_report(job_id: Any, queryset: QuerySet, *, using: str = "default") -> list[ConflictEntry]:
    """The other jobs holding records of ``queryset``: ``[{job_id, user, count}]``."""
    user_model = get_user_model()
    quote = connections[using].ops.quote_name
    sel_sql, sel_params = selection_sql(queryset)
    name = "conflict_report_spans" if integer_keyed(queryset.model) else "conflict_report"
    sql = (
        query(name)
        .replace("{selection}", sel_sql)
        .replace("{user_table}", quote(user_model._meta.db_table))
        .replace("{user_key}", quote(str(user_model._meta.pk.column)))
        .replace("{username}", quote(model_field(user_model, user_model.USERNAME_FIELD).column))
    )
    with connections[using].cursor() as cursor:
        label, job = lock_label(queryset.model), str(job_id)
        params = ([*sel_params, label, MAX_SPAN - 1, job, label, job]
                  if name == "conflict_report_spans" else [label, job, *sel_params])
        cursor.execute(sql, params)
        return [
            {"job_id": str(row[0]), "user": row[1], "count": row[2]}
            for row in cursor.fetchall()
        ]


def walk(job_id: Any, using: str, size: int | None = None) -> Iterator[list[Row]]:
    """Successive chunks of a job's remaining target reservation rows (those whose
    first record falls in the next ``size`` records), walked through the primary key."""
    size = max(int(size or pgbulk_settings.CHUNK_SIZE), 1)
    after = 0
    while (first := next_target_seq(job_id, after, using=using)) is not None:
        rows = rows_between(job_id, first, first + size - 1, using=using)
        after = first + size - 1
        if rows:
            yield rows


def rows_between(job_id: Any, first: int, last: int, *, using: str) -> list[Row]:
    with connections[using].cursor() as cursor:
        cursor.execute(query("chunk_rows"), {"job_id": str(job_id), "first": first,
                                             "last": last})
        return cursor.fetchall()


def release_job(job_id: Any, *, using: str = "default") -> int:
    """Delete every reservation of a job; return how many."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("release_job"), {"job_id": str(job_id)})
        return cursor.rowcount


def release_chunk(job_id: Any, first_seq: int, last_seq: int, *, using: str = "default") -> int:
    """Release the target reservations of one done chunk; return how many."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("release_chunk"), {"job_id": str(job_id), "first": first_seq,
                                                 "last": last_seq})
        return cursor.rowcount


def next_target_seq(job_id: Any, after: int, *, using: str) -> int | None:
    """The sequence number of the job's first target record not done after ``after``."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("next_target_seq"), {"job_id": str(job_id), "after": after})
        row = cursor.fetchone()
    return row[0] if row else None


def claim_chunk(job_id: Any, number: int, size: int, *, using: str) -> list[Row]:
    """In the current transaction, claim chunk ``number`` (the rows whose first record
    is the ``number * size + 1``-th to the ``(number + 1) * size``-th) and return its rows
    not done yet; ``[]`` if another runner of the job works on it."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("claim_chunk"), {"job_id": str(job_id), "chunk": number})
        if not cursor.fetchone()[0]:
            return []
    return rows_between(job_id, number * size + 1, (number + 1) * size, using=using)


def holders(model: type[Model], keys: list[Any], *, using: str = "default") -> list[tuple[Any, Any]]:
    """``(key, job id)`` for each of ``keys`` (as given) some job reserves."""
    texts = key_texts(model, keys, using)
    if not texts:
        return []
    given = dict(zip(texts, keys, strict=True))
    name = "holders_of_spans" if integer_keyed(model) else "holders_of_keys"
    with connections[using].cursor() as cursor:
        cursor.execute(query(name), {"model": lock_label(model), "keys": texts,
                                     "reach": MAX_SPAN - 1})
        return [(given[text], job_id) for text, job_id in cursor.fetchall()]

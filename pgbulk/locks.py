"""Conflict locks: reserving records for a job in the lock table, and releasing them.

Reservations of one model are serialised by an advisory transaction lock, so
two overlapping launches never deadlock: the second waits, then is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections, transaction
from django.db.models import Model, QuerySet

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


def selection_sql(queryset: QuerySet) -> tuple[str, list[Any]]:
    """SQL selecting only the primary keys of ``queryset`` (no ordering, no slicing)."""
    keys = queryset.order_by().values_list("pk", flat=True)
    sql, params = keys.query.get_compiler(using=queryset.db).as_sql()
    return sql, list(params)


def reserve(
    job_id: Any,
    queryset: QuerySet,
    *,
    using: str = "default",
    exclusive: bool = True,
    is_target: bool = True,
) -> int:
    """Reserve every record of ``queryset`` for ``job_id``; return how many.

    Must run inside a transaction. Raises ConflictError (and writes nothing)
    if another job holds any of them.
    """
    check_lockable(queryset.model)
    label = lock_label(queryset.model)
    sel_sql, sel_params = selection_sql(queryset)
    if not is_target:
        sel_sql, sel_params = _not_yet_held(job_id, label, sel_sql, sel_params)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(query("lock_model"), [label])
        cursor.execute(query("lock_job_seq"), {"job_id": str(job_id)})
        cursor.execute(query("next_seq"), [str(job_id)])
        offset = cursor.fetchone()[0]
        insert = query("reserve_selection").replace("{selection}", sel_sql)
        params = [str(job_id), offset, label, is_target, exclusive, *sel_params]
        for _attempt in range(3):
            try:
                with transaction.atomic(using=using):
                    cursor.execute(insert, params)
                    return cursor.rowcount
            except IntegrityError as error:
                if UNIQUE_RECORD not in str(error):
                    raise
            conflicts = conflict_report(job_id, queryset, using=using)
            if conflicts:  # else the holder released meanwhile: try again
                raise ConflictError(conflicts)
    raise ConflictError([])


def _not_yet_held(job_id, label, sel_sql, sel_params) -> tuple[str, list[Any]]:
    """Narrow a selection to records this job does not hold already."""
    sql = query("not_yet_held").replace("{selection}", sel_sql)
    return sql, [*sel_params, str(job_id), label]


def conflict_report(job_id: Any, queryset: QuerySet, *, using: str = "default") -> list[ConflictEntry]:
    """The other jobs holding records of ``queryset``: ``[{job_id, user, count}]``."""
    user_model = get_user_model()
    quote = connections[using].ops.quote_name
    sel_sql, sel_params = selection_sql(queryset)
    sql = (
        query("conflict_report")
        .replace("{selection}", sel_sql)
        .replace("{user_table}", quote(user_model._meta.db_table))
        .replace("{user_key}", quote(str(user_model._meta.pk.column)))
        .replace("{username}", quote(model_field(user_model, user_model.USERNAME_FIELD).column))
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [lock_label(queryset.model), str(job_id), *sel_params])
        return [
            {"job_id": str(row[0]), "user": row[1], "count": row[2]}
            for row in cursor.fetchall()
        ]


def walk(job_id: Any, using: str, size: int | None = None) -> Iterator[list[tuple[int, str]]]:
    """Successive chunks of ``(seq, object_pk)`` of a job's remaining target records
    (``size`` rows each, CHUNK_SIZE by default), walked through the primary key."""
    last = 0
    size = max(int(size or pgbulk_settings.CHUNK_SIZE), 1)
    while True:
        with connections[using].cursor() as cursor:
            cursor.execute(query("next_chunk"), [str(job_id), last, size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def release_job(job_id: Any, *, using: str = "default") -> int:
    """Delete every reservation of a job; return how many."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("release_job"), [str(job_id)])
        return cursor.rowcount


def release_chunk(job_id: Any, first_seq: int, last_seq: int, *, using: str = "default") -> int:
    """Release the target reservations of one done chunk; return how many."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("release_chunk"), [str(job_id), first_seq, last_seq])
        return cursor.rowcount


def next_target_seq(job_id: Any, after: int, *, using: str) -> int | None:
    """The sequence number of the job's first target record not done after ``after``."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("next_target_seq"), {"job_id": str(job_id), "after": after})
        row = cursor.fetchone()
    return row[0] if row else None


def claim_chunk(job_id: Any, number: int, size: int, *, using: str) -> list[tuple[int, str]]:
    """In the current transaction, claim chunk ``number`` (sequence numbers
    ``number * size + 1`` to ``(number + 1) * size``) and return its records not done
    yet; ``[]`` if another runner of the job works on it."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("claim_chunk"), {"job_id": str(job_id), "chunk": number})
        if not cursor.fetchone()[0]:
            return []
        cursor.execute(query("chunk_rows"), {"job_id": str(job_id), "first": number * size + 1,
                                             "last": (number + 1) * size})
        return cursor.fetchall()

"""Conflict locks: reserving records for a job in the lock table, and releasing them.

Reservations of one model are serialised by an advisory transaction lock, so
two overlapping launches never deadlock: the second waits, then is refused.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections, transaction
from django.db.models import Model, QuerySet

from pgbulk.exceptions import ConflictError
from pgbulk.sqlfiles import query
from pgbulk.values import model_field

UNIQUE_RECORD = "pgbulk_reservation_record_uniq"


def model_label(model: type[Model]) -> str:
    return model._meta.label


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
    label = model_label(queryset.model)
    sel_sql, sel_params = selection_sql(queryset)
    if not is_target:
        sel_sql, sel_params = _not_yet_held(job_id, label, sel_sql, sel_params)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(query("lock_model"), [label])
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
    sql = (
        f"SELECT q.pk FROM ({sel_sql}) AS q(pk) WHERE NOT EXISTS ("
        "SELECT 1 FROM pgbulk_reservation r WHERE r.job_id = %s::uuid "
        "AND r.model = %s AND r.object_pk = q.pk::text)"
    )
    return sql, [*sel_params, str(job_id), label]


def conflict_report(job_id: Any, queryset: QuerySet, *, using: str = "default") -> list[dict]:
    """The other jobs holding records of ``queryset``: ``[{job_id, user, count}]``."""
    user_model = get_user_model()
    user_table = user_model._meta.db_table
    username_col = model_field(user_model, user_model.USERNAME_FIELD).column
    sel_sql, sel_params = selection_sql(queryset)
    sql = (
        query("conflict_report")
        .replace("{selection}", sel_sql)
        .replace("{user_table} u", f'{user_table} u')
        .replace("u.username", f'u."{username_col}"')
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [model_label(queryset.model), str(job_id), *sel_params])
        return [
            {"job_id": str(row[0]), "user": row[1], "count": row[2]}
            for row in cursor.fetchall()
        ]


def release_job(job_id: Any, *, using: str = "default") -> int:
    """Delete every reservation of a job; return how many."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("release_job"), [str(job_id)])
        return cursor.rowcount


def release_chunk(job_id: Any, first_seq: int, last_seq: int, *, using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(query("release_chunk"), [str(job_id), first_seq, last_seq])

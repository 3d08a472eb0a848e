"""What each record goes through: validation once or per record, auto_now, database errors."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

import pgbulk
from testproject.library.models import Book, Label
from tests.factories import make_books

pytestmark = pytest.mark.django_db


def labels(*names: str) -> list[Label]:
    created = [Label.objects.create(name=name) for name in names]
    # As if last written long ago: a bulk edit must move touched_at like save() does.
    Label.objects.update(touched_at=timezone.now() - datetime.timedelta(days=1))
    return created


@pytest.mark.parametrize("strategy", ["save", "queryset"])
def test_auto_now_fields_are_written_by_both_strategies(strategy):
    labels("a", "b", "c")
    before = timezone.now() - datetime.timedelta(hours=1)
    job = pgbulk.bulk_update(Label.objects.all(), {"rank": 5}, run="sync", strategy=strategy)
    assert job.status == "succeeded", job.message
    touched = set(Label.objects.values_list("touched_at", flat=True))
    assert all(moment > before for moment in touched)
    if strategy == "queryset":
        assert len(touched) == 1  # the database's time, one value for the chunk


def test_only_m2m_changes_leave_auto_now_alone_as_save_would():
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"genres": {"set": []}},
                             run="sync")
    assert job.status == "succeeded"
    from pgbulk.models import Job
    from pgbulk.strategies import UpdateOperation

    assert UpdateOperation(Job.objects.get(pk=job.pk), "default").update_fields == []


@pytest.mark.parametrize("strategy", ["save", "queryset"])
@pytest.mark.parametrize("validation", ["changed", "full"])
def test_a_constraint_mixing_changed_and_unchanged_fields_fails_per_record_by_name(
        strategy, validation):
    """A constraint on rank AND name: "changed" validation leaves it to the database
    (Django skips it when name is excluded); either way the record is named."""
    big, small = labels("Big one", "small one")
    job = pgbulk.bulk_update(Label.objects.all(), {"rank": 500}, run="sync", atomic=False,
                             strategy=strategy, validation=validation)
    assert (job.status, job.done, job.failed_count) == ("failed", 1, 1), job.message
    (error,) = job.errors
    assert (error["pk"], error["record"]) == (str(small.pk), "small one")
    assert "label_big_rank_needs_big_name" in error["message"]
    assert Label.objects.get(pk=big.pk).rank == 500 and Label.objects.get(pk=small.pk).rank == 0


def test_changed_validation_checks_what_the_change_can_affect():
    """An unchanged invalid field (a blank title) is not the bulk edit's business;
    full validation refuses the record for it. clean() runs in both."""
    ids = make_books(3)
    Book.objects.filter(pk=ids[0]).update(title="")  # invalid, but not what we change
    changed = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "published"},
                                 run="sync", atomic=False)
    assert (changed.status, changed.done) == ("succeeded", 3)
    full = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "draft"},
                              run="sync", atomic=False, validation="full")
    assert (full.status, full.done, full.failed_count) == ("failed", 2, 1)
    assert full.errors[0]["field"] == "title"
    Book.objects.filter(pk=ids[1]).update(in_print=True)
    archived = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[1:2]), {"status": "archived"},
                                  run="sync")
    assert archived.status == "failed" and "in_print" in archived.message  # clean() ran


def test_an_unknown_validation_mode_is_refused():
    with pytest.raises(ValueError, match="validation must be one of"):
        pgbulk.bulk_update(Book.objects.filter(pk__in=make_books(1)), {"price": 1},
                           validation="some")


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("strategy", ["save", "queryset"])
@pytest.mark.parametrize("field", ["genres", "author"])
def test_a_related_record_deleted_before_the_run_fails_each_record_by_name(
        settings, strategy, field):
    """Django's foreign keys are checked at commit (DEFERRABLE INITIALLY DEFERRED): the
    job's savepoints never saw the violation, and the commit failed the whole job with a
    raw IntegrityError naming no record ("0 of 3 records were changed before it stopped")
    instead of failing the records that link to it and changing the others."""
    from pgbulk import execute
    from testproject.library.models import Author, Genre

    settings.PGBULK = {**settings.PGBULK, "ASYNC_ENABLED": True, "QUEUE": "held"}
    ids = make_books(3, genre=False)
    gone = Genre.objects.create(name="Gone") if field == "genres" else Author.objects.create(
        name="Gone")
    values = {"genres": {"add": [gone.pk]}} if field == "genres" else {"author": gone.pk}
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), values, atomic=False,
                             strategy=strategy, run="async", min_async_records=0)
    gone.delete()
    job = execute.run(job.id)
    assert (job.status, job.failed_count, job.done) == ("failed", 3, 0), job.message
    assert job.message.startswith("3 of 3 records failed"), job.message
    assert sorted(int(e["pk"]) for e in job.errors) == sorted(ids)
    # The save strategy's validation sees a gone foreign key first; the database the rest.
    assert all("not present in table" in e["message"] or "is not a valid choice" in e["message"]
               for e in job.errors), job.errors


def test_a_run_inside_the_callers_transaction_leaves_its_constraints_deferred():
    """A run in the caller's transaction (here the test's) must not switch the caller's
    deferred foreign keys to immediate: a later dangling reference would raise at once."""
    from django.db import connection, transaction

    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 3}, run="sync")
    assert job.status == "succeeded", job.message
    with transaction.atomic(), connection.cursor() as cursor:  # deferred: no error here
        cursor.execute("UPDATE library_book SET author_id = 987654321 WHERE id = %s", [ids[0]])
        transaction.set_rollback(True)  # (nor at the test's end)

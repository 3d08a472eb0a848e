"""The change log and undo (issue 15): the log names exactly the records a job changed,
with their values before and after, also across a worker's SIGKILL and resume; undo puts
the before-values back, skips (and names) records changed since, and is refused like any
launch on conflict. An audit trigger (the ``writes`` fixture) counts committed writes."""

from __future__ import annotations

import contextlib
import datetime
import threading
import uuid
from decimal import Decimal

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

import pgbulk
from pgbulk import undoing
from pgbulk.models import Change, Job, JobError, Reservation
from pgbulk.sweep import sweep
from testproject.library.models import Book, EBook, Genre, Label
from tests import conftest
from tests.factories import make_books, wait_for
from tests.test_fencing import spawn, sweep_until  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

STRATEGIES = ["save", "queryset"]


def logged(job: Job) -> dict[str, tuple[dict, dict]]:
    return {c.object_pk: (c.before, c.after) for c in Change.objects.filter(job=job)}


def books(ids) -> dict[int, tuple]:
    return {b.id: (b.status, b.price, b.title, b.in_print,
                   tuple(sorted(b.genres.values_list("pk", flat=True))))
            for b in Book.objects.filter(pk__in=ids)}


# --- The log ---------------------------------------------------------------------------


def written(writes, ids, before: dict[int, int]) -> set[str]:
    """The books the audit trigger saw written since ``before = writes(ids)``."""
    return {str(pk) for pk, n in writes(ids).items() if n > before.get(pk, 0)}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_log_names_exactly_the_records_written_with_before_and_after(writes, strategy):
    ids = make_books(40)
    poetry = Genre.objects.get(name="Poetry")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[5:]),
                             {"price": "12.50", "genres": {"add": [poetry.pk]}},
                             run="sync", strategy=strategy)
    assert job.status == "succeeded" and job.change_log == "kept"
    log = logged(job)
    assert set(log) == written(writes, ids, {}) == {str(pk) for pk in ids[5:]}
    crime = Genre.objects.get(name="Crime").pk
    before, after = log[str(ids[5])]
    assert before == {"price": 10, "genres": [crime]}
    assert after == {"price": 12.5, "genres": sorted([crime, poetry.pk])}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_records_that_already_hold_the_values_are_written_but_neither_logged_nor_undone(
        writes, strategy):
    # Before: every written record was logged and counted "changed", also Crime -> Crime.
    ids = make_books(10)
    crime, poetry = (Genre.objects.get(name=name) for name in ("Crime", "Poetry"))
    Book.objects.filter(pk__in=ids[:4]).update(status="published")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "published"},
                             run="sync", strategy=strategy)
    assert written(writes, ids, {}) == {str(pk) for pk in ids}  # all written, as asked
    assert set(logged(job)) == {str(pk) for pk in ids[4:]}
    assert job.message == "Updated 10 of 10 records. 6 changed; 4 already held the new values."
    undo = pgbulk.undo(job, run="sync")
    assert (undo.status, undo.total, undo.done) == ("succeeded", 6, 6)
    assert [books(ids)[pk][0] for pk in ids] == ["published"] * 4 + ["draft"] * 6
    Book.genres.through.objects.create(book_id=ids[0], genre_id=poetry.pk)
    linked = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:2]),
                                {"genres": {"add": [poetry.pk]}}, run="sync", strategy=strategy)
    assert logged(linked) == {str(ids[1]): ({"genres": [crime.pk]},
                                            {"genres": sorted([crime.pk, poetry.pk])})}
    # Before: "1 already had these values", odd for a genre added (or removed).
    assert linked.message == "Updated 2 of 2 records. 1 changed; 1 already held the new values."
    # Before: "3 of 4 records failed; 1 updated. 1 already had these values." beside a
    # change log of 0 records: now it says no record changed.
    same = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:4]), {"status": "published"},
                              run="sync", strategy=strategy)
    assert same.message == ("Updated 4 of 4 records. None changed: all 4 already held the new "
                            "values.")
    Book.objects.filter(pk=ids[4]).update(isbn="ONE")
    failed = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[4:8]), {"isbn": "ONE"},
                                run="sync", strategy=strategy, atomic=False)
    assert failed.message == ("3 of 4 records failed; 1 updated. It already held the new "
                              "values: nothing changed.")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_failed_records_are_not_logged_and_a_failed_atomic_job_logs_nothing(writes, strategy):
    ids = make_books(20)
    # One ISBN for all: the first record takes it, the unique index refuses the others.
    failing = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"isbn": "ONE"},
                                 run="sync", strategy=strategy, atomic=False)
    assert (failing.status, failing.done, failing.failed_count) == ("failed", 1, 19)
    assert set(logged(failing)) == written(writes, ids, {}) == {str(ids[0])}
    before = writes(ids)
    atomic = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"isbn": "TWO"},
                                run="sync", strategy=strategy)
    assert atomic.status == "failed" and logged(atomic) == {}
    assert written(writes, ids, before) == set()


def job_past_a_writer(writes: str, params: list, launch, marker: str) -> Job:
    """Run ``launch()`` (a sync job) in a thread while another connection holds the rows
    ``writes`` changed, uncommitted; commit it once a statement containing ``marker``
    waits for it; return the job."""
    other = psycopg.connect(conftest.test_database_url())
    other.execute(writes, params)
    launched: dict[str, Job] = {}

    def run_job() -> None:
        launched["job"] = launch()
        connection.close()

    thread = threading.Thread(target=run_job)
    thread.start()
    try:
        wait_for(lambda: waiting_on_a_lock(marker))
    finally:
        other.commit()
        other.close()
        thread.join(30)
    return launched["job"]


def test_a_record_another_writer_changes_during_the_update_is_logged_with_its_new_value():
    ids = make_books(5)
    job = job_past_a_writer(  # the set-based UPDATE (its text starts with this comment)
        "UPDATE library_book SET title = 'Meanwhile' WHERE id = %s", [ids[2]],
        lambda: pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Bulk"},
                                   run="sync", strategy="queryset"), "logged UPDATE")
    assert job.status == "succeeded"
    assert logged(job)[str(ids[2])] == ({"title": "Meanwhile"}, {"title": "Bulk"})
    assert set(Book.objects.filter(pk__in=ids).values_list("title", flat=True)) == {"Bulk"}


def test_the_set_based_per_record_fallback_logs_what_another_writer_committed_first():
    # Before: once the chunk's UPDATE failed (the first label breaks a constraint), the
    # records were logged and updated one by one without locking them first: the second
    # one's "before" was read while another writer held it (rank 0), its UPDATE then
    # waited and overwrote that writer's rank 7, and undo put back 0, losing the 7.
    small = Label.objects.create(name="small", rank=0)  # first by row address: fails
    big = Label.objects.create(name="Big one", rank=0)
    job = job_past_a_writer(
        "UPDATE library_label SET rank = 7 WHERE id = %s", [big.pk],
        lambda: pgbulk.bulk_update(Label.objects.filter(pk__in=[small.pk, big.pk]),
                                   {"rank": 500}, run="sync", strategy="queryset",
                                   atomic=False), "library_label")
    assert (job.status, job.done, job.failed_count) == ("failed", 1, 1), job.message
    assert logged(job) == {str(big.pk): ({"rank": 7}, {"rank": 500})}
    undo = pgbulk.undo(job, run="sync")
    assert undo.status == "succeeded" and Label.objects.get(pk=big.pk).rank == 7


def test_a_lock_timeout_in_the_set_based_fallback_fails_the_held_record_only():
    # Before (this session's own regression): the fallback locked the whole chunk in one
    # statement, timed out on the held row again, and the job failed with 0 done; the
    # docs promise the lock timeout fails the record, where records fail one by one.
    free = Label.objects.create(name="free", rank=0)
    held = Label.objects.create(name="held", rank=0)
    other = psycopg.connect(conftest.test_database_url())
    other.execute("UPDATE library_label SET rank = 7 WHERE id = %s", [held.pk])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        job = pgbulk.bulk_update(Label.objects.filter(pk__in=[free.pk, held.pk]),
                                 {"rank": 5}, run="sync", strategy="queryset", atomic=False)
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert (job.status, job.done, job.failed_count) == ("failed", 1, 1), job.message
    assert [e["pk"] for e in job.errors] == [str(held.pk)]
    assert "lock timeout" in job.errors[0]["message"]
    assert logged(job) == {str(free.pk): ({"rank": 0}, {"rank": 5})}


def waiting_on_a_lock(marker: str) -> bool:
    """Does a statement of this database containing ``marker`` wait for a lock?"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database() AND query LIKE %s", [f"%{marker}%"])
        return bool(cursor.fetchone()[0])


@pytest.mark.worker
@pytest.mark.slow
def test_the_log_matches_the_writes_after_a_sigkill_and_resume(spawn, writes):  # noqa: F811
    doomed = spawn()
    ids = make_books(600, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 41}, atomic=False)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100)
    doomed.kill()
    spawn()
    job = sweep_until(job, "succeeded", timeout=60, heartbeat_timeout=3)
    counts = writes(ids)
    assert set(counts.values()) == {1} and len(counts) == 600  # each written once
    log = logged(job)
    assert set(log) == {str(pk) for pk in ids}
    assert {after["price"] for _, after in log.values()} == {41}
    assert {before["price"] for before, _ in log.values()} == {10}


def test_other_keys_and_multi_table_children_are_logged():
    label = Label.objects.create(name="a", rank=1)
    job = pgbulk.bulk_update(Label.objects.all(), {"rank": 5}, run="sync", strategy="queryset")
    assert logged(job) == {str(label.pk): ({"rank": 1}, {"rank": 5})}
    ebook = EBook.objects.create(title="E", isbn="E-1", price=3, author_id=make_author(),
                                 file_size=7)
    for step, strategy in enumerate(STRATEGIES):  # each job changes the values (else: no undo)
        job = pgbulk.bulk_update(EBook.objects.all(), {"price": f"{4 + step}.00",
                                                       "file_size": 8 + step},
                                 run="sync", strategy=strategy)
        _before, after = logged(job)[str(ebook.pk)]
        assert after == {"price": 4 + step, "file_size": 8 + step}
    assert pgbulk.undo(job, run="sync").status == "succeeded"
    ebook.refresh_from_db()
    assert (ebook.price, ebook.file_size) == (Decimal("4.00"), 8)  # the first job's values


def make_author() -> int:
    from testproject.library.models import Author
    return Author.objects.create(name="E author").pk


def test_excluded_fields_are_not_logged_and_the_log_can_be_turned_off(settings, admin_client,
                                                                      django_user_model):
    ids = make_books(3)
    settings.PGBULK = {**settings.PGBULK, "CHANGE_LOG_EXCLUDE": {"library.Book": ["price"]}}
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2, "title": "T"},
                             run="sync")
    assert [after for _, after in logged(job).values()] == [{"title": "T"}] * 3
    assert job.params["change_log"]["excluded"] == ["price"]
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 5, "title": "T"},
                             run="sync")  # prices changed, logged titles did not
    assert Book.objects.filter(pk__in=ids, price=5).count() == 3
    assert job.message == "Updated 3 of 3 records."  # it said "no record changed"
    page = admin_client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
    assert "No logged field changed." in page and "No record changed." not in page
    # its new values are not shown either (they were, to anyone who could see the job)
    assert "title → T; price → (not shown) on 3 Books" in page and "5.00" not in page
    watcher = django_user_model.objects.create_user("watcher", is_staff=True)
    watcher.user_permissions.add(Permission.objects.get(codename="view_job"))
    admin_client.force_login(watcher)
    admin_page = admin_client.get(f"/admin/pgbulk/job/{job.id}/change/").content.decode()
    assert "(not shown)" in admin_page and '"price": 5' not in admin_page
    with pytest.raises(pgbulk.BulkValidationError, match="leaves out price"):
        pgbulk.undo(job)
    settings.PGBULK = {**settings.PGBULK, "RECORD_CHANGES": False}
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "U"}, run="sync")
    assert job.change_log == "" and logged(job) == {}
    with pytest.raises(pgbulk.BulkValidationError, match="without a change log"):
        pgbulk.undo(job)


def test_a_field_excluded_for_a_model_is_excluded_through_its_proxies_and_children(
        settings, admin_client):
    """Before: CHANGE_LOG_EXCLUDE was read for the job's own model only, so a Book price
    edited through DraftBook (a proxy) or EBook (a child) was logged, shown on the job's
    pages and in Book's History, and could be undone (security review)."""
    from testproject.library.models import DraftBook

    settings.PGBULK = {**settings.PGBULK, "CHANGE_LOG_EXCLUDE": {"library.Book": ["price"]}}
    ids = make_books(2)
    ebook = EBook.objects.create(title="E", isbn="EX-1", author_id=make_author(), price=3)
    for queryset in (DraftBook.objects.filter(pk__in=ids), EBook.objects.filter(pk=ebook.pk)):
        job = pgbulk.bulk_update(queryset, {"price": "555.55", "title": "T"}, run="sync")
        assert job.params["change_log"]["excluded"] == ["price"], job.model
        assert {str(after) for _, after in logged(job).values()} == {"{'title': 'T'}"}
        page = admin_client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
        assert "555.55" not in page and "price → (not shown)" in page, job.model
        with pytest.raises(pgbulk.BulkValidationError, match="leaves out price"):
            pgbulk.undo(job)
    history = admin_client.get(f"/admin/library/book/{ebook.pk}/history/").content.decode()
    assert "555.55" not in history


def waiting_on(relation: str) -> bool:
    """Is some session waiting for a lock while running a statement on ``relation``?"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND query LIKE %s", [f"%{relation}%"])
        return cursor.fetchone()[0] > 0


@pytest.mark.worker
@pytest.mark.parametrize(("model", "strategy"), [("Book", "save"), ("EBook", "queryset")])
def test_links_another_transaction_changes_wait_for_the_chunk_that_changes_links(
        spawn, model, strategy):  # noqa: F811
    """Review (High): while a job changing genres worked on a chunk, another transaction
    could link and unlink the chunk's books (the rows' FOR NO KEY UPDATE does not stop
    the link table's foreign key check, nor deletes of links): the log took those
    changes for the job's, and its undo reverted them. Now they wait for the chunk, also
    for a multi-table child whose many-to-many field is its parent's (the link points at
    the parent's row). The job is held after it took its locks: the log is locked."""
    from psycopg.errors import LockNotAvailable

    spawn()
    crime, poetry = (Genre.objects.get_or_create(name=n)[0] for n in ("Crime", "Poetry"))
    extra = Genre.objects.create(name="Extra")
    if model == "Book":
        ids = make_books(3)  # each linked to Crime
    else:
        ids = [EBook.objects.create(title=f"E{i}", isbn=f"EL-{i}", author_id=make_author(),
                                    price=3).pk for i in range(3)]
        for pk in ids:
            Book.genres.through.objects.create(book_id=pk, genre_id=crime.pk)
    queryset = (Book if model == "Book" else EBook).objects.filter(pk__in=ids)
    with psycopg.connect(conftest.test_database_url()) as log_holder:
        log_holder.execute("LOCK TABLE pgbulk_change IN SHARE MODE")
        job = pgbulk.bulk_update(queryset, {"genres": {"add": [extra.pk]}}, atomic=False,
                                 strategy=strategy, run="async")
        wait_for(lambda: waiting_on("pgbulk_change"))  # locks taken, writing the log
        with psycopg.connect(conftest.test_database_url(), autocommit=True) as other:
            other.execute("SET lock_timeout = '300ms'")
            with pytest.raises(LockNotAvailable):
                other.execute("INSERT INTO library_book_genres (book_id, genre_id) "
                              "VALUES (%s, %s)", [ids[0], poetry.pk])
            with pytest.raises(LockNotAvailable):
                other.execute("DELETE FROM library_book_genres WHERE book_id = %s "
                              "AND genre_id = %s", [ids[0], crime.pk])
    job.wait(60)
    assert job.status == "succeeded", job.message
    before, after = logged(job)[str(ids[0])]
    assert (before["genres"], after["genres"]) == ([crime.pk], [crime.pk, extra.pk])


@pytest.mark.worker
def test_a_chunk_that_deadlocks_with_a_link_change_takes_its_locks_again(spawn):  # noqa: F811
    """Review (High): Django's set() unlinks, then links (its foreign key check waits for
    the job's FOR UPDATE on the record) while the job waits for the unlinked row: a
    deadlock, and PostgreSQL failed the job's statement: the job failed with PostgreSQL's
    text. Now the chunk gives its locks up and takes them again once the other is done."""
    spawn()
    ids = make_books(3)
    crime, poetry = (Genre.objects.get(name=n) for n in ("Crime", "Poetry"))
    extra = Genre.objects.create(name="Extra")
    with psycopg.connect(conftest.test_database_url()) as other:
        other.execute("SET deadlock_timeout = '20s'")  # the job's check comes first: its victim
        other.execute("DELETE FROM library_book_genres WHERE book_id = %s AND genre_id = %s",
                      [ids[0], crime.pk])
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids),
                                 {"genres": {"add": [extra.pk]}}, atomic=False, run="async")
        wait_for(lambda: waiting_on("library_book_genres"))  # the job waits for that link
        other.execute("INSERT INTO library_book_genres (book_id, genre_id) VALUES (%s, %s)",
                      [ids[0], poetry.pk])  # waits for the job's record lock: a cycle
        other.commit()
    job.wait(60)
    assert job.status == "succeeded", job.message
    before, after = logged(job)[str(ids[0])]
    assert (before["genres"], after["genres"]) == ([poetry.pk], [poetry.pk, extra.pk])


def test_the_sweep_deletes_logs_past_their_retention_and_undo_says_so(settings):
    settings.PGBULK = {**settings.PGBULK, "CHANGE_RETENTION": 1}
    ids = make_books(3)
    old = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Old"}, run="sync")
    recent = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "New"}, run="sync")
    Job.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=2))
    report = sweep()
    assert report["purged_changes"] == 3
    old.refresh_from_db()
    assert old.change_log == "expired" and logged(old) == {} and len(logged(recent)) == 3
    with pytest.raises(pgbulk.BulkValidationError, match="change log was deleted"):
        pgbulk.undo(old)


def test_the_sweep_keeps_a_job_past_retention_while_its_undo_is_queued_or_running(settings):
    """Before: its retention step deleted the job, and with it (by trigger) the change log
    the undo was reading: the undo failed its records as 'The record no longer exists.'
    (review). The log's own purge already waited for the undo."""
    ids = make_books(3)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Old"}, run="sync")
    settings.PGBULK = {**settings.PGBULK, "ASYNC_ENABLED": True, "QUEUE": "held"}
    undo = pgbulk.undo(job, run="async")  # queued: no worker on this queue
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=40))
    assert sweep()["deleted_jobs"] == 0
    assert Job.objects.filter(pk=job.pk).exists() and len(logged(job)) == 3
    undo.cancel()
    assert sweep()["deleted_jobs"] == 1 and not Change.objects.filter(job_id=job.pk).exists()


def test_an_undo_being_launched_holds_the_undone_job_against_the_sweep(settings, monkeypatch):
    """An undo's launch transaction is not visible to the sweep's "undo queued or running"
    checks until it commits: meanwhile the purge (or retention) could delete the log it
    was about to read (review). The launch now holds the undone job's row, which the sweep
    skips, and checks the log under that lock."""
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Old"}, run="sync")
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=40))
    with psycopg.connect(conftest.test_database_url()) as launching:  # holds it as hold_log does
        launching.execute("SELECT 1 FROM pgbulk_job WHERE id = %s FOR NO KEY UPDATE", [job.id])
        with connection.cursor() as cursor:  # before, the sweep waited for it (forever here)
            cursor.execute("SET lock_timeout = '3s'")
            try:
                report = sweep()
            finally:
                cursor.execute("RESET lock_timeout")
        assert (report["purged_changes"], report["deleted_jobs"]) == (0, 0)
    job.refresh_from_db()
    assert job.change_log == "kept" and len(logged(job)) == 2
    # The other order: the log went after the undo was checked, before its launch.
    import types

    monkeypatch.setattr(undoing, "why_not_undoable", lambda job: "")
    monkeypatch.setattr(undoing, "forecast", lambda job, **kw: types.SimpleNamespace(put_back=2))
    settings.PGBULK = {**settings.PGBULK, "JOB_RETENTION": 60}
    assert sweep()["purged_changes"] == 2
    with pytest.raises(pgbulk.BulkValidationError, match="change log was deleted"):
        pgbulk.undo(job, run="sync")
    assert not Job.objects.exclude(pk=job.pk).exists()


def test_an_undo_whose_log_rows_vanished_says_so_for_records_that_exist(settings):
    """A record the undo found no log row for was reported 'The record no longer exists.'
    though it did; now the undo names the log as what is gone."""
    ids = make_books(3)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Old"}, run="sync",
                             atomic=False)
    settings.PGBULK = {**settings.PGBULK, "ASYNC_ENABLED": True, "QUEUE": "held"}
    undo = pgbulk.undo(job, run="async")
    Change.objects.filter(job_id=job.pk, object_pk=str(ids[0])).delete()
    Book.objects.filter(pk=ids[1]).delete()
    from pgbulk import execute
    execute.run(undo.id)
    undo.refresh_from_db()
    reasons = dict(JobError.objects.filter(job=undo).values_list("object_pk", "message"))
    assert reasons[str(ids[0])].startswith("Not restored: the change log of the undone job "
                                           "no longer holds this record"), reasons
    assert reasons[str(ids[1])] == "The record no longer exists."
    assert (undo.status, undo.done) == ("failed", 1)


def test_the_sql_sweep_deletes_an_undone_job_its_undo_link_and_its_log():
    # Before: the foreign key of undo_of refused the SQL sweep's delete (every run).
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "A"}, run="sync")
    undo = pgbulk.undo(job, run="sync")
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=40))
    with connection.cursor() as cursor:  # as psql or pg_cron would run it
        cursor.execute("SELECT pgbulk_sweep_v3()")
    assert not Job.objects.filter(pk=job.pk).exists()
    undo.refresh_from_db()
    assert undo.undo_of_id is None and undo.params["undo_of"] == str(job.pk)
    assert not Change.objects.filter(job_id=job.pk).exists()  # no orphaned log rows
    assert Change.objects.filter(job=undo).count() == 2


def test_a_log_an_undo_still_needs_is_kept_past_its_retention(settings):
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "A"}, run="sync")
    settings.PGBULK = {**settings.PGBULK, "QUEUE": f"held-{uuid.uuid4().hex[:6]}",
                       "CHANGE_RETENTION": 1}
    undo = pgbulk.undo(job, run="async")  # queued: no worker serves its queue
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=2))
    sweep()
    job.refresh_from_db()
    assert job.change_log == "kept" and len(logged(job)) == 2
    undo.cancel()
    sweep()
    job.refresh_from_db()
    assert job.change_log == "expired" and logged(job) == {}


# --- Undo --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_undo_restores_a_succeeded_job_exactly_and_an_undo_of_it_redoes(strategy, atomic):
    ids = make_books(30)
    Book.objects.filter(pk__in=ids[:10]).update(status="published", price=7)
    poetry, crime = Genre.objects.get(name="Poetry"), Genre.objects.get(name="Crime")
    original = books(ids)
    job = pgbulk.bulk_update(
        Book.objects.filter(pk__in=ids),
        {"status": "draft", "price": "9.99", "genres": {"set": [poetry.pk]}},
        run="sync", strategy=strategy, atomic=atomic)
    changed = books(ids)
    assert changed != original and {g for *_, g in changed.values()} == {(poetry.pk,)}
    undo = pgbulk.undo(job, run="sync")
    assert (undo.status, undo.done, undo.skipped_count) == ("succeeded", 30, 0), undo.message
    assert undo.undo_of_id == job.pk and undo.params["strategy"] == strategy
    assert undo.message == "Restored 30 of 30 records."
    assert books(ids) == original
    assert {g for *_, g in books(ids).values()} == {(crime.pk,)}
    redo = pgbulk.undo(undo, run="sync")
    assert redo.status == "succeeded" and books(ids) == changed


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_undo_puts_back_json_values_with_floats_exactly(strategy):
    # Before: the log's floats came back as Decimal, which JSONField cannot write: the
    # save strategy failed each record ("Value must be valid JSON"), the set-based one
    # ended the whole undo with a TypeError.
    data = {"ratio": 1.5, "tiny": 1e-7, "n": 2, "nested": [0.1, {"x": -2.25}], "s": "1.5"}
    label = Label.objects.create(name="a", data=data)
    job = pgbulk.bulk_update(Label.objects.all(), {"data": {"ratio": 2}}, run="sync",
                             strategy=strategy)
    assert job.status == "succeeded", job.message
    undo = pgbulk.undo(job, run="sync")
    assert undo.status == "succeeded", undo.message
    assert Label.objects.get(pk=label.pk).data == data
    redo = pgbulk.undo(undo, run="sync")
    assert redo.status == "succeeded" and Label.objects.get(pk=label.pk).data == {"ratio": 2}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_undo_after_a_partial_failure_restores_only_what_was_changed(strategy):
    ids = make_books(20)
    isbns = dict(Book.objects.filter(pk__in=ids).values_list("pk", "isbn"))
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"isbn": "ONE"},
                             run="sync", strategy=strategy, atomic=False)
    assert (job.status, job.done, job.failed_count) == ("failed", 1, 19)
    Book.objects.filter(pk__in=ids[1:]).update(title="Untouched by the job")
    undo = pgbulk.undo(job, run="sync")
    assert (undo.status, undo.total, undo.done) == ("succeeded", 1, 1)
    assert dict(Book.objects.filter(pk__in=ids).values_list("pk", "isbn")) == isbns
    assert Book.objects.filter(title="Untouched by the job").count() == 19


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_undo_skips_records_changed_meanwhile_and_names_them(strategy):
    ids = make_books(10)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "published"},
                             run="sync", strategy=strategy)
    Book.objects.filter(pk=ids[3]).update(status="archived", in_print=False)
    undo = pgbulk.undo(job, run="sync")
    assert (undo.status, undo.done, undo.skipped_count) == ("succeeded", 9, 1)
    assert undo.message == ("Restored 9 of 10 records. 1 skipped: it changed since the "
                            "undone job.")
    skipped = JobError.objects.get(job=undo)
    assert skipped.skipped and skipped.object_pk == str(ids[3])
    assert skipped.record == str(Book.objects.get(pk=ids[3]))
    assert skipped.message == ('Changed since the undone job (status is "Archived", the job '
                               'left "Published"): left as it is.')
    assert Book.objects.get(pk=ids[3]).status == "archived"
    assert set(Book.objects.filter(pk__in=ids).exclude(pk=ids[3])
               .values_list("status", flat=True)) == {"draft"}


@pytest.mark.worker
def test_undo_is_refused_while_another_job_holds_the_records_and_changes_nothing(settings):
    ids = make_books(10)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Done"}, run="sync")
    settings.PGBULK = {**settings.PGBULK, "QUEUE": f"held-{uuid.uuid4().hex[:6]}"}
    holder = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:1]), {"price": 3},
                                run="async")  # queued on a queue no worker serves
    jobs = Job.objects.count()
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.undo(job)
    assert Job.objects.count() == jobs
    assert set(Book.objects.filter(pk__in=ids).values_list("title", flat=True)) == {"Done"}
    holder.cancel()


def test_undo_needs_the_change_permission_and_the_job_or_change_job(django_user_model):
    ids = make_books(3)
    owner = django_user_model.objects.create_user("owner")
    other = django_user_model.objects.create_user("other")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "Mine"}, run="sync",
                             user=owner)
    with pytest.raises(PermissionDenied):
        pgbulk.undo(job, user=owner)  # no change permission on books
    change_book = Permission.objects.get(codename="change_book")
    owner.user_permissions.add(change_book)
    other.user_permissions.add(change_book)
    owner, other = (django_user_model.objects.get(pk=u.pk) for u in (owner, other))
    with pytest.raises(PermissionDenied):
        pgbulk.undo(job, user=other)  # not theirs, no pgbulk.change_job
    undo = pgbulk.undo(job, user=owner, run="sync")
    assert undo.status == "succeeded" and undo.user == owner


def test_a_job_whose_records_are_all_gone_cannot_be_undone_and_says_why():
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "x"}, run="sync")
    Book.objects.filter(pk__in=ids).delete()
    with pytest.raises(pgbulk.BulkValidationError, match="None of the records it changed"):
        pgbulk.undo(job)


def test_an_undo_says_how_many_records_of_the_undone_job_are_gone():
    # Before: "Restored 2 of 2 records." and not a word of the third, deleted meanwhile.
    ids = make_books(4)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "x"}, run="sync")
    Book.objects.filter(pk=ids[0]).delete()
    Book.objects.filter(pk=ids[1]).update(title="y")
    forecast = undoing.forecast(job)
    assert (forecast.put_back, forecast.skipped, forecast.gone) == (2, 1, 1)
    undo = pgbulk.undo(job, run="sync")
    assert undo.message == ("Restored 2 of 3 records. 1 skipped: it changed since the "
                            "undone job. 1 record the undone job changed no longer exists.")
    Book.objects.filter(pk=ids[2]).delete()
    assert pgbulk.undo(undo, run="sync").message == (
        "Restored 1 of 1 records. 1 record the undone job changed no longer exists.")


def test_a_job_whose_logged_field_is_gone_from_the_model_cannot_be_undone_and_says_why(
        client):
    # Before: the undo confirmation read the field that no longer exists: a 500.
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"title": "x"}, run="sync")
    spec = {**job.params["change_log"], "fields": ["title", "subtitle"]}
    Job.objects.filter(pk=job.pk).update(params={**job.params, "change_log": spec})
    job.refresh_from_db()
    with pytest.raises(pgbulk.BulkValidationError, match="no longer has the field subtitle"):
        pgbulk.undo(job)
    admin = User.objects.create_superuser("boss", password="x")
    client.force_login(admin)
    client.raise_request_exception = False
    response = client.get(f"/pgbulk/jobs/{job.id}/undo/")
    assert response.status_code == 400 and b"no longer has the field subtitle" in response.content
    assert client.get(f"/pgbulk/jobs/{job.id}/").status_code == 200


def test_undo_from_python_of_a_job_whose_records_all_changed_since_is_refused():
    """pgbulk.undo() launched an undo that skipped every record (and wrote a skip row for
    each) where the page said "Nothing to put back"."""
    ids = make_books(3)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "published"},
                             run="sync")
    Book.objects.filter(pk__in=ids[:2]).update(status="archived")
    Book.objects.filter(pk=ids[2]).delete()
    with pytest.raises(pgbulk.BulkValidationError, match="Nothing to put back"):
        pgbulk.undo(job, run="sync")
    assert not Job.objects.filter(undo_of=job).exists()
    assert not Reservation.objects.exists()


def test_deletes_and_unfinished_jobs_cannot_be_undone():
    ids = make_books(3)
    delete = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids[:1]), run="sync")
    with pytest.raises(pgbulk.BulkValidationError, match="Deleted records cannot be brought back"):
        pgbulk.undo(delete)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[1:]), {"title": "x"}, run="sync")
    job.status = "running"  # as read while it ran
    with pytest.raises(pgbulk.BulkValidationError, match="not finished"):
        pgbulk.undo(job)


@pytest.mark.worker
def test_an_undo_runs_on_a_worker_like_any_job(worker):
    ids = make_books(50)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 77}, run="sync")
    undo = pgbulk.undo(job, run="async")
    undo.wait(60)
    assert undo.status == "succeeded", undo.message
    assert set(Book.objects.filter(pk__in=ids).values_list("price", flat=True)) == {10}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pgbulk_reservation WHERE job_id = %s", [undo.pk])
        assert cursor.fetchone()[0] == 0


@pytest.mark.worker
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_on_a_worker_the_log_is_what_was_written_and_undo_puts_back_only_that(
        worker, writes, strategy):
    # The worker's chunks are 100 records: three chunks, each its own transaction.
    ids = make_books(250, in_print=False)
    Book.objects.filter(pk__in=ids[10:15]).update(in_print=True)  # fail clean() (save)
    Book.objects.filter(pk__in=ids[:3]).update(status="archived")  # already hold the value
    fails = {str(pk) for pk in ids[10:15]} if strategy == "save" else set()
    original, before = books(ids), writes(ids)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"},
                             run="async", strategy=strategy, atomic=False)
    job.wait(60)
    assert job.status == ("failed" if fails else "succeeded"), job.message
    changed = {str(pk) for pk in ids[3:]} - fails
    assert set(logged(job)) == changed
    assert written(writes, ids, before) == {str(pk) for pk in ids} - fails
    Book.objects.filter(pk=ids[20]).update(status="published")  # changed since: skipped
    Book.objects.filter(pk=ids[21]).delete()  # gone: not counted, said
    undo = pgbulk.undo(job, run="async")
    undo.wait(60)
    assert (undo.status, undo.done, undo.skipped_count) == ("succeeded", len(changed) - 2, 1)
    assert undo.message == (f"Restored {len(changed) - 2} of {len(changed) - 1} records. 1 "
                            "skipped: it changed since the undone job. 1 record the undone "
                            "job changed no longer exists.")
    assert JobError.objects.get(job=undo, skipped=True).object_pk == str(ids[20])
    now = books(ids)
    for pk in ids:
        if str(pk) in changed - {str(ids[20]), str(ids[21])} or str(pk) in fails:
            assert now[pk] == original[pk], pk
    assert now[ids[20]][0] == "published" and ids[21] not in now
    assert {now[pk][0] for pk in ids[:3]} == {"archived"}  # not logged: left as they are


def test_the_job_row_records_what_it_logs_at_launch():
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids),
                             {"author": Book.objects.get(pk=ids[0]).author_id,
                              "genres": {"add": []}}, run="sync")
    assert job.params["change_log"] == {"fields": ["author_id"], "m2m": ["genres"],
                                        "excluded": []}
    assert all(set(before) == {"author_id", "genres"} for before, _ in logged(job).values())


def test_a_failed_undo_says_how_many_it_skipped_too():
    ids = make_books(3, status="archived", in_print=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "published"},
                             run="sync", atomic=False)
    Book.objects.filter(pk=ids[0]).update(status="draft")  # skipped: changed since
    Book.objects.filter(pk=ids[1]).update(in_print=True)  # archived and in print: fails
    undo = pgbulk.undo(job, run="sync")
    assert (undo.status, undo.done, undo.failed_count, undo.skipped_count) == ("failed", 1, 1, 1)
    assert undo.message == ("1 of 3 records failed; 1 restored. 1 skipped: it changed since "
                            "the undone job.")


def test_a_proxy_models_set_based_job_logs_in_one_statement():
    from django.test.utils import CaptureQueriesContext

    from testproject.library.models import DraftBook

    ids = make_books(3)
    with CaptureQueriesContext(connection) as captured:
        job = pgbulk.bulk_update(DraftBook.objects.filter(pk__in=ids), {"title": "P"},
                                 run="sync", strategy="queryset")
    assert sum("logged UPDATE" in q["sql"] for q in captured.captured_queries) == 1
    assert [after for _, after in logged(job).values()] == [{"title": "P"}] * 3


# --- Scale -------------------------------------------------------------------------------


def most_rows(node: dict) -> int:
    """The most rows any node of an EXPLAIN (ANALYZE, FORMAT JSON) plan produced in all."""
    own = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    return max([own, *(most_rows(child) for child in node.get("Plans", []))])


@contextlib.contextmanager
def plans_of_log_statements():
    """Collect ``(statement, most rows of a node)`` of every statement that reads or
    writes the change log, each explained with ANALYZE first (then rolled back)."""
    seen: list[tuple[str, int]] = []

    def explain(execute, sql, params, many, context):
        if "pgbulk_change" in sql and not many and "INSERT INTO pgbulk_job" not in sql:
            raw, inside = context["cursor"].cursor, context["connection"].in_atomic_block
            raw.execute("SAVEPOINT pgbulk_explain" if inside else "BEGIN")
            raw.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            seen.append((sql, most_rows(raw.fetchone()[0][0]["Plan"])))
            raw.execute("ROLLBACK TO SAVEPOINT pgbulk_explain" if inside else "ROLLBACK")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        yield seen


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_logging_and_undoing_a_many_to_many_change_reads_each_record_a_few_times(strategy):
    # Before: once the log's statistics knew only an earlier job (the usual case), the
    # planner joined each record of a chunk with each log row of the new job, reading
    # every record's many-to-many keys once per pair: 20,000 books gaining a genre did
    # not finish in 5 minutes. Now each statement's work grows with the chunk, not its
    # square.
    ids = make_books(300)
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": "11"}, run="sync")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE pgbulk_change")
    poetry = Genre.objects.get(name="Poetry").pk
    with plans_of_log_statements() as seen:
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"genres": {"add": [poetry]}},
                                 run="sync", strategy=strategy)
        assert undoing.forecast(job).put_back == 300
        assert pgbulk.undo(job, run="sync").done == 300
    assert len(seen) >= 4
    assert [(sql, rows) for sql, rows in seen if rows > 3 * 300] == []

"""Launching: validation, conflicts, atomic launch, run modes, key types (no worker needed)."""

from __future__ import annotations

import datetime
import itertools
import uuid
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext

import pgbulk
from pgbulk import signals
from pgbulk.models import Job, Reservation
from testproject.library.models import Author, Book, Genre, Label, Publisher
from tests.factories import make_books, reservation_count

pytestmark = pytest.mark.django_db


@pytest.fixture
def held_queue(settings):
    """Async on, but jobs go to a queue no worker listens to: they stay queued."""
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}


def queued_task_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'held'")
        return cursor.fetchone()[0]


def nothing_written(jobs_before: int = 0) -> bool:
    return Job.objects.count() == jobs_before and reservation_count() == 0


# --- validation -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        ({"nope": 1}, "nope", "Unknown field"),
        ({"revision": 3}, "revision", "not editable"),
        ({"id": 3}, "id", "not editable"),
        ({"price": "abc"}, "price", "decimal"),
        ({"status": "lost"}, "status", "not a valid choice"),
        ({"title": None}, "title", "empty"),
        ({"author": 999_999}, "author", "does not exist"),
        ({"author": "x"}, "author", "not a valid key"),
        ({"genres": {"add": [999_999]}}, "genres", "not found"),
        ({"genres": {"merge": [1]}}, "genres", "exactly one of"),
        ({"genres": [1]}, "genres", "exactly one of"),
    ],
)
def test_invalid_values_are_refused_before_anything_is_written(values, field, fragment):
    make_books(3)
    with pytest.raises(pgbulk.BulkValidationError) as caught:
        pgbulk.bulk_update(Book.objects.all(), values)
    assert fragment in " ".join(caught.value.errors[field])
    assert nothing_written()


def test_field_outside_the_allowed_list_is_refused():
    make_books(2)
    with pytest.raises(pgbulk.BulkValidationError) as caught:
        pgbulk.bulk_update(Book.objects.all(), {"price": 5}, fields=["status"])
    assert "cannot be bulk edited" in caught.value.errors["price"][0]
    assert nothing_written()


def test_no_values_and_empty_selection_are_refused():
    with pytest.raises(pgbulk.BulkValidationError):
        pgbulk.bulk_update(Book.objects.all(), {})
    with pytest.raises(pgbulk.BulkValidationError) as caught:
        pgbulk.bulk_update(Book.objects.none() | Book.objects.filter(pk=-1), {"price": 1})
    assert "No records" in caught.value.errors["__all__"][0]
    assert nothing_written()


def test_bad_run_mode_and_strategy_are_refused():
    make_books(1)
    with pytest.raises(ValueError):
        pgbulk.bulk_update(Book.objects.all(), {"price": 1}, run="later")
    with pytest.raises(ValueError):
        pgbulk.bulk_update(Book.objects.all(), {"price": 1}, strategy="fast")
    assert nothing_written()


# --- synchronous runs: every kind of field -----------------------------------------------

@pytest.mark.parametrize("strategy", ["save", "queryset"])
def test_sync_update_sets_every_kind_of_field(strategy):
    ids = make_books(5)
    author = Author.objects.create(name="New author")
    crime, poetry = Genre.objects.get(name="Crime"), Genre.objects.get(name="Poetry")
    job = pgbulk.bulk_update(
        Book.objects.filter(pk__in=ids),
        {"status": "published", "price": "12.50", "in_print": False, "published_on": None,
         "author": author, "genres": {"set": [poetry.pk]}},
        run="sync", strategy=strategy,
    )
    assert (job.status, job.done, job.total, job.run_mode) == ("succeeded", 5, 5, "sync")
    for book in Book.objects.filter(pk__in=ids):
        assert (book.status, book.price, book.in_print, book.published_on, book.author_id) == (
            "published", Decimal("12.50"), False, None, author.pk)
        assert list(book.genres.all()) == [poetry]
    assert not crime.books.filter(pk__in=ids).exists()
    assert reservation_count() == 0


@pytest.mark.parametrize("strategy", ["save", "queryset"])
def test_m2m_add_and_remove(strategy):
    ids = make_books(4)
    poetry, crime = Genre.objects.get(name="Poetry"), Genre.objects.get(name="Crime")
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"genres": {"add": [poetry.pk]}},
                       run="sync", strategy=strategy)
    assert poetry.books.filter(pk__in=ids).count() == 4
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:2]), {"genres": {"remove": [crime.pk]}},
                       run="sync", strategy=strategy)
    assert set(crime.books.filter(pk__in=ids).values_list("pk", flat=True)) == set(ids[2:])


@pytest.mark.parametrize(("strategy", "updates"), [("save", 30), ("queryset", 3)])
def test_each_strategy_walks_its_own_chunk_size(settings, strategy, updates):
    settings.PGBULK = {"CHUNK_SIZE": 4, "QUERYSET_CHUNK_SIZE": 10}
    ids = make_books(30, genre=False)
    with CaptureQueriesContext(connection) as captured:
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 6}, run="sync",
                                 strategy=strategy, atomic=False)
    assert (job.status, job.done) == ("succeeded", 30), job.message
    sql = [q["sql"] for q in captured.captured_queries]
    chunks = 8 if strategy == "save" else 3  # 30 records in chunks of 4, or of 10
    assert sum("Claim chunk N of a job" in q for q in sql) == chunks
    # one look per chunk, then from the end and from the start (other runners' chunks)
    assert sum("The first target record of a job" in q for q in sql) == chunks + 2
    assert sum('UPDATE "library_book"' in q for q in sql) == updates


def test_save_strategy_runs_full_clean_and_signals_queryset_does_not():
    ids = make_books(3)
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 3}, run="sync")
    assert set(Book.objects.filter(pk__in=ids).values_list("revision", flat=True)) == {1}
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 4}, run="sync",
                       strategy="queryset")
    assert set(Book.objects.filter(pk__in=ids).values_list("revision", "price")) == {
        (1, Decimal(4))}


def test_save_strategy_loads_chunks_with_the_selections_related_lookups(settings):
    settings.PGBULK = {"CHUNK_SIZE": 10}
    ids = make_books(30)
    selection = (Book.objects.select_related("author").filter(pk__in=ids)
                 .prefetch_related("genres", Prefetch("author__books")))
    spy = mock.patch("pgbulk.register_descendant_conflicts",
                     wraps=pgbulk.register_descendant_conflicts)
    with CaptureQueriesContext(connection) as captured, spy as register:
        job = pgbulk.bulk_update(selection, {"price": 5}, run="sync")
    assert job.status == "succeeded", job.message
    assert job.params["loading"] == {"select_related": {"author": {}},
                                     "prefetch_related": ["genres"]}  # Prefetch() not kept
    sql = [q["sql"] for q in captured.captured_queries]
    # One genre query per chunk (the prefetch), none per book saved by Book.save();
    # the author came with each chunk's books, and only the books are row-locked.
    genre_reads = [q for q in sql if q.startswith("SELECT") and 'FROM "library_genre"' in q]
    assert len(genre_reads) == 3 and all("_prefetch_related_val" in q for q in genre_reads)
    assert sum("library_author" in q and "FOR NO KEY UPDATE" in q for q in sql) == 3
    assert all(q.endswith('FOR NO KEY UPDATE OF "library_book"') for q in sql
               if "FOR NO KEY UPDATE" in q)
    # The nested work still ran, from the prefetched genres.
    crime = Genre.objects.get(name="Crime")
    assert register.call_count == 30 and register.call_args.args == (Genre, [crime.pk])
    assert Book.objects.filter(pk__in=ids, price=5, revision=1).count() == 30


def test_a_sync_job_whose_records_need_records_another_job_holds_fails_saying_which(
        held_queue):
    # Book.save() registers the book's genres; another job holds Crime. The job failed
    # with "Conflict: 1 record(s) held by job ...", as if its own selection were held.
    ids = make_books(2)
    crime = Genre.objects.filter(name="Crime")
    holder = pgbulk.bulk_update(crime, {"name": "Crime fiction"}, run="async")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 5}, run="sync")
    assert job.status == "failed" and job.done == 0
    first = Book.objects.get(pk=ids[0])
    assert job.message == (f"{first} (key {first.pk}) could not be changed: Conflict: genres "
                           f"this job's records need are held by other jobs: 1 record(s) held "
                           f"by job {holder.id}. Nothing was changed.")
    assert set(Book.objects.filter(pk__in=ids).values_list("price", flat=True)) == {10}


def test_sync_atomic_failure_changes_nothing_and_names_the_record():
    ids = make_books(5, in_print=True)
    Book.objects.filter(pk=ids[3]).update(in_print=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"}, run="sync")
    assert job.status == "failed"
    first = Book.objects.get(pk=ids[0])
    # Before: "library.Book record 1 (Book 1): in_print: ... in print.. Nothing was changed."
    assert job.message == (f"{first} (key {first.pk}) could not be changed: in_print: An "
                           "archived book cannot be in print. Nothing was changed.")
    assert not Book.objects.filter(status="archived").exists()
    assert reservation_count() == 0


def test_sync_chunked_failure_reports_each_record_and_keeps_the_rest(settings):
    settings.PGBULK = {"CHUNK_SIZE": 2}
    ids = make_books(5, in_print=False)
    Book.objects.filter(pk__in=ids[1:3]).update(in_print=True)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"},
                             run="sync", atomic=False)
    assert (job.status, job.done, job.failed_count) == ("failed", 3, 2)
    assert {e["pk"] for e in job.errors} == {str(ids[1]), str(ids[2])}
    assert {e["field"] for e in job.errors} == {"in_print"}
    assert set(Book.objects.filter(status="archived").values_list("pk", flat=True)) == {
        ids[0], ids[3], ids[4]}
    assert "2 of 5 records failed" in job.message


def test_queryset_strategy_database_error_names_the_record(monkeypatch):
    # A constraint the pre-launch check cannot see (as one that also reads an unchanged
    # field): only the database refuses the value.
    monkeypatch.setattr("pgbulk.values.constraint_errors", lambda model, cleaned: {})
    ids = make_books(3)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": "-1"}, run="sync",
                             strategy="queryset")
    assert job.status == "failed"
    assert f"(key {ids[0]})" in job.message and "book_price_not_negative" in job.message
    assert Book.objects.filter(price__lt=0).count() == 0


def test_delete_reports_protected_records(settings):
    make_books(2)
    lonely = Author.objects.create(name="No books")
    job = pgbulk.bulk_delete(Author.objects.all(), run="sync", atomic=False)
    assert (job.status, job.done, job.failed_count) == ("failed", 1, 1)
    assert "protected" in job.errors[0]["message"]
    assert not Author.objects.filter(pk=lonely.pk).exists()
    atomic = pgbulk.bulk_delete(Author.objects.all(), run="sync")
    assert atomic.status == "failed" and "protected" in atomic.message
    assert Author.objects.count() == 1


def test_sync_delete():
    ids = make_books(4)
    job = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids[:3]), run="sync")
    assert (job.status, job.done) == ("succeeded", 3)
    assert list(Book.objects.values_list("pk", flat=True)) == ids[3:]


# --- key types ------------------------------------------------------------------------

def test_uuid_and_text_primary_keys(held_queue):
    labels = Label.objects.bulk_create(Label(name=f"l{i}") for i in range(25))
    publishers = Publisher.objects.bulk_create(
        Publisher(code=f"P-{i:03d}", name=f"p{i}") for i in range(25))
    job = pgbulk.bulk_update(Label.objects.all(), {"rank": 7}, run="sync")
    assert job.status == "succeeded" and set(Label.objects.values_list("rank", flat=True)) == {7}
    job = pgbulk.bulk_update(Publisher.objects.all(), {"active": False}, run="sync")
    assert job.status == "succeeded" and not Publisher.objects.filter(active=True).exists()
    queued = pgbulk.bulk_update(Label.objects.filter(pk=labels[0].pk), {"rank": 1}, run="async")
    held = Reservation.objects.get(job=queued)
    assert uuid.UUID(held.object_pk) == labels[0].pk
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(Label.objects.all(), {"rank": 2}, run="sync")
    pgbulk.bulk_delete(Publisher.objects.filter(pk=publishers[0].pk), run="sync")
    assert Publisher.objects.count() == 24


# --- conflicts and the atomic launch ------------------------------------------------------

def test_the_conflict_report_counts_a_large_overlap_by_probing_each_selected_key(held_queue):
    """Before: held spans were expanded and joined to the selection, which PostgreSQL
    planned as a nested loop while the fresh reservation table looked empty: over 11
    minutes for 100k held records, during a launch or a preview (about two minutes here).
    The time limit only stops that runaway plan: this takes well under a second."""
    ids = make_books(50_000, genre=False)
    alice = User.objects.create_user("alice")
    first = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:40_000]), {"price": 1},
                               user=alice)
    Reservation.objects.create(job=first, model="library.Book", object_pk=str(ids[-1]),
                               seq=10**6)
    with connection.cursor() as cursor:
        # The books are known to the planner (this transaction's own rows count); the
        # reservations are not, as after any large launch.
        cursor.execute("ANALYZE library_book")
        cursor.execute("SET LOCAL statement_timeout = '60s'")
        with pytest.raises(pgbulk.ConflictError) as caught:
            pgbulk.bulk_update(Book.objects.filter(pk__gte=ids[10_000]), {"price": 2})
        cursor.execute("SET LOCAL statement_timeout = 0")
    assert caught.value.conflicts == [  # spans, and a one-key row
        {"job_id": str(first.id), "user": "alice", "count": 30_001}]


def test_overlapping_launch_is_refused_whole_naming_job_user_and_count(held_queue):
    ids = make_books(30)
    alice = User.objects.create_user("alice")
    first = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:20]), {"price": 1}, user=alice)
    assert first.status == "queued" and first.run_mode == "async"
    jobs, tasks = Job.objects.count(), queued_task_count()
    reserved = reservation_count()
    with pytest.raises(pgbulk.ConflictError) as caught:
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids[15:]), {"price": 2}, run="async")
    assert caught.value.conflicts == [{"job_id": str(first.id), "user": "alice", "count": 5}]
    assert "alice" in str(caught.value)
    # Nothing of the refused launch exists: job row, reservations, queued task.
    assert (Job.objects.count(), queued_task_count(), reservation_count()) == (
        jobs, tasks, reserved)
    # A synchronous edit of an overlapping selection is refused the same way (invariant 7).
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(Book.objects.filter(pk=ids[0]), {"price": 3}, run="sync")
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_delete(Book.objects.filter(pk=ids[0]), run="sync")
    # Disjoint selections are fine.
    other = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[20:]), {"price": 4}, run="sync")
    assert other.status == "succeeded"
    assert set(Book.objects.filter(pk__in=ids[:20]).values_list("price", flat=True)) == {10}


def test_launch_writes_job_reservations_and_task_together(held_queue):
    ids = make_books(25)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 9})
    assert job.total == 25 and reservation_count() == 25
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_name, args->>'job_id', status FROM procrastinate_jobs "
                       "WHERE id = %s", [job.procrastinate_job_id])
        assert cursor.fetchone() == ("pgbulk.tasks.bulk_update_task", str(job.id), "todo")


def test_conflict_checking_off_does_not_block_or_get_blocked(held_queue):
    ids = make_books(25)
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 9})
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 8}, run="sync",
                             conflict_checking=False)
    assert job.status == "succeeded"


def test_selection_with_joins_reserves_each_record_once(held_queue):
    ids = make_books(25)
    poetry = Genre.objects.get(name="Poetry")
    Book.genres.through.objects.bulk_create(
        Book.genres.through(book_id=pk, genre_id=poetry.pk) for pk in ids)
    job = pgbulk.bulk_update(Book.objects.filter(genres__name__in=["Crime", "Poetry"]),
                             {"price": 2})
    assert job.total == 25 == reservation_count()


# --- run modes ------------------------------------------------------------------------------

def test_auto_runs_small_selections_here_and_large_ones_async(held_queue):
    ids = make_books(25)
    small = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:5]), {"price": 2})
    assert (small.run_mode, small.status) == ("sync", "succeeded")
    large = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[5:]), {"price": 3})
    assert (large.run_mode, large.status) == ("async", "queued")
    below = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:5]), {"price": 4},
                               min_async_records=3)
    assert below.run_mode == "async"


def test_async_disabled_runs_everything_here(settings):
    settings.PGBULK = {"ASYNC_ENABLED": False}
    ids = make_books(30)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2})
    assert (job.run_mode, job.status) == ("sync", "succeeded")
    with pytest.raises(ImproperlyConfigured):
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="async")


def test_cancel_a_queued_job_releases_its_records(held_queue):
    ids = make_books(25)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2})
    assert job.cancel() is True
    assert job.status == "cancelled" and reservation_count() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s",
                       [job.procrastinate_job_id])
        assert cursor.fetchone()[0] == "cancelled"
    assert job.cancel() is False
    assert set(Book.objects.values_list("price", flat=True)) == {10}


# --- events and helpers ---------------------------------------------------------------------

def test_lifecycle_events_are_sent_after_commit(django_capture_on_commit_callbacks):
    seen = []

    def listener(sender, job, event, **kwargs):
        seen.append((event, job.status))

    signals.job_event.connect(listener)
    try:
        ids = make_books(2)
        with django_capture_on_commit_callbacks(execute=True):
            pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="sync")
    finally:
        signals.job_event.disconnect(listener)
    assert seen[0][0] == "create" and seen[-1] == ("complete", "succeeded")
    assert ("progress", "running") in seen


def test_nested_helpers_outside_a_job():
    assert pgbulk.current_job() is None
    assert pgbulk.skip_nested_async() is False
    assert pgbulk.register_descendant_conflicts(Genre, [1, 2]) == 0


def test_progress_snapshot_of_a_finished_job():
    ids = make_books(4)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"published_on": datetime.date(
        2020, 1, 1)}, run="sync")
    p = job.progress()
    assert (p["status"], p["done"], p["total"], p["percent"]) == ("succeeded", 4, 4, 100.0)


def test_consecutive_integer_keys_are_reserved_as_spans(held_queue):
    ids = make_books(250, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="async")
    spans = list(Reservation.objects.filter(job=job).order_by("seq")
                 .values_list("seq", "key_lo", "span"))
    assert job.total == 250 and [span for _seq, _lo, span in spans] == [100, 100, 50]
    assert [(seq, lo) for seq, lo, _span in spans] == [
        (1, ids[0]), (101, ids[100]), (201, ids[200])]  # ordinal of the first record


@pytest.mark.parametrize("chunk", [1, 7, 40, 100, 150, 997, 1000])
def test_spans_tile_the_selection_and_never_cross_a_chunk(held_queue, settings, chunk):
    """With gaps in the keys and any CHUNK_SIZE: rows number the records 1..N without a
    gap, none crosses a multiple of the chunk size or holds more than 100 keys, and there
    are about N/100 + N/chunk + runs of rows (a prime chunk size reserved one row per
    record when spans had to divide it)."""
    import random

    settings.PGBULK = {**settings.PGBULK, "CHUNK_SIZE": chunk}
    ids = make_books(1200, genre=False)
    rng = random.Random(chunk)
    chosen = [pk for pk in ids if rng.random() > 0.15]  # about 180 gaps
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=chosen), {"price": 2}, run="async")
    rows = list(Reservation.objects.filter(job=job).order_by("seq")
                .values_list("seq", "key_lo", "span"))
    assert [seq for seq, _, _ in rows] == list(
        itertools.accumulate([1] + [span for _, _, span in rows[:-1]]))  # tiles 1..N
    keys = [key for _, lo, span in rows for key in range(lo, lo + span)]
    assert keys == chosen and job.total == len(chosen)
    assert all(span <= 100 and (seq - 1) // chunk == (seq + span - 2) // chunk
               for seq, _, span in rows)
    runs = 1 + sum(1 for a, b in itertools.pairwise(chosen) if b != a + 1)
    assert len(rows) <= runs + len(chosen) // 100 + len(chosen) // chunk + 1


def test_spans_conflict_exactly_on_the_records_they_share(held_queue):
    ids = make_books(300, genre=False)
    holder = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:150]), {"price": 2},
                                run="async")
    with pytest.raises(pgbulk.ConflictError) as caught:  # shares the last record only
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids[149:160]), {"price": 3},
                           run="async")
    assert caught.value.conflicts == [{"job_id": str(holder.id), "user": None, "count": 1}]
    every_other = Book.objects.filter(pk__in=ids[150::2])  # sparse: one row per record
    sparse = pgbulk.bulk_update(every_other, {"price": 4}, run="async")
    assert sparse.total == 75 and Reservation.objects.filter(job=sparse).count() == 75
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids[200:203]), {"price": 5},
                           run="async")
    gaps = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[151::2]), {"price": 6},
                              run="async")
    assert gaps.total == 75


@pytest.mark.parametrize("atomic", [True, False])
def test_a_delete_whose_records_are_already_gone_succeeds_and_says_so(held_queue, client,
                                                                     atomic):
    """A record deleted before its chunk (by a cascade, or outside the job) failed the
    delete job as "no longer exists" (all of it, when atomic), though it is gone as
    asked."""
    from pgbulk import execute

    ids = make_books(10, genre=False)
    job = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids), run="async", atomic=atomic)
    Book.objects.filter(pk__in=ids[3:5]).delete()  # gone before the job ran
    job = execute.run(job.id)
    assert (job.status, job.done, job.skipped_count, job.failed_count) == (
        "succeeded", 8, 2, 0)
    assert job.message == "Deleted 8 of 10 records. 2 were already gone."
    assert not Book.objects.filter(pk__in=ids).exists() and reservation_count() == 0
    client.force_login(User.objects.create_superuser("boss"))
    page = client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
    assert "Already gone" in page and "Skipped (changed since" not in page
    assert "2 already gone" in page
    csv_text = b"".join(client.get(f"/pgbulk/jobs/{job.id}/errors.csv").streaming_content)
    assert csv_text.decode().count(",already gone\r\n") == 2


@pytest.mark.parametrize("strategy", ["save", "queryset"])
def test_a_date_time_is_set_to_the_microsecond(strategy):
    """Before: values reached the job through DjangoJSONEncoder, which rounds times to the
    millisecond: 05.678901 was written as 05.678000, and records already holding
    05.678901 were counted (and rewritten) as changed."""
    due = datetime.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    held = Label.objects.create(name="held", due_at=due)
    other = Label.objects.create(name="other")
    labels = Label.objects.filter(pk__in=[held.pk, other.pk])
    preview = pgbulk.preview(labels, {"due_at": due})
    assert preview["fields"][0]["unchanged"] == 1
    assert preview["fields"][0]["new"] == "2020-01-02T03:04:05.678901Z"
    job = pgbulk.bulk_update(labels, {"due_at": due}, strategy=strategy, run="sync")
    assert job.status == "succeeded", job.message
    assert set(labels.values_list("due_at", flat=True)) == {due}
    assert "1 changed; 1 already held the new values." in job.message


def test_a_sliced_selection_means_the_records_it_holds_at_launch():
    """Before: qs[:5] raised Django's "Cannot reorder a query once a slice has been taken"
    from bulk_update, bulk_delete and preview."""
    ids = make_books(8)
    newest = Book.objects.order_by("-pk")[:3]
    assert pgbulk.preview(newest, {"price": 2})["total"] == 3
    job = pgbulk.bulk_update(newest, {"price": 2}, run="sync")
    assert job.status == "succeeded", job.message
    assert set(Book.objects.filter(price=2).values_list("pk", flat=True)) == set(ids[-3:])
    gone = pgbulk.bulk_delete(Book.objects.order_by("pk")[:2], run="sync")
    assert gone.status == "succeeded" and not Book.objects.filter(pk__in=ids[:2]).exists()


def test_a_selection_joined_across_a_to_many_relation_counts_each_held_record_once(
        held_queue):
    """The conflict report counted a held record once per joined row: "holds 6 of them"
    for 3 books in 2 genres each."""
    ids = make_books(3)
    poetry = Genre.objects.get(name="Poetry")
    Book.genres.through.objects.bulk_create(
        Book.genres.through(book_id=pk, genre_id=poetry.pk) for pk in ids)
    first = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 1}, run="async")
    joined = Book.objects.filter(genres__name__in=["Crime", "Poetry"])
    assert joined.count() == 6
    with pytest.raises(pgbulk.ConflictError) as caught:
        pgbulk.bulk_update(joined, {"price": 2})
    assert caught.value.conflicts == [{"job_id": str(first.id), "user": None, "count": 3}]
    assert pgbulk.preview(joined, {"price": 2})["held"][0]["count"] == 3

"""Job tasks beyond bulk edits, launched with AsyncManager().launch and run by a real worker."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

import pgbulk
from pgbulk import execute, signals
from pgbulk.managers import AsyncManager
from pgbulk.models import Job, Reservation
from testproject.library.models import Book
from testproject.library.tasks import failing_task, price_for, recalculate_prices
from tests.factories import make_books, reservation_count, wait_for

worker_test = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.mark.slow
@worker_test
def test_progress_is_visible_and_locks_block_an_overlapping_bulk_edit(worker):
    ids = make_books(1500, genre=False)
    job = AsyncManager().launch(recalculate_prices, lock=Book.objects.filter(pk__in=ids))
    assert (job.kind, job.total, job.model, job.status) == ("task", 1500, "library.Book", "queued")
    seen = wait_for(lambda: (lambda p: p if p["status"] == "running" and 0 < p["done"] < 1500
                             else None)(job.progress()))
    assert seen["rate"] is not None
    with pytest.raises(pgbulk.ConflictError) as caught:
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids[-10:]), {"price": 1}, run="sync")
    assert caught.value.conflicts[0]["job_id"] == str(job.id)
    job.wait(60)
    assert job.status == "succeeded" and job.message == "Done: 1,500 of 1,500 records."
    assert all(book.price == price_for(book)
               for book in Book.objects.filter(pk__in=ids).select_related("author"))
    assert reservation_count() == 0
    assert pgbulk.bulk_update(Book.objects.filter(pk__in=ids[-10:]), {"price": 1},
                              run="sync").status == "succeeded"


@worker_test
def test_a_failing_task_is_reported_as_failure_and_releases_its_locks(worker):
    ids = make_books(300, genre=False)
    job = AsyncManager().launch(failing_task, after=100, lock=(Book, ids))
    job.wait(30)
    assert job.status == "failed"
    assert job.message == ("RuntimeError: pricing service unavailable after 100 books. "
                           "Nothing was changed.")  # it lacked the full stop
    assert reservation_count() == 0


@worker_test
def test_cancelling_a_task_releases_its_locks(worker):
    ids = make_books(2000, genre=False)
    job = AsyncManager().launch(recalculate_prices, lock=Book.objects.filter(pk__in=ids))
    wait_for(lambda: job.progress()["done"] >= 100)
    assert job.cancel() is True
    job.wait(30)
    assert job.status == "cancelled" and reservation_count() == 0
    changed = sum(1 for b in Book.objects.filter(pk__in=ids).select_related("author")
                  if b.price == price_for(b))
    assert changed == job.done < 2000  # chunked: the committed chunks stay


@pytest.mark.django_db
def test_launch_is_refused_whole_on_overlap_and_checks_its_arguments(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}
    ids = make_books(40)
    blocker = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:30]), {"price": 2})
    jobs = Job.objects.count()
    with pytest.raises(pgbulk.ConflictError):
        AsyncManager().launch(recalculate_prices, lock=(Book, ids[25:]))
    assert Job.objects.count() == jobs
    assert Reservation.objects.exclude(job=blocker).count() == 0
    with pytest.raises(ValueError, match="JSON"):
        AsyncManager().launch(recalculate_prices, pause=object(), lock=(Book, ids[30:]))
    with pytest.raises(TypeError, match="not a job task"):
        AsyncManager().launch(print, lock=(Book, ids[30:]))
    with pytest.raises(TypeError):
        AsyncManager().launch("no.such.task")
    by_name = AsyncManager().launch("testproject.library.tasks.recalculate_prices",
                                    lock=(Book, ids[30:]))
    assert by_name.total == 10 and by_name.status == "queued"


@pytest.mark.django_db
def test_a_task_runs_here_when_async_is_off_and_fires_the_same_events(settings,
                                                                      django_capture_on_commit_callbacks):
    settings.PGBULK = {"ASYNC_ENABLED": False}
    ids = make_books(5)
    seen = []

    def listener(sender, job, event, **kwargs):
        seen.append(event)

    signals.job_event.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = AsyncManager().launch(recalculate_prices, pause=0, lock=(Book, ids))
    finally:
        signals.job_event.disconnect(listener)
    assert (job.run_mode, job.status, job.done) == ("sync", "succeeded", 5)
    assert seen[0] == "create" and seen[-1] == "complete" and "progress" in seen


@pytest.mark.django_db
def test_the_list_view_offers_the_task_and_the_dashboard_shows_it(client, settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}
    ids = make_books(30)
    user = User.objects.create_user("editor")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["change_book"]))
    client.force_login(user)
    assert b'data-task="recalculate"' in client.get("/").content
    response = client.post("/", {"bulk_action": "task", "bulk_task": "recalculate",
                                 "pks": ids[:25]}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and b"/progress/" in response.content
    job = Job.objects.get()
    assert (job.kind, job.total, job.user) == ("task", 25, user)
    assert client.post("/", {"bulk_action": "task", "bulk_task": "nope",
                             "pks": ids}).status_code == 400
    data = client.get(f"/pgbulk/jobs/{job.id}/progress/",
                      headers={"Accept": "application/json"}).json()
    assert data["status"] == "queued" and data["total"] == 25
    assert str(job.id)[:8] in client.get("/pgbulk/jobs/").content.decode()


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_chunked_task_counting_outside_chunks_ends_with_those_counts(worker):
    """Its counts were only in memory (no chunk committed them): it ended "succeeded"
    with 0 done and no failure."""
    from testproject.library.tasks import counts_outside_chunks

    job = AsyncManager().launch(counts_outside_chunks)
    job.wait(30)
    assert (job.status, job.done, job.failed_count) == ("failed", 2, 1), job.message
    assert job.record_errors.get().record == "Thing X"


@worker_test
def test_a_failing_body_that_keeps_its_chunk_walk_reports_what_was_committed(worker):
    """Before: the chunk the body failed in stayed open (the walk lived on in the
    traceback) while the outcome was written: "40 of 100 records were processed" when
    its 30 were rolled back with the chunk. Now the walk ends with the body."""
    from testproject.library.tasks import fails_keeping_its_walk

    ids = make_books(100, genre=False)
    job = AsyncManager().launch(fails_keeping_its_walk, 30, 41, lock=(Book, ids), chunk_size=10)
    job.wait(30)
    changed = Book.objects.filter(pk__in=ids, price=41).count()
    assert (job.status, job.done, changed) == ("failed", 30, 30), job.message
    assert job.message == ("RuntimeError: pricing service unavailable. 30 of 100 records "
                           "were processed before it stopped."), job.message
    assert reservation_count() == 0


@pytest.mark.django_db
def test_chunks_hold_the_records_asked_for_whatever_the_gaps_in_the_keys(settings):
    """Chunks are cut at reservation rows, and a row could cross the chunk boundary: with
    CHUNK_SIZE 150, 250 books came in chunks of 200 and 50; with gaps in the keys and
    CHUNK_SIZE 40, chunks of more than 40."""
    from testproject.library.tasks import chunk_sizes

    ids = make_books(280, genre=False)
    settings.PGBULK = {"CHUNK_SIZE": 150}
    job = AsyncManager().launch(chunk_sizes, lock=(Book, ids[:250]), run="sync")
    assert (job.status, job.message) == ("succeeded", "chunks: 150, 100")
    settings.PGBULK = {"CHUNK_SIZE": 40}
    gapped = [pk for i, pk in enumerate(ids) if i % 7 != 3]  # 240 keys in runs of 7
    job = AsyncManager().launch(chunk_sizes, lock=(Book, gapped), run="sync")
    assert (job.status, job.message) == ("succeeded", "chunks: " + ", ".join(["40"] * 6))


@pytest.mark.django_db
def test_a_task_launched_with_a_chunk_size_walks_chunks_of_that_size():
    from testproject.library.tasks import chunk_sizes

    ids = make_books(25, genre=False)
    job = AsyncManager().launch(chunk_sizes, lock=(Book, ids), run="sync", chunk_size=10)
    assert (job.status, job.message) == ("succeeded", "chunks: 10, 10, 5")
    for bad in (0, -3, 2.5, "10", True):
        with pytest.raises(ValueError, match="chunk_size must be a whole number"):
            AsyncManager().launch(chunk_sizes, lock=(Book, ids), run="sync", chunk_size=bad)
    assert Job.objects.count() == 1 and reservation_count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("selection", [Book.objects.none, lambda: Book.objects.filter(pk__in=[])])
def test_a_selection_django_knows_is_empty_is_refused_like_any_empty_one(selection):
    """It raised Django's EmptyResultSet from the launch (the reservation's SQL)."""
    from testproject.library.tasks import chunk_sizes

    for launch in (lambda: pgbulk.bulk_update(selection(), {"price": 1}, run="sync"),
                   lambda: pgbulk.bulk_delete(selection(), run="sync")):
        with pytest.raises(pgbulk.BulkValidationError, match="No records are selected"):
            launch()
    assert Job.objects.count() == 0
    job = AsyncManager().launch(chunk_sizes, lock=selection(), run="sync")
    assert (job.status, job.total, job.message) == ("succeeded", 0, "chunks: ")


@pytest.mark.django_db
def test_a_keyword_only_task_parameter_named_like_a_launch_keyword_is_refused():
    """launch(chunk_size=2) goes to the launch: a keyword-only chunk_size silently kept
    its default. One that can be given by position is fine, as is a handle named
    "context"."""
    with pytest.raises(TypeError, match="keyword-only parameter may not be named 'chunk_size'"):
        @pgbulk.job_task(name="tests.clashing_task")
        def clashing(job, *, chunk_size=5):
            return str(chunk_size)
    from pgbulk.job_tasks import REGISTRY
    assert "tests.clashing_task" not in REGISTRY

    @pgbulk.job_task(name="tests.notify_user")
    def notify(context, user):
        return f"Told {user}."

    job = AsyncManager().launch(notify, 7, run="sync")
    assert (job.status, job.message) == ("succeeded", "Told 7.")


@pytest.mark.django_db
def test_malformed_failures_are_refused_and_the_job_fails_once_saying_why():
    """An entry without "message" made finishing the job raise again: the job stayed
    running, the sweep took it for a lost worker and ran the body 4 times; a dict
    instead of a list counted 2 failures and recorded none."""
    from testproject.library.tasks import report_failures

    ids = make_books(5, genre=False)
    for errors, said in (([{"pk": ids[0]}], "each entry needs a 'pk' and a 'message'"),
                         ([{"pk": None, "message": "m"}], "each entry needs"),
                         ({"pk": ids[0], "message": "m"}, "takes a list of {pk, message}"),
                         (["bad"], "each entry needs")):
        job = AsyncManager().launch(report_failures, errors, lock=(Book, ids), run="sync")
        assert job.status == "failed" and said in job.message, job.message
        assert (job.failed_count, job.attempt) == (0, 0) and not job.record_errors.exists()
    assert reservation_count() == 0


@pytest.mark.django_db
@pytest.mark.django_db
def test_fail_records_takes_uuid_keys_and_the_task_s_message_follows_the_count():
    """A UUID pk was refused as "not JSON", and the task's returned message was dropped
    when records failed; a chunked task "changed" records it only processed."""
    from testproject.library.models import Label

    @pgbulk.job_task(atomic=False, name="tests.fail_labels")
    def fail_labels(job):
        keys = [key for chunk in job.chunks() for key in chunk]
        job.advance(len(keys) - 1)
        job.fail_records([{"pk": keys[0], "message": ValueError("bad label")}])
        return "Checked every label."

    labels = [Label.objects.create(name=f"L{i}") for i in range(3)]
    job = AsyncManager().launch(fail_labels, lock=Label.objects.all(), run="sync")
    assert job.message == "1 of 3 records failed; 2 done. Checked every label."
    assert job.record_errors.get().object_pk in {str(label.pk) for label in labels}

    @pgbulk.job_task(atomic=False, name="tests.raise_after")
    def raise_after(job):
        for keys in job.chunks():
            job.advance(len(keys))
        raise RuntimeError("pricing service unavailable")

    job = AsyncManager().launch(raise_after, lock=Label.objects.all(), run="sync")
    assert job.message == ("RuntimeError: pricing service unavailable. 3 of 3 records were "
                           "processed before it stopped.")


@pytest.mark.django_db
def test_failed_records_a_task_also_counted_as_done_are_shown_as_failed():
    """progress() and the pages cut failures first to fit the total: "Done 5 of 5", no
    failure, while the job said "1 of 5 records failed; 5 done"."""
    from testproject.library.tasks import report_failures

    ids = make_books(5, genre=False)
    job = AsyncManager().launch(report_failures, [{"pk": ids[0], "message": "m"}],
                                lock=(Book, ids), run="sync")
    assert (job.status, job.message) == ("failed", "1 of 5 records failed; 4 done.")
    seen = job.progress()
    assert (seen["done"], seen["failed_count"], seen["total"]) == (4, 1, 5)


@pytest.mark.django_db
def test_chunks_refuse_a_bad_size_and_a_job_without_records_has_none():
    from testproject.library.tasks import chunk_sizes

    ids = make_books(3, genre=False)
    for size in (0, -3, 2.5):  # 0 meant CHUNK_SIZE, -3 meant 1
        job = AsyncManager().launch(chunk_sizes, size, lock=(Book, ids), run="sync")
        assert job.status == "failed" and "chunks(size) must be a whole number" in job.message
    job = AsyncManager().launch(chunk_sizes, run="sync")  # it failed: ValueError, unpacking
    assert (job.status, job.message) == ("succeeded", "chunks: ")
    from testproject.library.tasks import report_failures
    job = AsyncManager().launch(report_failures, [], run="sync")
    assert (job.status, job.total, job.message) == ("succeeded", 0, "Done.")  # "0 of 0"


@pytest.mark.slow
@worker_test
def test_absolute_progress_counts_what_earlier_runs_did_after_a_resume(start_worker,
                                                                      settings):
    """The resumed body counted from 0 again, and progress(n) kept the larger of n and
    what was committed: 300 records processed, "Done: 200 of 300"."""
    from testproject.library.tasks import absolute_progress

    settings.PGBULK = {**settings.PGBULK, "QUEUE": "doomed"}
    doomed = start_worker(queue="doomed")
    ids = make_books(300, genre=False)
    job = AsyncManager().launch(absolute_progress, pause=0.3, lock=(Book, ids), chunk_size=50)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100, timeout=60)
    doomed.kill()
    resumed = wait_for(lambda: execute.run(job.id), timeout=20, interval=0.2)
    assert (resumed.status, resumed.done, resumed.message) == (
        "succeeded", 300, "Done: 300 of 300 records.")


@pytest.mark.slow
@worker_test
def test_cancelling_a_job_stops_the_job_running_inline_inside_it(worker):
    """The nested job only looked at its own row: it ran to the end (20 of 20), and the
    outer job ended 4 s after its cancel."""
    from testproject.library.tasks import run_nested_inline

    ids = make_books(40, genre=False)
    outer = AsyncManager().launch(run_nested_inline, ids[20:], 0.1, lock=(Book, ids[:20]))
    nested = wait_for(lambda: Job.objects.filter(
        kind="task", status="running", done__gt=0).exclude(pk=outer.pk).first(), timeout=30)
    assert outer.cancel() is True
    outer.wait(30)
    nested.refresh_from_db()
    assert (outer.status, nested.status) == ("cancelled", "cancelled")
    assert 0 < nested.done < 20 and reservation_count() == 0


@pytest.mark.slow
@worker_test
def test_a_resumed_job_is_not_refused_by_its_own_dead_nested_run(start_worker, settings):
    """The worker died while the job ran another inline; reading the job's progress resumed
    it (the sweep of that one job), and the resumed run failed for good: "Conflict: 20
    record(s) held by" its own dead nested run, still 'running' with its reservations."""
    from testproject.library.tasks import run_nested_inline

    settings.PGBULK = {**settings.PGBULK, "QUEUE": "doomed"}
    doomed = start_worker(queue="doomed")
    ids = make_books(40, genre=False)
    outer = AsyncManager().launch(run_nested_inline, ids[20:], 0.1, lock=(Book, ids[:20]))
    nested = wait_for(lambda: Job.objects.filter(
        kind="task", status="running", done__gt=0).exclude(pk=outer.pk).first(), timeout=30)
    doomed.kill()
    assert wait_for(lambda: outer.progress()["status"] == "queued", timeout=20)  # resumed
    resumed = execute.run(outer.id)
    assert resumed.status == "succeeded", resumed.message
    nested.refresh_from_db()
    assert nested.status == "failed" and reservation_count() == 0


@pytest.mark.django_db
def test_a_nested_launch_on_the_running_job_s_own_records_says_so():
    """It said "held by job <its own id>", as if another job held them."""
    from testproject.library.tasks import launch_nested

    ids = make_books(4, genre=False)
    job = AsyncManager().launch(launch_nested, ids[:2], 31, lock=(Book, ids), run="sync")
    assert job.status == "failed"
    assert (f"2 record(s) held by the job launching it ({job.id}), which cannot reserve its "
            "own records again: change them in its body") in job.message


@worker_test
def test_a_job_launched_by_a_listener_of_a_finished_job_runs_normally():
    """After nested runs started watching their outer job, a follow-up launched (run
    in place) from a job's "complete" listener saw the finished outer as "attempt over"
    and ended cancelled, nothing changed."""
    ids = make_books(6, genre=False)
    followups: list = []
    started: list = []

    def on_job(sender, job, event, **kwargs):
        if event == "complete" and not started:
            started.append(job.id)
            followups.append(pgbulk.bulk_update(Book.objects.filter(pk__in=ids[3:]),
                                                {"price": 77}, run="sync"))

    signals.job_event.connect(on_job, weak=False)
    try:
        first = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:3]), {"price": 55},
                                   run="sync")
    finally:
        signals.job_event.disconnect(on_job)
    assert first.status == "succeeded"
    assert followups and followups[0].status == "succeeded", followups[0].message
    assert Book.objects.filter(pk__in=ids[3:], price=77).count() == 3

"""The job pages say what a job did and where it stands: detail, errors, CSV, dashboard, modal."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction

import pgbulk
from pgbulk import describe
from pgbulk.job_status import job_status
from pgbulk.models import Job, JobError
from testproject.library.models import Author, Book, Genre
from tests.factories import make_books

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def held_queue(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}


@pytest.fixture
def editor(client) -> User:
    user = User.objects.create_user("editor", password="x")
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=["change_book", "delete_book", "view_book"]))
    client.force_login(user)
    return user


def crafted(user: User, **fields) -> Job:
    """A job row as the engine would leave it (no worker needed to show a state)."""
    defaults = {"kind": "update", "task_name": "pgbulk.tasks.bulk_update_task",
                "model": "library.Book", "params": {"values": {"status": "published"},
                                                    "atomic": False}}
    return Job.objects.create(user=user, **{**defaults, **fields})


def text_of(response) -> str:
    return text_of_html(response.content.decode())


def test_detail_says_who_what_which_records_and_when(client, editor):
    ids = make_books(6)
    Book.objects.filter(pk=ids[0]).update(status="published")
    crime = Genre.objects.get(name="Crime")
    response = client.post("/", {
        "bulk_action": "edit", "select_all": "1", "bulk_querystring": "status=draft",
        "exclude": [ids[5]], "change_status": "on", "status": "published",
        "change_genres": "on", "genres_op": "add", "genres": [crime.pk]},
        headers={"HX-Request": "true"})
    assert response.status_code == 200
    job = Job.objects.get()
    assert job.params["context"] == {"source": "list", "list_url": "/", "filters": "status=draft",
                                     "select_all": True, "selected": 4, "excluded": 1}
    page = text_of(client.get(f"/pgbulk/jobs/{job.id}/"))
    assert "status → Published; genres: add Crime" in page
    assert "status → Published; genres: add Crime on 4 Books" in page  # the title
    assert "Launched by editor" in page
    assert "All records matching the list's filters, 1 excluded" in page and "status = Draft" in page
    for label in ("Created", "Started", "Finished", "Duration", "Rate", "records/s"):
        assert label in page
    assert "Updated 4 of 4 records." in page
    assert "record by record (save())" in page  # before: the strategy was not shown
    assert 'href="/?status=draft">open that list</a>' in client.get(
        f"/pgbulk/jobs/{job.id}/").content.decode()
    # Before: ticked records also offered "open that list", which does not show them.
    client.post("/", {"bulk_action": "edit", "pks": ids[:2], "change_price": "on",
                      "price": "3"}, headers={"HX-Request": "true"})
    ticked = Job.objects.exclude(pk=job.pk).get()
    page = text_of(client.get(f"/pgbulk/jobs/{ticked.id}/"))
    assert "Records ticked one by one open the list they were ticked in" in page
    # Before: a chunked job run in the request said "resumable"; the sweep fails such a
    # job when its process dies (only a worker's job is resumed).
    chunked = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:1]), {"price": 2},
                                 run="sync", atomic=False, user=editor)
    mode = text_of(client.get(f"/pgbulk/jobs/{chunked.id}/"))
    assert "in chunks (each kept once committed; not resumed if the request dies), in the " \
           "request" in mode and "resumable" not in mode


def test_the_selection_reads_the_lists_filters_in_words():
    # Before: "Records ticked one by one status__exact = published in_print__exact = 1",
    # the admin's raw lookups, as if they had made the selection.
    ids = make_books(2)
    author = Book.objects.get(pk=ids[0]).author
    filters = (f"status__exact=published&in_print__exact=1&author__id__exact={author.pk}"
               "&price__gte=5&published_on__isnull=True&q=tolkien&o=2")
    job = Job(kind="update", model="library.Book", params={"context": {
        "source": "admin", "filters": filters, "selected": 2, "select_all": False}})
    selection = describe.selection(job)
    assert selection["text"] == "Records ticked one by one, in the list filtered by"
    assert selection["filters"] == [
        "status = Published", "in print = yes", f"author = {describe.related_names(Author, [author.pk])}",
        "price ≥ 5.00", "published on is empty", "q = tolkien"]
    bad = Job(kind="update", model="library.Book",
              params={"context": {"filters": "price__gte=abc&nope__exact=1", "select_all": True}})
    assert describe.selection(bad)["filters"] == ["price ≥ abc", "nope__exact = 1"]
    # A reverse relation has no verbose name (was an AttributeError: the job page a 500),
    # a key the database refuses spoils no transaction.
    odd = Job(kind="update", model="library.Book", params={"context": {
        "filters": "ebook__isnull=1&author__id__exact=99999999999999999999&author=1%00",
        "select_all": True}})
    with transaction.atomic():
        assert describe.selection(odd)["filters"] == [
            "ebook__isnull = 1", "author = #99999999999999999999 (deleted)",
            "author = 1\x00"]
        assert Book.objects.count() == 2


def test_delete_and_task_jobs_in_words(client, editor):
    ids = make_books(3)
    client.post("/", {"bulk_action": "delete", "pks": ids}, headers={"HX-Request": "true"})
    deleted = Job.objects.get(kind="delete")
    page = text_of(client.get(f"/pgbulk/jobs/{deleted.id}/"))
    assert "Delete 3 Books" in page and "Succeeded Deleted 3 of 3" in page
    assert "Deleted 3 of 3 records." in page and "Changed" not in page
    task = crafted(editor, kind="task", task_name="testproject.library.tasks.recalculate_prices",
                   params={"context": {"label": "Recalculate prices"}}, total=7)
    assert "Recalculate prices on 7 Books" in text_of(client.get(f"/pgbulk/jobs/{task.id}/"))


def test_errors_paginated_with_names_keys_fields_and_admin_links(client, editor):
    ids = make_books(3)
    job = crafted(editor, status="failed", total=120, done=0, failed_count=120)
    JobError.objects.bulk_create(
        JobError(job=job, object_pk=str(ids[i % 3]), record=f"Title {i:03d}", field="price",
                 message=f"Problem {i:03d}") for i in range(120))
    first = text_of(client.get(f"/pgbulk/jobs/{job.id}/"))
    assert "120 errors" in first and "Title 000" in first and "Title 049" in first
    assert "Title 050" not in first and "Page 1 of 3" in first
    second = client.get(f"/pgbulk/jobs/{job.id}/?errors_page=2").content.decode()
    assert "Title 050" in second and "Title 099" in second and "Title 000" not in second
    assert 'href="?errors_page=1#errors"' in second and 'href="?errors_page=3#errors"' in second
    assert f"/admin/library/book/{ids[0]}/change/" not in second  # not staff: no admin link
    editor.is_staff = True
    editor.save()
    second = client.get(f"/pgbulk/jobs/{job.id}/?errors_page=2").content.decode()
    assert f'href="/admin/library/book/{ids[0]}/change/"' in second
    row = re.search(r"<tr>\s*<td class=\"pgbulk-error-record\">.*?</tr>", second, re.S).group(0)
    assert "Title 050" in row and str(ids[2]) in row and "price" in row and "Problem 050" in row


def test_errors_are_named_even_without_a_captured_record(client, editor):
    ids = make_books(2)
    job = crafted(editor, status="failed", total=2, failed_count=2, errors=[
        {"pk": str(ids[0]), "field": None, "message": "Nope."},
        {"pk": "999999", "field": None, "message": "Gone."}])
    page = text_of(client.get(f"/pgbulk/jobs/{job.id}/"))
    assert "Book 0" in page and "(no longer exists)" in page
    modal = text_of(client.get(f"/pgbulk/jobs/{job.id}/progress/"))
    assert "Book 0" in modal


def test_csv_has_every_error_and_defuses_formulas(client, editor):
    make_books(1)
    job = crafted(editor, status="failed", total=1500, failed_count=1500)
    JobError.objects.bulk_create(JobError(job=job, object_pk=str(i), record=f"R{i}",
                                          message="m") for i in range(2500))
    JobError.objects.create(job=job, object_pk="x", record="=HYPERLINK(1)", message="-3 + 4")
    response = client.get(f"/pgbulk/jobs/{job.id}/errors.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["key", "record", "field", "message", "outcome"] and len(rows) == 2502
    assert rows[-1] == ["x", "'=HYPERLINK(1)", "", "'-3 + 4", "failed"]


def test_error_tables_name_fields_in_words_and_the_csv_tells_skips_from_failures(
        client, editor):
    # Before: the tables showed "in_print"; an undo's CSV mixed skipped records with
    # failures, told apart by their message only.
    ids = make_books(2)
    job = crafted(editor, status="failed", total=2, failed_count=1, skipped_count=1)
    JobError.objects.create(job=job, object_pk=str(ids[0]), record="Book 0", field="in_print",
                            message="An archived book cannot be in print.")
    JobError.objects.create(job=job, object_pk=str(ids[1]), record="Book 1", skipped=True,
                            message="Changed since the undone job: left as it is.")
    html = client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
    assert "<td>in print</td>" in html and "in_print" not in html
    # A job with skipped records kept its failures' Field column (the skipped table's
    # "left alone" switch once leaked into the failures table).
    failures = html.split('id="errors"', 1)[1].split('id="pgbulk-job-skipped"', 1)[0]
    assert '<th scope="col">Field</th>' in failures and "Reason" not in failures
    rows = list(csv.reader(io.StringIO(b"".join(
        client.get(f"/pgbulk/jobs/{job.id}/errors.csv").streaming_content).decode())))
    assert [(row[2], row[4]) for row in rows[1:]] == [("in_print", "failed"), ("", "skipped")]


def test_modal_shows_the_first_errors_and_links_to_the_rest(client, editor):
    make_books(1)
    job = crafted(editor, status="failed", total=30, done=10, failed_count=20)
    JobError.objects.bulk_create(JobError(job=job, object_pk=str(i), record=f"Rec {i}",
                                          message="bad") for i in range(20))
    modal = text_of(client.get(f"/pgbulk/jobs/{job.id}/progress/"))
    assert "Rec 4" in modal and "Rec 5" not in modal
    assert "See all 20 errors on the job's page" in modal


def test_queued_job_says_it_waits_with_its_place_in_the_queue(client, editor):
    ids = make_books(60)
    jobs = [pgbulk.bulk_update(Book.objects.filter(pk__in=ids[i * 20:(i + 1) * 20]),
                               {"price": 1}, user=editor) for i in range(3)]
    first = text_of(client.get(f"/pgbulk/jobs/{jobs[0].id}/progress/"))
    third = text_of(client.get(f"/pgbulk/jobs/{jobs[2].id}/progress/"))
    assert "Queued: waiting for a worker (next in line)" in first
    assert "Queued: waiting for a worker (2 jobs ahead of it)" in third
    assert "unknown" not in third and "rebuilding" not in third


def bar_widths(html: str) -> tuple[str, str]:
    changed = re.search(r'pgbulk-bar-changed" style="width: ([\d.]+)%', html).group(1)
    failed = re.search(r'pgbulk-bar-failed" style="width: ([\d.]+)%', html).group(1)
    return changed, failed


def test_bar_shows_changed_failed_and_remaining_apart(client, editor):
    make_books(1)
    running = crafted(editor, total=200, done=100, failed_count=50)
    Job.objects.filter(pk=running.pk).update(status="running")
    failed_atomic = crafted(editor, status="failed", total=40, done=0, failed_count=0,
                            params={"values": {"price": "1"}, "atomic": True},
                            message="library.Book record 3: Nope. Nothing was changed.")
    html = client.get(f"/pgbulk/jobs/{running.id}/progress/").content.decode()
    assert bar_widths(html) == ("50.0", "25.0") and "Updated 100 of 200 · 50 failed" in html
    html = client.get(f"/pgbulk/jobs/{failed_atomic.id}/progress/").content.decode()
    assert bar_widths(html) == ("0.0", "0.0") and "Updated 0 of 40" in html


@pytest.mark.parametrize(("atomic", "run_mode", "says"), [
    (False, "async", "Worker lost after 2,000 of 19,945; the job will resume"),
    (True, "async", "Worker lost after 2,000 of 19,945; the job will fail, nothing was changed"),
    # a job run by the process that launched it: no worker, and nobody resumes it (it
    # said "Worker lost ...; the job will resume", and the sweep failed it)
    (False, "sync", "The process running it was lost after 2,000 of 19,945; the job will "
                    "fail, the rest will not be changed"),
    (True, "sync", "The process running it was lost after 2,000 of 19,945; the job will "
                   "fail, nothing was changed")])
def test_a_job_whose_worker_died_says_so(atomic, run_mode, says):
    job = Job(kind="update", model="library.Book", status="running", total=19_945,
              params={"atomic": atomic}, run_mode=run_mode)
    snapshot = {"status": "running", "done": 2_000, "failed_count": 0, "total": 19_945,
                "rate": 4.6, "eta_seconds": 436.0, "message": "2000 of 19945",
                "progress_known": True, "worker_lost": True, "queue_position": None}
    status = job_status(job, snapshot)
    assert status.headline == says and status.tone == "lost"
    assert "left" not in status.figures and status.note == ""
    job.cancel_requested = True
    assert job_status(job, snapshot).headline.endswith("; the job will end cancelled")


def test_a_job_about_to_end_says_almost_done_not_0_s_left():
    job = Job(kind="update", model="library.Book", status="running", total=100)
    snapshot = {"status": "running", "done": 99, "failed_count": 0, "total": 100,
                "rate": 250.0, "eta_seconds": 0.3, "progress_known": True,
                "worker_lost": False, "queue_position": None}
    figures = job_status(job, snapshot).figures
    assert "almost done" in figures and "left" not in figures  # before: "about 0 s left"
    assert "about 2 s left" in job_status(job, {**snapshot, "eta_seconds": 2.2}).figures


def test_a_running_all_or_nothing_job_says_its_count_is_not_kept_yet():
    """It read "Updated 297 of 335" and then ended "Updated 0 of 335" on a failure."""
    snapshot = {"status": "running", "done": 297, "failed_count": 0, "total": 335,
                "rate": 50.0, "eta_seconds": 0.8, "progress_known": True,
                "worker_lost": False, "queue_position": None}
    atomic = Job(kind="update", model="library.Book", status="running", total=335,
                 params={"atomic": True})
    figures = job_status(atomic, snapshot).figures
    assert figures.startswith("Updated 297 of 335 · all or nothing: kept only if the job "
                              "succeeds")
    chunked = Job(kind="update", model="library.Book", status="running", total=335,
                  params={"atomic": False})
    assert "all or nothing" not in job_status(chunked, snapshot).figures


@pytest.mark.parametrize(("atomic", "status", "says"), [
    (False, "queued", "Worker lost after 10 of 25 records; resuming where it stopped"),
    (True, "failed", "The worker running this job was lost; its changes were rolled back: "
                     "nothing was changed.")])
def test_pages_show_what_the_sweep_did_with_a_lost_job(client, editor, atomic, status, says):
    ids = make_books(25)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 4}, user=editor,
                             atomic=atomic)
    Job.objects.filter(pk=job.pk).update(status="running")  # nobody holds its liveness lock
    Job.objects.filter(pk=job.pk).update(done=10)
    page = text_of(client.get(f"/pgbulk/jobs/{job.id}/progress/"))
    assert Job.objects.get(pk=job.pk).status == status and says in page
    if atomic:
        assert "Failed Updated 0 of 25" in page
    else:
        assert "Queued again: waiting for a worker" in page


def test_a_cancel_on_a_job_whose_worker_died_ends_cancelled_with_counts(client, editor):
    ids = make_books(25)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 4}, user=editor,
                             atomic=False)
    Job.objects.filter(pk=job.pk).update(status="running")
    Job.objects.filter(pk=job.pk).update(done=10)
    job.refresh_from_db()
    assert job.cancel(by=editor)  # asked; nobody runs it to stop it
    page = text_of(client.get(f"/pgbulk/jobs/{job.id}/"))
    assert Job.objects.get(pk=job.pk).status == "cancelled"
    assert re.search(r"Cancelled by editor at \d\d:\d\d after 10 of 25", page)
    assert "its worker was lost before it stopped: 10 of 25 records were changed" in page


def text_of_html(html: str) -> str:
    """What a reader sees: no tags, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_dashboard_rows_filters_paging_and_refresh(client, editor):
    make_books(1)
    other = User.objects.create_user("other")
    crafted(other, status="failed", model="library.Author", total=1)
    for _ in range(30):
        crafted(editor, status="succeeded", total=5, done=5)
    big = crafted(editor, total=19_998)
    page = client.get("/pgbulk/jobs/")
    text = text_of(page)
    assert "status → Published on 19,998 Books" in text
    assert page.content.decode().count("data-job=") == 25
    assert 'hx-trigger="every 2s"' in page.content.decode()  # a queued job is shown
    second = client.get("/pgbulk/jobs/?page=2").content.decode()
    assert 'href="?page=1"' in second and second.count("data-job=") == 6
    assert f'data-job="{big.id}"' in page.content.decode() and f'data-job="{big.id}"' not in second
    done_only = client.get("/pgbulk/jobs/?status=succeeded").content.decode()
    assert done_only.count("data-job=") == 25 and 'href="?status=succeeded&amp;page=2"' in done_only
    assert 'hx-trigger="every 5s"' in done_only  # idle: still notices new jobs
    assert client.get("/pgbulk/jobs/?model=library.Author").content.decode().count(
        "data-job=") == 0  # the other user's job is not the editor's to see
    boss = User.objects.create_superuser("boss")
    client.force_login(boss)
    mine_only = client.get("/pgbulk/jobs/?owner=me").content.decode()
    assert mine_only.count("data-job=") == 0
    by_other = client.get(f"/pgbulk/jobs/?owner={other.pk}&model=library.Author").content
    assert by_other.decode().count("data-job=") == 1
    assert b"<option value=\"library.Author\"" in by_other and b">other</option>" in by_other
    for odd in ("model=%00", "owner=%C2%B2"):  # were 500s
        page = client.get(f"/pgbulk/jobs/?{odd}")
        assert page.status_code == 200 and page.content.decode().count("data-job=") == 25
    page = client.get("/pgbulk/jobs/?owner=99999999999999999999999")  # nobody's
    assert page.status_code == 200 and page.content.decode().count("data-job=") == 0


def test_job_views_are_never_cached_and_announce_the_end(client, editor):
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 3}, run="sync",
                             user=editor)
    for url in (f"/pgbulk/jobs/{job.id}/", f"/pgbulk/jobs/{job.id}/progress/", "/pgbulk/jobs/",
                f"/pgbulk/jobs/{job.id}/errors.csv"):
        assert "no-cache" in client.get(url)["Cache-Control"]
    polled = client.get(f"/pgbulk/jobs/{job.id}/progress/", headers={"HX-Request": "true"})
    event = json.loads(polled["HX-Trigger"])["pgbulk-done"]
    assert polled.status_code == 286 and event["status"] == "succeeded"
    assert event["text"] == "Succeeded. Updated 2 of 2 records."

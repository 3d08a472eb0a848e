"""The change log and undo on the job pages and in the admin: what changed (before → after),
its CSV, who may read it, Undo with its refusals, the links between a job and its undos,
skipped records, and a record's History. Real PostgreSQL; undos run in the request."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from html import unescape

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

import pgbulk
from pgbulk import changes, describe, undoing
from pgbulk.models import Change, Job, JobError
from testproject.library.models import Author, Book, Genre
from tests import conftest
from tests.factories import make_books

pytestmark = pytest.mark.django_db
MINUS = "\u2212"  # what the page writes before a removed related record


@pytest.fixture(autouse=True)
def in_the_request(settings):
    settings.PGBULK = {"ASYNC_ENABLED": False}


def user_with(name: str, *codenames: str, staff: bool = False) -> User:
    user = User.objects.create_user(name, password="x", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def editor(client) -> User:
    user = user_with("editor", "change_book", "view_book", "delete_book", staff=True)
    client.force_login(user)
    return user


def text_of(response) -> str:
    """What a reader sees: no tags, entities decoded, whitespace collapsed."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def publish(ids, user, **values) -> Job:
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids),
                             values or {"status": "published"}, run="sync", user=user)
    assert job.status == "succeeded", job.message
    return job


def page_of(client, job: Job, query: str = ""):
    response = client.get(f"/pgbulk/jobs/{job.id}/{query}")
    assert response.status_code == 200
    return response


# --- the Changes section ----------------------------------------------------------------------


def test_changes_show_each_record_before_and_after_in_words(client, editor):
    ids = make_books(3)
    other = Author.objects.create(name="Other author")
    poetry = Genre.objects.get(name="Poetry")
    job = publish(ids, editor, status="published", author=other.pk,
                  genres={"add": [poetry.pk]})
    assert Change.objects.filter(job=job).count() == 3
    response = page_of(client, job)
    text = text_of(response)
    assert "3 records changed" in text
    assert "status: Draft → Published" in text  # choice labels
    assert "author: Test author" in text and f"→ Other author (#{other.pk})" in text
    assert "genres: + Poetry" in text and MINUS not in text.split("Changes", 1)[1].split("Errors")[0]
    html = response.content.decode()
    assert f'href="/admin/library/book/{ids[0]}/change/"' in html  # the record's admin page
    assert f'href="/pgbulk/jobs/{job.id}/changes.csv"' in html


def test_many_to_many_removals_read_minus(client, editor):
    ids = make_books(2)  # each in Crime
    poetry = Genre.objects.get(name="Poetry")
    job = publish(ids, editor, genres={"set": [poetry.pk]})
    text = text_of(page_of(client, job))
    assert f"genres: + Poetry / {MINUS} Crime" in text


def test_pages_walk_the_log_by_key_forward_and_back(client, editor):
    ids = make_books(120)
    job = publish(ids, editor)
    keys = [str(i) for i in sorted(ids)]  # integer keys: in numeric order

    def rows(response) -> list[str]:
        return re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>',
                          response.content.decode())

    def link(response, rel: str) -> str:
        found = re.search(rf'<a href="([^"]+)" rel="{rel}"', response.content.decode())
        return unescape(found.group(1)) if found else ""

    first = page_of(client, job)
    assert rows(first) == keys[:50] and link(first, "prev") == ""
    assert "120 records changed" in text_of(first)
    second = client.get(f"/pgbulk/jobs/{job.id}/" + link(first, "next").split("#")[0])
    assert rows(second) == keys[50:100]
    third = client.get(f"/pgbulk/jobs/{job.id}/" + link(second, "next").split("#")[0])
    assert rows(third) == keys[100:] and link(third, "next") == ""
    back = client.get(f"/pgbulk/jobs/{job.id}/" + link(third, "prev").split("#")[0])
    assert rows(back) == keys[50:100]
    again = client.get(f"/pgbulk/jobs/{job.id}/" + link(back, "prev").split("#")[0])
    assert rows(again) == keys[:50] and link(again, "prev") == ""


def books_with_keys(*keys: int) -> list[int]:
    author = Author.objects.create(name="Keyed author")
    Book.objects.bulk_create(Book(id=key, title=f"Book {key}", isbn=f"K-{key}", price=10,
                                  author=author) for key in keys)
    return list(keys)


def test_integer_keys_are_listed_in_numeric_order_not_text_order(client, editor):
    # Before: 1002 came before 102 (and 10 before 2): the keys were sorted as text.
    ids = books_with_keys(1002, 10, -5, 102, 2)
    job = publish(ids, editor)
    numeric = ["-5", "2", "10", "102", "1002"]
    html = page_of(client, job).content.decode()
    assert re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>', html) == numeric
    response = client.get(f"/pgbulk/jobs/{job.id}/changes.csv")
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [line[0] for line in lines[1:]] == numeric
    pages, after = [], ""
    while True:  # two a page, forward by the last key shown
        page = changes.page(job, links=False, after=after, per_page=2)
        pages.append([row.object_pk for row in page.rows])
        if page.next_after is None:
            break
        after = page.next_after
    assert pages == [["-5", "2"], ["10", "102"], ["1002"]]
    back = changes.page(job, links=False, before="102", per_page=2)
    assert [row.object_pk for row in back.rows] == ["2", "10"]
    assert back.previous_before == "2" and back.next_after == "10"
    assert [r.object_pk for r in changes.page(job, links=False, before="2", per_page=2).rows] == ["-5"]
    assert [r.object_pk for r in changes.page(job, links=False, key="102").rows] == ["102"]
    nonsense = changes.page(job, links=False, after="x'; --", per_page=2)  # not a number
    assert [row.object_pk for row in nonsense.rows] == ["-5", "2"] and nonsense.first
    text = text_of(page_of(client, job, "?changes_after=10"))
    assert text.index("Book 102") < text.index("Book 1002") and "Book 2 " not in text


def test_a_field_a_record_already_held_reads_unchanged_not_as_a_change(client, editor):
    """It read "in print: no → no", in the colours of a change."""
    ids = make_books(2)
    Book.objects.filter(pk=ids[0]).update(in_print=False)
    job = publish(ids, editor, status="published", in_print=False)
    html = page_of(client, job, f"?changes_key={ids[0]}").content.decode()
    assert re.search(r"in print:</span> no \(unchanged\)", html)
    assert re.search(r'status:</span> <span class="pgbulk-before">Draft</span> → '
                     r'<span class="pgbulk-after">Published</span>', html)


def test_the_key_filter_finds_one_record(client, editor):
    ids = make_books(60)
    job = publish(ids[:30], editor)
    one = page_of(client, job, f"?changes_key={ids[7]}")
    found = re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>', one.content.decode())
    assert found == [str(ids[7])]
    assert f"Record with key {ids[7]}" in text_of(one)
    missing = text_of(page_of(client, job, f"?changes_key={ids[40]}"))
    assert f"This job changed no record with the key {ids[40]}." in missing
    spaced = page_of(client, job, f"?changes_key=%20{ids[7]}%20").content.decode()
    assert re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>', spaced) == [str(ids[7])]


def test_the_key_filter_finds_a_uuid_however_it_is_written(client, editor):
    """It compared the text as typed: a UUID in capitals or without hyphens found nothing."""
    from testproject.library.models import Label

    labels = [Label.objects.create(name=f"L{i}") for i in range(3)]
    editor.user_permissions.add(Permission.objects.get(codename="view_label"))
    job = pgbulk.bulk_update(Label.objects.all(), {"rank": 7}, run="sync", user=editor)
    wanted = str(labels[1].pk)
    for written in (wanted.upper(), wanted.replace("-", "")):
        html = page_of(client, job, f"?changes_key={written}").content.decode()
        assert re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>', html) == [wanted]
    csv_text = client.get(f"/pgbulk/jobs/{job.id}/changes.csv?key={wanted.upper()}")
    assert wanted in b"".join(csv_text.streaming_content).decode()


def test_the_key_filter_finds_a_key_that_begins_with_a_space(client, editor):
    """The filter stripped the key: " lead" found nothing, though the job changed it."""
    from testproject.library.models import Publisher

    for code in (" lead", "other"):
        Publisher.objects.create(code=code, name=code)
    editor.user_permissions.add(Permission.objects.get(codename="view_publisher"))
    job = pgbulk.bulk_update(Publisher.objects.all(), {"name": "N"}, run="sync", user=editor)
    html = page_of(client, job, "?changes_key=%20lead").content.decode()
    assert re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>', html) == [" lead"]
    csv_text = client.get(f"/pgbulk/jobs/{job.id}/changes.csv?key=%20lead")
    rows = list(csv.reader(io.StringIO(b"".join(csv_text.streaming_content).decode())))
    assert [row[0] for row in rows[1:]] == [" lead"]
    padded = page_of(client, job, "?changes_key=other%20").content.decode()  # typed with a blank
    assert re.findall(r'class="pgbulk-change-key"><code>([^<]+)</code>', padded) == ["other"]


def test_keys_postgresql_cannot_hold_match_nothing_instead_of_a_500(client, editor):
    # Before: a NUL byte reached PostgreSQL ("text fields cannot contain NUL"): a 500.
    ids = make_books(2)
    job = publish(ids, editor)
    client.raise_request_exception = False
    nothing = text_of(page_of(client, job, "?changes_key=1%00"))
    assert "This job changed no record with the key 1" in nothing
    for query in ("changes_after=1%00", "changes_before=1%00", "changes_after=9" * 30):
        assert str(ids[1]) in text_of(page_of(client, job, f"?{query}"))  # the first page
    csv_lines = b"".join(client.get(f"/pgbulk/jobs/{job.id}/changes.csv?key=%00")
                         .streaming_content).decode().splitlines()
    assert len(csv_lines) == 1  # the header only


def test_counts_are_grouped_like_the_rest_of_the_pages(client, editor):
    # Before: "1200 records changed" and "Put back the values of 1200 records" beside
    # "Updated 1,200 of 1,200".
    job = publish(make_books(1200), editor)
    assert "1,200 records changed" in text_of(page_of(client, job))
    undo_page = text_of(client.get(f"/pgbulk/jobs/{job.id}/undo/"))
    assert "Put back the values of 1,200 records changed by this job." in undo_page


def test_a_running_jobs_changes_say_so_far(client, editor):
    # Before: "2 records changed" while the job ran on, as if that were all.
    job = Job.objects.create(user=editor, kind="update", model="library.Book",
                             change_log="kept", params={"values": {"status": "published"},
                                                        "change_log": {"fields": ["status"]}})
    Job.objects.filter(pk=job.pk).update(status="running")
    for key in ("1", "2"):
        Change.objects.create(job=job, object_pk=key, before={"status": "draft"},
                              after={"status": "published"})
    with psycopg.connect(conftest.test_database_url(), autocommit=True) as runner:  # alive
        runner.execute("SELECT pg_advisory_lock(pgbulk_job_lock_key(%s))", [job.id])
        text = text_of(page_of(client, job))
    assert "2 records changed so far (this list is brought up to date when the job ends)" in text


def test_csv_holds_the_log_as_stored_whole_or_filtered_by_key(client, editor):
    ids = make_books(130)
    job = publish(ids, editor, status="published", price="12.50")
    response = client.get(f"/pgbulk/jobs/{job.id}/changes.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.id}-changes.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header = rows[0]
    assert header[0] == "key" and len(rows) == 131
    assert set(header[1:]) == {"status before", "status after", "price before", "price after"}
    first = dict(zip(header, rows[1], strict=True))
    assert first["key"] == str(min(ids))  # in numeric order
    assert (first["status before"], first["status after"]) == ("draft", "published")
    assert float(first["price before"]) == 10 and float(first["price after"]) == 12.5
    # Before: the CSV link of a page filtered by key still downloaded the whole log.
    filtered = page_of(client, job, f"?changes_key={ids[7]}").content.decode()
    assert f'href="/pgbulk/jobs/{job.id}/changes.csv?key={ids[7]}"' in filtered
    one = client.get(f"/pgbulk/jobs/{job.id}/changes.csv?key={ids[7]}")
    rows = list(csv.reader(io.StringIO(b"".join(one.streaming_content).decode())))
    assert [row[0] for row in rows] == ["key", str(ids[7])]


def test_the_log_is_only_for_who_may_view_the_records(client, editor):
    ids = make_books(2)
    job = publish(ids, editor)
    watcher = user_with("watcher", "view_job")  # sees every job, not the books
    client.force_login(watcher)
    response = page_of(client, job)
    text = text_of(response)
    assert "You may not view these records, so their changes are not shown." in text
    assert "pgbulk-change-key" not in response.content.decode()
    assert "Undo" not in text  # no change permission: no button
    assert client.get(f"/pgbulk/jobs/{job.id}/changes.csv").status_code == 403
    stranger = user_with("stranger", "view_book", "change_book")  # may not see the job
    client.force_login(stranger)
    assert client.get(f"/pgbulk/jobs/{job.id}/changes.csv").status_code == 404


def test_pages_say_when_the_log_expired_or_was_not_kept(client, editor, settings):
    ids = make_books(2)
    expired = publish(ids, editor)
    Change.objects.filter(job=expired).delete()
    Job.objects.filter(pk=expired.pk).update(change_log="expired")
    text = text_of(page_of(client, expired))
    assert "Its change log was deleted: change logs are kept 30 days after a job ends" in text
    assert client.get(f"/pgbulk/jobs/{expired.id}/changes.csv").status_code == 404
    settings.PGBULK = {"ASYNC_ENABLED": False, "RECORD_CHANGES": False}
    unlogged = publish(ids, editor, status="archived", in_print=False)
    text = text_of(page_of(client, unlogged))
    assert "No change log was recorded: the job ran with RECORD_CHANGES off." in text
    assert "It ran without a change log" in text  # the disabled Undo says why


# --- Undo -------------------------------------------------------------------------------------


def test_undo_asks_first_then_restores_and_links_both_ways(client, editor):
    ids = make_books(3)
    job = publish(ids, editor)
    detail = page_of(client, job).content.decode()
    assert f'href="/pgbulk/jobs/{job.id}/undo/"' in detail
    confirm = client.get(f"/pgbulk/jobs/{job.id}/undo/")
    assert confirm.status_code == 200
    text = text_of(confirm)
    assert "Put back the values of 3 records changed by this job. No record changed since." in text
    assert "Fields put back: status." in text
    assert Job.objects.count() == 1  # asking launches nothing
    response = client.post(f"/pgbulk/jobs/{job.id}/undo/")
    undo = Job.objects.get(undo_of=job)
    assert response.status_code == 302 and response["Location"] == f"/pgbulk/jobs/{undo.id}/"
    assert undo.status == "succeeded" and undo.user == editor
    assert set(Book.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"draft"}
    undo_page = text_of(page_of(client, undo))
    assert "Undo: put back status on 3 Books" in undo_page  # the title, the dashboard's line
    assert "Restored 3 of 3" in undo_page
    assert "Undoes job status → Published on 3 Books" in undo_page
    assert "status: Published → Draft" in undo_page  # the undo's own log
    assert f'href="/pgbulk/jobs/{job.id}/"' in page_of(client, undo).content.decode()
    undone = page_of(client, job)
    assert "Undos" in text_of(undone)
    assert f'href="/pgbulk/jobs/{undo.id}/"' in undone.content.decode()


def test_undo_says_before_launch_how_many_it_would_put_back_and_skip(client, editor):
    # Before: it said "N records", counting records changed since and records deleted.
    ids = make_books(5)
    job = publish(ids, editor, status="published", genres={"add": [Genre.objects.get(name="Poetry").pk]})
    Book.objects.filter(pk=ids[0]).update(status="archived")  # changed since
    Book.objects.get(pk=ids[1]).genres.clear()  # changed since (a many-to-many field)
    Book.objects.filter(pk=ids[2]).delete()
    response = client.get(f"/pgbulk/jobs/{job.id}/undo/")
    text = text_of(response)
    assert "Put back the values of 2 records changed by this job." in text
    assert "2 records changed since and would be skipped (left as they are)." in text
    assert "1 record it changed no longer exists." in text
    assert "pgbulk-undo-confirm" in response.content.decode()
    undo = pgbulk.undo(job, user=editor)  # what it said is what the undo does
    assert (undo.done, undo.skipped_count) == (2, 2)


def test_undo_that_would_skip_every_record_offers_no_confirm_button(client, editor):
    ids = make_books(2)
    job = publish(ids, editor)
    Book.objects.filter(pk__in=ids).update(status="archived")
    response = client.get(f"/pgbulk/jobs/{job.id}/undo/")
    assert response.status_code == 200
    text = text_of(response)
    assert ("Nothing to put back: all 2 records this job changed have changed since, and an "
            "undo leaves such records as they are.") in text
    assert "pgbulk-undo-confirm" not in response.content.decode()
    assert "Put back the values" not in text
    refused = client.post(f"/pgbulk/jobs/{job.id}/undo/")  # it launched an undo of nothing
    assert refused.status_code == 400 and "Nothing to put back" in text_of(refused)
    assert not Job.objects.filter(undo_of=job).exists()


def test_links_name_but_do_not_link_jobs_the_viewer_may_not_see(client, editor):
    ids = make_books(2)
    job = publish(ids, editor)
    boss = user_with("boss", "change_book", "view_book", "change_job")
    pgbulk.undo(job, user=boss)  # boss undoes editor's job
    undo = Job.objects.get(undo_of=job)
    response = page_of(client, job)
    assert "Undos an update of Books" in text_of(response)
    assert f"/pgbulk/jobs/{undo.id}/" not in response.content.decode()


def test_undo_needs_permission(client, editor):
    ids = make_books(2)
    job = publish(ids, editor)
    reader = user_with("reader", "view_job", "view_book")  # sees it, may not change books
    client.force_login(reader)
    for method in (client.get, client.post):
        response = method(f"/pgbulk/jobs/{job.id}/undo/")
        assert response.status_code == 403
        assert "You may not undo this job." in text_of(response)
    other = user_with("other", "view_job", "change_book", "view_book")  # not theirs
    client.force_login(other)
    assert client.post(f"/pgbulk/jobs/{job.id}/undo/").status_code == 403
    assert not Job.objects.filter(undo_of=job).exists()
    assert set(Book.objects.values_list("status", flat=True)) == {"published"}


def test_undo_is_refused_with_the_reason(client, editor):
    ids = make_books(4)
    deleted = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids[:2]), run="sync", user=editor)
    response = client.post(f"/pgbulk/jobs/{deleted.id}/undo/")
    assert response.status_code == 400
    # Before: "This job cannot be undone: A delete cannot be undone."
    assert ("This job cannot be undone. Deleted records cannot be brought back."
            in text_of(response))
    assert "Deleted records cannot be brought back." in text_of(page_of(client, deleted))
    expired = publish(ids[2:], editor)
    Change.objects.filter(job=expired).delete()
    Job.objects.filter(pk=expired.pk).update(change_log="expired")
    response = client.post(f"/pgbulk/jobs/{expired.id}/undo/")
    assert response.status_code == 400 and "change log was deleted" in text_of(response)
    assert Job.objects.filter(undo_of__isnull=False).count() == 0


def test_undo_refused_on_conflict_names_the_holder(client, editor, settings):
    ids = make_books(3)
    job = publish(ids, editor)
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}  # no worker: it stays queued
    alice = user_with("alice", "change_book")
    holder = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:2]), {"price": 1},
                                user=alice, run="async")
    response = client.post(f"/pgbulk/jobs/{job.id}/undo/")
    assert response.status_code == 409
    text = re.sub(r" ,", ",", text_of(response))
    assert "Conflict: nothing was put back" in text
    assert "an update of Books, queued, by alice, holds 2 of them." in text
    assert f"/pgbulk/jobs/{holder.id}/" not in response.content.decode()  # not editor's
    assert not Job.objects.filter(undo_of=job).exists()
    assert set(Book.objects.values_list("status", flat=True)) == {"published"}


def test_undo_of_records_deleted_since_is_a_400_not_an_error(client, editor):
    ids = make_books(2)
    job = publish(ids, editor)
    Book.objects.filter(pk__in=ids).delete()
    response = client.post(f"/pgbulk/jobs/{job.id}/undo/")
    assert response.status_code == 400
    assert "None of the records it changed exist any more." in text_of(response)
    assert not Job.objects.filter(undo_of=job).exists()


def test_undo_is_csrf_protected(editor):
    ids = make_books(1)
    job = publish(ids, editor)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(editor)
    assert strict.post(f"/pgbulk/jobs/{job.id}/undo/").status_code == 403
    assert not Job.objects.filter(undo_of=job).exists()


def test_an_unfinished_job_offers_a_disabled_undo(client, editor, settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}
    ids = make_books(3)
    queued = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "published"},
                                user=editor, run="async")
    response = page_of(client, queued)
    assert "The job has not finished yet." in text_of(response)
    assert f'href="/pgbulk/jobs/{queued.id}/undo/"' not in response.content.decode()
    assert client.post(f"/pgbulk/jobs/{queued.id}/undo/").status_code == 400


def test_the_dashboard_offers_undo_on_finished_logged_updates(client, editor):
    ids = make_books(4)
    job = publish(ids[:2], editor)
    deleted = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids[2:]), run="sync", user=editor)
    html = client.get("/pgbulk/jobs/").content.decode()
    assert f'href="/pgbulk/jobs/{job.id}/undo/"' in html
    assert f"/pgbulk/jobs/{deleted.id}/undo/" not in html
    client.force_login(user_with("watcher", "view_job", "view_book"))
    assert "/undo/" not in client.get("/pgbulk/jobs/").content.decode()


def test_undo_is_not_offered_when_it_would_put_nothing_back(client, editor, admin_client):
    # Before: the page, the dashboard and the admin offered Undo on a job that changed no
    # value (its records already held them) or whose records were all deleted since.
    ids = make_books(4, status="published")
    same = publish(ids[:2], editor)  # its records already held the value: none logged
    assert Change.objects.filter(job=same).count() == 0
    gone = publish(ids[2:], editor, price="12.00")
    Book.objects.filter(pk__in=ids[2:]).delete()
    nothing = "Nothing to undo: the job changed no record."
    for job, reason in ((same, nothing), (gone, "None of the records it changed exist any more.")):
        response = page_of(client, job)
        assert reason in text_of(response)  # the disabled button says why
        assert f'href="/pgbulk/jobs/{job.id}/undo/"' not in response.content.decode()
        assert client.post(f"/pgbulk/jobs/{job.id}/undo/").status_code == 400
        admin = admin_client.get(f"/admin/pgbulk/job/{job.id}/change/")
        assert reason in text_of(admin) and f"/pgbulk/jobs/{job.id}/undo/" not in admin.content.decode()
    dashboard = client.get("/pgbulk/jobs/")
    assert "/undo/" not in dashboard.content.decode()
    assert nothing in text_of(dashboard) and "exist any more" in text_of(dashboard)
    assert not Job.objects.filter(undo_of__isnull=False).exists()
    changed = publish(make_books(1), editor)  # one that did change a record: offered
    assert f'href="/pgbulk/jobs/{changed.id}/undo/"' in client.get("/pgbulk/jobs/").content.decode()


def test_the_dashboard_says_what_an_undo_undoes(client, editor):
    # Before: every undo's row read "Undo: put back status on N Books", alike.
    first = publish(make_books(2), editor)
    second = publish(make_books(3), editor, price="7.00")
    undos = [pgbulk.undo(job, user=editor) for job in (first, second)]
    text = text_of(client.get("/pgbulk/jobs/"))
    assert "Undo of: status → Published on 2 Books" in text
    assert "Undo of: price → 7.00 on 3 Books" in text
    assert text.count("Undo of:") == 2  # only the undos' rows
    Job.objects.filter(pk=first.pk).delete()
    text = text_of(client.get("/pgbulk/jobs/"))
    assert "Undo of a job since deleted from the history" in text
    assert text.count("Undo of:") == 1
    assert Job.objects.get(pk=undos[0].pk).undo_of is None


def test_a_failed_undo_is_listed_as_an_undo_that_failed_not_as_undone(client, editor):
    # Before: the job's page said "Undone by: Undo: put back in print (failed, ...)"
    # although the undo restored nothing.
    ids = make_books(2)
    job = publish(ids, editor, in_print=False)
    publish(ids, editor, status="archived")  # an archived book cannot be back in print
    undo = pgbulk.undo(job, user=editor, run="sync")
    assert (undo.status, undo.done) == ("failed", 0)
    text = text_of(page_of(client, job))
    assert "Undone by" not in text
    assert "Undos Undo: put back in print on 2 Books (failed," in text


def test_the_undo_confirmation_predicts_records_that_would_fail(client, editor):
    # Before: "Put back the values of 2 records changed by this job. No record changed
    # since." and the undo then failed on both (archived books cannot be back in print).
    ids = make_books(3)
    job = publish(ids[:2], editor, in_print=False)
    jobs = Job.objects.count()
    page = text_of(client.get(f"/pgbulk/jobs/{job.id}/undo/"))
    assert "All 2 records pass validation with their values put back." in page
    publish(ids[:2], editor, status="archived")
    forecast = undoing.forecast(job)
    assert (forecast.put_back, forecast.failures["sampled"], forecast.failures["failed"]) == (
        2, 2, 2)
    page = text_of(client.get(f"/pgbulk/jobs/{job.id}/undo/"))
    assert "2 of the 2 records would fail to be put back:" in page
    assert "in print: “An archived book cannot be in print.”" in page  # not in_print
    assert "The undo would change nothing: it is all or nothing" in page
    assert Job.objects.count() == jobs + 1  # the archive job only: the forecast wrote nothing
    assert set(Book.objects.filter(pk__in=ids[:2]).values_list("in_print", flat=True)) == {False}
    sampled = undoing.forecast(job, sample_size=1).failures
    assert (sampled["sampled"], sampled["failed"]) == (1, 1)
    one = publish(ids[2:], editor, in_print=False)
    publish(ids[2:], editor, status="archived")
    page = text_of(client.get(f"/pgbulk/jobs/{one.id}/undo/"))
    assert "The record would fail to be put back:" in page  # not "1 of the 1 records"


def test_a_redo_is_named_a_redo_and_undos_are_listed_cleanly(client, editor):
    # Before: an undo of an undo was also "Undo: put back status", and the list of
    # undos read "... 10:02) ; Undo ..." (a space before each semicolon).
    ids = make_books(2)
    job = publish(ids, editor)
    undo = pgbulk.undo(job, user=editor, run="sync")
    redo = pgbulk.undo(undo, user=editor, run="sync")
    again = pgbulk.undo(redo, user=editor, run="sync")
    assert "Redo: set status again on 2 Books" in text_of(page_of(client, redo))
    confirm = text_of(client.get(f"/pgbulk/jobs/{undo.id}/undo/"))
    assert "Redo: undo “Undo: put back status on 2 Books”" in confirm
    assert "Undo: put back status on 2 Books" in text_of(page_of(client, again))
    Book.objects.filter(pk__in=ids).update(status="published")  # as the job left them
    pgbulk.undo(job, user=editor, run="sync")
    html = page_of(client, job).content.decode()
    undone_by = html.split('class="pgbulk-undone-by">', 1)[1].split("</dd>", 1)[0]
    assert undone_by.count("; ") == 1 and " ;" not in undone_by


# --- skipped records ---------------------------------------------------------------------------


def test_skipped_records_are_shown_apart_from_failures(client, editor):
    ids = make_books(3)
    job = publish(ids, editor)
    Book.objects.filter(pk=ids[1]).update(status="archived", in_print=False)  # changed since
    client.post(f"/pgbulk/jobs/{job.id}/undo/")
    undo = Job.objects.get(undo_of=job)
    assert (undo.status, undo.done, undo.skipped_count) == ("succeeded", 2, 1)
    assert JobError.objects.filter(job=undo, skipped=True).count() == 1
    text = text_of(page_of(client, undo))
    assert "Restored 2 of 3 · 1 skipped" in text
    assert "No record failed." in text
    skipped = text.split("Skipped (changed since the undone job)", 1)[1]
    assert "1 record was left as it is" in skipped and "Book " in skipped
    assert str(ids[1]) in skipped and "status is" in skipped
    # Before: headed "Field" (always empty) and "Error".
    assert "Record Key Reason" in skipped and "Field" not in skipped and "Error" not in skipped
    progress = client.get(f"/pgbulk/jobs/{undo.id}/progress/",
                          headers={"Accept": "application/json"}).json()
    assert (progress["done"], progress["skipped_count"], progress["percent"]) == (2, 1, 100.0)
    html = page_of(client, undo).content.decode()
    assert 'class="pgbulk-bar-skipped" style="width: 33.3%"' in html
    assert Book.objects.get(pk=ids[1]).status == "archived"


def test_skip_messages_use_verbose_names_and_related_records_by_name(client, editor):
    # Before: 'in_print is false, the job left true; author_id is 7 ...; genres is [1, 5]'.
    ids = make_books(2)  # the second one is put back: an undo of nothing is refused
    other, third = (Author.objects.create(name=name) for name in ("Other author", "Third author"))
    fantasy = Genre.objects.create(name="Fantasy")
    crime = Genre.objects.get(name="Crime")
    job = publish(ids, editor, status="published", in_print=False, author=other.pk,
                  genres={"add": [fantasy.pk]})
    Book.objects.filter(pk=ids[0]).update(in_print=True, author=third)
    Book.objects.get(pk=ids[0]).genres.clear()
    undo = pgbulk.undo(job, user=editor)
    assert undo.skipped_count == 1
    message = JobError.objects.get(job=undo, skipped=True).message
    assert f'author is "Third author (#{third.pk})", the job left "Other author (#{other.pk})"' in message
    assert f'genres is "empty", the job left "{crime}, {fantasy}"' in message
    gone = fantasy.pk
    fantasy.delete()  # a related record deleted since is named by its key
    assert describe.related_names(Genre, [crime.pk, gone]) == f"{crime}, #{gone} (deleted)"
    assert 'in print is "yes", the job left "no"' in message
    assert "in_print" not in message and "author_id" not in message
    assert 'in print is "yes", the job left "no"' in text_of(page_of(client, undo))


# --- the admin ---------------------------------------------------------------------------------


def test_job_admin_links_the_undo_and_the_changes(admin_client, editor):
    ids = make_books(2)
    job = publish(ids, editor)
    pgbulk.undo(job, user=editor)
    undo = Job.objects.get(undo_of=job)
    html = admin_client.get(f"/admin/pgbulk/job/{undo.id}/change/").content.decode()
    assert f'href="/pgbulk/jobs/{job.id}/"' in html and "Undoes job" in html
    assert f'href="/pgbulk/jobs/{undo.id}/#changes"' in html
    html = admin_client.get(f"/admin/pgbulk/job/{job.id}/change/").content.decode()
    assert f'href="/pgbulk/jobs/{undo.id}/"' in html and "Undos" in html
    assert f'href="/pgbulk/jobs/{job.id}/undo/"' in html  # the admin offers the undo too
    # Before: headed "View job" over "update library.Book (succeeded)".
    assert "<h1>status → Published on 2 Books</h1>" in html and "View job" not in html
    # Before: its undo's admin page said "Undo of: update library.Book (succeeded)".
    html = admin_client.get(f"/admin/pgbulk/job/{undo.id}/change/").content.decode()
    assert "status → Published on 2 Books (succeeded)" in html and "library.Book (" not in html
    assert "update of books (succeeded)" in html.lower()  # the breadcrumbs


def test_job_admin_says_why_a_delete_cannot_be_undone(admin_client):
    ids = make_books(2)
    delete = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids), run="sync")
    html = admin_client.get(f"/admin/pgbulk/job/{delete.id}/change/").content.decode()
    assert "Deleted records cannot be brought back." in html and "/undo/" not in html


def test_a_records_admin_history_lists_the_bulk_jobs_that_changed_it(admin_client, editor,
                                                                     settings):
    ids = make_books(3)
    first = publish(ids[:2], editor)
    second = publish(ids[:1], editor, price="20.00")
    response = admin_client.get(f"/admin/library/book/{ids[0]}/history/")
    assert response.status_code == 200
    html = response.content.decode()
    text = text_of(response)
    assert f'href="/pgbulk/jobs/{first.id}/"' in html and f'href="/pgbulk/jobs/{second.id}/"' in html
    assert "status: Draft → Published" in text and "price: 10.00 → 20.00" in text
    assert text.index("price: 10.00") < text.index("status: Draft")  # newest first
    assert "editor" in text
    untouched = admin_client.get(f"/admin/library/book/{ids[2]}/history/")
    assert "pgbulk/jobs/" not in untouched.content.decode()
    # Before: "... kept CHANGE_RETENTION days", the setting's name in place of its value.
    assert "No bulk job changed this record in the last 30 days" in text_of(untouched)
    settings.PGBULK = {**settings.PGBULK, "JOB_RETENTION": 7}  # jobs go first, logs too
    assert "in the last 7 days" in text_of(admin_client.get(
        f"/admin/library/book/{ids[2]}/history/"))
    redo = pgbulk.undo(pgbulk.undo(second, run="sync"), run="sync")
    text = text_of(admin_client.get(f"/admin/library/book/{ids[0]}/history/"))
    assert "Redo: set price again on 1 Book (a redo)" in text  # before: "(an undo)"
    assert "Undo: put back price on 1 Book (an undo)" in text and redo.status == "succeeded"


def test_the_admin_history_names_jobs_the_viewer_may_not_see_by_their_kind_only(editor):
    # Before: another user's job showed its summary and its owner there.
    ids = make_books(1)
    publish(ids, editor)
    reader = user_with("reader", "view_book", staff=True)  # not pgbulk.view_job
    client = Client()
    client.force_login(reader)
    response = client.get(f"/admin/library/book/{ids[0]}/history/")
    text, html = text_of(response), response.content.decode()
    assert "status: Draft → Published" in text  # the record's own values: may view books
    assert "/pgbulk/jobs/" not in html and "editor" not in text
    assert "on 1 Book" not in text


def test_the_admin_history_hides_a_child_models_values_from_who_may_not_view_them(editor):
    # Before: a Book's History showed an EBook job's "file size: 0 → 5" to a user who
    # may view books but not e-books.
    from testproject.library.models import EBook

    ebook = EBook.objects.create(title="E", isbn="E-1", price=1, author=Author.objects.create(
        name="A"))
    pgbulk.bulk_update(EBook.objects.filter(pk=ebook.pk), {"file_size": 5}, run="sync")
    reader = user_with("reader", "view_book", "view_job", staff=True)
    client = Client()
    client.force_login(reader)
    text = text_of(client.get(f"/admin/library/book/{ebook.pk}/history/"))
    assert "0 → 5" not in text and "(values of a model you may not view)" in text
    assert "file size → 5 on 1 E book" in text  # the job's summary: it may see every job


def test_an_undo_says_its_records_come_from_the_undone_jobs_log(client, editor):
    # Before: its page said "Launched from code", also when launched from the page.
    ids = make_books(2)
    undo = pgbulk.undo(publish(ids, editor), user=editor)
    text = text_of(page_of(client, undo))
    assert "The records the undone job changed (from its change log)" in text
    assert "Launched from code" not in text


def test_an_undone_job_says_so_under_its_progress(client, editor, settings):
    """Before: its page still read "Succeeded: Updated 4 of 4" with nothing above the
    facts to say the records were put back since."""
    ids = make_books(4)
    job = publish(ids, editor)
    assert "pgbulk-undone-note" not in page_of(client, job).content.decode()
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}  # the undo stays queued
    queued = pgbulk.undo(job, user=editor, run="async")
    assert "Being undone: its changes are being put back by Undo: put back status" in text_of(
        page_of(client, job))
    queued.cancel(by=editor)  # cancelled before it put anything back: nothing to say
    assert "pgbulk-undone-note" not in page_of(client, job).content.decode()
    settings.PGBULK = {"ASYNC_ENABLED": False}
    Book.objects.filter(pk=ids[0]).update(status="archived")  # changed since: skipped
    pgbulk.undo(job, user=editor, run="sync")
    assert "Partly undone since: 3 records were put back by Undo: put back status" in text_of(
        page_of(client, job))
    again = publish(ids[1:], editor)
    pgbulk.undo(again, user=editor, run="sync")
    assert "Undone since: its changes were put back by Undo: put back status on 3 Books" in (
        text_of(page_of(client, again)))
    admin = Client()
    admin.force_login(User.objects.create_superuser("boss", password="x"))
    shown = admin.get(f"/admin/pgbulk/job/{again.id}/change/")
    assert shown.status_code == 200 and "Undone since:" in text_of(shown)


def test_logged_numbers_read_back_with_every_digit_and_json_as_json(client, editor):
    """Before: the log was read as floats: the CSV said 10.0 for a price of 10.00 (and a
    numeric(30, 10) lost its last digits), and a JSON field read as Python's repr."""
    from testproject.library.models import Label

    ids = make_books(1)
    job = publish(ids, editor, price="7.25")
    rows = list(csv.reader(io.StringIO(b"".join(
        client.get(f"/pgbulk/jobs/{job.id}/changes.csv").streaming_content).decode())))
    assert rows[1][1:] == ["10.00", "7.25"]
    assert Change.objects.get(job=job).before == {"price": Decimal("10.00")}
    Label.objects.create(name="a", data={"ratio": 1.5, "tiny": 1e-7, "n": [2]})
    editor.user_permissions.add(Permission.objects.get(codename="view_label"))
    labelled = pgbulk.bulk_update(Label.objects.all(), {"data": {"ratio": 2}}, run="sync",
                                  user=editor)
    text = text_of(page_of(client, labelled))
    assert 'data: {"n": [2], "tiny": 1e-07, "ratio": 1.5} → {"ratio": 2}' in text  # jsonb's order


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_date_time_key_is_found_as_postgresql_writes_it(client, settings):
    """The log and the reservations hold keys as PostgreSQL writes them as text
    ('2020-01-01 00:00:00+00'); History, the key filter and the list's "in a job" markers
    looked for Python's text ('...+00:00') and never found a date-time key."""
    import datetime

    from pgbulk import locks
    from testproject.library.models import Session

    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}
    boss = User.objects.create_superuser("boss", password="x")
    client.force_login(boss)
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    sessions = [Session.objects.create(starts_at=start + datetime.timedelta(hours=h),
                                       title=f"S{h}") for h in range(3)]
    job = pgbulk.bulk_update(Session.objects.all(), {"title": "T"}, run="sync", user=boss)
    assert [row.job.id for row in changes.record_history(Session, sessions[1].pk)] == [job.id]
    found = changes.with_key(job, changes.log_of(job), "2020-01-01 01:00:00+00:00")
    assert [c.object_pk for c in found] == ["2020-01-01 01:00:00+00"]
    holder = pgbulk.bulk_update(Session.objects.filter(pk=sessions[2].pk), {"title": "U"},
                                run="async", min_async_records=0)
    assert locks.holders(Session, [s.pk for s in sessions]) == [(sessions[2].pk, holder.id)]
    from pgbulk.list_jobs import reserved_rows  # the list's "in a job" markers: str(pk)
    assert list(reserved_rows(boss, Session, [s.pk for s in sessions])) == [
        str(sessions[2].pk)]


def test_json_values_read_as_json_on_the_page_and_in_the_csv(client, editor):
    """A JSON list read as space-separated items in the CSV, true as True, and a JSON ""
    as "empty" on the page."""
    from testproject.library.models import Label

    Label.objects.create(name="a", data=["a b", "c", True])
    editor.user_permissions.add(Permission.objects.get(codename="view_label"))
    job = pgbulk.bulk_update(Label.objects.all(), {"data": ""}, run="sync", user=editor)
    text = text_of(page_of(client, job))
    assert 'data: ["a b", "c", true] → ""' in text and 'data → "" on 1 Label' in text
    rows = list(csv.reader(io.StringIO(b"".join(
        client.get(f"/pgbulk/jobs/{job.id}/changes.csv").streaming_content).decode())))
    assert rows[1][1:] == ['["a b", "c", true]', '""']

"""Views with the Django test client: the bulk endpoint, job endpoints, admin, hostile input."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

import pgbulk
from pgbulk.models import Job, JobError
from testproject.library.models import Book
from tests.factories import make_books, reservation_count

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


def post(client, data, **headers):
    return client.post("/", data, headers={"HX-Request": "true", **headers})


def edit(client, pks=(), **fields):
    data = {"bulk_action": "edit", "pks": [str(pk) for pk in pks]}
    for name, value in fields.items():
        data[f"change_{name}"] = "on"
        data[name] = value
    return post(client, data)


def done_event(response) -> dict:
    """The ``pgbulk-done`` event's detail a response tells the page about (KeyError if none)."""
    return json.loads(response["HX-Trigger"])["pgbulk-done"]


def unchanged(ids, price="10.00") -> bool:
    return all(str(p) == price for p in Book.objects.filter(pk__in=ids).values_list(
        "price", flat=True)) and not Job.objects.exists() and reservation_count() == 0


def test_list_shows_checkboxes_and_the_bulk_toolbar(client, editor):
    make_books(3)
    page = client.get("/").content.decode()
    assert page.count('class="pgbulk-row"') == 3
    assert 'id="pgbulk-edit"' in page and 'id="pgbulk-delete"' in page
    assert "pgbulk/pgbulk.js" in page


def test_form_then_sync_edit_refreshes_the_table(client, editor):
    ids = make_books(3)
    form = post(client, {"bulk_action": "form", "pks": ids})
    assert form.status_code == 200 and b"Edit 3 records" in form.content
    done = edit(client, ids, price="12.50", status="published")
    assert done.status_code == 200 and done_event(done)["status"] == "succeeded"
    assert set(Book.objects.values_list("price", "status")) == {(12.5, "published")}
    job = Job.objects.get()
    assert (job.user, job.status, job.run_mode) == (editor, "succeeded", "sync")


def test_select_all_matching_with_filters_and_exclusions(client, editor):
    ids = make_books(30)
    Book.objects.filter(pk__in=ids[:5]).update(status="published")
    response = post(client, {"bulk_action": "edit", "select_all": "1",
                             "bulk_querystring": "status=draft", "exclude": [ids[29]],
                             "change_price": "on", "price": "3"})
    assert response.status_code == 200
    job = Job.objects.get()
    assert job.total == 24 and job.run_mode == "async" and job.status == "queued"
    assert b"hx-get" in response.content and b"/progress/" in response.content
    assert job.params["context"]["excluded"] == 1


def test_select_all_without_the_toolbar_s_querystring_uses_the_url_s_filters(client, editor):
    """A script posting select_all to /?status=draft (no bulk_querystring) edited every
    record, the filters ignored."""
    ids = make_books(6)
    Book.objects.filter(pk__in=ids[:2]).update(status="published")
    client.post("/?status=draft", {"bulk_action": "edit", "select_all": "1",
                                   "change_price": "on", "price": "3"},
                headers={"HX-Request": "true"})
    job = Job.objects.get()
    assert job.total == 4 and job.params["context"]["filters"] == "status=draft"


def test_excluded_records_the_filters_never_matched_are_not_counted(client, editor):
    """The job's Selection said "3 excluded" for keys that were not in the list at all."""
    ids = make_books(6)
    Book.objects.filter(pk__in=ids[:2]).update(status="published")
    post(client, {"bulk_action": "edit", "select_all": "1", "bulk_querystring": "status=draft",
                  "exclude": [ids[0], ids[5], 999_999], "change_price": "on", "price": "3"})
    job = Job.objects.get()
    assert (job.total, job.params["context"]["excluded"]) == (3, 1)


@pytest.mark.parametrize("odd", ["q=%00", "author=%C2%B2"])
def test_the_sample_list_ignores_filters_postgresql_cannot_take(client, editor, odd):
    """A NUL in the search and a superscript digit as author were 500s, on the list and on
    every bulk action through its filters."""
    ids = make_books(3)
    assert client.get(f"/?{odd}").status_code == 200
    response = post(client, {"bulk_action": "preview", "select_all": "1",
                             "bulk_querystring": odd, "change_price": "on", "price": "3"})
    assert response.status_code == 200, response.content[:300]
    assert not Job.objects.exists() and len(ids) == 3


def test_m2m_and_fk_widgets_are_built_from_bulk_fields(client, editor):
    make_books(1)
    content = post(client, {"bulk_action": "form", "pks": [Book.objects.get().pk]}).content
    for name in (b'name="genres_op"', b'name="author"', b'type="date"', b'name="change_in_print"'):
        assert name in content


def test_bulk_delete_asks_then_deletes(client, editor):
    ids = make_books(3)
    ask = post(client, {"bulk_action": "confirm-delete", "pks": ids})
    assert b"Delete 3 records?" in ask.content and Book.objects.count() == 3
    post(client, {"bulk_action": "delete", "pks": ids[:2]})
    assert list(Book.objects.values_list("pk", flat=True)) == ids[2:]


def test_conflict_names_the_blocking_job_owner_and_count(client, editor):
    ids = make_books(30)
    alice = User.objects.create_user("alice")
    blocker = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:25]), {"price": 1}, user=alice)
    response = edit(client, ids[20:23], price="5")
    assert response.status_code == 409
    text = response.content.decode()
    assert "alice" in text and 'conflict-count">3<' in text
    # alice's job is not the editor's to see: what it is, but no link to it
    assert "an update of Books" in text and "queued" in text and str(blocker.id) not in text
    assert Job.objects.count() == 1


# --- hostile input ------------------------------------------------------------------------

def test_unknown_action_is_400(client, editor):
    ids = make_books(1)
    assert post(client, {"bulk_action": "drop-table", "pks": ids}).status_code == 400
    assert unchanged(ids)


def test_unknown_field_names_change_nothing(client, editor):
    ids = make_books(2)
    response = edit(client, ids, nope="1", revision="9")
    assert response.status_code == 422 and b"Tick at least one field" in response.content
    assert unchanged(ids)


def test_invalid_value_is_a_form_error(client, editor):
    ids = make_books(2)
    response = edit(client, ids, price="abc")
    assert response.status_code == 422 and b"pgbulk-field-error" in response.content
    response = edit(client, ids, status="lost")
    assert response.status_code == 422
    response = edit(client, ids, author="999999")
    assert response.status_code == 422
    assert unchanged(ids)


def test_a_value_the_model_rejects_re_renders_the_form(client, editor):
    ids = make_books(2)
    response = edit(client, ids, price="-3")  # passes the form, breaks a CheckConstraint
    assert response.status_code == 422 and b"book_price_not_negative" in response.content
    assert unchanged(ids)


def test_pks_outside_the_views_queryset_are_refused(client, editor):
    ids = make_books(4)
    Book.objects.filter(pk=ids[0]).update(status="archived")
    response = post(client, {"bulk_action": "edit", "pks": ids, "bulk_querystring":
                             "status=draft", "change_price": "on", "price": "1"})
    assert response.status_code == 400 and b"not in this" in response.content
    response = edit(client, [999_999], price="1")
    assert response.status_code == 400
    assert unchanged(ids)


def test_malformed_pks_and_empty_selection_are_400(client, editor):
    ids = make_books(2)
    assert edit(client, ["abc"], price="1").status_code == 400
    assert edit(client, [], price="1").status_code == 400
    assert unchanged(ids)


def test_a_selected_record_gone_from_the_list_is_refused_in_one_sentence(client, editor):
    # Before: "Nothing was changed. 1 of the 2 selected records are not in this list any
    # more (changed or filtered out); nothing was changed."
    ids = make_books(2)
    Book.objects.filter(pk=ids[1]).delete()
    response = edit(client, ids, price="1")
    assert response.status_code == 400
    text = re.sub(r"<[^>]+>", "", response.content.decode())
    assert ("Nothing was changed. 1 of the 2 selected records is not in this list any more "
            "(changed or filtered out).") in text
    assert text.lower().count("nothing was changed") == 1
    assert unchanged(ids[:1])


def test_a_huge_forged_selection_is_refused(client, editor):
    ids = make_books(2)
    response = edit(client, range(1, 20_000), price="1")
    assert response.status_code == 400
    assert unchanged(ids)


def test_no_permission_is_403(client):
    ids = make_books(2)
    user = User.objects.create_user("viewer")
    client.force_login(user)
    assert edit(client, ids, price="1").status_code == 403
    assert post(client, {"bulk_action": "delete", "pks": ids}).status_code == 403
    assert unchanged(ids)


def test_missing_csrf_token_is_403(editor):
    ids = make_books(2)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(editor)
    response = strict.post("/", {"bulk_action": "edit", "pks": ids, "change_price": "on",
                                 "price": "1"})
    assert response.status_code == 403
    assert unchanged(ids)


def test_anonymous_users_are_sent_to_log_in(client):
    ids = make_books(1)
    response = client.post("/", {"bulk_action": "edit", "pks": ids})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert client.get(f"/pgbulk/jobs/{uuid.uuid4()}/progress/").status_code == 302


# --- job endpoints ---------------------------------------------------------------------------

def test_progress_json_and_htmx_stop_code(client, editor):
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="sync",
                             user=editor)
    url = f"/pgbulk/jobs/{job.id}/progress/"
    data = client.get(url, headers={"Accept": "application/json"}).json()
    assert {k: data[k] for k in ("id", "status", "done", "total", "percent")} == {
        "id": str(job.id), "status": "succeeded", "done": 2, "total": 2, "percent": 100.0}
    assert "message" in data and data["errors"] == []
    htmx = client.get(url, headers={"HX-Request": "true"})
    assert htmx.status_code == 286 and done_event(htmx)["job"] == str(job.id)


def test_unknown_and_foreign_jobs_are_404_and_posts_only_cancel(client, editor):
    ids = make_books(25)
    other = User.objects.create_user("other")
    theirs = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, user=other)
    for url in (f"/pgbulk/jobs/{uuid.uuid4()}/progress/", f"/pgbulk/jobs/{theirs.id}/",
                f"/pgbulk/jobs/{theirs.id}/progress/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/pgbulk/jobs/{theirs.id}/cancel/").status_code == 404
    assert client.get(f"/pgbulk/jobs/{theirs.id}/cancel/").status_code == 405
    assert Job.objects.get(pk=theirs.pk).status == "queued"
    assert client.get("/pgbulk/jobs/not-a-uuid/").status_code == 404


def test_dashboard_staff_see_all_others_their_own_and_can_cancel(client, editor):
    ids = make_books(50)
    mine = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:25]), {"price": 2}, user=editor)
    boss = User.objects.create_superuser("boss", password="x")
    theirs = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[25:]), {"price": 3}, user=boss)
    page = client.get("/pgbulk/jobs/").content.decode()
    assert f'data-job="{mine.id}"' in page and f'data-job="{theirs.id}"' not in page
    assert client.get("/pgbulk/jobs/?status=failed").content.decode().count("data-job=") == 0
    client.post(f"/pgbulk/jobs/{mine.id}/cancel/")
    assert Job.objects.get(pk=mine.pk).status == "cancelled"
    client.force_login(boss)
    page = client.get("/pgbulk/jobs/").content.decode()
    assert f'data-job="{mine.id}"' in page and f'data-job="{theirs.id}"' in page


# --- admin ------------------------------------------------------------------------------------

def test_admin_bulk_edit_action(client):
    ids = make_books(30)
    boss = User.objects.create_superuser("boss", password="x")
    client.force_login(boss)
    url = "/admin/library/book/"
    form = client.post(url, {"action": "pgbulk_bulk_edit", "_selected_action": ids[:3],
                             "index": 0})
    assert form.status_code == 200 and b"3 books selected" in form.content
    done = client.post(url, {"action": "pgbulk_bulk_edit", "_selected_action": ids[:3],
                             "index": 0, "pgbulk_apply": "Apply", "change_price": "on",
                             "price": "7"})
    assert done.status_code == 302
    assert Book.objects.filter(price=7).count() == 3
    # Before: the message said what was done, with no way to the job and its change log.
    finished = Job.objects.get(status="succeeded")
    message = client.get(done["Location"]).content.decode()
    assert ('Updated 3 of 3 records. <a href="/admin/library/book/pgbulk-job/'
            f'{finished.id}/">See the job</a>') in message
    queued = client.post(url, {"action": "pgbulk_bulk_edit", "_selected_action": ids[3:],
                               "index": 0, "pgbulk_apply": "Apply", "change_status": "on",
                               "status": "published"})
    job = Job.objects.get(status="queued")
    assert queued.status_code == 302
    assert queued["Location"] == f"/admin/library/book/pgbulk-job/{job.id}/"
    invalid = client.post(url, {"action": "pgbulk_bulk_edit", "_selected_action": ids[:2],
                                "index": 0, "pgbulk_apply": "Apply", "change_price": "on",
                                "price": "abc"})
    assert invalid.status_code == 422
    assert client.get(f"/admin/pgbulk/job/{job.id}/change/").status_code == 200


@pytest.mark.urls("tests.urls_neapolitan")
def test_mixin_on_a_neapolitan_crud_view(client, editor):
    ids = make_books(3)
    page = client.get("/books/")
    assert page.status_code == 200 and page.content.decode().count('class="pgbulk-row"') == 3
    response = client.post("/books/", {"bulk_action": "edit", "pks": ids,
                                       "change_status": "on", "status": "published",
                                       "change_price": "on", "price": "4"})
    assert response.status_code == 200
    assert set(Book.objects.values_list("status", flat=True)) == {"published"}


def test_dashboard_active_filter_keeps_recent_finished_jobs(client, editor, settings):
    ids = make_books(4)
    recent = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:2]), {"price": 2}, run="sync",
                                user=editor)
    old = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[2:]), {"price": 3}, run="sync",
                             user=editor)
    Job.objects.filter(pk=old.pk).update(finished_at=old.finished_at.replace(year=2000))
    page = client.get("/pgbulk/jobs/?status=active").content.decode()
    assert f'data-job="{recent.id}"' in page and f'data-job="{old.id}"' not in page


def test_admin_action_pages_stay_in_the_admin(client):
    ids = make_books(30)
    boss = User.objects.create_superuser("boss", password="x")
    client.force_login(boss)
    url = "/admin/library/book/"
    form = client.post(url, {"action": "pgbulk_bulk_edit", "_selected_action": ids[:3],
                             "index": 0}).content.decode()
    assert 'class="breadcrumbs"' in form and f'href="{url}"' in form and "Bulk edit" in form
    assert 'id="site-name"' in form  # the admin's own header
    queued = client.post(url, {"action": "pgbulk_bulk_edit", "_selected_action": ids,
                               "index": 0, "pgbulk_apply": "Apply", "change_status": "on",
                               "status": "published"})
    job = Job.objects.get()
    assert job.params["context"]["source"] == "admin" and job.params["context"]["selected"] == 30
    page = client.get(queued["Location"]).content.decode()
    assert 'class="breadcrumbs"' in page and 'id="site-name"' in page
    assert 'class="pgbulk-back-to-list"' in page and f'href="{url}"' in page
    assert "status → Published on 30 Books" in page and f"/pgbulk/jobs/{job.id}/progress/" in page
    Job.objects.filter(pk=job.pk).update(status="running")
    Job.objects.filter(pk=job.pk).update(status="failed", failed_count=1, total=30)
    JobError.objects.create(job=job, object_pk=str(ids[0]), record="Book 0", message="Nope.")
    change = client.get(f"/admin/pgbulk/job/{job.id}/change/").content.decode()
    assert "status → Published" in change and "pgbulk-bar" in change
    assert "Book 0" in change and "Nope." in change
    assert f'href="/admin/library/book/{ids[0]}/change/"' in change


def test_each_row_checkbox_is_named_for_screen_readers(client, editor):
    """Every row's checkbox was labelled just "Select"."""
    make_books(2)
    html = client.get("/").content.decode()
    assert 'aria-label="Select Book 0"' in html and 'aria-label="Select Book 1"' in html


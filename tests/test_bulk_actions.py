"""The list side: values checked before launch, the form, confirmations, error fragments,
the active-jobs banner and rows held by running jobs."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, models

import pgbulk
from pgbulk.forms import BulkEditForm, value_field
from pgbulk.models import Job
from testproject.library.models import Author, Book, Genre, Publisher
from tests.factories import make_books, reservation_count

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def held_queue(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}


@pytest.fixture
def editor(client) -> User:
    user = User.objects.create_user("editor", password="x")
    user.user_permissions.add(*Permission.objects.filter(codename__in=[
        "change_book", "delete_book", "view_book", "change_author", "delete_author",
        "change_publisher", "delete_publisher"]))
    client.force_login(user)
    return user


def post(client, data, url="/"):
    return client.post(url, data, headers={"HX-Request": "true"})


def queued_tasks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs")
        return cursor.fetchone()[0]


# --- values checked before launch ------------------------------------------------------------

def test_a_value_breaking_a_check_constraint_is_refused_before_launch(client, editor):
    ids = make_books(30)  # enough to run in the background: refused before anything is queued
    response = post(client, {"bulk_action": "edit", "select_all": "1", "change_price": "on",
                             "price": "-5"})
    assert response.status_code == 422
    field = re.search(r'data-field="price".*?</div>\s*</div>', response.content.decode(), re.S)
    assert "book_price_not_negative" in field.group(0)
    assert not Job.objects.exists() and queued_tasks() == 0 and reservation_count() == 0
    assert set(Book.objects.filter(pk__in=ids).values_list("price", flat=True)) == {10}


def test_bulk_update_checks_constraints_from_python_too():
    make_books(3)
    with pytest.raises(pgbulk.BulkValidationError) as raised:
        pgbulk.bulk_update(Book.objects.all(), {"price": -5, "status": "published"})
    assert list(raised.value.errors) == ["price"]
    assert "book_price_not_negative" in raised.value.errors["price"][0]
    assert not Job.objects.exists()
    job = pgbulk.bulk_update(Book.objects.all(), {"price": 0, "status": "published"}, run="sync")
    assert job.status == "succeeded"  # the constraint holds for 0; other fields are not checked


# --- the form ---------------------------------------------------------------------------------

def form_html(client) -> str:
    make_books(1)
    return post(client, {"bulk_action": "form", "pks": [Book.objects.get().pk]}).content.decode()


def test_value_fields_start_blank_and_every_widget_has_a_label(client, editor):
    html = form_html(client)
    assert 'name="price"' in html and not re.search(r'name="price"[^>]*value=', html)
    for name in ("status", "in_print", "author"):
        select = re.search(rf'<select name="{name}".*?</select>', html, re.S).group(0)
        assert "selected" not in select.replace('value="" selected', ""), name
    assert not re.search(r'name="initial-', html)
    widgets = re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    toggles = {w for w in widgets if w.startswith("id_change_")}  # wrapped in their label
    assert widgets and set(widgets) - toggles <= labelled


def test_a_ticked_field_left_empty_is_refused_unless_it_can_be_empty(client, editor):
    ids = make_books(2)
    refused = post(client, {"bulk_action": "edit", "pks": ids, "change_price": "on", "price": ""})
    assert refused.status_code == 422 and b"cannot be empty" in refused.content
    refused = post(client, {"bulk_action": "edit", "pks": ids, "change_in_print": "on"})
    assert refused.status_code == 422
    refused = post(client, {"bulk_action": "edit", "pks": ids, "change_genres": "on",
                            "genres_op": "add"})
    assert refused.status_code == 422 and b"Choose at least one" in refused.content
    assert not Job.objects.exists()
    Book.objects.filter(pk__in=ids).update(published_on="2020-01-01")
    cleared = post(client, {"bulk_action": "edit", "pks": ids, "change_published_on": "on",
                            "published_on": "", "change_genres": "on", "genres_op": "set"})
    assert cleared.status_code == 200
    assert set(Book.objects.filter(pk__in=ids).values_list("published_on", flat=True)) == {None}
    assert not Book.genres.through.objects.filter(book_id__in=ids).exists()


def test_booleans_are_chosen_not_defaulted(client, editor):
    ids = make_books(2, in_print=True)
    post(client, {"bulk_action": "edit", "pks": ids, "change_in_print": "on",
                  "in_print": "false"})
    assert set(Book.objects.values_list("in_print", flat=True)) == {False}


def test_empty_choice_reads_set_to_empty_when_the_field_can_be_empty():
    nullable = models.CharField(max_length=5, choices=[("a", "A")], null=True)
    required = models.CharField(max_length=5, choices=[("a", "A")])
    assert value_field(nullable).choices[0] == ("", "(set to empty)")
    assert value_field(required).choices[0] == ("", "---------")
    form = BulkEditForm(Book, ["published_on", "price"])
    rows = {row["name"]: row for row in form.rows()}
    assert rows["published_on"]["hint"] == "Leave empty to set to empty."
    assert rows["price"]["hint"] == ""


# --- confirmations ---------------------------------------------------------------------------

def test_task_buttons_ask_first_naming_the_task_and_the_count(client, editor):
    ids = make_books(3)
    ask = post(client, {"bulk_action": "confirm-task", "bulk_task": "recalculate", "pks": ids})
    assert ask.status_code == 200 and "Run “Recalculate prices” on 3 books?" in ask.content.decode()
    assert not Job.objects.exists()
    html = client.get("/").content.decode()
    assert '"bulk_action": "confirm-task"' in html
    run = post(client, {"bulk_action": "task", "bulk_task": "recalculate", "pks": ids})
    assert run.status_code == 200
    job = Job.objects.get()
    assert job.params["context"]["label"] == "Recalculate prices"
    assert post(client, {"bulk_action": "confirm-task", "bulk_task": "nope",
                         "pks": ids}).status_code == 400


def test_delete_confirmation_names_records_and_what_goes_with_them(client, editor):
    ids = make_books(12)
    text = post(client, {"bulk_action": "confirm-delete", "pks": ids}).content.decode()
    assert "Delete 12 records?" in text and "A delete cannot be undone." in text
    assert "Book 0" in text and "Book 9" in text and "Book 10" not in text and "and 2 more" in text
    assert "Book-genre relationships: 12" in text
    assert Book.objects.count() == 12


@pytest.mark.urls("tests.urls_lists")
def test_delete_confirmation_says_what_protects_records(client, editor):
    make_books(3)  # by "Test author"
    free = Author.objects.create(name="Nobody's author")
    held = Author.objects.get(name="Test author")
    text = post(client, {"bulk_action": "confirm-delete", "pks": [free.pk, held.pk]},
                url="/authors/").content.decode()
    assert "Delete 2 records?" in text and "Protected records" in text
    assert "1 of the selected records are protected by 3 Books (Book 0, Book 1, Book 2" in text
    assert "it will fail and delete nothing" in text


@pytest.mark.urls("tests.urls_lists")
def test_a_delete_that_also_removes_records_the_user_may_not_delete_is_refused(client):
    """Deleting an e-book deletes its Book row (multi-table parent), deleting a Book its
    e-book (cascade). Before: delete_ebook alone deleted Book rows; the admin refuses it
    (security review). Now a 403 names what the user may not delete; nothing is queued."""
    from testproject.library.models import EBook

    author = Author.objects.create(name="E author")
    ebook = EBook.objects.create(title="E", isbn="EB-1", author=author, price=3)
    user = User.objects.create_user("ebook-keeper")
    user.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_ebook", "change_ebook", "delete_ebook", "view_book", "change_book"]))
    client.force_login(user)
    for action in ("confirm-delete", "delete"):
        refused = post(client, {"bulk_action": action, "pks": [ebook.pk]}, url="/ebooks/")
        assert refused.status_code == 403, action
        assert "deleting them also deletes Books, which you may not delete" in (
            refused.content.decode())
    user.user_permissions.add(Permission.objects.get(codename="delete_book"))
    user.user_permissions.remove(Permission.objects.get(codename="delete_ebook"))
    client.force_login(User.objects.get(pk=user.pk))
    refused = post(client, {"bulk_action": "delete", "pks": [ebook.pk]}, url="/")
    assert refused.status_code == 403 and "E books" in refused.content.decode()
    assert EBook.objects.filter(pk=ebook.pk).exists() and not Job.objects.exists()
    assert queued_tasks() == 0 and reservation_count() == 0


# --- error fragments stay in the modal ------------------------------------------------------

def test_refusals_are_fragments_for_the_modal(client, editor):
    ids = make_books(1)
    unknown = post(client, {"bulk_action": "drop", "pks": ids})
    assert unknown.status_code == 400 and b"pgbulk-error-box" in unknown.content
    assert b"<html" not in unknown.content
    viewer = User.objects.create_user("viewer")
    client.force_login(viewer)
    denied = post(client, {"bulk_action": "form", "pks": ids})
    assert denied.status_code == 403 and b"pgbulk-error-box" in denied.content
    assert b"You may not change these records." in denied.content


# --- leaving and coming back -------------------------------------------------------------------

def test_list_shows_my_active_jobs_and_rows_held_by_running_jobs(client, editor):
    ids = make_books(45)
    mine = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:25]), {"price": 2}, user=editor)
    alice = User.objects.create_user("alice")
    theirs = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[25:]), {"price": 3}, user=alice)
    html = client.get("/").content.decode()
    banner = re.search(r'<section class="pgbulk-banner".*?</section>', html, re.S).group(0)
    assert f'data-job="{mine.id}"' in banner and str(theirs.id) not in banner
    assert f'/pgbulk/jobs/{mine.id}/progress/?view=compact' in banner
    assert "price → 2.00 on 25 Books" in banner
    assert html.count(f'data-held-by="{mine.id}"') == 25
    # held, but not by a job this user may see: no id (it was there, security review)
    assert html.count('data-held-by=""') == 20 and str(theirs.id) not in html
    assert f'href="/pgbulk/jobs/{mine.id}/"' in html  # may see own job
    assert f'href="/pgbulk/jobs/{theirs.id}/"' not in html  # not alice's
    mine.cancel(by=editor)
    html = client.get("/").content.decode()
    assert "pgbulk-banner" not in html and f'data-held-by="{mine.id}"' not in html


@pytest.mark.urls("tests.urls_lists")
def test_hostile_text_keys_are_escaped(client, editor):
    key = '"><b id=pwn>'  # a text key that is markup (20 characters at most)
    Publisher.objects.create(code=key, name="Evil")
    html = client.get("/publishers/").content.decode()
    assert "<b id=pwn>" not in html and "&quot;&gt;&lt;b id=pwn&gt;" in html
    response = post(client, {"bulk_action": "edit", "pks": [key], "change_active": "on",
                             "active": "false"}, url="/publishers/")
    assert response.status_code == 200
    assert Publisher.objects.get(code=key).active is False
    assert Genre.objects.count() == 0


@pytest.mark.urls("tests.urls_lists")
def test_relations_edited_by_key_render_a_text_box_and_take_keys(client, editor, settings):
    """Every related record was an <option>: a foreign key to a 49k-row table made the
    form 3.7 MB. bulk_raw_id_fields (and the admin's raw_id_fields) take keys instead."""
    ids = make_books(3, genre=False)
    for n in range(300):
        Author.objects.create(name=f"Author {n}")
    wanted = Author.objects.create(name="Wanted")
    crime, poetry = Genre.objects.get(name="Crime"), Genre.objects.get(name="Poetry")
    form = post(client, {"bulk_action": "form", "pks": ids}, url="/books-by-key/").content
    assert form.count(b"<option") < 10 and b'type="text" name="author"' in form
    assert b"The keys of the records, separated by commas." in form
    done = post(client, {"bulk_action": "edit", "pks": ids, "change_author": "on",
                         "author": str(wanted.pk), "change_genres": "on", "genres_op": "add",
                         "genres": f"{crime.pk}, {poetry.pk}"}, url="/books-by-key/")
    assert done.status_code == 200, done.content[:300]
    assert set(Book.objects.filter(pk__in=ids).values_list("author", flat=True)) == {wanted.pk}
    assert all(set(b.genres.values_list("pk", flat=True)) == {crime.pk, poetry.pk}
               for b in Book.objects.filter(pk__in=ids))
    bad = post(client, {"bulk_action": "edit", "pks": ids, "change_author": "on",
                        "author": "999999"}, url="/books-by-key/")
    assert bad.status_code == 422 and Job.objects.count() == 1


def test_the_admin_edits_its_raw_id_fields_by_key(admin_client):
    from django.contrib import admin as django_admin

    ids = make_books(2, genre=False)
    book_admin = django_admin.site._registry[Book]
    book_admin.raw_id_fields = ["author"]
    try:
        page = admin_client.post("/admin/library/book/", {
            "action": "pgbulk_bulk_edit", "_selected_action": ids}).content
    finally:
        book_admin.raw_id_fields = []
    assert b'type="text" name="author"' in page and b"The key of the record." in page

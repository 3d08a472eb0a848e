"""The Preview buttons: the list view's bulk modal (HTMX) and the admin action. Nothing is
written either way; bad input is a 4xx with a message."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.template.loader import render_to_string

import pgbulk
from pgbulk.models import Job
from testproject.library.models import Book
from tests.factories import make_books, reservation_count

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def held_queue(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}


def login(client, *codenames: str) -> User:
    user = User.objects.create_user("editor", password="x")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def preview(client, pks=(), **fields):
    data = {"bulk_action": "edit", "pks": [str(pk) for pk in pks]}
    for name, value in fields.items():
        data[f"change_{name}"] = "on"
        data[name] = value
    data["bulk_action"] = "preview"  # what the button's hx-vals sends
    return client.post("/", data, headers={"HX-Request": "true"})


def nothing_written(ids, status="draft") -> bool:
    return (set(Book.objects.filter(pk__in=ids).values_list("status", flat=True)) == {status}
            and not Job.objects.exists() and reservation_count() == 0)


def test_the_form_offers_a_preview_button_that_posts_to_the_list(client):
    login(client, "change_book", "view_book")
    ids = make_books(3)
    form = client.post("/", {"bulk_action": "form", "pks": ids}).content.decode()
    assert 'hx-vals=\'{"bulk_action": "preview"}\'' in form and 'id="pgbulk-preview"' in form


def test_preview_returns_the_partial_with_counts_sample_and_failures(client):
    login(client, "change_book", "view_book")
    ids = make_books(6)
    Book.objects.filter(pk__in=ids[:2]).update(status="published")
    response = preview(client, ids, status="archived")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Preview: what Apply would do to 6 records" in page
    assert "Draft → Archived: 4" in page and "Published → Archived: 2" in page
    # The sample is the whole selection, and the list view's jobs are chunked: say what
    # Apply would do with these failures (the page said "6 of 6 sampled" and no more).
    assert "6 of the 6 records would fail:" in page and "sampled" not in page
    assert "Apply would change the other records; the failing ones are left" in page
    assert "“An archived book cannot be in print.”" in page and "Book 0 (" in page
    assert ", in print: “An archived" in page and "in_print" not in page  # fields in words
    assert page.count("<tr data-pk=") == 5 and "Draft → Archived</td>" in page
    # Before: a record that already held the value read "Archived → Archived".
    Book.objects.filter(pk=ids[0]).update(status="archived", in_print=False)
    page = preview(client, ids, status="archived").content.decode()
    assert "Archived → Archived" not in page
    assert 'Archived <span class="pgbulk-unchanged">(unchanged)</span></td>' in page
    assert "<form" not in page  # a fragment for #pgbulk-preview, not the form again
    assert nothing_written(ids[2:])


def test_select_all_with_filters_previews_what_apply_would_change(client):
    login(client, "change_book")
    ids = make_books(30)
    Book.objects.filter(pk__in=ids[:10]).update(status="published")
    response = client.post("/", {"bulk_action": "preview", "select_all": "1",
                                 "bulk_querystring": "status=draft", "exclude": [ids[29]],
                                 "change_price": "on", "price": "12"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Preview: what Apply would do to 19 records" in response.content.decode()
    assert "10.00 → 12.00: 19" in response.content.decode()


def test_an_invalid_value_is_422_with_the_form_retargeted(client):
    login(client, "change_book")
    ids = make_books(3)
    response = preview(client, ids, price="-4")
    assert response.status_code == 422 and response["HX-Retarget"] == "#pgbulk-modal-body"
    assert "pgbulk-field-invalid" in response.content.decode()
    unticked = client.post("/", {"bulk_action": "preview", "pks": ids})
    assert unticked.status_code == 422 and b"Tick at least one field" in unticked.content
    assert nothing_written(ids)


def test_no_selection_is_400(client):
    login(client, "change_book")
    response = preview(client, (), price="4")
    assert response.status_code == 400 and b"Select at least one record." in response.content
    empty = client.post("/", {"bulk_action": "preview", "select_all": "1",
                              "bulk_querystring": "status=archived", "change_price": "on",
                              "price": "4"})
    assert empty.status_code == 400 and b"No records match" in empty.content


def test_without_the_change_permission_it_is_403_and_shows_no_record(client):
    login(client, "view_book")
    ids = make_books(3)
    response = preview(client, ids, status="published")
    assert response.status_code == 403 and b"Book 0" not in response.content
    assert nothing_written(ids)


def test_the_partial_shows_counts_only_to_who_may_not_view_records():
    make_books(3)
    data = pgbulk.preview(Book.objects.all(), {"status": "archived"})
    hidden = pgbulk.previews.public_preview(data, readable=False)
    page = render_to_string("pgbulk/bulk_preview.html",
                            {"preview": hidden, "readable": False, "atomic": True})
    assert "Draft → Archived: 3" in page and "3 of the 3 records would fail:" in page
    assert "Apply would change nothing:" in page  # an atomic job fails whole
    assert "Book 0" not in page and "cannot be in print" not in page
    assert "only counts are shown" in page


def test_a_chunked_job_s_preview_says_the_failing_records_are_left_alone():
    ids = make_books(150)
    Book.objects.filter(pk__in=ids[:40]).update(in_print=False)
    data = pgbulk.preview(Book.objects.all(), {"status": "archived"}, sample_size=100)
    page = render_to_string("pgbulk/bulk_preview.html",
                            {"preview": data, "readable": True, "atomic": False})
    assert f"{data['failures']['failed']} of 100 sampled records would fail:" in page
    assert "Apply would change the other records; the failing ones are left" in page
    assert "Apply would change nothing" not in page


def test_a_queryset_strategy_view_predicts_no_per_record_failures(client, monkeypatch):
    from testproject.library.views import BookListView

    monkeypatch.setattr(BookListView, "bulk_strategy", "queryset")
    login(client, "change_book")
    ids = make_books(3)
    page = preview(client, ids, status="archived").content.decode()
    assert "this change validates no record one by one" in page


# --- admin ------------------------------------------------------------------------------

def admin_post(client, ids, **extra):
    return client.post("/admin/library/book/", {
        "action": "pgbulk_bulk_edit", "_selected_action": ids, "index": 0, **extra})


def test_admin_preview_shows_the_preview_on_the_form_and_writes_nothing(client):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    ids = make_books(4)
    Book.objects.filter(pk__in=ids[:1]).update(status="published")
    form = admin_post(client, ids).content.decode()
    assert 'name="pgbulk_preview"' in form and 'name="pgbulk_apply"' in form
    shown = admin_post(client, ids, pgbulk_preview="Preview", change_status="on",
                       status="published")
    page = shown.content.decode()
    assert shown.status_code == 200 and "Draft → Published: 3" in page
    assert "already Published, unchanged: 1" in page and 'class="breadcrumbs"' in page
    assert 'value="published" selected' in page  # the form keeps what was asked
    assert not Job.objects.exists() and reservation_count() == 0
    assert Book.objects.filter(status="published").count() == 1
    invalid = admin_post(client, ids, pgbulk_preview="Preview", change_price="on", price="x")
    assert invalid.status_code == 422 and "pgbulk-preview-result" not in invalid.content.decode()
    applied = admin_post(client, ids, pgbulk_apply="Apply", change_status="on",
                         status="published")
    assert applied.status_code == 302 and Job.objects.count() == 1


def test_a_preview_says_apply_would_be_refused_while_another_job_holds_records(client):
    """Before: the user learnt of the holder only from Apply's 409."""
    user = login(client, "change_book", "view_book")
    ids = make_books(5)
    holder = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:2]), {"price": "2"},
                                run="async", min_async_records=0, user=user)
    page = preview(client, ids, status="archived").content.decode()
    assert "Apply would be refused now:" in page
    assert f'href="/pgbulk/jobs/{holder.id}/"' in page and ">2</span> of them" in page
    assert Job.objects.count() == 1 and reservation_count() == 2  # the holder's only
    free = preview(client, ids[2:], status="archived").content.decode()
    assert "Apply would be refused" not in free


def test_the_admin_preview_names_the_job_holding_records(client):
    client.force_login(User.objects.create_superuser("boss", password="x"))
    ids = make_books(4)
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:1]), {"price": "2"}, run="async",
                       min_async_records=0)
    page = admin_post(client, ids, pgbulk_preview="Preview", change_status="on",
                      status="published").content.decode()
    assert "Apply would be refused now:" in page and ">1</span> of them" in page

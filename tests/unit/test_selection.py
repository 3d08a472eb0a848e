"""The bulk endpoint refuses a bad selection before touching the database.

``BulkEditMixin.post`` on the sample book list, called with RequestFactory requests; any
query would fail here (pytest-django blocks the database for these tests).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory

from testproject.library.views import BookListView

SUPERUSER = User(username="boss", is_superuser=True, is_active=True)


def post(data, view=BookListView):
    request = RequestFactory().post("/", data, headers={"HX-Request": "true"})
    request.user = SUPERUSER
    return view.as_view()(request)


def test_an_unknown_action_is_a_bad_request():
    response = post({"bulk_action": "drop-table", "pks": ["1"]})
    assert response.status_code == 400 and b"Unknown bulk action" in response.content


def test_an_unknown_task_is_a_bad_request():
    response = post({"bulk_action": "task", "bulk_task": "format-disk", "pks": ["1"]})
    assert response.status_code == 400 and b"Unknown task" in response.content


@pytest.mark.parametrize("pks", [[], [""], ["", ""]])
def test_an_empty_selection_changes_nothing(pks):
    response = post({"bulk_action": "edit", "pks": pks, "change_price": "on", "price": "1"})
    assert response.status_code == 400
    assert b"Nothing was changed." in response.content
    assert b"Select at least one record." in response.content


@pytest.mark.parametrize("pks", [["abc"], ["1", "2x"], ["1.5"]])
def test_a_malformed_key_changes_nothing(pks):
    response = post({"bulk_action": "confirm-delete", "pks": pks})
    assert response.status_code == 400
    assert b"The selection holds an invalid record key." in response.content


def test_excluded_keys_are_checked_too():
    response = post({"bulk_action": "form", "select_all": "1", "exclude": ["nope"]})
    assert response.status_code == 400 and b"invalid record key" in response.content


class ReadOnlyBookList(BookListView):
    bulk_fields: list[str] = []
    bulk_delete = False


@pytest.mark.parametrize(("action", "message"), [
    ("form", b"You may not change these records."),
    ("edit", b"You may not change these records."),
    ("confirm-delete", b"You may not delete these records."),
    ("delete", b"You may not delete these records."),
])
def test_actions_the_view_does_not_offer_are_forbidden(action, message):
    response = post({"bulk_action": action, "pks": ["1"]}, view=ReadOnlyBookList)
    assert response.status_code == 403
    assert b"Nothing was changed." in response.content and message in response.content

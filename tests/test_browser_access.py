"""The bulk UI on a phone, with a keyboard and a screen reader; back/forward; DEBUG error
fragments; hostile record keys. Real chromium; screenshots in artifacts/."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

import pgbulk
from pgbulk.models import Job, JobError
from testproject.library.models import Book, Publisher
from tests.browser_steps import (
    browser_test,
    open_edit_form,
    overflow,
    shot,
)
from tests.factories import make_books

pytestmark = browser_test
pytest_plugins = ["tests.browser"]  # its fixtures: browser, page, phone


def test_phone_layout_has_no_horizontal_overflow(phone, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(80)
    demo = User.objects.get(username="demo")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:30]), {"status": "published"},
                             user=demo, atomic=False)
    phone.goto("/")
    assert phone.evaluate("document.querySelector('meta[name=viewport]').content") \
        == "width=device-width, initial-scale=1"
    box = phone.locator(".pgbulk-row").first.bounding_box()
    assert box["width"] >= 24 and box["height"] >= 24  # touch-sized
    phone.check(".pgbulk-page")
    assert overflow(phone) == 0
    shot(phone, "14-phone-list", full=False)
    phone.click("#pgbulk-edit")
    phone.wait_for_selector("#pgbulk-modal[open] .pgbulk-form")
    assert overflow(phone) == 0
    modal = phone.locator("#pgbulk-modal").bounding_box()
    assert modal["x"] >= 0 and modal["x"] + modal["width"] <= 390
    shot(phone, "15-phone-modal", full=False)
    for url in ("/pgbulk/jobs/", f"/pgbulk/jobs/{job.id}/"):
        phone.goto(url)
        assert overflow(phone) == 0, url
    JobError.objects.create(job=job, object_pk=str(ids[0]), record="A rather long book title "
                            "that has to wrap on a phone", field="in_print",
                            message="An archived book cannot be in print.")
    Job.objects.filter(pk=job.pk).update(failed_count=1)
    phone.goto(f"/pgbulk/jobs/{job.id}/")
    assert overflow(phone) == 0
    shot(phone, "16-phone-job-detail")
    phone.goto("/pgbulk/jobs/")
    shot(phone, "17-phone-dashboard")


def test_keyboard_focus_moves_into_the_modal_and_back(page):
    make_books(3)
    page.goto("/")
    page.check(".pgbulk-page")
    page.focus("#pgbulk-edit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pgbulk-modal[open] .pgbulk-form")
    page.wait_for_function("document.activeElement.name === 'change_status'")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('pgbulk-modal').open")
    page.wait_for_function("document.activeElement.id === 'pgbulk-edit'")


def test_changing_a_value_ticks_its_box_and_the_end_is_announced(page):
    ids = make_books(3)
    page.goto("/")
    page.check(".pgbulk-page")
    page.click("#pgbulk-edit")
    page.wait_for_selector("#pgbulk-modal[open] .pgbulk-form")
    assert not page.is_checked("input[name=change_price]")
    page.fill("#pgbulk-modal input[name=price]", "7")
    assert page.is_checked("input[name=change_price]")
    page.select_option("#pgbulk-modal select[name=in_print]", "false")
    assert page.is_checked("input[name=change_in_print]")
    assert not page.is_checked("input[name=change_status]")
    page.click("#pgbulk-modal button[type=submit]")
    page.wait_for_function("document.getElementById('pgbulk-live').textContent"
                           ".includes('Updated 3 of 3 records.')")
    assert set(Book.objects.filter(pk__in=ids).values_list("price", "in_print")) == {(7, False)}


def test_an_empty_required_value_is_refused_on_its_field(page):
    make_books(3)
    open_edit_form(page, "/")
    page.check("#pgbulk-modal input[name=change_price]")
    page.click("#pgbulk-modal button[type=submit]")
    page.wait_for_selector("#pgbulk-modal [data-field=price] .pgbulk-field-error")
    page.fill("#pgbulk-modal input[name=price]", "-5")
    page.click("#pgbulk-modal button[type=submit]")
    page.wait_for_selector("#pgbulk-modal [data-field=price] >> text=book_price_not_negative")
    shot(page, "18-constraint-refused", full=False)
    assert not Job.objects.exists()


def test_selection_toolbar_is_consistent_after_back_and_forward(page):
    make_books(5)
    page.goto("/")
    boxes = page.locator(".pgbulk-row")
    boxes.nth(0).check()
    boxes.nth(2).check()
    assert page.inner_text("#pgbulk-selected-count") == "2"
    page.goto("/pgbulk/jobs/")
    page.go_back()
    page.wait_for_selector("#pgbulk-toolbar")
    page.wait_for_load_state("load")
    checked = page.locator(".pgbulk-row:checked").count()
    assert page.inner_text("#pgbulk-selected-count") == str(checked)
    assert page.is_disabled("#pgbulk-edit") == (checked == 0)
    page.go_forward()
    page.go_back()
    page.wait_for_load_state("load")
    checked = page.locator(".pgbulk-row:checked").count()
    assert page.inner_text("#pgbulk-selected-count") == str(checked)


def test_error_fragments_stay_in_the_modal_in_debug(page, settings):
    settings.DEBUG = True  # django-htmx's debug handler would show 4xx pages full screen
    ids = make_books(3)
    page.goto("/")
    assert page.locator("script[src*='django-htmx.js']").count() == 1
    page.locator(".pgbulk-row").nth(0).check()
    Book.objects.filter(pk=ids[0]).delete()  # gone before the form is asked for: a 400
    page.click("#pgbulk-edit")
    page.wait_for_selector("#pgbulk-modal[open] .pgbulk-error-box")
    assert "not in this list any more" in page.inner_text("#pgbulk-modal")
    assert page.locator("#pgbulk-toolbar").count() == 1  # the page is still there
    shot(page, "19-debug-400-in-modal", full=False)


@pytest.mark.urls("tests.urls_lists")
def test_a_markup_record_key_is_never_markup(page):
    key = '"><b id=pwn>'
    for code, name in ((key, "A evil one"), ("b", "B"), ("c", "C")):  # the key on page 1
        Publisher.objects.create(code=code, name=name)
    page.goto("/publishers/")
    page.check(".pgbulk-page")
    page.click("#pgbulk-select-matching")
    page.uncheck(f".pgbulk-row[value='{key}']")  # excluded: a hidden input carries the key
    assert page.inner_text("#pgbulk-selected-count") == "2"
    assert page.evaluate("document.getElementById('pwn')") is None
    assert page.evaluate("document.querySelector('#pgbulk-excluded input').value") == key
    page.click("#pgbulk-edit")
    page.wait_for_selector("#pgbulk-modal[open] .pgbulk-form")
    page.select_option("#pgbulk-modal select[name=active]", "false")
    page.click("#pgbulk-modal button[type=submit]")
    page.wait_for_selector("#pgbulk-modal .pgbulk-progress[data-status=succeeded]")
    assert set(Publisher.objects.values_list("code", "active")) == {
        ("b", False), ("c", False), (key, True)}
    assert page.evaluate("document.getElementById('pwn')") is None

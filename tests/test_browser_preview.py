"""Real browser (Debian's chromium via Playwright): the Preview step of the bulk modal,
then Apply. Screenshots in artifacts/screenshots/."""

from __future__ import annotations

import pgbulk
from pgbulk.models import Job
from testproject.library.models import Book
from tests.browser_steps import browser_test, open_edit_form, shot
from tests.factories import make_books, reservation_count

pytestmark = browser_test
pytest_plugins = ["tests.browser"]  # its fixtures: browser, page, phone
PREVIEW = "#pgbulk-modal #pgbulk-preview .pgbulk-preview-result"


def test_preview_in_the_modal_then_apply(page):
    ids = make_books(12, in_print=True)
    Book.objects.filter(pk__in=ids[:9]).update(in_print=False)
    open_edit_form(page)
    page.locator("#pgbulk-modal [name=status]").select_option("archived")
    page.click("#pgbulk-modal button:has-text('Preview')")
    page.wait_for_selector(PREVIEW)
    shot(page, "preview-1-modal-preview", full=False)
    text = page.inner_text(PREVIEW)
    assert "Preview: what Apply would do to 12 records" in text
    assert "Draft → Archived: 12" in text
    assert "3 of the 12 records would fail:" in text and "Book 9" in text
    assert page.locator(f"{PREVIEW} .pgbulk-preview-sample tbody tr").count() == 5
    assert not Job.objects.exists() and reservation_count() == 0
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}
    # A changed form makes the preview stale: it goes; preview again, then apply.
    page.locator("#pgbulk-modal [name=status]").select_option("published")
    assert page.locator(PREVIEW).count() == 0
    page.click("#pgbulk-modal button:has-text('Preview')")
    page.wait_for_selector(PREVIEW)
    assert "Draft → Published: 12" in page.inner_text(PREVIEW)
    assert "All 12 records pass validation." in page.inner_text(PREVIEW)
    page.click("#pgbulk-modal button[type=submit]")
    page.wait_for_selector("#pgbulk-modal .pgbulk-progress[data-status=succeeded]")
    shot(page, "preview-2-applied", full=False)
    assert set(Book.objects.values_list("status", flat=True)) == {"published"}
    assert Job.objects.get().status == "succeeded"


def test_apply_waits_while_the_preview_says_it_would_be_refused(page, settings):
    """Before: Apply stayed enabled beside "Apply would be refused now" (list view) and
    "Apply would change nothing" (the admin's atomic job)."""
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(30, in_print=True)
    holder = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:2]), {"price": 1}, run="async")
    open_edit_form(page)
    apply = "#pgbulk-modal [data-pgbulk-apply]"
    page.locator("#pgbulk-modal [name=status]").select_option("published")
    page.click("#pgbulk-modal button:has-text('Preview')")
    page.wait_for_selector(f"{PREVIEW}[data-apply-blocked]")
    assert "Apply would be refused now:" in page.inner_text(PREVIEW)
    assert page.is_disabled(apply)
    page.locator("#pgbulk-modal [name=status]").select_option("archived")  # stale: it goes
    assert page.locator(PREVIEW).count() == 0 and page.is_enabled(apply)
    holder.cancel()
    # The admin's jobs are atomic: one failing record and Apply would change nothing.
    page.goto("/admin/library/book/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "pgbulk_bulk_edit")
    page.click("button[name=index]")
    page.locator("[name=status]").select_option("archived")  # archived books in print fail
    page.click("input[name=pgbulk_preview]")
    page.wait_for_selector(".pgbulk-preview-result[data-apply-blocked]")
    assert "Apply would change nothing:" in page.inner_text(".pgbulk-preview-result")
    assert page.is_disabled("input[name=pgbulk_apply]")
    page.locator("[name=status]").select_option("published")
    assert page.is_enabled("input[name=pgbulk_apply]")
    assert Job.objects.count() == 1

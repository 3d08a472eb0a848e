"""Real browser (Debian's chromium via Playwright) and a real worker: a bulk edit from the
list, its change log on the job page, then Undo, confirmed, run by the worker, with a
record changed meanwhile skipped. Screenshots in artifacts/screenshots/."""

from __future__ import annotations

from pgbulk.models import Job
from testproject.library.models import Book
from tests.browser_steps import browser_test, open_edit_form, shot, submit_edit
from tests.factories import make_books

pytestmark = browser_test
pytest_plugins = ["tests.browser"]  # its fixtures: browser, page, phone
MODAL = "#pgbulk-modal .pgbulk-progress"


def test_edit_see_the_changes_undo_and_the_records_are_back(page, worker):
    ids = make_books(300)
    open_edit_form(page)
    submit_edit(page, "status", "published")
    page.wait_for_selector(f"{MODAL}[data-status=succeeded]")
    edit = Job.objects.get()
    Book.objects.filter(pk=ids[0]).update(status="archived", in_print=False)  # changed since

    page.goto(f"/pgbulk/jobs/{edit.id}/")
    changes = page.inner_text("#changes")
    assert "300 records changed" in changes and "status: Draft → Published" in changes
    assert page.locator("#changes .pgbulk-changes tbody tr").count() == 50
    page.click("#changes a[rel=next]")
    page.wait_for_selector("#changes a[rel=prev]")
    shot(page, "undo-1-changes")

    page.click(".pgbulk-undo-button")
    page.wait_for_selector(".pgbulk-undo-question")
    assert ("Put back the values of 299 records changed by this job. 1 record changed since "
            "and would be skipped (left as it is).") in page.inner_text(".pgbulk-undo-page")
    shot(page, "undo-2-confirm", full=False)
    page.click(".pgbulk-undo-confirm")

    undo = Job.objects.get(undo_of=edit)
    page.wait_for_url(f"**/pgbulk/jobs/{undo.id}/")
    page.wait_for_selector(".pgbulk-progress[data-status=succeeded]", timeout=60_000)
    figures = page.inner_text(".pgbulk-progress")
    assert "Restored 299 of 300 · 1 skipped" in figures
    page.wait_for_selector("#skipped")  # the page refreshed its sections once the job ended
    assert str(ids[0]) in page.inner_text("#skipped")
    assert "Undoes job" in page.inner_text("main")
    page.wait_for_selector("#changes .pgbulk-changes")
    shot(page, "undo-3-restored")
    assert Book.objects.filter(pk__in=ids, status="draft").count() == 299
    assert Book.objects.get(pk=ids[0]).status == "archived"
    page.click(".pgbulk-undoes a")
    page.wait_for_selector(".pgbulk-undone-by")
    assert "Undos" in page.inner_text("main")

    page.goto(f"/admin/library/book/{ids[1]}/history/")  # both jobs, newest first
    history = page.inner_text("#pgbulk-history")
    assert "Undo: put back status on 300 Books" in history
    assert "status: Published → Draft" in history and "status: Draft → Published" in history
    shot(page, "undo-4-admin-history")

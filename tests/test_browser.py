"""Real browser (Debian's chromium via Playwright) against a live server and a real worker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

import pgbulk
from pgbulk.models import Job
from testproject.library.models import Book
from tests.factories import make_books, reservation_count

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
    pytest.mark.slow,
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    user = User.objects.create_superuser("demo", password="demo")
    client = Client()
    client.force_login(user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1300, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    shot(page, f"last-{request.node.name}")  # what the page showed at the end, pass or fail
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_edit_form(page) -> None:
    """Tick the page; when the list has more pages, select all matching."""
    page.goto("/?status=draft")
    page.check(".pgbulk-page")
    if page.is_visible("#pgbulk-select-matching"):
        page.click("#pgbulk-select-matching")
    page.click("#pgbulk-edit")
    page.wait_for_selector("#pgbulk-modal[open] .pgbulk-form")


def submit_edit(page, field: str, value: str) -> None:
    """In the open bulk form: tick ``field``, give it ``value`` (input or select), apply."""
    page.check(f"#pgbulk-modal input[name=change_{field}]")
    widget = page.locator(f"#pgbulk-modal [name={field}]")
    if widget.evaluate("el => el.tagName") == "SELECT":
        widget.select_option(value)
    else:
        widget.fill(value)
    page.click("#pgbulk-modal button[type=submit]")


def test_select_all_matching_edit_with_live_progress(page, worker):
    make_books(300)
    open_edit_form(page)
    assert page.inner_text("#pgbulk-selected-count") == "300"
    assert "Edit 300 records" in page.inner_text("#pgbulk-modal")
    shot(page, "1-bulk-form")
    submit_edit(page, "price", "42.00")
    page.wait_for_selector("#pgbulk-modal .pgbulk-progress")
    page.wait_for_selector(".pgbulk-progress[data-status=succeeded]")
    shot(page, "2-progress-done")
    assert "300 / 300" in page.inner_text(".pgbulk-progress")
    page.locator("#pgbulk-modal .pgbulk-close").click()
    page.wait_for_function("document.querySelector('#book-table .price').textContent == '42.00'")
    shot(page, "3-table-refreshed")
    assert Book.objects.filter(price=42).count() == 300


def test_conflict_names_the_blocking_job(page, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(60)
    alice = User.objects.create_user("alice")
    blocker = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:30]), {"price": 1}, user=alice)
    open_edit_form(page)
    submit_edit(page, "price", "5")
    page.wait_for_selector(".pgbulk-conflict")
    shot(page, "4-conflict")
    text = page.inner_text(".pgbulk-conflict")
    assert "alice" in text and "30" in text
    href = page.get_attribute(".pgbulk-conflict-job", "href")
    assert href == f"/pgbulk/jobs/{blocker.id}/"
    assert Job.objects.count() == 1


def test_a_failing_job_shows_failed_with_per_record_errors(page, worker):
    ids = make_books(40, in_print=True)
    Book.objects.filter(pk__in=ids[:35]).update(in_print=False)
    open_edit_form(page)
    submit_edit(page, "status", "archived")
    page.wait_for_selector(".pgbulk-progress[data-status=failed]")
    shot(page, "5-failed")
    text = page.inner_text(".pgbulk-progress")
    assert "Failed" in text and "5 failed" in text
    assert page.locator(".pgbulk-errors tbody tr").count() == 5
    assert str(ids[35]) in page.inner_text(".pgbulk-errors")


def test_cancel_from_the_progress_modal(page, worker):
    make_books(1500)
    open_edit_form(page)
    submit_edit(page, "price", "9")
    page.wait_for_selector(".pgbulk-progress[data-status=running]")
    page.click(".pgbulk-cancel")
    page.wait_for_selector(".pgbulk-progress[data-status=cancelled]")
    shot(page, "6-cancelled")
    job = Job.objects.get()
    assert job.status == "cancelled" and reservation_count() == 0
    assert Book.objects.filter(price=9).count() == job.done < 1500


def test_dashboard_lists_the_job(page, worker):
    ids = make_books(25)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 3},
                             user=User.objects.get(username="demo"))
    job.wait(30)
    page.goto("/pgbulk/jobs/")
    row = page.locator(f"tr[data-job='{job.id}']")
    assert "Succeeded" in row.inner_text() and "25 / 25" in row.inner_text()
    shot(page, "7-dashboard")
    page.click(f"tr[data-job='{job.id}'] a")
    page.wait_for_selector(".pgbulk-progress[data-status=succeeded]")


def test_a_job_task_from_the_toolbar(page, worker):
    make_books(120)
    page.goto("/?status=draft")
    page.check(".pgbulk-page")
    page.click("#pgbulk-select-matching")
    page.click(".pgbulk-task[data-task=recalculate]")
    page.wait_for_selector(".pgbulk-progress[data-status=succeeded]")
    shot(page, "8-recalculated")
    assert "Recalculated 120 prices." in page.inner_text(".pgbulk-progress")

"""Real browser (Debian's chromium via Playwright) against a live server and a real worker:
the bulk modal, the job pages, a crash, the admin action. Screenshots in artifacts/."""

from __future__ import annotations

import re

from django.contrib.auth.models import User

import pgbulk
from pgbulk.models import Job, JobError
from testproject.library.models import Book
from tests.browser_steps import (
    accept_dialogs,
    browser_test,
    open_edit_form,
    shot,
    submit_edit,
)
from tests.factories import chunk_env, make_books, reservation_count, wait_for

pytestmark = browser_test
pytest_plugins = ["tests.browser"]  # its fixtures: browser, page, phone
MODAL = "#pgbulk-modal .pgbulk-progress"


def test_select_all_matching_edit_with_live_progress(page, worker):
    make_books(300)
    open_edit_form(page)
    assert page.inner_text("#pgbulk-selected-count") == "300"
    assert "Edit 300 records" in page.inner_text("#pgbulk-modal")
    shot(page, "1-bulk-form", full=False)
    submit_edit(page, "price", "42.00")
    page.wait_for_selector(f"{MODAL}[data-status=succeeded]")
    shot(page, "2-progress-done", full=False)
    assert "Updated 300 of 300" in page.inner_text(MODAL)
    page.wait_for_function("document.getElementById('pgbulk-live').textContent"
                           ".includes('Succeeded')")
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
    shot(page, "4-conflict", full=False)
    text = page.inner_text(".pgbulk-conflict")
    assert "alice" in text and "30" in text and "queued" in text
    href = page.get_attribute(".pgbulk-conflict-job", "href")
    assert href == f"/pgbulk/jobs/{blocker.id}/"  # demo is a superuser: may see it
    assert Job.objects.count() == 1


def test_a_failing_job_shows_failed_with_named_errors(page, worker):
    ids = make_books(40, in_print=True)
    Book.objects.filter(pk__in=ids[:35]).update(in_print=False)
    open_edit_form(page)
    submit_edit(page, "status", "archived")
    page.wait_for_selector(f"{MODAL}[data-status=failed]")
    shot(page, "5-modal-failed-with-errors", full=False)
    text = page.inner_text(MODAL)
    assert "Failed" in text and "5 failed" in text
    assert page.locator(f"{MODAL} .pgbulk-errors tbody tr").count() == 5
    errors = page.inner_text(f"{MODAL} .pgbulk-errors")
    assert "Book 35" in errors and str(ids[35]) in errors  # the name, and the key beside it
    page.click("text=See all 5 errors on the job's page")
    page.wait_for_selector("#errors .pgbulk-errors")
    assert page.locator("#errors .pgbulk-errors tbody tr").count() == 5


def test_cancel_from_the_progress_modal_asks_and_records_who(page, worker):
    asked = accept_dialogs(page)
    make_books(1500)
    open_edit_form(page)
    submit_edit(page, "price", "9")
    page.wait_for_selector(f"{MODAL}[data-status=running]")
    shot(page, "2-modal-running", full=False)
    page.click(f"{MODAL} .pgbulk-cancel")
    page.wait_for_selector(f"{MODAL}[data-status=cancelled]")
    shot(page, "6-cancelled", full=False)
    job = Job.objects.get()
    assert asked and "Records it changed so far stay changed" in asked[0]
    assert job.status == "cancelled" and reservation_count() == 0
    assert job.cancelled_by.username == "demo"
    assert Book.objects.filter(price=9).count() == job.done < 1500
    assert re.search(r"Cancelled by demo at \d\d:\d\d after [\d,]+ of 1,500",
                     page.inner_text(MODAL))


def test_dashboard_lists_refreshes_and_cancels_with_confirmation(page, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(50)
    demo = User.objects.get(username="demo")
    done = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:5]), {"price": 3}, user=demo,
                              run="sync")
    page.goto("/pgbulk/jobs/")
    row = page.locator(f"li[data-job='{done.id}']")
    assert "price → 3.00 on 5 Books" in row.inner_text() and "Updated 5 of 5" in row.inner_text()
    later = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[5:]), {"status": "published"},
                               user=demo)  # became active after the page loaded
    page.wait_for_selector(f"li[data-job='{later.id}'][data-status=queued]")
    assert "status → Published on 45 Books" in page.inner_text(f"li[data-job='{later.id}']")
    assert "Queued: waiting for a worker" in page.inner_text(f"li[data-job='{later.id}']")
    shot(page, "7-dashboard")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(f"li[data-job='{later.id}'] .pgbulk-cancel")
    assert Job.objects.get(pk=later.pk).status == "queued"  # said no
    asked = accept_dialogs(page)
    page.click(f"li[data-job='{later.id}'] .pgbulk-cancel")
    page.wait_for_selector(f"li[data-job='{later.id}'][data-status=cancelled]")
    assert "status → Published on 45 Books" in asked[0]
    assert "Cancelled by demo at" in page.inner_text(f"li[data-job='{later.id}']")
    page.click(f"li[data-job='{done.id}'] a")
    page.wait_for_selector(".pgbulk-progress[data-status=succeeded]")


def test_job_detail_with_paginated_errors(page):
    ids = make_books(3)
    demo = User.objects.get(username="demo")
    job = Job.objects.create(
        kind="update", task_name="pgbulk.tasks.bulk_update_task", model="library.Book",
        status="failed", user=demo, total=19_998, done=19_878, failed_count=120,
        params={"values": {"status": "archived"}, "atomic": False,
                "context": {"source": "list", "list_url": "/", "filters": "status=draft",
                            "select_all": True, "selected": 19_998, "excluded": 2}},
        message="120 of 19998 records failed; 19878 changed.")
    JobError.objects.bulk_create(
        JobError(job=job, object_pk=str(ids[i % 3]), record=f"Book {i % 3}", field="in_print",
                 message="An archived book cannot be in print.") for i in range(120))
    page.goto(f"/pgbulk/jobs/{job.id}/")
    text = page.inner_text("main")
    assert "status → Archived on 19,998 Books" in text and "2 excluded" in text
    assert "Updated 19,878 of 19,998 · 120 failed" in text
    shot(page, "8-job-detail-with-errors")
    page.click("#errors a[rel=next]")
    page.wait_for_selector("text=Page 2 of 3")
    page.click("#errors a[rel=prev]")
    page.wait_for_selector("text=Page 1 of 3")
    with page.expect_download() as download:
        page.click("#errors .pgbulk-csv")
    assert download.value.suggested_filename == f"job-{job.id}-errors.csv"


def test_a_job_task_from_the_toolbar_asks_first(page, worker):
    make_books(120)
    page.goto("/?status=draft")
    page.check(".pgbulk-page")
    page.click("#pgbulk-select-matching")
    page.click(".pgbulk-task[data-task=recalculate]")
    page.wait_for_selector(".pgbulk-task-confirm")
    assert "Run “Recalculate prices” on 120 books?" in page.inner_text("#pgbulk-modal")
    assert not Job.objects.exists()
    page.click("#pgbulk-modal button[type=submit]")
    page.wait_for_selector(f"{MODAL}[data-status=succeeded]")
    shot(page, "9-recalculated", full=False)
    assert "Done: 120 of 120 records." in page.inner_text(MODAL)


def test_worker_lost_shows_in_the_modal_then_what_the_sweep_did(page, start_worker, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "doomed"}
    doomed = start_worker({"LIBRARY_SAVE_DELAY": "0.01", **chunk_env(50)}, queue="doomed")
    make_books(600)
    open_edit_form(page)
    submit_edit(page, "price", "11")  # the sample list runs chunked (resumable) jobs
    page.wait_for_selector(f"{MODAL}[data-status=running]")
    job = Job.objects.get()
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100)
    doomed.kill()
    page.wait_for_function(
        "document.querySelector('#pgbulk-modal .pgbulk-progress').textContent"
        ".includes('Worker lost after')")
    shot(page, "10-modal-worker-lost", full=False)
    text = page.inner_text(MODAL)
    assert "left" not in text
    assert re.search(r"Worker lost after [\d,]+ of 600", text)
    assert Job.objects.get(pk=job.pk).status in ("running", "queued")  # resumed by the sweep
    asked = accept_dialogs(page)
    page.click(f"{MODAL} .pgbulk-cancel")
    page.wait_for_selector(f"{MODAL}[data-status=cancelled]")
    assert asked and Job.objects.get(pk=job.pk).status == "cancelled"
    assert reservation_count() == 0


def test_admin_action_form_and_progress_stay_in_the_admin(page, worker):
    make_books(60)
    page.goto("/admin/library/book/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "pgbulk_bulk_edit")
    page.click("button[name=index]")
    page.wait_for_selector(".pgbulk-admin-form")
    page.wait_for_function("window.pgbulk !== undefined")  # its script is deferred
    assert "Bulk edit" in page.inner_text(".breadcrumbs")
    page.select_option("select[name=status]", "published")
    assert page.is_checked("input[name=change_status]")
    shot(page, "11-admin-action-form")
    page.click("input[name=pgbulk_apply]")
    page.wait_for_selector(".pgbulk-progress[data-status=succeeded]")
    shot(page, "12-admin-action-progress")
    assert "Books" in page.inner_text(".breadcrumbs")
    assert "status → Published" in page.inner_text("#content-main")
    page.click(".pgbulk-back-to-list")
    page.wait_for_url("**/admin/library/book/")
    assert Book.objects.filter(status="published").count() == 60


def test_coming_back_shows_my_active_jobs_and_held_rows(page, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    count = 25
    ids = make_books(count)
    demo = User.objects.get(username="demo")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, user=demo)
    page.goto("/")
    page.wait_for_selector(f"#pgbulk-active-jobs .pgbulk-progress[data-job='{job.id}']")
    assert "Queued: waiting for a worker" in page.inner_text("#pgbulk-active-jobs")
    assert page.locator("tr.pgbulk-held-row").count() == count
    shot(page, "13-list-with-active-job")
    job.cancel(by=demo)
    page.wait_for_selector("#pgbulk-active-jobs .pgbulk-progress[data-status=cancelled]")


def test_the_delete_confirmation_puts_focus_on_keeping_the_records(page, settings):
    """Focus was on "Delete 3 records": a stray Enter deleted them."""
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(3)
    page.goto("/?status=draft")
    page.check(".pgbulk-page")
    page.click("#pgbulk-delete")
    page.wait_for_selector("#pgbulk-modal [data-pgbulk-focus]")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Keep them"
    page.keyboard.press("Enter")  # keeps them
    assert Book.objects.filter(pk__in=ids).count() == 3 and not Job.objects.exists()


def test_closing_the_modal_of_a_running_job_leaves_it_in_the_banner(page, settings):
    """Before: the job vanished from the page until a reload showed the banner."""
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}  # it stays queued
    make_books(25)  # more than min_async_records: a background job
    open_edit_form(page)
    submit_edit(page, "price", "7")
    page.wait_for_selector(f"{MODAL}[data-status=queued]")
    job = Job.objects.get()
    page.locator("#pgbulk-modal .pgbulk-close").click()
    banner = f"#pgbulk-active-jobs .pgbulk-progress[data-job='{job.id}']"
    page.wait_for_selector(banner)
    assert page.inner_text("#pgbulk-active-jobs .pgbulk-banner-title") == (
        "Your job on these records is still going")
    assert "Queued: waiting for a worker" in page.inner_text(banner)
    assert page.locator("#pgbulk-modal .pgbulk-progress").count() == 0  # one poller
    shot(page, "14-banner-after-closing-the-modal", full=False)
    job.cancel(by=User.objects.get(username="demo"))
    page.wait_for_selector(f"{banner}[data-status=cancelled]")

"""Who may see and cancel jobs, and read the records they name, for each kind of user."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

import pgbulk
from pgbulk.models import Job, JobError
from testproject.library.models import Book
from tests.factories import make_books

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def held_queue(settings):
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}


def user(name: str, *perms: str, staff: bool = False) -> User:
    person = User.objects.create_user(name, password="x", is_staff=staff)
    for perm in perms:
        app, codename = perm.split(".")
        person.user_permissions.add(Permission.objects.get(
            content_type__app_label=app, codename=codename))
    return User.objects.get(pk=person.pk)  # fresh: no cached permissions


@pytest.fixture
def people() -> dict[str, User]:
    return {
        "owner": user("owner", "library.change_book"),
        "staff": user("staff", staff=True),  # staff alone grants nothing
        "viewer": user("viewer", "pgbulk.view_job"),
        "canceller": user("canceller", "pgbulk.change_job"),
        "boss": User.objects.create_superuser("boss", password="x"),
    }


@pytest.fixture
def job(people) -> Job:
    ids = make_books(25)
    return pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2},
                              user=people["owner"], atomic=False)


def pages(job: Job) -> list[str]:
    return [f"/pgbulk/jobs/{job.id}/", f"/pgbulk/jobs/{job.id}/progress/"]


@pytest.mark.parametrize(("who", "sees"), [
    ("owner", True), ("staff", False), ("viewer", True), ("canceller", True), ("boss", True)])
def test_who_sees_a_job(client, people, job, who, sees):
    client.force_login(people[who])
    for url in pages(job):
        assert client.get(url).status_code == (200 if sees else 404)
    listed = f'data-job="{job.id}"' in client.get("/pgbulk/jobs/").content.decode()
    assert listed is sees


@pytest.mark.parametrize(("who", "status"), [
    ("owner", 302), ("staff", 404), ("viewer", 403), ("canceller", 302), ("boss", 302)])
def test_who_cancels_a_job_and_it_is_recorded(client, people, job, who, status):
    client.force_login(people[who])
    response = client.post(f"/pgbulk/jobs/{job.id}/cancel/")
    assert response.status_code == status
    job.refresh_from_db()
    if status == 302:
        assert job.status == "cancelled" and job.cancelled_by == people[who]
        assert job.cancelled_at is not None
        text = client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
        when = timezone.localtime(job.cancelled_at).strftime("%H:%M")
        assert f"Cancelled by {who} at {when} after 0 of 25" in text
    else:
        assert job.status == "queued" and job.cancelled_by is None


def test_cancel_button_only_for_those_who_may_cancel(client, people, job):
    client.force_login(people["viewer"])
    assert "pgbulk-cancel" not in client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
    assert "pgbulk-cancel" not in client.get("/pgbulk/jobs/").content.decode()
    client.force_login(people["owner"])
    dashboard = client.get("/pgbulk/jobs/").content.decode()
    assert "pgbulk-cancel" in dashboard and "data-pgbulk-confirm=" in dashboard


def test_cancelled_by_text_with_big_counts(client, people):
    at = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(12, 44)))
    done = Job.objects.create(
        kind="update", task_name="pgbulk.tasks.bulk_update_task", model="library.Book",
        status="cancelled", params={"values": {"status": "published"}, "atomic": False},
        total=19_998, done=16_000, user=people["owner"], cancelled_by=people["boss"],
        cancelled_at=at, finished_at=at, message="Cancelled after 16000 of 19998 records.")
    client.force_login(people["owner"])
    text = client.get(f"/pgbulk/jobs/{done.id}/").content.decode()
    assert "Cancelled by boss at 12:44 after 16,000 of 19,998" in text


@pytest.fixture
def failed_job(people) -> Job:
    ids = make_books(3)
    job = Job.objects.create(
        kind="update", task_name="pgbulk.tasks.bulk_update_task", model="library.Book",
        status="failed", params={"values": {"status": "archived"}, "atomic": False},
        total=3, done=1, failed_count=2, user=people["owner"],
        errors=[{"pk": str(ids[0]), "field": "in_print", "message": "Secret reason."}])
    for pk in ids[:2]:
        JobError.objects.create(job=job, object_pk=str(pk), record=f"Secret title {pk}",
                                field="in_print", message="An archived book cannot be in print.")
    return job


def test_errors_only_for_users_who_may_view_the_records(client, people, failed_job):
    client.force_login(people["viewer"])  # may see the job, not the books
    detail = client.get(f"/pgbulk/jobs/{failed_job.id}/").content.decode()
    assert "Secret title" not in detail and "You may not view these records" in detail
    assert client.get(f"/pgbulk/jobs/{failed_job.id}/errors.csv").status_code == 403
    data = client.get(f"/pgbulk/jobs/{failed_job.id}/progress/",
                      headers={"Accept": "application/json"}).json()
    assert data["errors"] == [] and data["failed_count"] == 2
    modal = client.get(f"/pgbulk/jobs/{failed_job.id}/progress/").content.decode()
    assert "Secret" not in modal

    reader = user("reader", "pgbulk.view_job", "library.view_book")
    client.force_login(reader)
    detail = client.get(f"/pgbulk/jobs/{failed_job.id}/").content.decode()
    assert "Secret title" in detail
    assert client.get(f"/pgbulk/jobs/{failed_job.id}/errors.csv").status_code == 200


def test_conflict_links_the_holding_job_only_for_those_who_may_see_it(client, people, job):
    ids = list(Book.objects.values_list("pk", flat=True)[:3])
    data = {"bulk_action": "edit", "pks": ids, "change_price": "on", "price": "5"}
    blind = user("blind", "library.change_book")
    client.force_login(blind)
    text = client.post("/", data, headers={"HX-Request": "true"}).content.decode()
    assert f"/pgbulk/jobs/{job.id}/" not in text
    assert "an update of Books" in text and "queued" in text and "owner" in text
    assert 'conflict-count">3<' in text

    seer = user("seer", "library.change_book", "pgbulk.view_job")
    client.force_login(seer)
    text = client.post("/", data, headers={"HX-Request": "true"}).content.decode()
    assert f'href="/pgbulk/jobs/{job.id}/"' in text and "price → 2.00 on 25 Books" in text
    assert "queued" in text


def test_job_admin_is_read_only_even_for_superusers(client, people, job):
    client.force_login(people["boss"])
    url = f"/admin/pgbulk/job/{job.id}/change/"
    page = client.get(url)
    assert page.status_code == 200 and b"price \xe2\x86\x92 2.00" in page.content
    assert b'name="_save"' not in page.content
    assert client.post(url, {"status": "succeeded"}).status_code == 403
    assert client.get("/admin/pgbulk/job/add/").status_code == 403
    assert client.post(f"/admin/pgbulk/job/{job.id}/delete/", {"post": "yes"}).status_code == 403
    changelist = client.get("/admin/pgbulk/job/").content.decode()
    assert "delete_selected" not in changelist
    assert Job.objects.get(pk=job.pk).status == "queued"


def test_job_admin_shows_staff_only_the_jobs_they_may_see(client, people, job):
    client.force_login(people["staff"])
    assert str(job.id) not in client.get("/admin/pgbulk/job/").content.decode()
    mine = Job.objects.create(kind="delete", task_name="pgbulk.tasks.bulk_delete_task",
                              model="library.Book", user=people["staff"])
    changelist = client.get("/admin/pgbulk/job/").content.decode()
    assert f"/admin/pgbulk/job/{mine.id}/change/" in changelist
    assert f"/admin/pgbulk/job/{job.id}/change/" not in changelist


def test_a_failure_message_quoting_a_record_is_hidden_from_who_may_not_view_records(client):
    from django.contrib.auth.models import User

    owner = User.objects.create_user("owner-without-book-rights")
    job = Job.objects.create(
        kind="update", task_name="pgbulk.tasks.bulk_update_task", model="library.Book",
        status="queued", total=3, user=owner)
    Job.objects.filter(pk=job.pk).update(status="running")
    Job.objects.filter(pk=job.pk).update(
        status="failed", failed_count=1, message="library.Book record 7 (Secret title): boom.",
        errors=[{"pk": "7", "record": "Secret title", "field": None, "message": "boom"}])
    client.force_login(owner)
    seen = client.get(f"/pgbulk/jobs/{job.id}/progress/", HTTP_ACCEPT="application/json").json()
    assert "Secret" not in str(seen) and seen["errors"] == []
    page = client.get(f"/pgbulk/jobs/{job.id}/").content.decode()
    assert "Secret title" not in page
    # the Job admin showed it, and its search found jobs by it
    viewer = user("job-viewer", "pgbulk.view_job", staff=True)
    client.force_login(viewer)
    admin_page = client.get(f"/admin/pgbulk/job/{job.id}/change/").content.decode()
    assert "Records failed; you may not see them." in admin_page
    assert "Secret" not in admin_page
    assert str(job.id) not in client.get("/admin/pgbulk/job/?q=Secret").content.decode()
    for lookup in ("message__icontains", "errors__icontains", "params__icontains"):
        assert client.get(f"/admin/pgbulk/job/?{lookup}=Secret").status_code == 400
    reader = user("book-reader", "pgbulk.view_job", "library.view_book", staff=True)
    client.force_login(reader)
    assert "Secret title" in client.get(f"/admin/pgbulk/job/{job.id}/change/").content.decode()


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_an_error_text_that_quotes_a_record_is_hidden_from_who_may_not_view_records(
        client, settings, atomic):
    """A job stopped by an error that is no record's failure (here a post_save handler's)
    kept its text for every job viewer: it quoted the record to a viewer with no right to
    the model. Now such a viewer reads that it failed and what was changed."""
    from django.db.models.signals import post_save

    def refuse(sender, instance, **kwargs):
        if instance.title == "Secret title":
            raise ValueError(f"refusing {instance.title!r} at price {instance.price}")

    ids = make_books(3)
    Book.objects.filter(pk=ids[2]).update(title="Secret title")
    settings.PGBULK = {**settings.PGBULK, "CHUNK_SIZE": 1}
    post_save.connect(refuse, sender=Book)
    try:
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 9},
                                 run="sync", atomic=atomic)
    finally:
        post_save.disconnect(refuse, sender=Book)
    assert job.status == "failed" and "Secret title" in job.message, job.message
    client.force_login(user("job-viewer", "pgbulk.view_job", staff=True))
    told = ("The job failed; you may not see why. Nothing was changed." if atomic else
            "The job failed; you may not see why. 2 of 3 records were changed.")
    seen = client.get(f"/pgbulk/jobs/{job.id}/progress/", HTTP_ACCEPT="application/json")
    assert seen.json()["message"] == told
    for url in (f"/pgbulk/jobs/{job.id}/", f"/admin/pgbulk/job/{job.id}/change/"):
        page = client.get(url).content.decode()
        assert "Secret" not in page and told in page, url
    client.force_login(user("book-reader", "pgbulk.view_job", "library.view_book"))
    assert "Secret title" in client.get(f"/pgbulk/jobs/{job.id}/").content.decode()


def test_the_sample_project_pages_may_not_be_framed(client, people, job):
    """Undo and cancel are one click: a page framed by another site could trick a user
    into it. The sample project left out Django's XFrameOptionsMiddleware (review)."""
    client.force_login(people["owner"])
    for url in ("/", "/pgbulk/jobs/", f"/pgbulk/jobs/{job.id}/"):
        assert client.get(url).headers.get("X-Frame-Options") == "DENY", url


@pytest.mark.parametrize(("target", "lands_on"), [
    ("/pgbulk/jobs/?status=active", "/pgbulk/jobs/?status=active"),
    ("books", None),  # it was reversed as a view name (a 500)
    ("pgbulk:job-list", None),  # a scheme, not a view name
    ("https://evil.example/", None), ("//evil.example/", None), ("", None)])
def test_cancel_goes_back_to_a_local_url_as_given(client, people, job, target, lands_on):
    client.force_login(people["owner"])
    response = client.post(f"/pgbulk/jobs/{job.id}/cancel/", {"next": target})
    assert response.status_code == 302
    assert response["Location"] == (lands_on or f"/pgbulk/jobs/{job.id}/")


def test_the_job_admin_list_says_when_a_running_job_lost_its_worker(client, people, job):
    """It said "Running" for a job nobody ran any more; the job pages said "Worker lost"."""
    client.force_login(people["boss"])
    Job.objects.filter(pk=job.pk).update(status="running", attempt=1)  # no runner holds it
    changelist = client.get("/admin/pgbulk/job/").content.decode()
    assert "Running: worker lost" in changelist
    Job.objects.filter(pk=job.pk).update(run_mode="sync")  # run by the web process
    assert "Running: process lost" in client.get("/admin/pgbulk/job/").content.decode()

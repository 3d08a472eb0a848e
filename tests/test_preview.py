"""pgbulk.preview: exact counts, samples and predicted failures, and that it writes nothing.

The list view's Preview button and the admin's are in tests/test_preview_views.py.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import pgbulk
from pgbulk.models import Job
from pgbulk.previews import public_preview
from testproject.library.models import Author, Book, Genre
from tests.factories import make_books, reservation_count

pytestmark = pytest.mark.django_db


def set_field(ids, **values) -> None:
    Book.objects.filter(pk__in=ids).update(**values)


def field(result: dict, name: str) -> dict:
    return next(f for f in result["fields"] if f["field"] == name)


def test_counts_per_current_value_top_ten_then_other_then_unchanged():
    ids = make_books(82)
    start = 0
    for price in range(1, 13):  # 12 prices held by 12, 11, ... 1 books
        size = 13 - price
        set_field(ids[start:start + size], price=price)
        start += size
    set_field(ids[start:], price=50)  # the last 4 already hold the new price
    result = pgbulk.preview(Book.objects.all(), {"price": "50"})
    price = field(result, "price")
    assert result["total"] == 82
    assert [(c["value"], c["count"]) for c in price["changes"]] == [
        (f"{p}.00", 13 - p) for p in range(1, 11)]
    assert (price["other"], price["unchanged"]) == (2 + 1, 4)
    assert (price["new"], price["new_display"]) == ("50", "50.00")


def test_choices_foreign_keys_and_empty_values_read_as_people_read_them():
    ids = make_books(20)
    set_field(ids[:12], status="published")
    set_field(ids[12:15], status="archived", in_print=False)
    other = Author.objects.create(name="Ursula")
    set_field(ids[:5], author=other, published_on="2020-01-02")
    result = pgbulk.preview(Book.objects.all(), {"status": "published", "author": other.pk,
                                                 "published_on": None})
    status = field(result, "status")
    assert [(c["display"], c["count"]) for c in status["changes"]] == [
        ("Draft", 5), ("Archived", 3)]
    assert (status["new_display"], status["unchanged"], status["other"]) == ("Published", 12, 0)
    author = field(result, "author")
    assert [(c["display"], c["count"]) for c in author["changes"]] == [("Test author", 15)]
    assert (author["new"], author["new_display"], author["unchanged"]) == (other.pk, "Ursula", 5)
    dates = field(result, "published_on")
    assert [(c["display"], c["count"]) for c in dates["changes"]] == [("2020-01-02", 5)]
    assert (dates["new_display"], dates["unchanged"]) == ("(empty)", 15)


def test_booleans_read_yes_and_no():
    ids = make_books(3)
    set_field(ids[:1], in_print=False)
    result = pgbulk.preview(Book.objects.all(), {"in_print": False})
    flag = field(result, "in_print")
    assert [(c["display"], c["count"]) for c in flag["changes"]] == [("Yes", 2)]
    assert (flag["new_display"], flag["unchanged"]) == ("No", 1)


def test_m2m_counts_the_records_that_gain_or_lose_each_related_record():
    ids = make_books(10)  # every book is Crime
    crime, poetry = Genre.objects.get(name="Crime"), Genre.objects.get(name="Poetry")
    Book.genres.through.objects.filter(book_id__in=ids[:4]).delete()
    for book in Book.objects.filter(pk__in=ids[:3]):
        book.genres.add(poetry)
    books = Book.objects.all()

    def related(values):
        (m2m,) = pgbulk.preview(books, {"genres": values})["m2m"]
        return [(r["display"], r["gain"], r["lose"]) for r in m2m["related"]], m2m["other_lose"]

    assert related({"add": [crime.pk, poetry.pk]}) == ([("Crime", 4, 0), ("Poetry", 7, 0)], 0)
    assert related({"remove": [crime.pk]}) == ([("Crime", 0, 6)], 0)
    assert related({"set": [poetry.pk]}) == ([("Poetry", 7, 0), ("Crime", 0, 6)], 0)
    assert related({"set": []}) == ([("Crime", 0, 6), ("Poetry", 0, 3)], 0)


@pytest.mark.parametrize("spelled", [str, lambda key: str(key).upper().replace("-", "")])
def test_m2m_to_a_uuid_keyed_model_is_counted_and_named(spelled):
    """Keys arrive as text and the links hold UUIDs: remove counted 0 losers, add counted
    every record as gaining what it already had, and related records read as raw keys."""
    from testproject.library.models import Label

    hub = Label.objects.create(name="Hub")
    labels = [Label.objects.create(name=f"L{i}") for i in range(5)]
    for label in labels[:3]:
        label.see_also.add(hub)
    selection = Label.objects.exclude(pk=hub.pk)

    def related(operation):
        result = pgbulk.preview(selection, {"see_also": {operation: [spelled(hub.pk)]}})
        (m2m,) = result["m2m"]
        sample = {row["record"]: row["changes"][0]["after"] for row in result["sample"]}
        return [(r["display"], r["gain"], r["lose"]) for r in m2m["related"]], sample["L0"]

    assert related("remove") == ([("Hub", 0, 3)], "(none)")
    assert related("add") == ([("Hub", 2, 0)], "Hub")
    job = pgbulk.bulk_update(selection, {"see_also": {"remove": [spelled(hub.pk)]}},
                             run="sync")
    assert job.status == "succeeded" and not hub.label_set.exists()
    assert pgbulk.undo(job, run="sync").done == 3 and hub.label_set.count() == 3


def test_m2m_set_counts_the_related_records_beyond_the_top_ten_as_other():
    ids = make_books(2, genre=False)
    genres = [Genre.objects.create(name=f"G{n:02d}") for n in range(12)]
    for book in Book.objects.filter(pk__in=ids):
        book.genres.add(*genres)
    (m2m,) = pgbulk.preview(Book.objects.all(), {"genres": {"set": []}})["m2m"]
    assert len(m2m["related"]) == 10 and m2m["other_lose"] == 2 * 2
    assert m2m["related"][0] == {"value": genres[0].pk, "display": "G00", "gain": 0, "lose": 2}


def test_the_sample_shows_the_first_five_records_in_the_selections_order():
    ids = make_books(8)
    set_field(ids[-1:], status="archived", in_print=False)
    poetry = Genre.objects.get(name="Poetry")
    result = pgbulk.preview(Book.objects.order_by("-pk"),
                            {"status": "published", "genres": {"add": [poetry.pk]}})
    assert [row["pk"] for row in result["sample"]] == [str(pk) for pk in ids[::-1][:5]]
    first = result["sample"][0]
    assert first["record"] == "Book 7"
    assert first["fails"] == ""
    assert first["changes"] == [
        {"field": "status", "label": "status", "before": "Archived", "after": "Published"},
        {"field": "genres", "label": "genres", "before": "Crime", "after": "Crime, Poetry"}]
    assert result["sample"][1]["changes"][0]["before"] == "Draft"


def test_predicted_failures_run_the_jobs_validation_on_a_sample_and_name_the_records():
    ids = make_books(100)
    set_field(ids[:97], in_print=False)  # Book.clean: an archived book cannot be in print
    result = pgbulk.preview(Book.objects.all(), {"status": "archived"})
    failures = result["failures"]
    assert (failures["validation"], failures["sampled"], failures["failed"]) == ("changed", 100, 3)
    assert failures["errors"] == [
        {"pk": str(pk), "record": f"Book {n}", "field": "in_print",
         "message": "An archived book cannot be in print."}
        for n, pk in enumerate(ids) if n >= 97]
    full = pgbulk.preview(Book.objects.all(), {"status": "archived"}, validation="full")
    assert (full["failures"]["validation"], full["failures"]["failed"]) == ("full", 3)


def test_the_sample_says_which_of_its_records_would_fail():
    """The first records showed "Draft → Archived" for records the job then refused."""
    ids = make_books(5)
    set_field(ids[1:], in_print=False)  # only the first is in print: it would fail
    result = pgbulk.preview(Book.objects.order_by("pk"), {"status": "archived"})
    assert [row["fails"] for row in result["sample"]] == [
        "in print: An archived book cannot be in print.", "", "", "", ""]
    quick = pgbulk.preview(Book.objects.order_by("pk"), {"status": "archived"}, sample_size=0)
    assert [row["fails"] for row in quick["sample"]] == [""] * 5  # nothing validated


def test_the_sample_size_bounds_what_is_validated(settings):
    make_books(30)
    settings.PGBULK = {"PREVIEW_SAMPLE_SIZE": 7}
    books = Book.objects.all()
    assert pgbulk.preview(books, {"status": "archived"})["failures"]["sampled"] == 7
    assert pgbulk.preview(books, {"status": "archived"}, sample_size=12)["failures"][
        "failed"] == 12
    assert pgbulk.preview(books, {"status": "archived"}, sample_size=0)["failures"] == {
        "validation": "changed", "sampled": 0, "failed": 0, "errors": []}
    # Only M2M changes: the job validates no record (save() is not called).
    only_m2m = pgbulk.preview(books, {"genres": {"set": []}})["failures"]
    assert (only_m2m["sampled"], only_m2m["failed"]) == (0, 0)


WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "SELECT PGBULK", "NEXTVAL", "FOR UPDATE",
          "FOR NO KEY UPDATE", "PG_ADVISORY")


def test_a_preview_writes_nothing_and_locks_nothing():
    ids = make_books(40)
    set_field(ids[:10], status="archived", in_print=False)
    before = list(Book.objects.order_by("pk").values_list("pk", "status", "price", "revision"))
    links = Book.genres.through.objects.count()
    poetry = Genre.objects.get(name="Poetry")
    with CaptureQueriesContext(connection) as queries:
        pgbulk.preview(Book.objects.all(), {"status": "archived", "price": "3",
                                            "genres": {"set": [poetry.pk]}})
    sql = [q["sql"].upper() for q in queries.captured_queries]
    assert sql and [s for s in sql if any(word in s for word in WRITES)] == []
    assert list(Book.objects.order_by("pk").values_list(
        "pk", "status", "price", "revision")) == before
    assert Book.genres.through.objects.count() == links
    assert (Job.objects.count(), reservation_count()) == (0, 0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_reads_one_read_only_snapshot():
    make_books(3)
    with CaptureQueriesContext(connection) as queries:
        assert pgbulk.preview(Book.objects.all(), {"price": 4})["total"] == 3
    sql = [q["sql"] for q in queries.captured_queries]
    assert sql[:2] == ["BEGIN", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"]
    code = ["\n".join(line for line in s.splitlines() if not line.lstrip().startswith("--"))
            for s in sql[2:-1]]  # the statements of sql/queries.sql begin with comments
    assert all(s.lstrip().startswith(("SELECT", "WITH", "SAVEPOINT", "RELEASE")) for s in code)
    assert sql[-1] == "COMMIT"
    assert not connection.in_atomic_block


@pytest.mark.parametrize(("values", "fields", "error"), [
    ({"status": "bogus"}, None, "status"),
    ({"price": "-1"}, None, "price"),
    ({"colour": "red"}, None, "colour"),
    ({"isbn": "X"}, ["price"], "isbn"),
    ({}, None, "__all__"),
    ({"genres": {"add": [999999]}}, None, "genres"),
])
def test_bad_values_are_refused_as_by_bulk_update(values, fields, error):
    make_books(2)
    with pytest.raises(pgbulk.BulkValidationError) as refused:
        pgbulk.preview(Book.objects.all(), values, fields=fields)
    assert error in refused.value.errors


def test_an_empty_selection_is_refused():
    with pytest.raises(pgbulk.BulkValidationError, match="No records are selected"):
        pgbulk.preview(Book.objects.none(), {"price": 1})
    make_books(1)
    with pytest.raises(pgbulk.BulkValidationError, match="No records are selected"):
        pgbulk.preview(Book.objects.filter(price=99), {"price": 1})


def test_bad_options_are_value_errors():
    make_books(1)
    with pytest.raises(ValueError, match="validation must be one of"):
        pgbulk.preview(Book.objects.all(), {"price": 1}, validation="none")
    with pytest.raises(ValueError, match="sample_size must be"):
        pgbulk.preview(Book.objects.all(), {"price": 1}, sample_size=-1)


def test_a_selection_that_joins_counts_each_record_once():
    ids = make_books(4)
    poetry = Genre.objects.get(name="Poetry")
    for book in Book.objects.filter(pk__in=ids):
        book.genres.add(poetry)  # two genres each: a join on genres doubles the rows
    joined = Book.objects.filter(genres__name__in=["Crime", "Poetry"])
    result = pgbulk.preview(joined, {"price": "10"})
    assert (result["total"], field(result, "price")["unchanged"]) == (4, 4)


def test_a_reader_who_may_not_view_records_gets_counts_only():
    ids = make_books(3)
    set_field(ids, in_print=True)
    result = pgbulk.preview(Book.objects.all(), {"status": "archived"})
    hidden = public_preview(result, readable=False)
    assert hidden["sample"] == [] and hidden["failures"]["errors"] == []
    assert hidden["failures"]["failed"] == 3 and hidden["fields"] == result["fields"]
    assert public_preview(result, readable=True) is result


def test_the_records_shown_are_counted_in_the_predicted_failures(settings):
    """The shown rows and the random sample were validated apart: a shown row could read
    "would fail" beside "All 5 sampled records pass validation"."""
    settings.PGBULK = {**settings.PGBULK, "PREVIEW_SAMPLE_SIZE": 5}
    ids = make_books(200)
    set_field(ids[1:], in_print=False)  # only the first book would fail
    result = pgbulk.preview(Book.objects.order_by("pk"), {"status": "archived"})
    assert result["sample"][0]["fails"]
    assert (result["failures"]["sampled"], result["failures"]["failed"]) == (5, 1)


def test_it_names_the_jobs_holding_selected_records_as_a_launch_would(settings):
    """A launch on records another job holds is refused; the preview says so first."""
    settings.PGBULK = {"ASYNC_ENABLED": True, "QUEUE": "held"}  # the holder stays queued
    ids = make_books(10)
    holder = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:3]), {"price": "2"},
                                run="async", min_async_records=0)
    other = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[9:]), {"price": "2"},
                               run="async", min_async_records=0, conflict_checking=False)
    result = pgbulk.preview(Book.objects.filter(pk__in=ids[:8]), {"status": "archived"})
    assert result["held"] == [{"job_id": str(holder.id), "user": None, "count": 3}]
    assert pgbulk.preview(Book.objects.filter(pk__in=ids[3:]), {"status": "archived"})[
        "held"] == []  # records reserved without conflict checking hold nothing back
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:8]), {"status": "archived"})
    assert other.status == "queued"


def test_a_set_based_edit_is_previewed_without_per_record_validation():
    """pgbulk.preview had no strategy: a queryset-strategy edit was predicted to fail on
    clean() checks its job never runs, unless the caller knew to pass sample_size=0."""
    ids = make_books(3, in_print=True)
    values = {"status": "archived"}  # an archived book cannot be in print (clean())
    assert pgbulk.preview(Book.objects.filter(pk__in=ids), values)["failures"]["failed"] == 3
    for size in (None, 50):
        result = pgbulk.preview(Book.objects.filter(pk__in=ids), values, strategy="queryset",
                                sample_size=size)
        assert (result["failures"]["sampled"], result["failures"]["failed"]) == (0, 0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        pgbulk.preview(Book.objects.all(), values, strategy="fast")


def test_unions_and_values_querysets_are_previewed_as_bulk_update_takes_them():
    """preview raised on them ("prefetch_related() after union() is not supported";
    "'dict' object has no attribute ...") while bulk_update took them."""
    ids = make_books(4)
    union = Book.objects.filter(pk=ids[0]).union(Book.objects.filter(pk__in=ids[2:]))
    assert pgbulk.preview(union, {"price": 2})["total"] == 3
    assert pgbulk.preview(Book.objects.filter(pk__in=ids[:2]).values("title"),
                          {"price": 2})["total"] == 2

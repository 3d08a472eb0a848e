"""The sample library: authors, genres and books (plus two models with non-integer keys)."""

from __future__ import annotations

import os
import time
import uuid

from django.core.exceptions import ValidationError
from django.db import models

import pgbulk


class Author(models.Model):
    name = models.CharField(max_length=200)
    price_factor = models.DecimalField(max_digits=4, decimal_places=2, default=1)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Genre(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    title = models.CharField(max_length=300)
    isbn = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    published_on = models.DateField(null=True, blank=True)
    in_print = models.BooleanField(default=True)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    genres = models.ManyToManyField(Genre, blank=True, related_name="books")
    revision = models.PositiveIntegerField(default=0, editable=False)  # saves so far

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="book_price_not_negative")
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        # LIBRARY_SAVE_DELAY (seconds) slows saves down, to watch progress in the demo.
        delay = float(os.environ.get("LIBRARY_SAVE_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        self.revision += 1
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = [*kwargs["update_fields"], "revision"]
        super().save(*args, **kwargs)
        if pgbulk.skip_nested_async():
            # Inside a running job: do the nested work inline and bring this
            # book's genres under the job's locks instead of launching a job.
            genre_ids = [genre.pk for genre in self.genres.all()]  # prefetched by the job
            if genre_ids:
                pgbulk.register_descendant_conflicts(Genre, genre_ids)

    def clean(self) -> None:
        if self.status == self.Status.ARCHIVED and self.in_print:
            raise ValidationError({"in_print": "An archived book cannot be in print."})


class Publisher(models.Model):
    """A model keyed by text."""

    code = models.CharField(max_length=20, primary_key=True)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class Session(models.Model):
    """A model keyed by a date-time (PostgreSQL writes it '2020-01-01 00:00:00+00' as text)."""

    starts_at = models.DateTimeField(primary_key=True)
    title = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.title


class Label(models.Model):
    """A model keyed by UUID, with an auto_now field, a JSON field and a constraint mixing
    two fields."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=100)
    rank = models.IntegerField(default=0)
    touched_at = models.DateTimeField(auto_now=True, null=True)
    data = models.JSONField(null=True, blank=True)  # undo puts JSON back as it was
    due_at = models.DateTimeField(null=True, blank=True)  # set to the microsecond
    see_also = models.ManyToManyField("self", blank=True, symmetrical=False)  # UUID both ends

    class Meta:
        constraints = [
            models.CheckConstraint(  # a big rank needs a name that says so
                condition=models.Q(rank__lte=100) | models.Q(name__startswith="Big"),
                name="label_big_rank_needs_big_name")
        ]

    def __str__(self) -> str:
        return self.name


class DraftBook(Book):
    """A proxy of Book: its records are Book's records, and so are its locks."""

    class Meta:
        proxy = True


class EBook(Book):
    """A multi-table child of Book: its records are Book rows too."""

    file_size = models.PositiveIntegerField(default=0)


class Shelf(models.Model):
    """A model with a composite primary key (pgbulk refuses it)."""

    pk = models.CompositePrimaryKey("room", "number")
    room = models.CharField(max_length=20)
    number = models.PositiveIntegerField()
    label = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"{self.room} {self.number}"


class Member(models.Model):
    """A user-like table with an unusual name and key column (conflict reports join it)."""

    member_no = models.AutoField(primary_key=True, db_column="member no")
    handle = models.CharField(max_length=50)

    USERNAME_FIELD = "handle"

    class Meta:
        db_table = "library member"

    def __str__(self) -> str:
        return self.handle

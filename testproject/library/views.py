"""The sample book list at /: filters by status, author and a search, with bulk edit."""

from __future__ import annotations

import re

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Q
from django.views.generic import ListView

from pgbulk.views import BulkEditMixin
from testproject.library.models import Author, Book


class BookListView(LoginRequiredMixin, BulkEditMixin, ListView):
    model = Book
    paginate_by = 50
    template_name = "library/book_list.html"
    bulk_fields = ["status", "price", "published_on", "in_print", "author", "genres"]
    bulk_delete = True
    bulk_min_async_records = 20
    bulk_atomic = False  # chunked: failures are listed per record, the rest is applied
    bulk_tasks = {
        "recalculate": ("Recalculate prices", "testproject.library.tasks.recalculate_prices"),
    }

    def get_queryset(self):
        books = Book.objects.select_related("author").prefetch_related("genres")
        params = self.request.GET
        if params.get("status") in Book.Status.values:
            books = books.filter(status=params["status"])
        if re.fullmatch(r"[0-9]+", params.get("author", "")):  # not "²", which isdigit() accepts
            books = books.filter(author_id=int(params["author"]))
        if text := params.get("q", "").replace("\x00", ""):  # PostgreSQL text has no NUL
            books = books.filter(Q(title__icontains=text) | Q(isbn__icontains=text))
        return books

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["authors"] = Author.objects.all()
        context["statuses"] = Book.Status.choices
        context["filters"] = self.request.GET
        return context

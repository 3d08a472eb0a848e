"""More list views with BulkEditMixin: authors (books PROTECT them), publishers (text keys),
e-books (a multi-table child) and books whose relations are edited by key
(bulk_raw_id_fields)."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.urls import path
from django.views.generic import ListView

from pgbulk.views import BulkEditMixin
from testproject.library.models import Author, Book, EBook, Publisher
from testproject.urls import urlpatterns as sample


class AuthorListView(LoginRequiredMixin, BulkEditMixin, ListView):
    model = Author
    extra_context = {"title": "Authors"}
    template_name = "library/simple_list.html"
    bulk_fields = ["name"]
    bulk_delete = True


class PublisherListView(LoginRequiredMixin, BulkEditMixin, ListView):
    model = Publisher
    extra_context = {"title": "Publishers"}
    paginate_by = 2
    ordering = ["name"]
    template_name = "library/simple_list.html"
    bulk_fields = ["active"]
    bulk_delete = True


class BookByKeyListView(LoginRequiredMixin, BulkEditMixin, ListView):
    model = Book
    extra_context = {"title": "Books"}
    template_name = "library/simple_list.html"
    bulk_fields = ["author", "genres"]
    bulk_raw_id_fields = ["author", "genres"]


class EBookListView(LoginRequiredMixin, BulkEditMixin, ListView):
    model = EBook  # a multi-table child: deleting one deletes its Book row too
    extra_context = {"title": "E-books"}
    template_name = "library/simple_list.html"
    bulk_fields = ["file_size"]
    bulk_delete = True


urlpatterns = [
    path("ebooks/", EBookListView.as_view()),
    path("books-by-key/", BookByKeyListView.as_view()),
    path("authors/", AuthorListView.as_view()),
    path("publishers/", PublisherListView.as_view()),
    *sample,
]

"""A neapolitan CRUDView with BulkEditMixin, to show the mixin works there too."""

from django.urls import include, path
from neapolitan.views import CRUDView, Role

from pgbulk.views import BulkEditMixin
from testproject.library.models import Book


class BookCRUDView(BulkEditMixin, CRUDView):
    model = Book
    fields = ["title", "status", "price"]
    bulk_fields = ["status", "price"]
    bulk_delete = True


urlpatterns = [
    path("books/", BookCRUDView.as_view(role=Role.LIST), name="book-crud-list"),
    path("pgbulk/", include("pgbulk.urls")),
]

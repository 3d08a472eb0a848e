"""A URLconf with a bulk list view on a model with a composite primary key (check E004)."""

from django.urls import path
from django.views.generic import ListView

from pgbulk.views import BulkEditMixin
from testproject.library.models import Shelf


class ShelfListView(BulkEditMixin, ListView):
    model = Shelf
    bulk_fields = ["label"]


urlpatterns = [path("shelves/", ShelfListView.as_view())]

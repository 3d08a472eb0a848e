from django.contrib import admin
from django.urls import include, path

from testproject.library import views

urlpatterns = [
    path("", views.BookListView.as_view(), name="book-list"),
    path("admin/", admin.site.urls),
    path("pgbulk/", include("pgbulk.urls")),
]

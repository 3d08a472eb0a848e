from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from testproject.library import views

urlpatterns = [
    path("", views.BookListView.as_view(), name="book-list"),
    path("admin/", admin.site.urls),
    path("pgbulk/", include("pgbulk.urls")),
]

if settings.SERVE_STATIC:  # the sample's docker image serves its own static files
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve,
                               {"document_root": settings.STATIC_ROOT}))

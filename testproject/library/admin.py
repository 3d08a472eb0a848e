from django.contrib import admin

from pgbulk.admin import BulkEditAdminMixin
from testproject.library.models import Author, Book, Genre


@admin.register(Book)
class BookAdmin(BulkEditAdminMixin, admin.ModelAdmin):
    list_display = ["title", "isbn", "status", "price", "in_print", "author"]
    list_filter = ["status", "in_print"]
    search_fields = ["title", "isbn"]
    bulk_fields = ["status", "price", "in_print", "author", "genres"]


admin.site.register(Author)
admin.site.register(Genre)

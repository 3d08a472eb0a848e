"""Insert sample books set-based (100k in a few seconds); safe to run again."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from testproject.library.models import Book

GENRES = [
    "Biography", "Crime", "Fantasy", "History", "Horror", "Humour",
    "Poetry", "Romance", "Science", "Science fiction", "Thriller", "Travel",
]
AUTHORS = 200
BATCH = 20_000

INSERT_BOOKS = """
INSERT INTO library_book (title, isbn, status, price, published_on, in_print, author_id, revision)
SELECT 'Book ' || i,
       'ISBN-' || lpad(i::text, 10, '0'),
       (ARRAY['draft', 'published', 'archived'])[1 + i %% 3],
       round((5 + (i * 7919) %% 4500 / 100.0)::numeric, 2),
       DATE '1950-01-01' + ((i * 37) %% 27000)::int,
       i %% 3 <> 2 AND i %% 5 <> 0,
       (SELECT min(id) FROM library_author) + i %% %(authors)s,
       0
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
ON CONFLICT (isbn) DO NOTHING
"""

INSERT_BOOK_GENRES = """
INSERT INTO library_book_genres (book_id, genre_id)
SELECT b.id, g.id
FROM library_book b
JOIN LATERAL (
    SELECT id FROM library_genre
    ORDER BY (id * 31 + b.id) %% 12 LIMIT 1 + b.id %% 2
) g ON true
WHERE b.isbn BETWEEN 'ISBN-' || lpad(%(first)s::text, 10, '0')
                 AND 'ISBN-' || lpad(%(last)s::text, 10, '0')
ON CONFLICT DO NOTHING
"""


class Command(BaseCommand):
    help = "Insert N sample books (with authors and genres). Running it twice adds nothing twice."

    def add_arguments(self, parser):
        parser.add_argument("--books", type=int, default=1000)
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when books already exist"
        )

    def handle(self, *args, books: int, if_empty: bool, **options):
        if books < 0:
            self.stderr.write("--books must be >= 0")
            sys.exit(2)
        if if_empty and Book.objects.exists():
            self.stdout.write(f"{Book.objects.count()} books already there, nothing to do")
            return
        self.seed_authors_and_genres()
        for first in range(1, books + 1, BATCH):
            last = min(first + BATCH - 1, books)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(INSERT_BOOKS, {"first": first, "last": last, "authors": AUTHORS})
                cursor.execute(INSERT_BOOK_GENRES, {"first": first, "last": last})
            self.progress(last, books)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE library_book; ANALYZE library_book_genres")
        self.stdout.write(f"{Book.objects.count()} books in the library")

    def seed_authors_and_genres(self) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO library_genre (name) SELECT unnest(%s::text[]) "
                "ON CONFLICT (name) DO NOTHING",
                [GENRES],
            )
            cursor.execute(
                "INSERT INTO library_author (name, price_factor) "
                "SELECT 'Author ' || i, 1 + (i %% 5) / 10.0 FROM generate_series(1, %s) i "
                "WHERE NOT EXISTS (SELECT 1 FROM library_author)",
                [AUTHORS],
            )

    def progress(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        self.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} books",
            ending="\n" if done >= total else "",
        )
        self.stderr.flush()

"""Migration operation that runs a named, checksummed file of ``sql/``."""

from __future__ import annotations

from django.db import migrations

from pgbulk import sqlfiles


class RunSQLFile(migrations.RunSQL):
    """Run ``sql/<name>``'s up part forwards and its down part backwards.

    ``checksum`` pins the file's content: a test fails when a file changed
    after a migration was written for it (write a new versioned file instead).
    """

    def __init__(self, name: str, checksum: str) -> None:
        self.file_name = name
        self.checksum = checksum
        up, down = sqlfiles.up_down(name)
        super().__init__(up, down or migrations.RunSQL.noop)

    def deconstruct(self):  # pragma: no cover - migrations are hand written
        return (self.__class__.__qualname__, [self.file_name, self.checksum], {})

    def describe(self) -> str:
        return f"Run sql/{self.file_name}"


class RestoreSQLFileOnReverse(migrations.RunSQL):
    """Re-run ``sql/<name>``'s up part when migrating backwards (nothing forwards).

    Placed before the operation that replaces the file's objects, it puts the
    previous definitions back when that migration is reversed.
    """

    def __init__(self, name: str, checksum: str) -> None:
        self.file_name = name
        self.checksum = checksum
        up, _down = sqlfiles.up_down(name)
        super().__init__(migrations.RunSQL.noop, up)

    def deconstruct(self):  # pragma: no cover - migrations are hand written
        return (self.__class__.__qualname__, [self.file_name, self.checksum], {})

    def describe(self) -> str:
        return f"Restore sql/{self.file_name} when reversed"

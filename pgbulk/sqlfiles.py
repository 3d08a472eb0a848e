"""Find and read pgbulk's SQL files, in a checkout (``sql/``) or installed (``pgbulk/sql``).

A file holds an ``-- migrate:up`` part and, optionally, a ``-- migrate:down`` part;
``queries.sql`` holds named queries (``-- name: x`` then the statement).
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parent / "sql",  # installed wheel
    Path(__file__).resolve().parent.parent / "sql",  # source checkout
)


def sql_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("pgbulk's sql/ folder is missing from this installation")


def read(name: str) -> str:
    return (sql_dir() / name).read_text(encoding="utf-8")


def checksum(name: str) -> str:
    return hashlib.sha256(read(name).encode()).hexdigest()[:16]


def up_down(name: str) -> tuple[str, str]:
    """The forward and reverse SQL of a migration file."""
    text = read(name)
    up, _, down = text.partition("-- migrate:down")
    return up.replace("-- migrate:up", "", 1).strip(), down.strip()


@functools.cache
def queries() -> dict[str, str]:
    """Named queries of ``queries.sql``: ``{name: sql}``."""
    found: dict[str, str] = {}
    for block in re.split(r"^-- name: ", read("queries.sql"), flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        found[name.strip()] = body.strip().rstrip(";")
    return found


def query(name: str) -> str:
    return queries()[name]

"""SQL file parsing (pgbulk.sqlfiles): migration files and named queries. No database."""

from __future__ import annotations

import re

import pytest

from pgbulk import sqlfiles


@pytest.fixture
def sql_folder(tmp_path, monkeypatch):
    """Point pgbulk at a folder of our own SQL files (and forget cached queries)."""
    monkeypatch.setattr(sqlfiles, "sql_dir", lambda: tmp_path)
    sqlfiles.queries.cache_clear()
    yield tmp_path
    sqlfiles.queries.cache_clear()


def test_a_migration_file_splits_into_up_and_down(sql_folder):
    (sql_folder / "0001_thing.sql").write_text(
        "-- migrate:up\nCREATE TABLE thing (id int);\n\n-- migrate:down\nDROP TABLE thing;\n")
    assert sqlfiles.up_down("0001_thing.sql") == ("CREATE TABLE thing (id int);",
                                                  "DROP TABLE thing;")


def test_a_migration_file_without_down_part_reverses_to_nothing(sql_folder):
    (sql_folder / "0002_view.sql").write_text("-- migrate:up\nCREATE VIEW v AS SELECT 1;\n")
    assert sqlfiles.up_down("0002_view.sql") == ("CREATE VIEW v AS SELECT 1;", "")


def test_named_queries_are_split_at_their_names(sql_folder):
    (sql_folder / "queries.sql").write_text(
        "-- Header comment, not a query.\n\n"
        "-- name: first\nSELECT 1;\n\n"
        "-- name: second \nSELECT a,\n       b\nFROM t\nWHERE x = %s;\n")
    assert sqlfiles.queries() == {"first": "SELECT 1",
                                  "second": "SELECT a,\n       b\nFROM t\nWHERE x = %s"}
    assert sqlfiles.query("second").endswith("WHERE x = %s")
    with pytest.raises(KeyError):
        sqlfiles.query("third")


def test_the_checksum_follows_the_content(sql_folder):
    path = sql_folder / "0003_fn.sql"
    path.write_text("-- migrate:up\nSELECT 1;\n")
    before = sqlfiles.checksum("0003_fn.sql")
    assert re.fullmatch(r"[0-9a-f]{16}", before)
    assert sqlfiles.checksum("0003_fn.sql") == before
    path.write_text("-- migrate:up\nSELECT 2;\n")
    assert sqlfiles.checksum("0003_fn.sql") != before


def test_the_shipped_files_parse():
    names = {p.name for p in sqlfiles.sql_dir().glob("*.sql")}
    assert "queries.sql" in names and len(names) > 1
    for name in sorted(names - {"queries.sql"}):
        up, down = sqlfiles.up_down(name)
        assert up and "-- migrate:" not in up, name
        assert "-- migrate:" not in down, name
    declared = re.findall(r"^-- name: (\S+)", sqlfiles.read("queries.sql"), flags=re.M)
    assert len(declared) == len(set(declared)), "a query name is used twice"
    assert sorted(sqlfiles.queries()) == sorted(declared)
    assert all(body and not body.endswith(";") for body in sqlfiles.queries().values())

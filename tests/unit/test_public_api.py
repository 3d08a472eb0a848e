"""The package's public names and its settings object. No database."""

from __future__ import annotations

import pytest

import pgbulk
from pgbulk.conf import DEFAULTS, pgbulk_settings


@pytest.mark.parametrize("name", pgbulk.__all__)
def test_every_public_name_resolves(name):
    assert getattr(pgbulk, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'bulk_upsert'"):
        pgbulk.bulk_upsert  # noqa: B018


def test_the_errors_share_a_base_class():
    assert issubclass(pgbulk.ConflictError, pgbulk.PgbulkError)
    assert issubclass(pgbulk.BulkValidationError, pgbulk.PgbulkError)


def test_a_conflict_names_each_blocking_job_and_its_owner():
    error = pgbulk.ConflictError([{"job_id": "j1", "user": "alice", "count": 3},
                                  {"job_id": "j2", "user": None, "count": 1}])
    assert str(error) == "Conflict: 3 record(s) held by job j1 of alice; 1 record(s) held by job j2"
    assert error.conflicts[0]["count"] == 3


def test_settings_fall_back_to_their_defaults(settings):
    settings.PGBULK = {"CHUNK_SIZE": 7}
    assert pgbulk_settings.CHUNK_SIZE == 7
    assert pgbulk_settings.QUEUE == DEFAULTS["QUEUE"]
    settings.PGBULK = None
    assert pgbulk_settings.CHUNK_SIZE == DEFAULTS["CHUNK_SIZE"]


def test_an_unknown_setting_is_an_attribute_error():
    with pytest.raises(AttributeError, match="Unknown pgbulk setting 'CHUNKSIZE'"):
        pgbulk_settings.CHUNKSIZE  # noqa: B018

"""The package's public names and its settings object. No database."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import get_type_hints

import pytest
from django.core.exceptions import ImproperlyConfigured

import pgbulk
from pgbulk.conf import DEFAULTS, RENAMED, Settings, pgbulk_settings


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


def test_every_setting_has_a_type_and_its_default_is_of_it(settings):
    settings.PGBULK = {}
    types = get_type_hints(Settings)
    assert set(types) == set(DEFAULTS)
    for name, default in DEFAULTS.items():
        assert isinstance(getattr(pgbulk_settings, name), types[name]), name
        assert getattr(pgbulk_settings, name) == default


@pytest.mark.parametrize(("name", "written", "read"), [
    ("CHUNK_SIZE", "500", 500), ("CHUNK_SIZE", 500.0, 500), ("CONFLICT_TTL", "90", 90.0),
    ("CONFLICT_TTL", 1.5, 1.5), ("JOB_RETENTION", 7, 7.0), ("ASYNC_ENABLED", "false", False),
    ("ASYNC_ENABLED", "1", True), ("ASYNC_ENABLED", 0, False), ("QUEUE", "bulk", "bulk")])
def test_settings_are_read_as_their_type(settings, name, written, read):
    settings.PGBULK = {name: written}
    value = getattr(pgbulk_settings, name)
    assert (type(value), value) == (type(read), read)


@pytest.mark.parametrize(("name", "written"), [
    ("CHUNK_SIZE", "many"), ("CHUNK_SIZE", 2.5), ("CHUNK_SIZE", True), ("CONFLICT_TTL", None),
    ("ASYNC_ENABLED", "maybe"), ("ASYNC_ENABLED", 2), ("QUEUE", 5)])
def test_a_value_that_is_not_of_its_type_is_improperly_configured(settings, name, written):
    settings.PGBULK = {name: written}
    with pytest.raises(ImproperlyConfigured, match=rf"PGBULK\['{name}'\] must be"):
        getattr(pgbulk_settings, name)


def test_settings_are_read_on_each_access(settings):
    settings.PGBULK = {"ACTIVE_LIST_PERIOD": 60}
    assert pgbulk_settings.ACTIVE_LIST_PERIOD == 60.0
    settings.PGBULK = {"ACTIVE_LIST_PERIOD": 120}
    assert pgbulk_settings.ACTIVE_LIST_PERIOD == 120.0


def test_an_old_name_is_still_read_with_a_deprecation_warning(settings):
    assert RENAMED == {"CLEANUP_GRACE_PERIOD": "ACTIVE_LIST_PERIOD"}
    settings.PGBULK = {"CLEANUP_GRACE_PERIOD": 600}
    with pytest.warns(DeprecationWarning, match="rename it to 'ACTIVE_LIST_PERIOD'"):
        assert pgbulk_settings.ACTIVE_LIST_PERIOD == 600.0
    with pytest.warns(DeprecationWarning):
        assert pgbulk_settings.CLEANUP_GRACE_PERIOD == 600.0  # the old attribute too
    settings.PGBULK = {"CLEANUP_GRACE_PERIOD": 600, "ACTIVE_LIST_PERIOD": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pgbulk_settings.ACTIVE_LIST_PERIOD == 60.0  # the new name wins, silently


class ConfiguredManager(pgbulk.AsyncManager):
    def __init__(self, config=None):
        super().__init__(config)
        self.seen = config


def test_a_views_manager_config_reaches_a_manager_that_takes_it():
    from testproject.library.views import BookListView

    view = BookListView(async_manager_class_path=f"{__name__}.ConfiguredManager",
                        async_manager_config={"team": "books"})
    assert view.get_async_manager().seen == {"team": "books"}
    assert not hasattr(pgbulk.AsyncManager({"team": "books"}), "config")  # never stored


def test_a_public_function_stays_one_when_its_module_is_imported():
    """A submodule named like a lazily exported name would replace it on the package
    (``import pgbulk.x`` sets ``pgbulk.x``): no public name is also a module's name."""
    import pgbulk.previews

    assert callable(pgbulk.preview) and not isinstance(pgbulk.preview, type(pgbulk))
    modules = {path.stem for path in Path(pgbulk.__file__).parent.glob("*.py")}
    assert sorted(set(pgbulk.__all__) & modules) == []

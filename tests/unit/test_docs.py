"""The documentation keeps up with the code: every setting with its real default, every
public name of the API. Written generically: a new setting or name needs its docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pgbulk
from pgbulk.conf import DEFAULTS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_settings() -> dict[str, str]:
    """``{key: default as written}`` from the table of docs/settings.md."""
    rows = re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*`([^`]*)`\s*\|",
                      (DOCS / "settings.md").read_text(), flags=re.M)
    return dict(rows)


def test_settings_md_lists_every_setting_with_its_real_default():
    documented = documented_settings()
    missing = sorted(set(DEFAULTS) - set(documented))
    assert not missing, f"docs/settings.md does not list {missing}"
    for key, default in DEFAULTS.items():
        written = ast.literal_eval(documented[key])
        assert (type(written), written) == (type(default), default), (
            f"docs/settings.md gives {key} the default {documented[key]}, the code {default!r}")


def test_settings_md_lists_no_setting_that_does_not_exist():
    assert sorted(set(documented_settings()) - set(DEFAULTS)) == []


def test_api_md_mentions_every_public_name():
    text = (DOCS / "api.md").read_text()
    missing = [name for name in pgbulk.__all__
               if not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)]
    assert not missing, f"docs/api.md does not mention {missing}"

"""Every user-facing string can be translated: ``makemessages`` collects pgbulk's strings
(templates, views, forms, the admin, job pages, system checks) without a warning. Run on a
copy of the package in a temporary folder; nothing is written to the repository. No database.
"""

from __future__ import annotations

import re
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

PACKAGE = Path(__file__).resolve().parents[2] / "pgbulk"

#: One string of each kind of place, as it must appear in the catalogue.
EXPECTED = [
    "Cancel job",  # progress fragment (template)
    "Apply to %(n)s record",  # bulk form (template, plural, the count grouped)
    "Tick at least one field to change.",  # form
    "You may not change these records.",  # list view
    "Bulk edit selected %(name)s",  # admin action
    "Bulk jobs",  # dashboard, app name
    "Succeeded",  # job status
    "No such job.",  # job pages
    "pgbulk needs PostgreSQL.",  # system check
    "No live Procrastinate worker: start 'manage.py procrastinate worker --queues %(queue)s'.",
]


@pytest.fixture(scope="module")
def makemessages(tmp_path_factory) -> tuple[str, str]:
    """(what makemessages said, the .po file it wrote) for a copy of the package."""
    if shutil.which("xgettext") is None:
        pytest.skip("GNU gettext is not installed (apt-get install gettext; ./dev test does)")
    copy = tmp_path_factory.mktemp("makemessages") / "pgbulk"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "locale"))
    (copy / "locale").mkdir()
    out, err = StringIO(), StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        call_command("makemessages", locale=["de"], verbosity=1, no_wrap=True,
                     stdout=out, stderr=err)
    po = (copy / "locale" / "de" / "LC_MESSAGES" / "django.po").read_text()
    return out.getvalue() + err.getvalue(), po


def test_makemessages_runs_without_a_warning(makemessages):
    said, _po = makemessages
    assert said.strip() == "processing locale de", said


@pytest.mark.parametrize("text", EXPECTED)
def test_the_catalogue_holds_what_users_read(makemessages, text):
    _said, po = makemessages
    assert f'msgid "{text}"' in po


def test_placeholders_are_named_so_translators_may_reorder_them(makemessages):
    _said, po = makemessages
    msgids = re.findall(r'^msgid(?:_plural)? "(.*)"$', po, flags=re.M)
    unnamed = [text for text in msgids if len(re.findall(r"%[-+ #0-9.]*[sdifr]", text)) > 1]
    assert unnamed == []

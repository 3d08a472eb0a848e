"""Release hygiene: version, changelog, and the built wheel working in a fresh virtualenv."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import psycopg
import pytest
from django.db import connection

import pgbulk

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_declared_once_and_in_the_changelog():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pgbulk.__version__ == version
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()


SETTINGS = """
import os
from urllib.parse import urlsplit
url = urlsplit(os.environ["CHECK_DATABASE_URL"])
SECRET_KEY = "check"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_htmx",
                  "pgtrigger", "procrastinate.contrib.django", "pgbulk", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": url.path[1:],
             "USER": url.username, "HOST": url.hostname, "PORT": url.port}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PGBULK = {"ASYNC_ENABLED": False}
"""

MODELS = """
from django.db import models

class Item(models.Model):
    name = models.CharField(max_length=50)
    price = models.IntegerField(default=0)
"""

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("makemigrations", "shop", verbosity=0)
call_command("migrate", verbosity=0)
import pgbulk
from shop.models import Item
Item.objects.bulk_create(Item(name=str(i)) for i in range(30))
job = pgbulk.bulk_update(Item.objects.all(), {"price": 5})
print(job.status, job.done, sorted(set(Item.objects.values_list("price", flat=True))))
call_command("pgbulk_cleanup", "--json")
"""


@pytest.mark.slow
@pytest.mark.django_db  # only for the server's address: it makes a database of its own
def test_the_wheel_installs_into_a_fresh_virtualenv_migrates_and_runs_a_job(tmp_path):
    dist, venv, project = tmp_path / "dist", tmp_path / "venv", tmp_path / "project"
    run = lambda *argv, **kw: subprocess.run(argv, capture_output=True, text=True, **kw)  # noqa: E731
    built = run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
                cwd=ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("*.whl")
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    installed = run(str(venv / "bin" / "pip"), "install", "-q", str(wheel), timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]

    (project / "shop" / "migrations").mkdir(parents=True)
    (project / "shop" / "__init__.py").write_text("")
    (project / "shop" / "migrations" / "__init__.py").write_text("")
    (project / "shop" / "models.py").write_text(textwrap.dedent(MODELS))
    (project / "check_settings.py").write_text(textwrap.dedent(SETTINGS))
    (project / "check.py").write_text(textwrap.dedent(SCRIPT))

    s = connection.settings_dict
    server = f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS pgbulk_wheel_check")
        admin.execute("CREATE DATABASE pgbulk_wheel_check")
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "check_settings",
           "CHECK_DATABASE_URL": f"{server}/pgbulk_wheel_check", "PYTHONPATH": str(project)}
    result = run(str(venv / "bin" / "python"), "check.py", cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0] == "succeeded 30 [5]"
    assert '"skipped": false' in result.stdout

"""The docker files, checked statically (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path

import yaml
from django.core.management import get_commands
from django.test import override_settings

from pgbulk.conf import DEFAULTS, pgbulk_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def app_services() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def test_build_context_and_dockerfile_exist_and_copy_real_paths():
    for service in app_services().values():
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == ROOT
        dockerfile = context / service["build"]["dockerfile"]
        assert dockerfile.is_file()
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                *sources, _target = line.split()[1:]
                for source in sources:
                    assert (context / source).exists(), f"{dockerfile.name} copies missing {source}"


def commands_of(service: dict) -> list[list[str]]:
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def test_every_command_exists():
    known = get_commands()
    seen = set()
    for service in app_services().values():
        for argv in commands_of(service):
            if argv[:2] == ["python", "manage.py"]:
                assert argv[2] in known, f"no management command {argv[2]!r}"
                seen.add(argv[2])
            else:
                assert argv[0] == "gunicorn"
                module, _, attribute = argv[-1].partition(":")
                assert hasattr(importlib.import_module(module), attribute)
    assert {"migrate", "procrastinate", "seed_library", "ensure_demo_user"} <= seen
    cmd = next(line for line in (DOCKER / "Dockerfile").read_text().splitlines()
               if line.startswith("CMD "))
    assert json.loads(cmd[4:]) == app_services()["web"]["command"]


def test_configuration_comes_from_the_environment():
    services = app_services()
    for service in services.values():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        knobs = {key[len("PGBULK_"):] for key in env if key.startswith("PGBULK_")}
        assert knobs <= set(DEFAULTS), knobs - set(DEFAULTS)
    assert compose()["services"]["db"]["image"].startswith("postgres:")


def test_the_worker_scales():
    worker = compose()["services"]["worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert worker["command"][-2:] == ["--queues", "pgbulk"]


def test_readme_and_compose_agree():
    readme = (ROOT / "README.md").read_text()
    assert "docker compose -f docker/compose.yaml up --build --scale worker=3" in readme
    assert "docker compose -f docker/compose.yaml up --build --scale worker=3" in (
        DOCKER / "compose.yaml").read_text()
    for service in ("db", "migrate", "web", "worker"):
        assert re.search(rf"`{service}`", readme), f"README does not describe {service}"


def test_settings_read_every_knob_from_the_environment(monkeypatch):
    import testproject.settings as project_settings

    monkeypatch.setenv("PGBULK_CHUNK_SIZE", "77")
    monkeypatch.setenv("PGBULK_ASYNC_ENABLED", "false")
    reloaded = importlib.reload(project_settings)
    try:
        with override_settings(PGBULK=reloaded.PGBULK):  # text, read by pgbulk as typed
            assert pgbulk_settings.CHUNK_SIZE == 77 and pgbulk_settings.ASYNC_ENABLED is False
    finally:
        monkeypatch.undo()
        importlib.reload(project_settings)


def docker_ignores(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching rule wins;
    a rule matching a folder covers what is inside it)."""
    def regex(pattern: str) -> re.Pattern:
        parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
        wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(wild.get(p, re.escape(p)) for p in parts) + "(?:/.*)?")

    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if regex(pattern.lstrip("!")).fullmatch(path):
            ignored = not negated
    return ignored


def test_the_build_context_carries_what_the_image_copies_and_nothing_local():
    context = (DOCKER / app_services()["web"]["build"]["context"]).resolve()
    patterns = [line.strip() for line in (context / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [source for line in (DOCKER / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") for source in line.split()[1:-1]]
    assert copied
    for source in copied:
        assert not docker_ignores(patterns, source.rstrip("/")), f"{source} is left out"
    assert not docker_ignores(patterns, "pgbulk/templates/pgbulk/base.html")
    for local in (".venv/bin/python", ".venv-django6.0/bin/python", ".pgdata/data/PG_VERSION",
                  ".git/HEAD", "artifacts/screenshots/a.png", ".coverage", "tests/conftest.py",
                  "pgbulk/__pycache__/views.cpython-311.pyc"):
        assert docker_ignores(patterns, local), f"{local} would be sent to the Docker daemon"

"""Dependencies point one way: the models are the bottom layer, and what their façade
methods (``Job.cancel()``, ``Job.progress()``) call never reaches the executor. Read from
the source (every import, module-level or inside a function). No database."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pgbulk"

#: The code that runs jobs; nothing below it may import it.
EXECUTOR = {"pgbulk.execute", "pgbulk.job_tasks", "pgbulk.runtime", "pgbulk.strategies",
            "pgbulk.launch", "pgbulk.tasks", "pgbulk.undoing"}


def imports(module: str) -> dict[str, bool]:
    """``{imported pgbulk module: at module level?}`` of one pgbulk module."""
    tree = ast.parse((PACKAGE / f"{module.removeprefix('pgbulk.')}.py").read_text())
    top = {id(node) for node in tree.body}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pgbulk"):
            names = [f"{node.module}.{a.name}" if node.module == "pgbulk" else node.module
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("pgbulk")]
        for name in names:
            if (PACKAGE / f"{name.removeprefix('pgbulk.')}.py").exists():
                found[name] = found.get(name, False) or id(node) in top
    return found


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports(module))
    return seen


def test_the_models_import_nothing_of_pgbulk_at_module_level():
    assert [name for name, top in imports("pgbulk.models").items() if top] == []


def test_the_job_methods_call_the_cancel_and_progress_modules_only():
    assert set(imports("pgbulk.models")) == {"pgbulk.cancel", "pgbulk.progress"}


def test_cancelling_and_reading_progress_never_reach_the_executor():
    for start in ("pgbulk.cancel", "pgbulk.progress"):
        assert reachable(start) & EXECUTOR == set(), start

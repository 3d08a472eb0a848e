"""Steps the browser tests share: screenshots, dialogs, the bulk form, overflow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
#: pytestmark of browser test modules.
browser_test = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
    pytest.mark.slow,
]


def shot(page, name: str, *, full: bool = True) -> None:
    """A screenshot in artifacts/screenshots (``full=False``: what the window shows)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def accept_dialogs(page) -> list[str]:
    """Accept every confirm() from now on; returns the list of questions asked."""
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    return asked


def open_edit_form(page, url: str = "/?status=draft") -> None:
    """Tick the page; when the list has more pages, select all matching."""
    page.goto(url)
    page.check(".pgbulk-page")
    if page.is_visible("#pgbulk-select-matching"):
        page.click("#pgbulk-select-matching")
    page.click("#pgbulk-edit")
    page.wait_for_selector("#pgbulk-modal[open] .pgbulk-form")


def submit_edit(page, field: str, value: str) -> None:
    """In the open bulk form: give ``field`` a ``value`` (which ticks it), apply."""
    widget = page.locator(f"#pgbulk-modal [name={field}]")
    if widget.evaluate("el => el.tagName") == "SELECT":
        widget.select_option(value)
    else:
        widget.fill(value)
    assert page.is_checked(f"#pgbulk-modal input[name=change_{field}]")
    page.click("#pgbulk-modal button[type=submit]")


def overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")

"""Browser fixtures: Debian's chromium via Playwright against pytest-django's live server.

Test modules load them with ``pytest_plugins = ["tests.browser"]`` (once per session,
however many modules do); their steps are in tests/browser_steps.py.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.browser_steps import CHROMIUM, PHONE, shot

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def logged_in(browser, live_server, user: User, **options):
    """A new browser page with ``user``'s session (options: viewport, is_mobile...)."""
    client = Client()
    client.force_login(user)
    options = {"viewport": {"width": 1300, "height": 900}, **options}
    context = browser.new_context(base_url=live_server.url, **options)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


@pytest.fixture
def page(browser, live_server, request):
    page = logged_in(browser, live_server, User.objects.create_superuser("demo", password="demo"))
    yield page
    shot(page, f"last-{request.node.name}")  # what the page showed at the end, pass or fail
    page.context.close()


@pytest.fixture
def phone(browser, live_server, request):
    page = logged_in(browser, live_server, User.objects.create_superuser("demo", password="demo"),
                     **PHONE)
    yield page
    shot(page, f"last-{request.node.name}")
    page.context.close()

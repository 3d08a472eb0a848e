"""Benchmark cases through the list view over real HTTP: a select-all launch, a preview."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore

from pgbulk.models import Job
from testproject.library.bench import ROOT


class ListViewClient:
    """The sample's runserver on a free port, and a logged-in staff user's session."""

    def __init__(self, queue: str) -> None:
        self.queue = queue

    def __enter__(self) -> ListViewClient:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{self.port}",
             "--noreload", "--nothreading"],
            cwd=ROOT, env={**os.environ, "DJANGO_DEBUG": "0", "PGBULK_QUEUE": self.queue},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.session = self.log_in()
        self.csrf = self.wait_for_list()
        return self

    def __exit__(self, *exc) -> None:
        self.server.terminate()
        self.server.wait(30)

    def log_in(self) -> str:
        user, _ = User.objects.get_or_create(username="bench", defaults={
            "is_staff": True, "is_superuser": True})
        session = SessionStore()
        session.update({SESSION_KEY: str(user.pk), HASH_SESSION_KEY: user.get_session_auth_hash(),
                        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend"})
        session.create()
        return session.session_key or ""

    def request(self, method: str, data: dict | None = None):
        body = urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/", data=body,
                                         method=method)
        request.add_header("Cookie", f"sessionid={self.session}"
                           + (f"; csrftoken={self.csrf}" if getattr(self, "csrf", None) else ""))
        if data is not None:
            request.add_header("X-CSRFToken", self.csrf)
        return urllib.request.urlopen(request, timeout=120)

    def wait_for_list(self) -> str:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = self.request("GET")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        for header in response.headers.get_all("Set-Cookie") or []:
            if header.startswith("csrftoken="):
                return header.split(";")[0].split("=", 1)[1]
        raise RuntimeError("the list page set no CSRF cookie")

    def launch_select_all(self) -> float:
        """Seconds for the one request that reserves every book and queues the job."""
        start = time.perf_counter()
        response = self.request("POST", {"bulk_action": "edit", "select_all": "1",
                                         "bulk_querystring": "", "change_price": "on",
                                         "price": "5"})
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"the launch answered {response.status}")
        job = Job.objects.order_by("-created_at").first()
        if job is None or job.status != "queued":
            raise RuntimeError(f"no queued job after the launch: {job}")
        job.cancel()
        return elapsed

    def preview_select_all(self) -> float:
        """Seconds for the Preview button's request on every book (nothing is written)."""
        start = time.perf_counter()
        response = self.request("POST", {"bulk_action": "preview", "select_all": "1",
                                         "bulk_querystring": "", "change_status": "on",
                                         "status": "published"})
        body = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200 or b"pgbulk-preview-result" not in body:
            raise RuntimeError(f"the preview answered {response.status}")
        return elapsed

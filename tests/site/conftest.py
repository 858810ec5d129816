"""Fixtures of the site tests: the built book served locally, one headless Chromium.

The site tests build nothing. They serve the already-built ``_build/html`` on 127.0.0.1 and
drive the system's Chromium through Playwright (never a downloaded browser). They skip, with
the reason, when the book is not built, Playwright is missing or no Chromium is found; set
``SITE_TESTS_REQUIRED=1`` (as CI does) to make those a failure instead of a skip.

Every request to a host other than 127.0.0.1 is aborted, so the tests behave the same with or
without a network; what the pages asked for is listed at the end of the test run.

Environment:
    SITE_CHROMIUM        the Chromium executable (default: /usr/bin/chromium, else `chromium`
                         on PATH)
    SITE_TESTS_REQUIRED  1: fail instead of skipping when something above is missing
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import threading
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    from hygiene import ROOT
except ImportError:  # run from somewhere that did not put tests/ on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hygiene import ROOT

HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
VIEWPORT = {"width": 1280, "height": 900}  # wide enough for the theme to show the sidebar
TIMEOUT_MS = 20_000

# Page errors that are known, harmless and not ours to fix, matched exactly. Anything else
# thrown by a page fails the test.
KNOWN_PAGE_ERRORS = {
    # Sphinx 7.4 adds sphinx-thebe's inline configuration script to every page twice (it
    # registers it once with the builder and once more from the registry), so the second
    # copy redeclares the constants the first already defined. Thebe is unaffected.
    "Identifier 'THEBE_JS_URL' has already been declared",
}

# Every external URL any page asked for, with the pages that asked: printed at the end.
EXTERNAL_REQUESTS: dict[str, set[str]] = defaultdict(set)


def _unavailable(reason: str):
    if os.environ.get("SITE_TESTS_REQUIRED", "") not in ("", "0"):
        pytest.fail(f"{reason} (SITE_TESTS_REQUIRED is set)", pytrace=False)
    pytest.skip(reason)


def is_external(url: str) -> bool:
    """A network URL whose host is not the local test server (data: and blob: are local)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != LOCAL_HOST


def find_chromium() -> str | None:
    configured = os.environ.get("SITE_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    return shutil.which("chromium")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def site_url():
    """Base URL (ending in /) of the built book, served from a background thread."""
    if not (HTML / "index.html").is_file():
        _unavailable("build the book first: make book")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("install playwright (pinned in requirements.txt) to run the site tests")
    executable = find_chromium()
    if executable is None:
        where = os.environ.get("SITE_CHROMIUM") or DEFAULT_CHROMIUM
        _unavailable(
            f"no Chromium at {where}: install Debian's chromium to run the site tests; "
            ".ci/run installs it (or point SITE_CHROMIUM at a Chromium)"
        )
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def screenshots():
    """The folder of the full-page screenshots, emptied of the previous run's."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


class PageLog:
    """What one page did: errors it threw or logged, requests that failed or were refused."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.page_errors: list[str] = []
        self.console_errors: list[tuple[str, str]] = []  # (text, URL of the source)
        self.failed: list[tuple[str, str]] = []  # (URL, reason)
        self.bad_responses: list[tuple[str, int]] = []  # local URLs answered with >= 400

    def attach(self, page) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(error.message))
        page.on("console", self._on_console)
        page.on("requestfailed", lambda req: self.failed.append((req.url, req.failure or "")))
        page.on("response", self._on_response)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, message.location.get("url", "")))

    def _on_response(self, response) -> None:
        if response.status >= 400 and not is_external(response.url):
            self.bad_responses.append((response.url, response.status))

    @staticmethod
    def is_external(url: str) -> bool:
        return is_external(url)

    def _is_favicon_probe(self, url: str) -> bool:
        # The browser asks the server root for /favicon.ico by itself; the book has none.
        return url == self.base_url + "favicon.ico"

    def problems(self) -> list[str]:
        """Every error that is not explained by a refused external request, one per line."""
        failed_external = {url for url, _ in self.failed if is_external(url)}
        problems = []
        for message in self.page_errors:
            if message in KNOWN_PAGE_ERRORS or any(url in message for url in failed_external):
                continue
            problems.append(f"uncaught JavaScript error: {message}")
        for text, source in self.console_errors:
            if text.startswith("Failed to load resource") and (
                source in failed_external or self._is_favicon_probe(source)
            ):
                continue
            if any(url in text for url in failed_external):
                continue
            problems.append(f"console error: {text}" + (f" (at {source})" if source else ""))
        for url, reason in self.failed:
            if not is_external(url):
                problems.append(f"request failed: {url} ({reason})")
        for url, status in self.bad_responses:
            if not self._is_favicon_probe(url):
                problems.append(f"HTTP {status}: {url}")
        return problems


class Visit:
    """One page of the site, opened in a fresh browser context (a first-time visitor)."""

    def __init__(self, browser, site_url: str, path: str):
        self.path = path  # relative to the site root, with any query string
        self.url = site_url + path
        self.context = browser.new_context(viewport=VIEWPORT, service_workers="block")
        self.context.set_default_timeout(TIMEOUT_MS)
        self.log = PageLog(site_url)
        label = path.split("?")[0].removesuffix(".html") or "index"

        def refuse(route):  # every host but the local server
            EXTERNAL_REQUESTS[route.request.url].add(label)
            route.abort("blockedbyclient")

        try:
            self.context.route(is_external, refuse)
            self.page = self.context.new_page()
            self.log.attach(self.page)
            self.response = self.page.goto(self.url, wait_until="load")
        except Exception:
            self.context.close()
            raise

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_visit(browser, site_url):
    """Open a page of the site (a path relative to its root); closed after the test."""
    visits = []

    def open_(path: str) -> Visit:
        visits.append(Visit(browser, site_url, path))
        return visits[-1]

    yield open_
    for visit in visits:
        visit.close()


@pytest.fixture(scope="module")
def page_visit(request, browser, site_url):
    """The page of a toc entry (``request.param``, e.g. book/intro), loaded once.

    Parametrize tests with ``indirect=True, scope="module"``: pytest then runs every test of
    one page in a row on this one load, and closes it before opening the next page.
    """
    visit = Visit(browser, site_url, f"{request.param}.html")
    yield visit
    visit.close()


def pytest_terminal_summary(terminalreporter):
    if not EXTERNAL_REQUESTS:
        return
    terminalreporter.section("site: external requests (refused; they need the network)")
    for url in sorted(EXTERNAL_REQUESTS):
        pages = sorted(EXTERNAL_REQUESTS[url])
        terminalreporter.write_line(f"{url}  <- {len(pages)} page(s): {', '.join(pages)}")

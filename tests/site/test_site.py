"""The rendered web site, in a real headless browser: what a reader of the book sees.

For every page of the table of contents: it loads without JavaScript errors, its images
load, the sidebar links every page of the book, notebook chapters have Binder and Colab
launch buttons for their own notebook, and a full-page screenshot lands in
_build/screenshots/. The search page finds a word. axe-core finds nothing critical or
serious on any page, in the light and the dark theme, and figures stay readable in the dark
theme. Every formula is typeset by the MathJax the site serves itself (the tests refuse
every other host, so a MathJax from a CDN would leave TeX source). Each page is loaded once
and shared by its tests. See conftest.py for how the site is served and which browser runs;
the book must be built first (make book).
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urldefrag, urlsplit

import pytest

from hygiene import ROOT, load_config, toc_files

CONFIG = load_config()
PAGES = toc_files()  # the root first, then every `file:` entry, without suffix
NOTEBOOK_PAGES = [page for page in PAGES if (ROOT / f"{page}.ipynb").is_file()]


def each(pages):
    """Parametrize a test over ``pages``, sharing one load of each page (see page_visit)."""
    return pytest.mark.parametrize("page_visit", pages, indirect=True, scope="module")


WAIT_FOR_IMAGES = """
async (selector) => {
  const images = Array.from(document.querySelectorAll(selector));
  images.forEach((img) => { if (img.loading === "lazy") img.loading = "eager"; });
  const settled = (img) => img.complete ? null : new Promise((done) => {
    img.addEventListener("load", done, { once: true });
    img.addEventListener("error", done, { once: true });
  });
  const timeout = new Promise((done) => setTimeout(done, 10000));
  await Promise.race([Promise.all(images.map(settled)), timeout]);
  return images.map((img) => ({
    src: img.currentSrc || img.src, width: img.naturalWidth, complete: img.complete,
  }));
}
"""


def assert_loaded(visit) -> None:
    assert visit.response is not None, f"{visit.path}: no response"
    assert visit.response.status == 200, f"{visit.path}: HTTP {visit.response.status}"


@each(PAGES)
def test_page_loads_without_errors(page_visit, screenshots):
    visit, page = page_visit, page_visit.page
    assert_loaded(visit)
    title = page.locator("main article h1").first
    assert title.count() and title.is_visible() and title.inner_text().strip(), (
        f"{visit.path}: the article has no visible title; the page did not render"
    )
    page.evaluate("() => document.fonts.ready.then(() => true)")
    name = PurePosixPath(visit.path).stem
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    problems = visit.log.problems()
    assert not problems, f"{visit.path}:\n  " + "\n  ".join(problems)


@each(PAGES)
def test_images_load(page_visit):
    visit = page_visit
    assert_loaded(visit)
    images = visit.page.evaluate(WAIT_FOR_IMAGES, "#main-content img")
    broken = [
        image["src"]
        for image in images
        if not (image["complete"] and image["width"] > 0)
        and not visit.log.is_external(image["src"])
    ]
    assert not broken, f"{visit.path}: images that did not load:\n  " + "\n  ".join(broken)


def expected_sidebar_pages() -> set[str]:
    pages = set(PAGES)
    if not CONFIG.get("html", {}).get("home_page_in_navbar", True):
        pages.discard(PAGES[0])
    return pages


@each(PAGES)
def test_sidebar_links_every_page(page_visit, site_url):
    visit = page_visit
    assert_loaded(visit)
    nav = visit.page.locator("nav.bd-docs-nav")
    assert nav.count() == 1, f"{visit.path}: no primary sidebar (nav.bd-docs-nav)"
    assert nav.is_visible(), f"{visit.path}: the primary sidebar is hidden at desktop width"
    hrefs = nav.evaluate("(nav) => Array.from(nav.querySelectorAll('a[href]'), (a) => a.href)")
    linked = set()
    for href in hrefs:
        target = urldefrag(href).url
        if target.startswith(site_url) and target.endswith(".html"):
            linked.add(target[len(site_url) : -len(".html")])
    missing = sorted(expected_sidebar_pages() - linked)
    stray = sorted(linked - set(PAGES))
    assert not missing, f"{visit.path}: the sidebar does not link {missing}"
    assert not stray, f"{visit.path}: the sidebar links pages outside _toc.yml: {stray}"


def launch_targets(page_name: str) -> dict[str, str]:
    """Where the launch buttons of a notebook page must point, from _config.yml."""
    repo = CONFIG["repository"]
    buttons = CONFIG.get("launch_buttons", {})
    slug = urlsplit(repo["url"]).path.strip("/")  # owner/name
    branch = repo.get("branch", "master")
    book = (repo.get("path_to_book") or "").strip("/")
    notebook = f"{book}/{page_name}.ipynb" if book else f"{page_name}.ipynb"
    binder = buttons.get("binderhub_url", "https://mybinder.org").rstrip("/")
    colab = buttons.get("colab_url", "https://colab.research.google.com").rstrip("/")
    return {
        "binder_buttons": f"{binder}/v2/gh/",  # every Binder launch link starts so
        "binder_repo": f"{binder}/v2/gh/{slug}/{branch}?",
        "binder_notebook": f"/{notebook}",
        "colab_buttons": f"{colab}/github/",
        "colab": f"{colab}/github/{slug}/blob/{branch}/{notebook}",
    }


@each(NOTEBOOK_PAGES)
def test_launch_buttons_open_this_notebook(page_visit):
    visit = page_visit
    assert_loaded(visit)
    hrefs = visit.page.eval_on_selector_all(
        "a[href]", "(links) => links.map((a) => a.getAttribute('href'))"
    )
    want = launch_targets(visit.path.removesuffix(".html"))
    binder = [href for href in hrefs if href.startswith(want["binder_buttons"])]
    colab = [href for href in hrefs if href.startswith(want["colab_buttons"])]
    assert binder, f"{visit.path}: no Binder launch button (no link to {want['binder_buttons']})"
    assert colab, f"{visit.path}: no Colab launch button (no link to {want['colab_buttons']})"
    for href in binder:
        assert href.startswith(want["binder_repo"]) and href.endswith(want["binder_notebook"]), (
            f"{visit.path}: the Binder button opens {href}; expected "
            f"{want['binder_repo']}...{want['binder_notebook']} (repository, branch: _config.yml)"
        )
    for href in colab:
        assert href == want["colab"], (
            f"{visit.path}: the Colab button opens {href}; expected {want['colab']}"
        )


def test_index_redirects_to_the_first_page(open_visit, site_url):
    visit = open_visit("")
    visit.page.wait_for_url(f"{site_url}{PAGES[0]}.html")


SEARCH_FINISHED = """() => {
  const summary = document.querySelector("#search-results p.search-summary");
  return summary !== null && summary.innerText.trim() !== "";
}"""  # Sphinx's search fills in the summary line once the last result is shown


def test_search_finds_a_word(open_visit, site_url, screenshots):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    word = "reparameterization"
    visit = open_visit(f"search.html?q={word}")
    assert_loaded(visit)
    try:
        visit.page.wait_for_function(SEARCH_FINISHED)
    except PlaywrightTimeout:
        pytest.fail(f"{visit.path}: the search did not finish (searchindex.js, searchtools.js?)")
    visit.page.screenshot(path=str(screenshots / "search.png"), full_page=True)
    summary = visit.page.locator("#search-results p.search-summary").inner_text()
    hrefs = visit.page.locator("#search-results ul.search li a").evaluate_all(
        "(links) => links.map((a) => a.href)"
    )
    pages = sorted({urldefrag(href).url for href in hrefs})
    assert pages, f"{visit.path}: no results; the page says {summary!r}"
    assert any(url.startswith(site_url) and url.endswith(".html") for url in pages), (
        f"{visit.path}: the results link no page of the book: {pages}"
    )
    problems = visit.log.problems()
    assert not problems, f"{visit.path}:\n  " + "\n  ".join(problems)


TYPESET = r"""
async () => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return null;
  await MathJax.startup.promise;
  const article = document.querySelector("main article");
  const text = article ? article.innerText : "";
  return {
    version: MathJax.version,
    containers: document.querySelectorAll("mjx-container").length,
    errors: Array.from(document.querySelectorAll("mjx-merror")).map((e) =>
      (e.getAttribute("data-mjx-error") || e.textContent).slice(0, 120)),
    source: (text.match(/\\\(|\\\[|\\begin\{/g) || []).length,
  };
}
"""


@each(PAGES)
def test_formulas_typeset_offline(page_visit):
    """Every formula of the page is typeset without a TeX error, by the site's own MathJax.

    Pages with math show no TeX delimiters as text once MathJax is done; a page without
    formulas passes trivially. Catches a MathJax loaded from a CDN (refused here), a
    misconfigured copy (no MathJax object), and TeX errors (undefined macros: mjx-merror).
    """
    visit = page_visit
    assert_loaded(visit)
    result = visit.page.evaluate(TYPESET)
    has_math = visit.page.locator(".math").count() > 0
    if not has_math:
        return
    assert result is not None, f"{visit.path}: MathJax did not load (served from the site?)"
    assert result["containers"] > 0, f"{visit.path}: no formula was typeset"
    assert not result["errors"], f"{visit.path}: TeX errors: {result['errors']}"
    assert result["source"] == 0, f"{visit.path}: {result['source']} formulas left as TeX"


AXE = Path(sys.prefix) / "share" / "axe-core" / "axe-4.14.1.min.js"  # scripts/fetch_axe.py
AXE_RUN = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, nodes: v.nodes.length,
    first: v.nodes[0].target.join(" "), why: v.nodes[0].failureSummary,
  }));
}
"""


def axe_violations(page) -> list[dict]:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: make install runs scripts/fetch_axe.py")
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate(AXE_RUN)


def _serious(violations) -> list[str]:
    return [
        f"{v['impact']} {v['id']} on {v['nodes']} node(s), e.g. {v['first']}: {v['why']}"
        for v in violations
        if v["impact"] in ("critical", "serious")
    ]


@each(PAGES)
def test_no_critical_or_serious_accessibility_violations(page_visit):
    """axe-core (WCAG 2 A and AA rules) on every page, in the light theme: nothing critical
    or serious (contrast, names of controls, ARIA structure). Moderate and minor findings are
    not counted."""
    visit = page_visit
    assert_loaded(visit)
    problems = _serious(axe_violations(visit.page))
    assert not problems, f"{visit.path}:\n  " + "\n  ".join(problems)


FIGURE_PIXELS = """
async () => {
  const images = Array.from(document.querySelectorAll("#main-content .cell_output img"))
    .filter((img) => img.complete && img.naturalWidth > 0);
  return images.map((img) => {
    const canvas = document.createElement("canvas");
    const w = img.naturalWidth, h = img.naturalHeight;
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const { data } = ctx.getImageData(0, 0, w, h);
    let opaque = 0, n = 0;
    for (let i = 0; i < data.length; i += 4 * 97) { n += 1; if (data[i + 3] === 255) opaque += 1; }
    const corners = [[1, 1], [w - 2, 1], [1, h - 2], [w - 2, h - 2]].map(([x, y]) => {
      const p = ctx.getImageData(x, y, 1, 1).data;
      return p[3] === 255 && p[0] + p[1] + p[2] > 700;
    });
    return { src: img.src.split("/").pop(), opaque: opaque / n, lightCorners: corners };
  });
}
"""


@each(NOTEBOOK_PAGES)
def test_dark_theme_keeps_text_and_figures_readable(browser, site_url, screenshots, page_visit):
    """The same page in the dark theme (the reader's system setting, which the site follows):
    axe finds nothing critical or serious, and every figure (a cell's image output) is fully
    opaque with the white margin of its canvas, so its dark text and lines stay readable on
    the dark page (a transparent figure would put black text on near-black). A screenshot of
    each page lands in _build/screenshots/dark/."""
    path = page_visit.path
    context = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 900})
    try:
        context.route(lambda url: not url.startswith(site_url), lambda route: route.abort())
        page = context.new_page()
        page.goto(site_url + path, wait_until="load")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        problems = _serious(axe_violations(page))
        page.evaluate(WAIT_FOR_IMAGES, "#main-content img")
        figures = page.evaluate(FIGURE_PIXELS)
        unreadable = [f for f in figures if f["opaque"] < 1 or not all(f["lightCorners"])]
        (screenshots / "dark").mkdir(exist_ok=True)
        page.screenshot(
            path=str(screenshots / "dark" / f"{PurePosixPath(path).stem}.png"), full_page=True
        )
    finally:
        context.close()
    assert not problems, f"{path} (dark):\n  " + "\n  ".join(problems)
    assert not unreadable, (
        f"{path} (dark): figures without an opaque light background: {unreadable}"
    )

"""The built book as a reader sees it: every page opened in headless Chromium.

The book is built once per session (``book_build`` in conftest.py), served from a local
``http.server`` on a free port of 127.0.0.1, and every HTML page is opened in Debian's headless
``chromium`` driven by Selenium through the system ``chromedriver`` (nothing is downloaded:
``SE_OFFLINE=true`` and explicit paths keep Selenium Manager out). Each page is visited once; the
tests below then assert, page by page:

- no console error (browser log level SEVERE: JavaScript errors, resources that failed to load),
  and the server answered no request of the page with an error;
- every ``<img>`` loaded (``naturalWidth > 0``), and every figure in the text has alt text;
- MathJax typeset every equation (each ``.math`` element holds an ``mjx-container``, no
  ``mjx-merror``, no raw ``$$`` left in the visible text outside code);
- every internal link points to a file of the build, and its ``#anchor`` is an id on that page;
- cross-references resolved (no ``???``, no ``None`` in a reference, no ``.xref`` outside a link);
- each chapter page offers its notebook as a download (``_sources/chapters/<name>.ipynb``) and the
  server delivers a valid notebook there.

A full-page screenshot of every page is saved under ``_build/screenshots/`` (git-ignored).

Chromium and chromedriver come from Debian (``make setup`` installs them). Without them the tests
fail; set ``NFR_SKIP_BROWSER=1`` to skip them on purpose.
"""
from __future__ import annotations

import functools
import html.parser
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "_build" / "screenshots"
SETUP_HINT = ("run `make setup` (installs Debian's chromium and chromium-driver) or set NFR_SKIP_BROWSER=1 "
              "to skip the browser tests on purpose")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(os.environ.get("NFR_SKIP_BROWSER") == "1",
                                 reason="NFR_SKIP_BROWSER=1: browser tests skipped on request")]


# --------------------------------------------------------------------------------------------------
# serving the build


class _Handler(SimpleHTTPRequestHandler):
    """Serves the build quietly and records every request that was answered with an error."""

    errors: list  # set per server

    def log_request(self, code="-", size="-"):
        if str(code).isdigit() and int(code) >= 400:
            self.errors.append((self.path, int(code)))

    def log_message(self, *args):  # silence stderr
        pass


@pytest.fixture(scope="module")
def server(book_build):
    assert book_build.proc.returncode == 0, book_build.log
    errors: list = []
    handler = functools.partial(type("H", (_Handler,), {"errors": errors}), directory=str(book_build.html))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", errors
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------------------------------
# the browser


@pytest.fixture(scope="module")
def driver():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {SETUP_HINT}", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {SETUP_HINT}", pytrace=False)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver or a browser
    profile = tempfile.mkdtemp(prefix="nfr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# one visit per page, recorded


_WAIT_MATHJAX = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax;
if (!mj || !mj.startup || !mj.startup.promise) { done(mj ? "no startup promise" : null); return; }
mj.startup.promise.then(() => done("ok"), (e) => done("error: " + e));
"""

_WAIT_IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach((i) => { i.loading = "eager"; });
Promise.all(imgs.map((i) => i.complete ? null : new Promise((r) => { i.onload = i.onerror = r; })))
  .then(() => done(null));
"""

_INSPECT = r"""
const visible = (() => {
  const clone = document.querySelector("main, article, body").cloneNode(true);
  clone.querySelectorAll("pre, code, script, style, .highlight, .cell_output").forEach((e) => e.remove());
  return clone.innerText;
})();
const inText = (img) => !!img.closest("article, .bd-article, main");
return {
  images: Array.from(document.images).map((i) => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
                                                   alt: i.getAttribute("alt"), inText: inText(i),
                                                   natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
                                                   output: !!i.closest(".cell_output"),
                                                   fullWidth: !!i.closest(".tag_full-width")})),
  math: document.querySelectorAll(".math").length,
  mathTypeset: Array.from(document.querySelectorAll(".math")).filter((m) => m.querySelector("mjx-container")).length,
  mjx: document.querySelectorAll("mjx-container").length,
  merror: Array.from(document.querySelectorAll("mjx-merror")).map((e) => e.textContent).slice(0, 5),
  rawDollars: (visible.match(/\$\$/g) || []).length,
  unresolvedText: (visible.match(/.{0,40}\?\?\?.{0,40}/g) || []).slice(0, 5),
  links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.href),
  badRefs: Array.from(document.querySelectorAll("a.reference")).map((a) => a.innerText.trim())
             .filter((t) => /\?\?\?|\bNone\b|%s/.test(t)).slice(0, 5),
  looseXrefs: Array.from(document.querySelectorAll(".xref, .missing"))
             .filter((e) => e.classList.contains("missing") || !e.closest("a")).map((e) => e.textContent).slice(0, 5),
  downloads: Array.from(document.querySelectorAll("a[href$='.ipynb']")).map((a) => a.href),
  title: document.title,
  // sideways scrolling: the page wider than the window, or a table wider than its container
  pageWidth: [document.documentElement.scrollWidth, window.innerWidth],
  wideTables: Array.from(document.querySelectorAll("article table, .bd-article table")).filter((t) => {
      const box = t.parentElement;
      return t.getBoundingClientRect().right > window.innerWidth + 1 || (box && box.scrollWidth > box.clientWidth + 1);
    }).map((t) => (t.innerText || "").slice(0, 60)),
  // an option of a command shown with an en or em dash instead of "--" (typographic "smart"
  // dashes): a reader's copy-paste of the command would fail. All the page's text, code included.
  dashOptions: (document.body.innerText.match(/.{0,40}(^|\s)[\u2013\u2014][a-z][\w-]*/gm) || []).slice(0, 5),
};
"""


def _pages(html: Path) -> list[str]:
    """Every HTML page of the build, as paths relative to the build root."""
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


def _settle(drv, timeout: float = 20.0) -> None:
    """Wait until the page is loaded and its URL stays put (index.html redirects to the root page)."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        state = (drv.current_url, drv.execute_script("return document.readyState"))
        if state == last and state[1] == "complete":
            return
        last = state
        time.sleep(0.3)


def _screenshot(drv, path: Path, width: int = 1280, max_height: int = 16000) -> None:
    """Full-page PNG: the window is made as tall as the page (up to max_height), then restored."""
    height = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(width, min(height + 140, max_height))  # + the window's own frame
    time.sleep(0.3)
    drv.save_screenshot(str(path))
    drv.set_window_size(width, 900)


@pytest.fixture(scope="module")
def visits(book_build, server, driver):
    base, server_errors = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    out = {}
    for page in _pages(book_build.html):
        driver.get_log("browser")  # drain what earlier pages left
        n_err = len(server_errors)
        driver.get(base + page)
        _settle(driver)
        mathjax = driver.execute_async_script(_WAIT_MATHJAX)
        driver.execute_async_script(_WAIT_IMAGES)
        record = driver.execute_script(_INSPECT)
        record["url"] = driver.current_url
        record["mathjax"] = mathjax
        time.sleep(0.2)  # late console messages
        record["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        record["server_errors"] = server_errors[n_err:]
        if page != "index.html":  # index.html only redirects to the introduction
            _screenshot(driver, SCREENSHOTS / (page[:-5].replace("/", "__") + ".png"))
        out[page] = record
    return out


def _report(problems: dict) -> str:
    return "\n".join(f"{page}: {msg}" for page, msgs in problems.items() for msg in msgs)


# --------------------------------------------------------------------------------------------------
# the checks


def test_every_page_of_the_toc_was_built_and_visited(visits):
    import yaml
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert {f + ".html" for f in files} <= set(visits)
    assert visits["index.html"]["url"].endswith(toc["root"] + ".html"), "index.html does not open the root page"


def test_commands_survive_copy_paste(visits):
    """No rendered page shows a command option with a typographic dash (\u2013 or \u2014 where
    "--" was written): copied from the page, such a command fails."""
    problems = {p: v["dashOptions"] for p, v in visits.items() if v["dashOptions"]}
    assert not problems, _report(problems)


def test_claims_page_reads_without_sideways_scrolling(visits):
    """At 1280 px the ledger's tables wrap inside the page: neither the page nor any table on it
    scrolls sideways (the issue's reader requirement for the claims page)."""
    v = visits["book/claims.html"]
    page, window = v["pageWidth"]
    assert page <= window, f"the claims page is {page} px wide in a {window} px window"
    assert not v["wideTables"], f"tables wider than their container: {v['wideTables']}"


def test_no_console_errors(visits):
    problems = {p: v["console"] + [f"server answered {code} for {path}" for path, code in v["server_errors"]]
                for p, v in visits.items()}
    problems = {p: m for p, m in problems.items() if m}
    assert not problems, _report(problems)


def test_every_image_loads_and_figures_have_alt_text(visits):
    problems = {}
    for page, v in visits.items():
        bad = [f"image not loaded: {i['src']}" for i in v["images"] if not i["ok"]]
        bad += [f"image without alt text: {i['src']}" for i in v["images"] if i["inText"] and not (i["alt"] or "").strip()]
        if bad:
            problems[page] = bad
    assert not problems, _report(problems)
    chapters = [p for p in visits if p.startswith("chapters/")]
    assert chapters and all(visits[p]["images"] for p in chapters), "a chapter page shows no image"


def test_mathjax_typesets_every_equation(visits):
    problems = {}
    for page, v in visits.items():
        bad = []
        if v["math"]:
            if v["mathjax"] != "ok":
                bad.append(f"MathJax did not start: {v['mathjax']}")
            if v["mathTypeset"] < v["math"]:
                bad.append(f"{v['math'] - v['mathTypeset']} of {v['math']} equations not typeset")
        if v["merror"]:
            bad.append(f"MathJax errors: {v['merror']}")
        if v["rawDollars"]:
            bad.append(f"{v['rawDollars']} raw $$ left in the text")
        if bad:
            problems[page] = bad
    assert not problems, _report(problems)
    assert sum(v["mjx"] for v in visits.values()) > 100, "hardly any typeset math in the whole book"


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, val in attrs:
            if k in ("id", "name") and val:
                self.ids.add(val)


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def test_internal_links_and_anchors_resolve(visits, server, book_build):
    base = server[0]
    problems, checked = {}, 0
    for page, v in visits.items():
        bad = []
        for href in dict.fromkeys(v["links"]):
            if not href.startswith(base):
                continue  # another host (citations' DOIs, ...): not followed offline
            url = urllib.parse.urlsplit(href)
            rel = urllib.parse.unquote(url.path)[1:]
            target = book_build.html / rel
            if rel == "" or target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file():
                bad.append(f"broken link: {href}")
            elif url.fragment and target.suffix == ".html" and urllib.parse.unquote(url.fragment) not in _ids(target):
                bad.append(f"missing anchor: {href}")
        if bad:
            problems[page] = bad
    assert not problems, _report(problems)
    assert checked > 100


def test_cross_references_resolve(visits):
    problems = {}
    for page, v in visits.items():
        bad = [f"unresolved text: {t!r}" for t in v["unresolvedText"]]
        bad += [f"reference shows {t!r}" for t in v["badRefs"]]
        bad += [f"unresolved cross-reference: {t!r}" for t in v["looseXrefs"]]
        if bad:
            problems[page] = bad
    assert not problems, _report(problems)


def test_each_chapter_offers_its_notebook_for_download(visits, server):
    base = server[0]
    chapters = sorted(ROOT.glob("chapters/*.ipynb"))
    assert chapters
    for nb in chapters:
        v = visits[f"chapters/{nb.stem}.html"]
        expected = urllib.parse.urljoin(base, f"_sources/chapters/{nb.name}")
        assert expected in v["downloads"], f"{nb.stem}: no download link to {expected} in {v['downloads']}"
        with urllib.request.urlopen(expected, timeout=30) as resp:
            assert resp.status == 200
            served = json.loads(resp.read())
        assert served["cells"] and served.get("nbformat") == 4, f"{nb.name}: served file is not a notebook"
        assert served == json.loads(nb.read_text()), f"{nb.name}: served notebook differs from the committed one"


def test_screenshots_saved(visits):
    for nb in ROOT.glob("chapters/*.ipynb"):
        shot = SCREENSHOTS / f"chapters__{nb.stem}.png"
        assert shot.exists() and shot.stat().st_size > 10_000, shot
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------
# the explorables (book/_static/explorables): they draw, and they answer their controls


_SET = """
const [root, name, value] = arguments;
const inp = root.querySelector(`input[name="${name}"]` + (value === null ? "" : `[value="${value}"]`));
if (!inp) return "no input " + name + " " + value;
if (inp.type === "range") { inp.value = String(arguments[3]); inp.dispatchEvent(new Event("input")); }
else { inp.checked = true; inp.dispatchEvent(new Event("change")); }
return "ok";
"""

_STATE = """
const root = arguments[0];
const texts = Array.from(root.querySelectorAll("*")).filter((e) => e.childElementCount === 0 && e.textContent.trim());
return {ready: root.classList.contains("nfr-ex-ready"), text: root.innerText,
        readout: Array.from(root.querySelectorAll(".nfr-readout, table.nfr-ex-readout, figcaption")).map((e) => e.innerText).join(" | "),
        paths: root.querySelectorAll("svg path").length,
        imgs: Array.from(root.querySelectorAll("img")).map((i) => [i.src.slice(-40), i.complete && i.naturalWidth > 0]),
        // the smallest text as shown: font size times the SVG's scale on the page
        minFont: Math.min(...texts.map((e) => {
          const px = parseFloat(getComputedStyle(e).fontSize);
          const svg = e.closest("svg");
          return svg ? px * svg.getBoundingClientRect().width / svg.viewBox.baseVal.width : px; }))};
"""


def _explorable(driver, base, page, name):
    driver.get(base + page)
    _settle(driver)
    root = driver.find_element("css selector", f".nfr-explorable[data-explorable='{name}']")
    for _ in range(50):
        if driver.execute_script(_STATE, root)["ready"]:
            break
        time.sleep(0.2)
    return root


def test_explorables_draw_and_answer_their_controls(server, driver):
    base, _ = server
    root = _explorable(driver, base, "chapters/02_theorem1_isotropic_alignment.html", "theorem1")
    s = driver.execute_script(_STATE, root)
    assert s["ready"] and s["paths"] >= 4, s["text"][:300]
    assert "N = 4096, d = 64" in s["readout"] and "Theorem 1's rate" in s["readout"], s["readout"]
    assert s["minFont"] >= 9, f"explorable text {s['minFont']:.1f} px at 1280 px"
    assert driver.execute_script(_SET, root, "t1-width", None, 0) == "ok"
    assert "N = 4, d = 64" in driver.execute_script(_STATE, root)["readout"]
    for name, value in (("t1-d", "2"), ("t1-law", "uniform")):
        assert driver.execute_script(_SET, root, name, value) == "ok"
    s = driver.execute_script(_STATE, root)
    assert "N = 4, d = 2" in s["readout"] and "the law's limit" in s["readout"], s["readout"]
    assert driver.execute_script(_SET, root, "t1-scale", "gap") == "ok"
    assert "1 \u2212 \u03b1(R, x)" in driver.execute_script(_STATE, root)["text"]

    root = _explorable(driver, base, "chapters/05_cascade_substitution.html", "cascade")
    s = driver.execute_script(_STATE, root)
    assert s["ready"] and all(ok for _, ok in s["imgs"]) and len(s["imgs"]) == 4, s["imgs"]
    assert s["minFont"] >= 9, f"explorable text {s['minFont']:.1f} px at 1280 px"
    assert "Level N = 16" in s["readout"]
    assert driver.execute_script(_SET, root, "cas-level", None, 0) == "ok"
    s0 = driver.execute_script(_STATE, root)
    # level 0 is the raw gradient for every rule: one alpha, shown three times
    alphas = {t.split("\u03b1 = ")[1] for t in s0["readout"].split(" | ") if t.startswith(("GBP:", "RectGrad:", "LRP(z+):"))}
    assert "Level N = 0" in s0["readout"] and len(alphas) == 1, s0["readout"]
    assert driver.execute_script(_SET, root, "cas-net", "trained") == "ok"
    s1 = driver.execute_script(_STATE, root)
    assert "trained network" in s1["readout"] and s1["imgs"] != s0["imgs"]
    console = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not console, console


def test_figure_text_is_at_least_9_css_pixels(visits, book_build):
    """Every figure a chapter computes records its smallest text in its PNG (nfr.plotting.figure_png);
    at the width this 1280-px window shows it, that text is at least 9 CSS pixels. The widths the page
    gives a figure are the ones tests/test_chapters.py assumes (column or full-width placement)."""
    from test_chapters import COLUMN_PX, FULL_WIDTH_PX

    from nfr.plotting import png_text_px

    problems, n = {}, 0
    for page, rec in visits.items():
        for img in rec["images"]:
            if not (img["output"] and img["ok"]) or not img["src"].startswith("http"):
                continue
            path = book_build.html / urllib.parse.urlparse(img["src"]).path.lstrip("/")
            px = png_text_px(path.read_bytes()) if path.suffix == ".png" else None
            name = path.name[:12]
            if px is None:
                problems.setdefault(page, []).append(f"{name}: no record of its smallest text")
                continue
            n += 1
            room = FULL_WIDTH_PX if img["fullWidth"] else COLUMN_PX
            if abs(img["shown"] - min(img["natural"], room)) > 2:
                problems.setdefault(page, []).append(
                    f"{name}: shown {img['shown']:.0f} px wide, expected min({img['natural']}, {room})")
            shown = px * img["shown"] / img["natural"]
            if shown < 9:
                problems.setdefault(page, []).append(f"{name}: smallest text {shown:.1f} CSS px as shown")
    assert n >= 30, f"only {n} figures with a text record were seen"
    assert not problems, _report(problems)
